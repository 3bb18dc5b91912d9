//! `wash claims inspect`: show what an artifact's claims say and check them
//! the way a host would, for a file or for a registry reference.
//!
//! A component's claims are inside its Wasm, so inspecting one from a
//! registry downloads its layer and checks it exactly like a file: the
//! signature, the module hash and the validity window. A provider's claims
//! are a detached JWT (beside the executable as `FILE.jwt`, or in a
//! provider archive's config), and an archive may hold executables for
//! several platforms; downloading them all just to look would be wasteful,
//! so from a registry only the signature, the validity window and that the
//! claims cover every target the archive holds are checked, and the report
//! says so. `wash pull` checks the executable it downloads.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;
use trellis_claims::{
    Claims, ClaimsError, ComponentMetadata, Policy, ProviderMetadata, Token, now_unix,
    read_component_claims, sha256_hex, verify_component, verify_provider,
};
use trellis_oci::{ArtifactKind, ArtifactRef, is_oci_reference};

use super::InspectArgs;
use crate::cmd::lattice::block_on;
use crate::cmd::registry;
use crate::output::{self, Format};

/// What `inspect` reports, in both formats. Fields that only one kind of
/// artifact, or only a registry, has are left out of the JSON otherwise.
#[derive(Serialize)]
struct Inspection {
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    kind: ArtifactKind,
    name: Option<String>,
    issuer: String,
    subject: String,
    #[serde(flatten)]
    details: Details,
    issued_at: u64,
    expires: Option<u64>,
    not_before: Option<u64>,
    version: Option<String>,
    revision: Option<i32>,
    wascap_revision: Option<u32>,
    valid: bool,
    /// What `valid` vouches for.
    checked: String,
    problem: Option<String>,
}

/// The part of the claims that differs between components and providers.
#[derive(Serialize)]
#[serde(untagged)]
enum Details {
    Component {
        hash: String,
        tags: Vec<String>,
        call_alias: Option<String>,
    },
    Provider {
        vendor: String,
        /// The targets the claims sign, with each executable's SHA-256.
        target_hashes: BTreeMap<String, String>,
        /// The targets a provider archive holds executables for.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        targets: Vec<String>,
    },
}

const COMPONENT_CHECKS: &str = "signature, module hash, validity window";

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    // An existing file wins over a reference-shaped name such as
    // `build.d/x.wasm`.
    if is_oci_reference(&args.artifact) && !Path::new(&args.artifact).exists() {
        let report = block_on(from_registry(&args))?;
        return show(args.format.output, &report, &args.artifact);
    }
    file(Path::new(&args.artifact), args.format.output)
}

/// Inspects a component or provider executable on disk.
pub fn file(path: &Path, format: Format) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let shown = path.display().to_string();
    let report = if crate::cmd::is_wasm(&bytes) {
        component(&bytes, &shown)?
    } else {
        provider_file(path, &bytes)?
    };
    show(format, &report, &shown)
}

fn show(format: Format, report: &Inspection, shown: &str) -> anyhow::Result<()> {
    output::print(format, report, &rows(report))?;
    match &report.problem {
        None => Ok(()),
        Some(problem) => bail!("{shown} does not verify: {problem}"),
    }
}

async fn from_registry(args: &InspectArgs) -> anyhow::Result<Inspection> {
    let registry = registry::client(&args.registry)?;
    let reference = registry.parse(&args.artifact)?;
    let shown = registry::display(&reference);
    let (manifest, digest, _) = registry
        .manifest(&reference)
        .await
        .context("reading the artifact's manifest")?;
    let mut report = match manifest.kind {
        ArtifactKind::Component => {
            let layer = manifest.component_layer(reference.as_str())?;
            let wasm = registry
                .blob(&reference, layer)
                .await
                .context("downloading the component to check its hash")?;
            component(&wasm, &shown)?
        }
        ArtifactKind::Provider => {
            let jwt = registry::provider_claims(&registry, &reference, &manifest).await?;
            provider_archive(&reference, &jwt, manifest.targets())?
        }
    };
    report.reference = Some(shown);
    report.digest = Some(digest);
    Ok(report)
}

/// A component's embedded claims, verified in full.
fn component(wasm: &[u8], shown: &str) -> anyhow::Result<Inspection> {
    let Some(claims) =
        read_component_claims(wasm).with_context(|| format!("reading the claims of {shown}"))?
    else {
        bail!("{shown}: {}", ClaimsError::NoClaims);
    };
    let problem = verify_component(wasm, &Policy::any_issuer(), now_unix()).err();
    Ok(component_inspection(claims, problem))
}

