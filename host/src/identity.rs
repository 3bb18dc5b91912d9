//! The host's identity across restarts, and its claim on its data dir.
//!
//! A host that comes back with a new id looks, to wadm, like a new host
//! next to a dead one that still seems to run its work until its heartbeat
//! times out. So a host keeps its seed in `{data_dir}/host.nk` (mode 0600),
//! written on first start, and comes back as itself. `--host-seed` still
//! wins, and is never written to disk.
//!
//! Two live hosts must not share a data dir: they would share one
//! identity and one set of provider data files. The host holds an
//! exclusive lock on `{data_dir}/host.lock` while it runs; a second host
//! on the same dir is refused with the fix. The lock goes with the
//! process, so `kill -9` leaves nothing to clean up.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use trellis_claims::KeyKind;

use crate::error::HostError;

/// The seed file's name in the data dir.
pub const SEED_FILE: &str = "host.nk";
const LOCK_FILE: &str = "host.lock";

/// The host's key, and the lock that keeps its data dir its own.
pub(crate) struct Identity {
    pub(crate) key: nkeys::KeyPair,
    pub(crate) lock: File,
}

/// Locks `data_dir` and loads the host's key: `seed` when given, else the
/// stored one, else a fresh one that is stored for the next start.
pub(crate) fn load(data_dir: &Path, seed: Option<&str>) -> Result<Identity, HostError> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        HostError::BadRequest(format!(
            "cannot create the data dir {}: {e}; pass a writable --data-dir",
            data_dir.display()
        ))
    })?;
    let lock = lock(data_dir)?;
    let key = match seed {
        Some(seed) => trellis_claims::key_pair_from_seed(KeyKind::Host, "host seed", seed)
            .map_err(|e| HostError::BadRequest(e.to_string()))?,
        None => stored_or_new(&data_dir.join(SEED_FILE))?,
    };
    Ok(Identity { key, lock })
}

fn lock(data_dir: &Path) -> Result<File, HostError> {
    let path = data_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| HostError::BadRequest(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(HostError::BadRequest(format!(
            "the data dir {} is in use by another running host; give each host its own \
             --data-dir (TRELLIS_DATA_DIR)",
            data_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(HostError::BadRequest(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

fn stored_or_new(path: &PathBuf) -> Result<nkeys::KeyPair, HostError> {
    match std::fs::read_to_string(path) {
        Ok(text) => trellis_claims::key_pair_from_seed(KeyKind::Host, "host seed", text.trim())
            .map_err(|e| {
                HostError::BadRequest(format!(
                    "{} does not hold a host seed ({e}); restore it, or delete it to start \
                     under a new host id",
                    path.display()
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = KeyKind::Host.generate();
            let seed = key
                .seed()
                .map_err(|e| HostError::BadRequest(e.to_string()))?;
            write_private(path, seed.as_bytes()).map_err(|e| {
                HostError::BadRequest(format!(
                    "cannot store the host seed in {}: {e}",
                    path.display()
                ))
            })?;
            tracing::info!(path = %path.display(), "stored a new host identity");
            Ok(key)
        }
        Err(e) => Err(HostError::BadRequest(format!(
            "cannot read the host seed {}: {e}",
            path.display()
        ))),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// crash mid-write leaves no half a seed; readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = path.with_extension("nk.tmp");
    let _ = std::fs::remove_file(&temp);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_is_kept_and_the_dir_is_exclusive() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load(dir.path(), None).expect("first start");
        let id = first.key.public_key();
        let err = load(dir.path(), None)
            .err()
            .expect("a second host is refused");
        assert!(
            err.to_string().contains("in use by another running host"),
            "{err}"
        );
        drop(first);
        let again = load(dir.path(), None).expect("restart");
        assert_eq!(again.key.public_key(), id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SEED_FILE))
                .expect("seed file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_given_seed_wins_and_a_bad_file_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let given = KeyKind::Host.generate();
        let seed = given.seed().expect("seed");
        let identity = load(dir.path(), Some(&seed)).expect("start");
        assert_eq!(identity.key.public_key(), given.public_key());
        assert!(
            !dir.path().join(SEED_FILE).exists(),
            "a given seed is not stored"
        );
        drop(identity);
        std::fs::write(dir.path().join(SEED_FILE), "not a seed").expect("write");
        let err = load(dir.path(), None).err().expect("refused");
        assert!(
            err.to_string()
                .contains("delete it to start under a new host id"),
            "{err}"
        );
    }
}
