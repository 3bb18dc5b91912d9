//! The example components under `examples/`, built on demand for
//! `wasm32-wasip2`, so tests exercise code compiled from source rather than
//! binaries checked into the tree. Cargo makes the repeat builds no-ops.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use trellis_claims::wasm::{append_section, write_u32_leb};

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

/// Builds the JavaScript example `examples/js/http-hello-js` from source
/// with componentize-js, as the setup scripts do (the same shell function,
/// so there is one recipe), and returns the component's path. A build that
/// is up to date takes a tenth of a second.
pub fn example_js_component() -> Result<PathBuf, SupportError> {
    let _guard = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = workspace_root();
    let output = Command::new("bash")
        .arg("-c")
        .arg("source scripts/lib.sh && build_js_example")
        .current_dir(&root)
        .output()
        .map_err(SupportError::io("running bash for the JavaScript example"))?;
    if !output.status.success() {
        return Err(SupportError::Build(format!(
            "building examples/js/http-hello-js failed (scripts/test.sh installs Node.js and componentize-js):\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(root.join("examples/target/js/http_hello_js.wasm"))
}

/// `component` (a built component) made to trap as it is instantiated,
/// with the same imports and exports: it gains one core module whose start
/// function is `unreachable`, instantiated last. A host compiles and links
/// it like the original; only instantiating it shows the fault, as with a
/// release whose initialization panics.
pub fn trapping_at_start(component: &[u8]) -> Result<Vec<u8>, SupportError> {
    use wasmparser::{ComponentAlias, ComponentExternalKind, ComponentOuterAliasKind, Payload};
    // The core modules defined or aliased at the top level: the new
    // module's index is their count.
    let mut modules = 0u32;
    let mut depth = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        let payload = payload
            .map_err(|e| SupportError::Build(format!("the component does not parse: {e}")))?;
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ModuleSection { .. } if depth == 1 => modules += 1,
            Payload::ComponentAliasSection(aliases) if depth == 1 => {
                for alias in aliases {
                    let alias = alias.map_err(|e| {
                        SupportError::Build(format!("an alias does not parse: {e}"))
                    })?;
                    let aliases_a_module = matches!(
                        alias,
                        ComponentAlias::Outer {
                            kind: ComponentOuterAliasKind::CoreModule,
                            ..
                        } | ComponentAlias::InstanceExport {
                            kind: ComponentExternalKind::Module,
                            ..
                        }
                    );
                    modules += u32::from(aliases_a_module);
                }
            }
            _ => {}
        }
    }
    let trap = wat::parse_str("(module (func unreachable) (start 0))")
        .map_err(|e| SupportError::Build(e.to_string()))?;
    let mut out = component.to_vec();
    // A core module section (id 1) holding it, then a core instance
    // section (id 2) with one instance: `instantiate` (0x00) of that
    // module with no arguments.
    append_section(&mut out, 1, &trap);
    let mut instance = vec![1, 0x00];
    write_u32_leb(&mut instance, modules);
    instance.push(0);
    append_section(&mut out, 2, &instance);
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&out)
        .map_err(|e| {
            SupportError::Build(format!("the trapping component does not validate: {e}"))
        })?;
    Ok(out)
}