/// A provider executable on disk with its claims in `FILE.jwt`, verified
/// in full for the target whose signed hash matches the file (or, if none
/// does, for this machine's target, which names the mismatch).
fn provider_file(path: &Path, executable: &[u8]) -> anyhow::Result<Inspection> {
    let claims_path = trellis_claims::provider_claims_path(path);
    let jwt = match std::fs::read_to_string(&claims_path) {
        Ok(jwt) => jwt,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} is not a Wasm component, so it is read as a provider executable, but its claims \
             {} do not exist; sign it with `wash claims sign-provider {}`",
            path.display(),
            claims_path.display(),
            path.display()
        ),
        Err(err) => return Err(err).with_context(|| format!("reading {}", claims_path.display())),
    };
    let claims = decode_provider(&jwt, &claims_path.display().to_string())?;
    let found = sha256_hex(executable);
    let target = claims
        .metadata
        .as_ref()
        .and_then(|m| {
            m.target_hashes
                .iter()
                .find(|(_, hash)| hash.eq_ignore_ascii_case(&found))
        })
        .map(|(target, _)| target.clone())
        .unwrap_or_else(trellis_claims::native_target);
    let problem =
        verify_provider(&jwt, &target, executable, &Policy::any_issuer(), now_unix()).err();
    let checked = format!("signature, {target} executable hash, validity window");
    Ok(provider_inspection(claims, Vec::new(), checked, problem))
}

/// A provider archive's claims, checked without downloading executables.
fn provider_archive(
    reference: &ArtifactRef,
    jwt: &str,
    targets: Vec<String>,
) -> anyhow::Result<Inspection> {
    let claims = decode_provider(jwt, &registry::display(reference))?;
    let problem = check_archive_claims(jwt, &targets, now_unix()).err();
    let checked = "signature, validity window, every target signed; executable hashes are \
                   checked by `wash pull`, which downloads one"
        .to_owned();
    Ok(provider_inspection(claims, targets, checked, problem))
}

/// The claims for display, before they are trusted: a bad signature is
/// reported as a problem next to what the claims say.
fn decode_provider(jwt: &str, shown: &str) -> anyhow::Result<Claims<ProviderMetadata>> {
    Token::<ProviderMetadata>::decode_unverified(jwt)
        .with_context(|| format!("reading the provider claims of {shown}"))
}

/// What a host checks of provider claims, short of hashing an executable:
/// the signature, the key kinds, that every target the archive holds is
/// signed, and the validity window.
fn check_archive_claims(jwt: &str, targets: &[String], now: u64) -> Result<(), ClaimsError> {
    let token = trellis_claims::decode_provider(jwt)?;
    let metadata = token
        .claims
        .metadata
        .as_ref()
        .ok_or(ClaimsError::MissingMetadata)?;
    for target in targets {
        metadata.target_hash(target)?;
    }
    Policy::any_issuer().check(&token.claims, now)
}

fn component_inspection(
    claims: Claims<ComponentMetadata>,
    problem: Option<ClaimsError>,
) -> Inspection {
    let meta = claims.metadata.unwrap_or_default();
    Inspection {
        reference: None,
        digest: None,
        kind: ArtifactKind::Component,
        name: meta.name,
        issuer: claims.iss,
        subject: claims.sub,
        details: Details::Component {
            hash: meta.hash,
            tags: meta.tags.unwrap_or_default(),
            call_alias: meta.call_alias,
        },
        issued_at: claims.iat,
        expires: claims.exp,
        not_before: claims.nbf,
        version: meta.ver,
        revision: meta.rev,
        wascap_revision: claims.wascap_revision,
        valid: problem.is_none(),
        checked: COMPONENT_CHECKS.to_owned(),
        problem: problem.map(|e| e.to_string()),
    }
}

fn provider_inspection(
    claims: Claims<ProviderMetadata>,
    targets: Vec<String>,
    checked: String,
    problem: Option<ClaimsError>,
) -> Inspection {
    let meta = claims.metadata.unwrap_or_default();
    Inspection {
        reference: None,
        digest: None,
        kind: ArtifactKind::Provider,
        name: meta.name,
        issuer: claims.iss,
        subject: claims.sub,
        details: Details::Provider {
            vendor: meta.vendor,
            target_hashes: meta.target_hashes,
            targets,
        },
        issued_at: claims.iat,
        expires: claims.exp,
        not_before: claims.nbf,
        version: meta.ver,
        revision: meta.rev,
        wascap_revision: claims.wascap_revision,
        valid: problem.is_none(),
        checked,
        problem: problem.map(|e| e.to_string()),
    }
}

