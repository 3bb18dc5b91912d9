//! `wash push`: publish a signed component or provider to an OCI registry.
//!
//! What is pushed is decided by the file itself: Wasm bytes (`\0asm`) are a
//! component, carrying their claims inside; anything else is a provider
//! executable, whose claims are the detached `FILE.jwt` that
//! `wash claims sign-provider` writes. A provider archive may hold builds
//! for several platforms (`--target TARGET=PATH`), all covered by that one
//! JWT. `trellis-oci` re-verifies the claims before anything is uploaded,
//! so a registry never receives an artifact no host would run.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use trellis_oci::{Artifact, ArtifactKind, RegistryArgs};

use super::registry;
use crate::output::{Format, OutputArgs};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Where to push, e.g. `oci://127.0.0.1:5000/acme/counter:0.1.0` (the
    /// `oci://` is optional).
    reference: String,
    /// A signed component (.wasm), or a signed provider executable whose
    /// claims are in FILE.jwt (see `wash claims sign-provider`).
    file: PathBuf,
    /// Another platform's build of the provider, as TARGET=PATH (e.g.
    /// `aarch64-linux=dist/kv-arm64`); repeat for more. The claims in
    /// FILE.jwt must cover every target.
    #[arg(long = "target", value_name = "TARGET=PATH", value_parser = parse_target_file)]
    targets: Vec<TargetFile>,
    /// The target FILE (a provider executable) is built for [default: this
    /// machine's, e.g. x86_64-linux].
    #[arg(long, value_name = "TARGET")]
    file_target: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    format: OutputArgs,
}

/// One `--target TARGET=PATH`: a provider executable and its platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFile {
    pub(super) target: String,
    pub(super) path: PathBuf,
}

/// Parses `TARGET=PATH`. Both halves must be present; a target has no
/// spaces, since it becomes an annotation and a key in the claims.
pub(super) fn parse_target_file(text: &str) -> Result<TargetFile, String> {
    let Some((target, path)) = text.split_once('=') else {
        return Err(format!(
            "`{text}` is not TARGET=PATH (e.g. aarch64-linux=dist/provider-arm64)"
        ));
    };
    let target = target.trim();
    if target.is_empty() || target.contains(char::is_whitespace) {
        return Err(format!(
            "`{text}` has no valid target before `=` (e.g. aarch64-linux)"
        ));
    }
    if path.is_empty() {
        return Err(format!("`{text}` has no file after `=`"));
    }
    Ok(TargetFile {
        target: target.to_owned(),
        path: PathBuf::from(path),
    })
}

/// What `push` reports, in both formats.
#[derive(Serialize)]
struct PushReport {
    reference: String,
    digest: String,
    kind: ArtifactKind,
}

pub async fn run(args: PushArgs) -> anyhow::Result<()> {
    let registry = registry::client(&args.registry)?;
    // Parse before reading files so a `:latest` or malformed reference
    // fails before any work is done.
    let reference = registry.parse(&args.reference)?;
    let artifact = artifact(&args)?;
    eprintln!(
        "pushing {} to {}…",
        args.file.display(),
        registry::display(&reference)
    );
    let digest = registry
        .push(&reference, &artifact)
        .await
        .with_context(|| format!("pushing {}", args.file.display()))?;
    let report = PushReport {
        reference: registry::display(&reference),
        digest,
        kind: artifact.kind,
    };
    match args.format.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => {
            println!("pushed {}", report.reference);
            println!("digest {}", report.digest);
        }
    }
    Ok(())
}

/// Builds the artifact FILE stands for, verifying its claims.
fn artifact(args: &PushArgs) -> anyhow::Result<Artifact> {
    let bytes = read(&args.file)?;
    let name = args.file.display().to_string();
    if !super::is_wasm(&bytes) {
        return provider(args, bytes);
    }
    if !args.targets.is_empty() || args.file_target.is_some() {
        bail!(
            "{name} is a Wasm component; --target and --file-target are for provider executables"
        );
    }
    Ok(Artifact::component(&name, bytes)?)
}

