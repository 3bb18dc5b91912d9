//! Loading a provider executable and deciding whether to run it.
//!
//! A provider file `X` is signed by a detached claims JWT beside it at
//! `X.jwt`, which records the SHA-256 of the executable per target; the
//! host checks the hash for its own target
//! ([`trellis_claims::native_target`], e.g. `x86_64-linux`) and applies the same policy as for components (allowed issuers,
//! validity, `--allow-unsigned` for a missing JWT only). A provider archive
//! in a registry carries the same claims in its config, and the host pulls
//! only the executable for its own target.
//!
//! The bytes that passed the check are what runs: they are copied into the
//! host's data directory (`bin/{sha256}/{file name}`, so `ps` still shows
//! the provider's name) and executed from there, so replacing the source
//! file after the check cannot swap in unsigned code. The copy is
//! read-only in directories only the host's user can enter, and it is
//! hashed again immediately before every exec (the first start and each
//! restart, see [`reverify`]): a copy changed on disk, even by someone
//! who may write there, is refused rather than run.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use trellis_claims::{ClaimsError, ProviderMetadata, Token};
use trellis_oci::{ArtifactCache, Fetched};

use crate::HostError;
use crate::files::{FileLimits, read_bounded};
use crate::policy::RunPolicy;

/// The largest claims file (`X.jwt`) read beside an executable; real ones
/// are a few KiB.
const MAX_CLAIMS_BYTES: u64 = 1024 * 1024;

/// A provider executable that passed the host's policy.
pub(crate) struct ProviderArtifact {
    /// The verified copy to execute.
    pub(crate) executable: PathBuf,
    /// Its claims, if it is signed.
    pub(crate) claims: Option<Token<ProviderMetadata>>,
    /// The SHA-256 (lower-case hex) of the bytes that passed the check.
    pub(crate) sha256: String,
}

/// Reads `reference` (a path, a `file://` URL or a registry reference),
/// checks it against `policy`, and stages the verified bytes under
/// `bin_dir`.
pub(crate) async fn load(
    reference: &str,
    policy: &RunPolicy,
    artifacts: &ArtifactCache,
    bin_dir: &Path,
    limits: FileLimits,
) -> Result<ProviderArtifact, HostError> {
    let source = if trellis_oci::is_oci_reference(reference) {
        pull(reference, artifacts).await?
    } else {
        read_local(reference, limits).await?
    };
    let claims = policy
        .admit_provider(
            source.jwt.as_deref().map(str::trim),
            &trellis_claims::native_target(),
            &source.bytes,
        )
        .map_err(|err| match err {
            ClaimsError::NoClaims => HostError::ProviderUnsigned {
                reference: reference.to_owned(),
                claims_path: source.claims_location.clone(),
            },
            source => HostError::Refused {
                reference: reference.to_owned(),
                source,
            },
        })?;
    if let Some(pulled) = &source.pulled {
        artifacts.record(pulled).await?;
    }
    let sha256 = trellis_claims::sha256_hex(&source.bytes).to_ascii_lowercase();
    let executable = stage(&source.bytes, &sha256, &source.name, bin_dir)
        .await
        .map_err(|e| HostError::Fetch {
            reference: reference.to_owned(),
            reason: format!("staging it under {}: {e}", bin_dir.display()),
        })?;
    Ok(ProviderArtifact {
        executable,
        claims,
        sha256,
    })
}

/// Checks that the staged copy at `executable` still holds the bytes whose
/// SHA-256 is `sha256`; the reason to refuse it otherwise.
pub(crate) async fn reverify(executable: &Path, sha256: &str) -> Result<(), String> {
    let bytes = tokio::fs::read(executable).await.map_err(|e| {
        format!(
            "cannot be started: its verified copy {} cannot be read ({e}); start it again from its signed source",
            executable.display()
        )
    })?;
    let found = trellis_claims::sha256_hex(&bytes).to_ascii_lowercase();
    if found == sha256 {
        return Ok(());
    }
    Err(format!(
        "was not started: its verified copy {} changed on disk after it was verified (sha256 {sha256} \
         expected, {found} found), so it is no longer the signed executable; find out who changed it, \
         then start the provider again from its signed source",
        executable.display()
    ))
}

/// An executable and its claims, not yet checked.
struct Source {
    bytes: Vec<u8>,
    jwt: Option<String>,
    /// Where the claims were looked for, for the "not signed" message.
    claims_location: String,
    /// The file name to run it under.
    name: OsString,
    /// Set when it came from a registry.
    pulled: Option<Fetched>,
}

