//! `wash build`: builds a component project for wasm32-wasip2 and signs
//! it, named and versioned as its `Cargo.toml` says, into
//! `build/{name}_s.wasm`. `wash dev` builds the same way.
//!
//! The project is a cargo crate (as `wash new` writes one). Cargo's own
//! output goes to stderr as it comes, so build errors read exactly as
//! `cargo build` prints them; the artifact is found in cargo's JSON
//! messages rather than guessed from the target directory.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;

use super::claims;

/// The target components are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The project directory (holding Cargo.toml).
    #[arg(long, short = 'p', default_value = ".")]
    path: PathBuf,
}

/// A component project: where it is, and what cargo calls it.
#[derive(Debug, Clone)]
pub struct Project {
    /// The directory holding `Cargo.toml`.
    pub dir: PathBuf,
    /// The package name, which names the component too.
    pub name: String,
    /// The package version, which the claims carry.
    pub version: String,
    pub(crate) manifest: PathBuf,
}

impl Project {
    /// Reads the project in `dir` with `cargo metadata`, so that anything
    /// cargo accepts (workspace inheritance included) is read as cargo
    /// reads it.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let manifest = dir.join("Cargo.toml");
        if !manifest.is_file() {
            bail!(
                "{} has no Cargo.toml; run wash build in a component project (wash new NAME makes one) or pass --path",
                dir.display()
            );
        }
        let output = Command::new(cargo())
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--manifest-path",
            ])
            .arg(&manifest)
            .stderr(Stdio::inherit())
            .output()
            .context("running cargo metadata (is cargo installed? https://rustup.rs)")?;
        if !output.status.success() {
            bail!("cargo could not read {}", manifest.display());
        }
        let metadata: serde_json::Value =
            serde_json::from_slice(&output.stdout).context("reading cargo metadata's output")?;
        let manifest = manifest
            .canonicalize()
            .with_context(|| format!("resolving {}", manifest.display()))?;
        let package = metadata["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
            .with_context(|| {
                format!(
                    "{} is a workspace without a package of its own; pass --path to the component's directory",
                    manifest.display()
                )
            })?;
        let field = |key: &str| package[key].as_str().unwrap_or_default().to_owned();
        let dir = manifest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.to_path_buf());
        Ok(Project {
            dir,
            name: field("name"),
            version: field("version"),
            manifest,
        })
    }

    /// Where `wash build` writes the signed component.
    pub fn signed_path(&self) -> PathBuf {
        self.dir
            .join("build")
            .join(format!("{}_s.wasm", self.name.replace('-', "_")))
    }

    /// Builds the component (release, for [`WASM_TARGET`]) and returns the
    /// unsigned artifact's bytes. Cargo's diagnostics go to stderr.
    pub fn build(&self) -> anyhow::Result<Vec<u8>> {
        let mut child = Command::new(cargo())
            .args(["build", "--release", "--target", WASM_TARGET])
            .args([
                "--message-format",
                "json-render-diagnostics",
                "--manifest-path",
            ])
            .arg(&self.manifest)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("running cargo build (is cargo installed? https://rustup.rs)")?;
        let mut artifact = None;
        if let Some(stdout) = child.stdout.take() {
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line.context("reading cargo's output")?;
                if let Some(path) = wasm_artifact(&line, &self.name) {
                    artifact = Some(path);
                }
            }
        }
        let status = child.wait().context("waiting for cargo build")?;
        if !status.success() {
            bail!(
                "the build of {} failed (cargo's errors are above)",
                self.name
            );
        }
        let Some(artifact) = artifact else {
            bail!(
                "cargo built {} but made no .wasm; is its [lib] crate-type [\"cdylib\"], and is the {WASM_TARGET} target installed (rustup target add {WASM_TARGET})?",
                self.name
            );
        };
        std::fs::read(&artifact).with_context(|| format!("reading {}", artifact.display()))
    }

    /// Builds and signs the component into [`Project::signed_path`]; returns
    /// the unsigned and the signed bytes (the signature carries a time, so
    /// only the unsigned ones tell whether the code changed).
    pub fn build_signed(&self) -> anyhow::Result<Built> {
        let wasm = self.build()?;
        let signed = claims::sign_project(&wasm, &self.name, &self.version)?;
        let path = self.signed_path();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, &signed).with_context(|| format!("writing {}", path.display()))?;
        Ok(Built { wasm, signed })
    }
}

/// What a build made.
#[derive(Debug)]
pub struct Built {
    /// The component as cargo made it.
    pub wasm: Vec<u8>,
    /// The same component with its claims embedded.
    pub signed: Vec<u8>,
}

/// The `.wasm` file in one line of cargo's JSON output, if the line reports
/// the cdylib of package `name`.
fn wasm_artifact(line: &str, name: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" {
        return None;
    }
    let target = &message["target"];
    let is_lib = target["kind"]
        .as_array()?
        .iter()
        .any(|kind| kind == "cdylib");
    if !is_lib || target["name"].as_str()?.replace('_', "-") != name.replace('_', "-") {
        return None;
    }
    message["filenames"]
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))
        .map(PathBuf::from)
}

/// The cargo that runs this build: `$CARGO` when wash runs under cargo,
/// else the one on the PATH.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

pub fn run(args: BuildArgs) -> anyhow::Result<()> {
    let project = Project::load(&args.path)?;
    let built = project.build_signed()?;
    println!(
        "built and signed {} {} -> {} ({} bytes)",
        project.name,
        project.version,
        project.signed_path().display(),
        built.signed.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_found_in_cargos_messages() {
        let line = r#"{"reason":"compiler-artifact","target":{"kind":["cdylib"],"name":"hello_api"},"filenames":["/p/target/wasm32-wasip2/release/hello_api.wasm"]}"#;
        assert_eq!(
            wasm_artifact(line, "hello-api"),
            Some(PathBuf::from(
                "/p/target/wasm32-wasip2/release/hello_api.wasm"
            ))
        );
        let dependency = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"wit_bindgen"},"filenames":["/p/libwit_bindgen.rlib"]}"#;
        assert_eq!(wasm_artifact(dependency, "hello-api"), None);
        assert_eq!(wasm_artifact("Compiling hello", "hello-api"), None);
        let finished = r#"{"reason":"build-finished","success":true}"#;
        assert_eq!(wasm_artifact(finished, "hello-api"), None);
    }
}
