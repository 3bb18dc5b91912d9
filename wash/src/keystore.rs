//! Where `wash` keeps seeds: `$TRELLIS_HOME/keys` (default `~/.trellis/keys`),
//! one `<name>_<kind>.nk` file per key, readable by its owner only. Seeds
//! are secrets, so files are created with mode 0600 from the start rather
//! than tightened afterwards.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use trellis_claims::{KeyKind, KeyPair, key_pair_from_seed};

/// The Trellis home directory: `$TRELLIS_HOME`, else `~/.trellis`.
pub fn trellis_home() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os("TRELLIS_HOME") {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").context(
        "neither TRELLIS_HOME nor HOME is set; set TRELLIS_HOME to a writable directory",
    )?;
    Ok(Path::new(&home).join(".trellis"))
}

/// The directory holding key files.
pub fn keys_dir() -> anyhow::Result<PathBuf> {
    Ok(trellis_home()?.join("keys"))
}

/// The file a named key of `kind` lives in.
pub fn key_path(name: &str, kind: KeyKind) -> anyhow::Result<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("invalid key name `{name}`: use letters, digits, `-` and `_`");
    }
    Ok(keys_dir()?.join(format!("{name}_{kind}.nk")))
}

/// Writes `pair`'s seed to `path` with owner-only permissions. Refuses to
/// overwrite: losing a seed loses an identity.
pub fn save(path: &Path, pair: &KeyPair) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let seed = pair.seed().context("the key has no seed to save")?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "writing {} (an existing key file is never overwritten)",
            path.display()
        )
    })?;
    file.write_all(seed.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .with_context(|| format!("writing {}", path.display()))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// The named key of `kind`, generated and saved on first use. Returns the
/// key and whether it was just created.
pub fn load_or_create(name: &str, kind: KeyKind) -> anyhow::Result<(KeyPair, PathBuf, bool)> {
    let path = key_path(name, kind)?;
    if path.exists() {
        let pair = read_seed_file(&path, kind, "key")?;
        return Ok((pair, path, false));
    }
    let pair = kind.generate();
    save(&path, &pair)?;
    Ok((pair, path, true))
}

/// Reads a seed file and checks its kind.
pub fn read_seed_file(path: &Path, kind: KeyKind, role: &'static str) -> anyhow::Result<KeyPair> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading {role} key {}", path.display()))?;
    key_pair_from_seed(kind, role, &text).with_context(|| format!("in {}", path.display()))
}

/// Accepts either a seed (`S…`) or the path of a file holding one.
pub fn seed_or_file(value: &str, kind: KeyKind, role: &'static str) -> anyhow::Result<KeyPair> {
    let trimmed = value.trim();
    if trimmed.starts_with('S') && !Path::new(trimmed).exists() {
        return Ok(key_pair_from_seed(kind, role, trimmed)?);
    }
    read_seed_file(Path::new(trimmed), kind, role)
}

/// Every key file in the key directory, sorted by name.
pub fn list() -> anyhow::Result<Vec<PathBuf>> {
    let dir = keys_dir()?;
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "nk"))
        .collect();
    files.sort();
    Ok(files)
}