fn provider(args: &PushArgs, bytes: Vec<u8>) -> anyhow::Result<Artifact> {
    let claims_path = trellis_claims::provider_claims_path(&args.file);
    let jwt = match std::fs::read_to_string(&claims_path) {
        Ok(jwt) => jwt,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} is not a Wasm component, so it is pushed as a provider executable, but its \
             claims {} do not exist; sign it first with `wash claims sign-provider {}`",
            args.file.display(),
            claims_path.display(),
            args.file.display()
        ),
        Err(err) => {
            return Err(err).with_context(|| format!("reading {}", claims_path.display()));
        }
    };
    let file_target = args
        .file_target
        .clone()
        .unwrap_or_else(trellis_claims::native_target);
    let mut executables = vec![(file_target, file_name(&args.file)?, bytes)];
    for extra in &args.targets {
        executables.push((
            extra.target.clone(),
            file_name(&extra.path)?,
            read(&extra.path)?,
        ));
    }
    Ok(Artifact::provider(
        &args.file.display().to_string(),
        &jwt,
        executables,
    )?)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The name a layer is titled with, which `wash pull` uses as the default
/// file name.
fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .with_context(|| format!("{} does not name a file", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use clap::Parser;

    use super::*;

    /// `wash push`'s arguments on their own, as clap sees them.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        push: PushArgs,
    }

    fn parse(args: &[&str]) -> Result<PushArgs, clap::Error> {
        Cli::try_parse_from(["push"].iter().chain(args)).map(|cli| cli.push)
    }

    #[test]
    fn a_target_is_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_target_file("aarch64-linux=dist/kv=arm64").unwrap(),
            TargetFile {
                target: "aarch64-linux".into(),
                path: PathBuf::from("dist/kv=arm64"),
            }
        );
    }

    #[test]
    fn a_malformed_target_is_refused_with_the_expected_shape() {
        for (text, expected) in [
            ("aarch64-linux", "is not TARGET=PATH"),
            ("=dist/kv", "no valid target"),
            ("aarch 64=dist/kv", "no valid target"),
            ("aarch64-linux=", "no file after"),
        ] {
            let err = parse_target_file(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn push_takes_a_reference_a_file_and_repeated_targets() {
        let args = parse(&[
            "oci://127.0.0.1:5000/acme/kv:0.1.0",
            "dist/kv",
            "--file-target",
            "x86_64-linux",
            "--target",
            "aarch64-linux=dist/kv-arm64",
            "--target",
            "aarch64-macos=dist/kv-mac",
            "--allow-insecure-registry",
            "127.0.0.1:5000",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(args.reference, "oci://127.0.0.1:5000/acme/kv:0.1.0");
        assert_eq!(args.file, PathBuf::from("dist/kv"));
        assert_eq!(args.file_target.as_deref(), Some("x86_64-linux"));
        let targets: Vec<&str> = args.targets.iter().map(|t| t.target.as_str()).collect();
        assert_eq!(targets, ["aarch64-linux", "aarch64-macos"]);
        assert_eq!(args.registry.insecure, ["127.0.0.1:5000"]);
        assert_eq!(args.format.output, Format::Json);
    }

    #[test]
    fn a_malformed_target_flag_is_a_usage_error() {
        let err = parse(&["r.example/kv:1", "kv", "--target", "aarch64-linux"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("is not TARGET=PATH"), "{err}");
    }

    #[test]
    fn a_component_refuses_provider_targets() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("c.wasm");
        std::fs::write(&wasm, b"\0asm\x0d\0\x01\0").unwrap();
        let args = parse(&[
            "r.example/c:1",
            wasm.to_str().unwrap(),
            "--target",
            "aarch64-linux=c-arm",
        ])
        .unwrap();
        let err = artifact(&args).unwrap_err().to_string();
        assert!(err.contains("is a Wasm component"), "{err}");
    }

    #[test]
    fn an_unsigned_provider_names_its_claims_file_and_the_signing_command() {
        let dir = tempfile::tempdir().unwrap();
        let executable = dir.path().join("kv");
        std::fs::write(&executable, b"#!/bin/sh\n").unwrap();
        let args = parse(&["r.example/kv:1", executable.to_str().unwrap()]).unwrap();
        let err = artifact(&args).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{}.jwt", executable.display())),
            "{err}"
        );
        assert!(err.contains("wash claims sign-provider"), "{err}");
    }
}