/// The executable for this host's target from a provider archive.
async fn pull(reference: &str, artifacts: &ArtifactCache) -> Result<Source, HostError> {
    let mut fetched = artifacts
        .provider(reference, &trellis_claims::native_target())
        .await?;
    let name = fetched
        .file_name
        .clone()
        // The title comes from the registry: only a plain file name may
        // pick where the executable is staged.
        .filter(|n| Path::new(n).file_name() == Some(OsStr::new(n)))
        .unwrap_or_else(|| "provider".to_owned());
    Ok(Source {
        bytes: std::mem::take(&mut fetched.bytes),
        jwt: fetched.claims.clone(),
        claims_location: format!("the archive's config ({})", fetched.digest),
        name: OsString::from(name),
        pulled: Some(fetched),
    })
}

/// A local executable `X` and its detached claims `X.jwt`.
async fn read_local(reference: &str, limits: FileLimits) -> Result<Source, HostError> {
    let fail = |reason: String| HostError::Fetch {
        reference: reference.to_owned(),
        reason,
    };
    let path = local_path(reference)?;
    let bytes = read_bounded(&path, limits).await.map_err(fail)?;
    let claims_path = trellis_claims::provider_claims_path(&path);
    let jwt = match tokio::fs::symlink_metadata(&claims_path).await {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        _ => {
            let claims_limits = FileLimits {
                max_bytes: MAX_CLAIMS_BYTES,
                ..limits
            };
            let bytes = read_bounded(&claims_path, claims_limits)
                .await
                .map_err(|reason| fail(format!("reading its claims: {reason}")))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| fail(format!("its claims {} are not text", claims_path.display())))?;
            Some(text)
        }
    };
    Ok(Source {
        bytes,
        jwt,
        claims_location: claims_path.display().to_string(),
        name: path
            .file_name()
            .unwrap_or(OsStr::new("provider"))
            .to_owned(),
        pulled: None,
    })
}

/// A file path from a path or `file://` URL; other schemes are refused.
fn local_path(reference: &str) -> Result<PathBuf, HostError> {
    if let Some(path) = reference.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    if let Some((scheme, _)) = reference.split_once("://") {
        return Err(HostError::Fetch {
            reference: reference.to_owned(),
            reason: format!(
                "`{scheme}://` is not a scheme Trellis reads; pass a file path, a file:// URL \
                 or an oci:// registry reference"
            ),
        });
    }
    Ok(PathBuf::from(reference))
}

