//! `wash pull`: fetch a component or provider from an OCI registry into
//! files that `wash start` and `wash claims inspect` take as they are.
//!
//! Everything is verified before it is written: the registry client checks
//! each blob against its digest, and the claims are checked here the way a
//! host would (signature, code hash, validity window), with any issuer
//! accepted since there is no host policy to apply. A provider archive
//! yields one platform's executable (mode 0755) plus its claims beside it
//! in `PATH.jwt`, where hosts look for them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use trellis_claims::{Policy, now_unix};
use trellis_oci::artifact::{ANNOTATION_TITLE, ArtifactManifest};
use trellis_oci::{ArtifactKind, ArtifactRef, Registry, RegistryArgs};

use super::registry;
use crate::output::Format;

#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to pull, e.g. `oci://127.0.0.1:5000/acme/counter:0.1.0` (the
    /// `oci://` is optional).
    reference: String,
    /// Where to write it: a file, or an existing directory to write the
    /// default name into [default, in the current directory: a component
    /// as `<repository>.wasm`; a provider under its executable's pushed
    /// file name]. A provider's claims go to PATH.jwt.
    #[arg(short = 'O', long = "output", value_name = "PATH")]
    output: Option<PathBuf>,
    /// For a provider archive, which platform's executable to pull
    /// [default: this machine's, e.g. x86_64-linux].
    #[arg(long, value_name = "TARGET")]
    target: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Output format (`--output` names the file here, so the format is
    /// `-o` or `--format`).
    #[arg(short = 'o', long = "format", value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// What `pull` reports, in both formats.
#[derive(Serialize)]
struct PullReport {
    reference: String,
    digest: String,
    kind: ArtifactKind,
    path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims_path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

pub async fn run(args: PullArgs) -> anyhow::Result<()> {
    let registry = registry::client(&args.registry)?;
    let reference = registry.parse(&args.reference)?;
    let (manifest, digest, _) = registry
        .manifest(&reference)
        .await
        .context("reading the artifact's manifest")?;
    let report = match manifest.kind {
        ArtifactKind::Component => {
            if args.target.is_some() {
                bail!(
                    "{} is a component; --target only applies to provider archives",
                    registry::display(&reference)
                );
            }
            let path = pull_component(&registry, &reference, &manifest, args.output).await?;
            PullReport {
                reference: registry::display(&reference),
                digest,
                kind: ArtifactKind::Component,
                path,
                claims_path: None,
                target: None,
            }
        }
        ArtifactKind::Provider => {
            let target = args.target.unwrap_or_else(trellis_claims::native_target);
            let (path, claims_path) =
                pull_provider(&registry, &reference, &manifest, &target, args.output).await?;
            PullReport {
                reference: registry::display(&reference),
                digest,
                kind: ArtifactKind::Provider,
                path,
                claims_path: Some(claims_path),
                target: Some(target),
            }
        }
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => {
            println!("pulled {}", report.reference);
            println!("digest {}", report.digest);
            if let Some(target) = &report.target {
                println!("target {target}");
            }
            println!("wrote  {}", report.path.display());
            if let Some(claims_path) = &report.claims_path {
                println!("claims {}", claims_path.display());
            }
        }
    }
    Ok(())
}

async fn pull_component(
    registry: &Registry,
    reference: &ArtifactRef,
    manifest: &ArtifactManifest,
    output: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    let layer = manifest.component_layer(reference.as_str())?;
    let wasm = registry
        .blob(reference, layer)
        .await
        .context("downloading the component")?;
    trellis_claims::verify_component(&wasm, &Policy::any_issuer(), now_unix()).with_context(
        || {
            format!(
                "the component at {} does not verify; nothing was written",
                registry::display(reference)
            )
        },
    )?;
    let path = destination(
        output,
        &format!("{}.wasm", registry::repository_name(reference)),
    );
    std::fs::write(&path, &wasm).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

async fn pull_provider(
    registry: &Registry,
    reference: &ArtifactRef,
    manifest: &ArtifactManifest,
    target: &str,
    output: Option<PathBuf>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let layer = manifest.provider_layer(reference.as_str(), target)?;
    let jwt = registry::provider_claims(registry, reference, manifest).await?;
    let executable = registry
        .blob(reference, layer)
        .await
        .with_context(|| format!("downloading the {target} executable"))?;
    trellis_claims::verify_provider(&jwt, target, &executable, &Policy::any_issuer(), now_unix())
        .with_context(|| {
        format!(
            "the {target} executable at {} does not verify; nothing was written",
            registry::display(reference)
        )
    })?;
    let title = layer
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_TITLE))
        .map(String::as_str);
    let path = destination(
        output,
        default_provider_name(title, registry::repository_name(reference)),
    );
    write_executable(&path, &executable)?;
    let claims_path = trellis_claims::provider_claims_path(&path);
    std::fs::write(&claims_path, jwt.trim())
        .with_context(|| format!("writing {}", claims_path.display()))?;
    Ok((path, claims_path))
}

/// `--output` as given, inside it if it is a directory, or the default name
/// in the current directory.
fn destination(output: Option<PathBuf>, default_name: &str) -> PathBuf {
    match output {
        Some(dir) if dir.is_dir() => dir.join(default_name),
        Some(path) => path,
        None => PathBuf::from(default_name),
    }
}

/// The layer's title if it is a plain file name, else the repository name.
/// The title comes from the registry, so one with a directory part (`../x`,
/// `/usr/bin/x`) must not choose where the file lands.
fn default_provider_name<'a>(title: Option<&'a str>, repository: &'a str) -> &'a str {
    match title {
        Some(title)
            if Path::new(title)
                .file_name()
                .is_some_and(|name| name == title) =>
        {
            title
        }
        _ => repository,
    }
}

fn write_executable(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Set explicitly: `write` keeps the mode of a file it overwrites.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        pull: PullArgs,
    }

    #[test]
    fn capital_o_names_the_file_and_small_o_the_format() {
        let cli = Cli::try_parse_from([
            "pull",
            "127.0.0.1:5000/acme/kv:0.1.0",
            "-O",
            "bin/kv",
            "-o",
            "json",
            "--target",
            "aarch64-linux",
        ])
        .unwrap();
        assert_eq!(cli.pull.output, Some(PathBuf::from("bin/kv")));
        assert_eq!(cli.pull.format, Format::Json);
        assert_eq!(cli.pull.target.as_deref(), Some("aarch64-linux"));
        let cli = Cli::try_parse_from(["pull", "r.example/kv:1", "--output", "kv"]).unwrap();
        assert_eq!(cli.pull.output, Some(PathBuf::from("kv")));
        assert_eq!(cli.pull.format, Format::Text);
    }

    #[test]
    fn output_may_name_a_file_or_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            destination(Some(dir.path().to_owned()), "kv"),
            dir.path().join("kv")
        );
        let file = dir.path().join("kv-bin");
        assert_eq!(destination(Some(file.clone()), "kv"), file);
        assert_eq!(destination(None, "kv"), PathBuf::from("kv"));
    }

    #[test]
    fn a_layer_title_only_names_the_file_if_it_is_a_plain_name() {
        assert_eq!(default_provider_name(Some("kv-sqlite"), "kv"), "kv-sqlite");
        for hostile in ["../kv", "/usr/bin/kv", "a/b", "..", ".", ""] {
            assert_eq!(
                default_provider_name(Some(hostile), "kv"),
                "kv",
                "{hostile}"
            );
        }
        assert_eq!(default_provider_name(None, "kv"), "kv");
    }
}
