//! The backend's sealing keys, kept in one file on its machine.
//!
//! The file holds curve25519 seeds (`SX…`), one per line. The first is
//! the current key: new values are sealed with it and replies are sealed
//! by it. Any others are keys being retired by a rotation still under way,
//! kept so the values not yet re-sealed stay readable; a finished rotation
//! leaves one line. Every write replaces the file whole (a temporary file
//! renamed over it) with mode 0600, so a crash leaves the old file or the
//! new, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use trellis_claims::XKey;

/// The keys, current first.
pub struct Keyring {
    path: PathBuf,
    keys: Vec<XKey>,
}

impl Keyring {
    /// Reads the key file at `path`, or creates it with a fresh key.
    pub fn open(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let keys = text
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .enumerate()
                    .map(|(i, seed)| {
                        XKey::from_seed(seed).map_err(|e| {
                            format!(
                                "line {} of key file {} is not a curve25519 seed (SX…): {e}",
                                i + 1,
                                path.display()
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if keys.is_empty() {
                    return Err(format!(
                        "key file {} holds no key; delete it to start with a fresh key (values \
                         sealed with the old one are then lost)",
                        path.display()
                    ));
                }
                Ok(Keyring {
                    path: path.to_owned(),
                    keys,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ring = Keyring {
                    path: path.to_owned(),
                    keys: vec![XKey::new()],
                };
                ring.save()?;
                tracing::info!(path = %path.display(), xkey = %ring.current().public_key(), "created a new sealing key");
                Ok(ring)
            }
            Err(e) => Err(format!("cannot read key file {}: {e}", path.display())),
        }
    }

    /// The key new values are sealed with.
    pub fn current(&self) -> &XKey {
        &self.keys[0]
    }

    /// The key whose public half is `public`, if this ring holds it.
    pub fn find(&self, public: &str) -> Option<&XKey> {
        self.keys.iter().find(|key| key.public_key() == public)
    }

    /// Makes a fresh key current, keeping the others until
    /// [`Keyring::retire`]. The ring changes only once the file holds the
    /// new key: one only in memory would seal values no restart could open.
    pub fn begin_rotation(&mut self) -> Result<(), String> {
        let fresh = XKey::new();
        let all: Vec<&XKey> = std::iter::once(&fresh).chain(&self.keys).collect();
        save(&self.path, &all)?;
        self.keys.insert(0, fresh);
        Ok(())
    }

    /// Drops every key but the current one, once the file holds only it.
    pub fn retire(&mut self) -> Result<Vec<String>, String> {
        save(&self.path, &[self.current()])?;
        Ok(self.keys.drain(1..).map(|k| k.public_key()).collect())
    }

    fn save(&self) -> Result<(), String> {
        save(&self.path, &self.keys.iter().collect::<Vec<_>>())
    }
}

/// Writes `keys` to `path`, whole or not at all.
fn save(path: &Path, keys: &[&XKey]) -> Result<(), String> {
    let cannot = |e: std::io::Error| format!("cannot write key file {}: {e}", path.display());
    let mut text = String::new();
    for key in keys {
        text.push_str(&key.seed().map_err(|e| format!("a key has no seed: {e}"))?);
        text.push('\n');
    }
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(cannot)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(cannot)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(cannot)?;
    }
    temp.write_all(text.as_bytes()).map_err(cannot)?;
    temp.as_file().sync_all().map_err(cannot)?;
    temp.persist(path).map_err(|e| cannot(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_ring_is_saved_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let first = Keyring::open(&path).unwrap();
        let public = first.current().public_key();
        let again = Keyring::open(&path).unwrap();
        assert_eq!(again.current().public_key(), public);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_rotation_keeps_the_old_key_until_it_is_retired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let mut ring = Keyring::open(&path).unwrap();
        let old = ring.current().public_key();
        ring.begin_rotation().unwrap();
        let new = ring.current().public_key();
        assert_ne!(old, new);
        // A crash here leaves both on disk.
        let reread = Keyring::open(&path).unwrap();
        assert!(reread.find(&old).is_some());
        assert_eq!(reread.current().public_key(), new);
        assert_eq!(ring.retire().unwrap(), vec![old.clone()]);
        assert_eq!(ring.current().public_key(), new);
        let reread = Keyring::open(&path).unwrap();
        assert!(reread.find(&old).is_none());
    }

    #[test]
    fn a_rotation_whose_key_cannot_be_saved_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let mut ring = Keyring::open(&path).unwrap();
        let before = ring.current().public_key();
        // Nothing, not even root, can rename a file over a directory.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let err = ring.begin_rotation().unwrap_err();
        assert!(err.contains("cannot write key file"), "{err}");
        assert_eq!(ring.current().public_key(), before);
        assert!(ring.find(&before).is_some());
    }

    #[test]
    fn a_damaged_file_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "not a seed\n").unwrap();
        let err = Keyring::open(&path).err().unwrap();
        assert!(err.contains("line 1"), "{err}");
        std::fs::write(&path, "\n").unwrap();
        assert!(Keyring::open(&path).err().unwrap().contains("no key"));
    }
}
