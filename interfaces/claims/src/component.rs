//! Signing and verifying components. A signed component is the original
//! binary plus one custom section holding a JWT whose `wascap.hash` is the
//! SHA-256 of every other byte, so the signature covers the code itself.

use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::wasm::{self, CLAIMS_SECTION};
use crate::{Claims, ClaimsError, KeyKind, Policy, Token};

/// The `wascap` section of a component's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentMetadata {
    /// A friendly name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Upper-case hex SHA-256 of the binary without its claims section.
    pub hash: String,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// A monotonically increasing revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<i32>,
    /// A human-friendly version string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<String>,
    /// Whether the artifact is a capability provider (always false here).
    #[serde(default)]
    pub prov: bool,
    /// An alias other components may use to call this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_alias: Option<String>,
}

/// What `wash claims sign` lets the signer say about a component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignOptions {
    /// Friendly name.
    pub name: Option<String>,
    /// Version string.
    pub ver: Option<String>,
    /// Revision number.
    pub rev: Option<i32>,
    /// Tags.
    pub tags: Vec<String>,
    /// Call alias.
    pub call_alias: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: Option<u64>,
    /// Not valid before, seconds since the Unix epoch.
    pub not_before: Option<u64>,
}

/// Upper-case hex SHA-256, the hash format claims record.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The hash a component's claims must record: of its bytes, claims removed.
pub fn component_hash(wasm: &[u8]) -> Result<String, ClaimsError> {
    Ok(sha256_hex(&wasm::strip_claims(wasm)?))
}

/// Signs `wasm` as the component `subject` (an `M…` public key), issued by
/// the account `issuer`. Any claims already embedded are replaced, never
/// stacked, so re-signing is safe.
pub fn sign_component(
    wasm: &[u8],
    issuer: &KeyPair,
    subject: &str,
    options: &SignOptions,
) -> Result<Vec<u8>, ClaimsError> {
    KeyKind::Account.check_pair("issuer", issuer)?;
    KeyKind::Component.check_public("subject", subject)?;
    let mut out = wasm::strip_claims(wasm)?;
    let metadata = ComponentMetadata {
        name: options.name.clone(),
        hash: sha256_hex(&out),
        tags: (!options.tags.is_empty()).then(|| options.tags.clone()),
        rev: options.rev,
        ver: options.ver.clone(),
        prov: false,
        call_alias: options.call_alias.clone(),
    };
    let mut claims = Claims::new(&issuer.public_key(), subject, metadata);
    claims.exp = options.expires_at;
    claims.nbf = options.not_before;
    let token = Token::sign(claims, issuer)?;
    wasm::append_custom_section(&mut out, CLAIMS_SECTION, token.jwt.as_bytes());
    Ok(out)
}

/// Reads the embedded claims without trusting them (for `inspect`).
/// `Ok(None)` means the binary is unsigned.
pub fn read_component_claims(
    wasm: &[u8],
) -> Result<Option<Claims<ComponentMetadata>>, ClaimsError> {
    match wasm::find_claims(wasm)? {
        None => Ok(None),
        Some(jwt) => Token::decode_unverified(&jwt).map(Some),
    }
}

/// Everything a host checks before it runs a component: claims present,
/// signature valid, keys of the right kinds, hash matching the code, inside
/// the validity window at `now`, and an issuer the policy allows.
pub fn verify_component(
    wasm: &[u8],
    policy: &Policy,
    now: u64,
) -> Result<Token<ComponentMetadata>, ClaimsError> {
    let jwt = wasm::find_claims(wasm)?.ok_or(ClaimsError::NoClaims)?;
    let token: Token<ComponentMetadata> = Token::decode(&jwt)?;
    KeyKind::Account.check_public("issuer", &token.claims.iss)?;
    KeyKind::Component.check_public("subject", &token.claims.sub)?;
    let metadata = token
        .claims
        .metadata
        .as_ref()
        .ok_or(ClaimsError::MissingMetadata)?;
    let found = component_hash(wasm)?;
    if !metadata.hash.eq_ignore_ascii_case(&found) {
        return Err(ClaimsError::HashMismatch {
            expected: metadata.hash.clone(),
            found,
        });
    }
    policy.check(&token.claims, now)?;
    Ok(token)
}