/// Writes `bytes` to `bin_dir/{sha256}/{name}` as a read-only executable,
/// in directories only this user may enter. Written to a temporary name and
/// renamed, so a host that runs the same file meanwhile keeps its copy and
/// sees no half-written one.
async fn stage(
    bytes: &[u8],
    sha256: &str,
    name: &OsStr,
    bin_dir: &Path,
) -> std::io::Result<PathBuf> {
    let dir = bin_dir.join(sha256);
    tokio::fs::create_dir_all(&dir).await?;
    let target = dir.join(name);
    let temporary = dir.join(format!(".staging-{}", uuid::Uuid::new_v4()));
    tokio::fs::write(&temporary, bytes).await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for private in [bin_dir, dir.as_path()] {
            tokio::fs::set_permissions(private, std::fs::Permissions::from_mode(0o700)).await?;
        }
        tokio::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o500)).await?;
    }
    if let Err(err) = tokio::fs::rename(&temporary, &target).await {
        let _ = tokio::fs::remove_file(&temporary).await;
        return Err(err);
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use trellis_claims::{KeyKind, ProviderSignOptions, sign_provider};

    use super::*;

    const EXECUTABLE: &[u8] = b"#!/bin/sh\nexit 0\n";

    fn signed(dir: &Path, options: &ProviderSignOptions) -> (PathBuf, String) {
        let account = KeyKind::Account.generate();
        let subject = KeyKind::Provider.generate().public_key();
        let token = sign_provider(
            [(trellis_claims::native_target().as_str(), EXECUTABLE)],
            &account,
            &subject,
            options,
        )
        .unwrap();
        let path = dir.join("provider");
        std::fs::write(&path, EXECUTABLE).unwrap();
        std::fs::write(trellis_claims::provider_claims_path(&path), token.jwt).unwrap();
        (path, account.public_key())
    }

    fn policy(allow_unsigned: bool) -> RunPolicy {
        RunPolicy::new(&[], true, allow_unsigned).unwrap()
    }

    fn artifacts(dir: &Path) -> ArtifactCache {
        ArtifactCache::new(
            dir.join("oci"),
            trellis_oci::Registry::new(trellis_oci::RegistryOptions::default()),
        )
    }

    async fn load_in(
        dir: &Path,
        reference: &str,
        allow_unsigned: bool,
    ) -> Result<ProviderArtifact, HostError> {
        load(
            reference,
            &policy(allow_unsigned),
            &artifacts(dir),
            &dir.join("bin"),
            FileLimits::default(),
        )
        .await
    }

    async fn refusal(dir: &Path, reference: &str, allow_unsigned: bool) -> String {
        match load_in(dir, reference, allow_unsigned).await {
            Ok(_) => panic!("{reference} was accepted"),
            Err(err) => err.to_string(),
        }
    }

    #[tokio::test]
    async fn a_signed_provider_is_staged_with_its_claims() {
        let dir = tempfile::tempdir().unwrap();
        let (path, issuer) = signed(dir.path(), &ProviderSignOptions::default());
        let reference = format!("file://{}", path.display());
        let artifact = load_in(dir.path(), &reference, false).await.unwrap();
        assert_eq!(artifact.claims.unwrap().claims.iss, issuer);
        assert_eq!(std::fs::read(&artifact.executable).unwrap(), EXECUTABLE);
        assert!(artifact.executable.starts_with(dir.path().join("bin")));
        assert!(artifact.executable.ends_with("provider"), "keeps its name");
    }

    #[tokio::test]
    async fn the_staged_copy_is_read_only_private_and_checked_again_before_it_runs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = signed(dir.path(), &ProviderSignOptions::default());
        let artifact = load_in(dir.path(), &path.display().to_string(), false)
            .await
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&artifact.executable), 0o500);
        assert_eq!(mode(artifact.executable.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.path().join("bin")), 0o700);
        reverify(&artifact.executable, &artifact.sha256)
            .await
            .unwrap();
        // Swapped after verification, by someone who may write there.
        std::fs::set_permissions(&artifact.executable, std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::write(&artifact.executable, b"#!/bin/sh\necho pwned\n").unwrap();
        let err = reverify(&artifact.executable, &artifact.sha256)
            .await
            .unwrap_err();
        assert!(
            err.contains("changed on disk after it was verified"),
            "{err}"
        );
        assert!(err.contains(&artifact.sha256), "{err}");
    }

    #[tokio::test]
    async fn a_missing_jwt_is_refused_unless_unsigned_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("provider");
        std::fs::write(&path, EXECUTABLE).unwrap();
        let reference = path.display().to_string();
        let err = refusal(dir.path(), &reference, false).await;
        assert!(err.contains("not signed"), "{err}");
        assert!(err.contains("provider.jwt"), "{err}");
        assert!(err.contains("--allow-unsigned"), "{err}");
        let artifact = load_in(dir.path(), &reference, true).await.unwrap();
        assert!(artifact.claims.is_none());
    }

    #[tokio::test]
    async fn a_changed_executable_is_refused_even_when_unsigned_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = signed(dir.path(), &ProviderSignOptions::default());
        std::fs::write(&path, b"#!/bin/sh\nexit 1\n").unwrap();
        let err = refusal(dir.path(), &path.display().to_string(), true).await;
        assert!(err.contains("changed after signing"), "{err}");
    }

    #[tokio::test]
    async fn expired_claims_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = ProviderSignOptions {
            expires_at: Some(trellis_claims::now_unix() - 60),
            ..Default::default()
        };
        let (path, _) = signed(dir.path(), &options);
        let err = refusal(dir.path(), &path.display().to_string(), false).await;
        assert!(err.contains("expired"), "{err}");
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused_with_what_works() {
        let dir = tempfile::tempdir().unwrap();
        let err = refusal(dir.path(), "https://example.com/kv", true).await;
        assert!(err.contains("`https://` is not a scheme"), "{err}");
        assert!(err.contains("oci://"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_named_and_nothing_is_staged() {
        let dir = tempfile::tempdir().unwrap();
        // Port 1 on loopback: nothing listens there.
        let err = refusal(dir.path(), "oci://127.0.0.1:1/acme/kv:1.0.0", true).await;
        assert!(err.contains("cannot reach registry `127.0.0.1:1`"), "{err}");
        assert!(!dir.path().join("bin").exists());
    }
}
