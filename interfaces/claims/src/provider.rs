//! Signing and verifying capability providers. A provider ships as one
//! native executable per target triple; its claims are a separate JWT that
//! records the SHA-256 of each executable, so one signature covers every
//! platform build and a host checks the one it is about to run.

use std::collections::BTreeMap;

use nkeys::KeyPair;
use serde::{Deserialize, Serialize};

use crate::{Claims, ClaimsError, KeyKind, Policy, Token, sha256_hex};

/// The target name of the machine this code runs on, as provider claims
/// and provider archives name targets: `{arch}-{os}`, e.g. `x86_64-linux`
/// (wasmCloud's provider-archive convention).
pub fn native_target() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// The detached claims of a provider executable at `path`: `path` + `.jwt`.
pub fn provider_claims_path(path: &std::path::Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".jwt");
    std::path::PathBuf::from(name)
}

/// The `wascap` section of a provider's claims.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// A friendly name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Who publishes the provider.
    #[serde(default)]
    pub vendor: String,
    /// A monotonically increasing revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<i32>,
    /// A human-friendly version string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<String>,
    /// JSON schema of the provider's link configuration, if published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<serde_json::Value>,
    /// Target triple to upper-case hex SHA-256 of that target's executable.
    #[serde(default)]
    pub target_hashes: BTreeMap<String, String>,
}

/// What the signer says about a provider besides its hashes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderSignOptions {
    /// Friendly name.
    pub name: Option<String>,
    /// Vendor.
    pub vendor: String,
    /// Version string.
    pub ver: Option<String>,
    /// Revision number.
    pub rev: Option<i32>,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: Option<u64>,
}

/// Signs claims for the provider `subject` (a `V…` public key) covering each
/// `(target triple, executable bytes)` pair.
pub fn sign_provider<'a>(
    executables: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    issuer: &KeyPair,
    subject: &str,
    options: &ProviderSignOptions,
) -> Result<Token<ProviderMetadata>, ClaimsError> {
    KeyKind::Account.check_pair("issuer", issuer)?;
    KeyKind::Provider.check_public("subject", subject)?;
    let target_hashes = executables
        .into_iter()
        .map(|(target, bytes)| (target.to_owned(), sha256_hex(bytes)))
        .collect();
    let metadata = ProviderMetadata {
        name: options.name.clone(),
        vendor: options.vendor.clone(),
        rev: options.rev,
        ver: options.ver.clone(),
        config_schema: None,
        target_hashes,
    };
    let mut claims = Claims::new(&issuer.public_key(), subject, metadata);
    claims.exp = options.expires_at;
    Token::sign(claims, issuer)
}

impl ProviderMetadata {
    /// The hash signed for `target`, or [`ClaimsError::UnknownTarget`]
    /// naming the targets that are signed.
    pub fn target_hash(&self, target: &str) -> Result<&str, ClaimsError> {
        match self.target_hashes.get(target) {
            Some(hash) => Ok(hash),
            None => Err(ClaimsError::UnknownTarget {
                target: target.to_owned(),
                signed: self
                    .target_hashes
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// Decodes provider claims and checks what needs no executable: the
/// signature, the key kinds and that the metadata is there. Time and
/// issuer are left to [`Policy::check`], hashes to the caller.
pub fn decode_provider(jwt: &str) -> Result<Token<ProviderMetadata>, ClaimsError> {
    let token: Token<ProviderMetadata> = Token::decode(jwt)?;
    KeyKind::Account.check_public("issuer", &token.claims.iss)?;
    KeyKind::Provider.check_public("subject", &token.claims.sub)?;
    if token.claims.metadata.is_none() {
        return Err(ClaimsError::MissingMetadata);
    }
    Ok(token)
}

/// Verifies provider claims for the executable a host is about to run on
/// `target`: signature, key kinds, that target's hash, time and issuer.
pub fn verify_provider(
    jwt: &str,
    target: &str,
    executable: &[u8],
    policy: &Policy,
    now: u64,
) -> Result<Token<ProviderMetadata>, ClaimsError> {
    let token = decode_provider(jwt)?;
    let metadata = token
        .claims
        .metadata
        .as_ref()
        .ok_or(ClaimsError::MissingMetadata)?;
    let expected = metadata.target_hash(target)?;
    let found = sha256_hex(executable);
    if !expected.eq_ignore_ascii_case(&found) {
        return Err(ClaimsError::HashMismatch {
            expected: expected.to_owned(),
            found,
        });
    }
    policy.check(&token.claims, now)?;
    Ok(token)
}
