//! Headless Chromium for the dashboard test: Debian's `chromium`, driven
//! by playwright-core from npm (`tests/e2e/ui`). Both are installed on
//! first use, as the test needs them.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// Where Debian installs Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `tests/e2e/ui`, with playwright-core installed in it, and Chromium on
/// the machine; installs what is missing.
pub fn ensure_browser() -> anyhow::Result<PathBuf> {
    if !std::path::Path::new(CHROMIUM).exists() {
        let installed = Command::new("sh")
            .args([
                "-c",
                "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
                 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
                 --no-install-recommends chromium)",
            ])
            .output()
            .context("running apt-get to install chromium")?;
        if !installed.status.success() || !std::path::Path::new(CHROMIUM).exists() {
            bail!(
                "the dashboard test needs Chromium: install Debian's package with \
                 `apt-get install chromium` (as root); apt-get said:\n{}",
                String::from_utf8_lossy(&installed.stderr)
            );
        }
    }
    let dir = trellis_test_support::workspace_root().join("tests/e2e/ui");
    if !dir.join("node_modules/playwright-core").exists() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .context("running npm (install Node.js and npm: apt-get install nodejs npm)")?;
        if !installed.status.success() {
            bail!(
                "`npm ci` in {} failed:\n{}",
                dir.display(),
                String::from_utf8_lossy(&installed.stderr)
            );
        }
    }
    Ok(dir)
}
