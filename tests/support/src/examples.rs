//! The example components under `examples/`, built on demand for
//! `wasm32-wasip2`, so tests exercise code compiled from source rather than
//! binaries checked into the tree. Cargo makes the repeat builds no-ops.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::SupportError;

const TARGET: &str = "wasm32-wasip2";

/// Serialises builds within one test process; cargo's own lock covers
/// builds from other processes.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// The root of the Trellis repository.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The examples' own cargo workspace.
pub fn examples_dir() -> PathBuf {
    workspace_root().join("examples")
}

/// Builds the example component `package` (e.g. `http-hello`) in release
/// mode and returns the path of its unsigned `.wasm` component.
pub fn example_component(package: &str) -> Result<PathBuf, SupportError> {
    let _guard = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = examples_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "--target", TARGET, "-p", package])
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .map_err(SupportError::io("running cargo build for the examples"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("target may not be installed") {
            "\nhint: run `rustup target add wasm32-wasip2` (scripts/test.sh does this for you)"
        } else {
            ""
        };
        return Err(SupportError::Build(format!("{stderr}{hint}")));
    }
    let file = format!("{}.wasm", package.replace('-', "_"));
    let path = dir.join("target").join(TARGET).join("release").join(file);
    if !path.is_file() {
        return Err(SupportError::Build(format!(
            "cargo succeeded but {} is missing",
            path.display()
        )));
    }
    Ok(path)
}