fn rows(report: &Inspection) -> Vec<(&'static str, String)> {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let list = |items: &[String]| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    let mut rows = Vec::new();
    if let Some(reference) = &report.reference {
        rows.push(("Reference", reference.clone()));
    }
    if let Some(digest) = &report.digest {
        rows.push(("Digest", digest.clone()));
    }
    rows.extend([
        (
            "Kind",
            match report.kind {
                ArtifactKind::Component => "component".to_owned(),
                ArtifactKind::Provider => "provider".to_owned(),
            },
        ),
        ("Name", or_none(&report.name)),
        ("Issuer", report.issuer.clone()),
        ("Subject", report.subject.clone()),
    ]);
    match &report.details {
        Details::Component { hash, .. } => rows.push(("Hash", hash.clone())),
        Details::Provider {
            vendor,
            target_hashes,
            targets,
        } => {
            rows.push(("Vendor", vendor.clone()));
            let signed: Vec<String> = target_hashes.keys().cloned().collect();
            rows.push(("Signed Targets", list(&signed)));
            if report.reference.is_some() {
                rows.push(("Archive Targets", list(targets)));
            }
        }
    }
    rows.extend([
        ("Issued", timestamp(report.issued_at)),
        ("Expires", report.expires.map_or("never".into(), timestamp)),
        (
            "Not Before",
            report.not_before.map_or("immediately".into(), timestamp),
        ),
        ("Version", or_none(&report.version)),
        (
            "Revision",
            report.revision.map_or("-".into(), |r| r.to_string()),
        ),
    ]);
    if let Details::Component {
        tags, call_alias, ..
    } = &report.details
    {
        rows.push(("Tags", list(tags)));
        rows.push(("Call Alias", or_none(call_alias)));
    }
    rows.push((
        "Verified",
        match &report.problem {
            None => format!("yes ({})", report.checked),
            Some(problem) => format!("NO: {problem}"),
        },
    ));
    rows
}

fn timestamp(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use trellis_claims::{KeyKind, ProviderSignOptions, sign_provider};

    use super::*;

    fn provider_jwt(targets: &[(&str, &[u8])], expires_at: Option<u64>) -> String {
        let account = KeyKind::Account.generate();
        let subject = KeyKind::Provider.generate().public_key();
        let options = ProviderSignOptions {
            name: Some("kv".into()),
            vendor: "acme".into(),
            expires_at,
            ..ProviderSignOptions::default()
        };
        sign_provider(targets.iter().copied(), &account, &subject, &options)
            .unwrap()
            .jwt
    }

    #[test]
    fn archive_claims_must_sign_every_target_the_archive_holds() {
        let jwt = provider_jwt(&[("x86_64-linux", b"a")], None);
        let now = now_unix();
        check_archive_claims(&jwt, &["x86_64-linux".into()], now).unwrap();
        let err = check_archive_claims(&jwt, &["x86_64-linux".into(), "aarch64-linux".into()], now)
            .unwrap_err();
        assert!(
            matches!(err, ClaimsError::UnknownTarget { ref target, .. } if target == "aarch64-linux")
        );
    }

    #[test]
    fn archive_claims_with_a_forged_body_are_refused() {
        let jwt = provider_jwt(&[("x86_64-linux", b"a")], None);
        let other = provider_jwt(&[("x86_64-linux", b"b")], None);
        // Another token's body under this token's signature.
        let parts: Vec<&str> = jwt.split('.').collect();
        let other_parts: Vec<&str> = other.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
        let err = check_archive_claims(&forged, &["x86_64-linux".into()], now_unix()).unwrap_err();
        assert!(matches!(err, ClaimsError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn expired_archive_claims_are_refused() {
        let jwt = provider_jwt(&[("x86_64-linux", b"a")], Some(1));
        let err = check_archive_claims(&jwt, &["x86_64-linux".into()], now_unix()).unwrap_err();
        assert!(matches!(err, ClaimsError::Expired { .. }), "{err}");
    }

    #[test]
    fn a_provider_file_is_checked_against_the_target_its_hash_matches() {
        let dir = tempfile::tempdir().unwrap();
        let executable = dir.path().join("kv");
        std::fs::write(&executable, b"arm build").unwrap();
        let jwt = provider_jwt(
            &[
                ("x86_64-linux", b"x86 build"),
                ("aarch64-linux", b"arm build"),
            ],
            None,
        );
        std::fs::write(trellis_claims::provider_claims_path(&executable), jwt).unwrap();
        let report = provider_file(&executable, b"arm build").unwrap();
        assert!(report.valid, "{:?}", report.problem);
        assert!(
            report.checked.contains("aarch64-linux"),
            "{}",
            report.checked
        );

        let report = provider_file(&executable, b"tampered").unwrap();
        assert!(!report.valid);
    }

    #[test]
    fn provider_json_carries_targets_and_no_component_fields() {
        let jwt = provider_jwt(&[("x86_64-linux", b"a")], None);
        let reference = ArtifactRef::parse("127.0.0.1:5000/acme/kv:0.1.0", false).unwrap();
        let report = provider_archive(&reference, &jwt, vec!["x86_64-linux".into()]).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["kind"], "provider");
        assert_eq!(json["vendor"], "acme");
        assert_eq!(json["targets"], serde_json::json!(["x86_64-linux"]));
        assert!(json["target_hashes"]["x86_64-linux"].is_string());
        assert!(json.get("hash").is_none() && json.get("tags").is_none());
        assert_eq!(json["valid"], true);
    }
}
