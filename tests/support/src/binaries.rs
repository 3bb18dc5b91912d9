//! The workspace's own binaries (`trellis-host`, `wash`) for end-to-end
//! tests in any crate. Cargo only promises a package's binaries to that
//! package's tests, so this builds them all (a no-op when fresh)
//! and finds it next to the running test executable.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use crate::SupportError;
use crate::examples::workspace_root;

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Builds the workspace's binaries in the test's profile (a no-op when
/// fresh) and returns the path of `binary` from `package`.
pub fn workspace_binary(package: &str, binary: &str) -> Result<PathBuf, SupportError> {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // Test executables live in target/<profile>/deps; binaries one up.
    let exe = std::env::current_exe().map_err(SupportError::io("locating the test executable"))?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| SupportError::Build(format!("unexpected test path {}", exe.display())))?
        .to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        // The same command scripts/test.sh runs first, so here it is a
        // no-op; building one package alone would resolve features
        // differently and relink every binary test after test.
        .args(["build", "--quiet", "--workspace", "--bins"]);
    if release {
        command.arg("--release");
    }
    let output = command
        .output()
        .map_err(SupportError::io(format!("building {binary}")))?;
    if !output.status.success() {
        return Err(SupportError::Build(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    let path = profile_dir.join(binary);
    if !path.is_file() {
        return Err(SupportError::Build(format!(
            "{} was not built; is `{binary}` a binary of package `{package}`?",
            path.display()
        )));
    }
    Ok(path)
}
