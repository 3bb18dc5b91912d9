//! What `wash push`, `wash pull` and `wash claims inspect <ref>` share when
//! they talk to an OCI registry: a client built from the shared registry
//! flags, the canonical way to print a reference, and reading a provider
//! archive's claims from its config blob.
//!
//! The wire format and the registry protocol live in `trellis-oci`; this
//! module only adapts them to `wash`'s error style.

use anyhow::Context;
use trellis_oci::artifact::{ArtifactManifest, parse_config};
use trellis_oci::{ArtifactRef, Registry, RegistryArgs, RegistryOptions};

/// What the `--allow-insecure-registry` and `--allow-latest` flags and the
/// credentials in the environment say about reaching registries.
pub fn options(args: &RegistryArgs) -> anyhow::Result<RegistryOptions> {
    args.options()
        .map_err(anyhow::Error::msg)
        .context("reading registry credentials")
}

/// A registry client configured by the registry flags.
pub fn client(args: &RegistryArgs) -> anyhow::Result<Registry> {
    Ok(Registry::new(options(args)?))
}

/// The reference as a host accepts it: always with the `oci://` scheme, so
/// the printed text can be pasted into `wash start` or a manifest.
pub fn display(reference: &ArtifactRef) -> String {
    let text = reference.as_str();
    if text.starts_with("oci://") {
        text.to_owned()
    } else {
        format!("oci://{text}")
    }
}

/// The last segment of the repository (`counter` for `acme/counter`): the
/// natural file name for what is pulled from it.
pub fn repository_name(reference: &ArtifactRef) -> &str {
    let repository = reference.repository();
    repository.rsplit('/').next().unwrap_or(repository)
}

/// A provider archive's claims JWT, read from its config blob. The config
/// is what the manifest's digest covers, so its claims are the ones that
/// were pushed.
pub async fn provider_claims(
    registry: &Registry,
    reference: &ArtifactRef,
    manifest: &ArtifactManifest,
) -> anyhow::Result<String> {
    let bytes = registry
        .blob(reference, &manifest.manifest.config)
        .await
        .context("downloading the provider archive's config")?;
    Ok(parse_config(reference.as_str(), &bytes)?.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(text: &str) -> ArtifactRef {
        ArtifactRef::parse(text, false).expect("a valid reference")
    }

    #[test]
    fn references_are_shown_with_the_oci_scheme() {
        assert_eq!(
            display(&reference("127.0.0.1:5000/acme/counter:0.1.0")),
            "oci://127.0.0.1:5000/acme/counter:0.1.0"
        );
        assert_eq!(
            display(&reference("oci://127.0.0.1:5000/acme/counter:0.1.0")),
            "oci://127.0.0.1:5000/acme/counter:0.1.0"
        );
    }

    #[test]
    fn the_repository_name_is_its_last_segment() {
        assert_eq!(
            repository_name(&reference("oci://127.0.0.1:5000/acme/counter:0.1.0")),
            "counter"
        );
        assert_eq!(repository_name(&reference("localhost:5000/kv:1")), "kv");
    }
}
