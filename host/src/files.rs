//! Reading the local files a control command names: component images,
//! provider executables and their claims.
//!
//! The path comes from the network, so the read is bounded three ways. Only
//! a regular file is read: a FIFO would block the reader until someone
//! writes to it, and `/dev/zero` never ends. It may be at most
//! [`FileLimits::max_bytes`] long, checked before reading and enforced
//! while reading (a file can grow in between). And the whole read must
//! finish within [`FileLimits::timeout`], so a stalled network filesystem
//! fails the one command instead of holding it forever.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How much a host reads from one file, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLimits {
    /// The largest file read, in bytes.
    pub max_bytes: u64,
    /// The longest one read may take.
    pub timeout: Duration,
}

impl Default for FileLimits {
    fn default() -> Self {
        FileLimits {
            max_bytes: 256 * 1024 * 1024,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Reads `path` within `limits`; the error says what was wrong with the
/// file and which flag raises the limit it hit.
pub async fn read_bounded(path: &Path, limits: FileLimits) -> Result<Vec<u8>, String> {
    let owned: PathBuf = path.to_owned();
    let read = tokio::task::spawn_blocking(move || read_regular_file(&owned, limits.max_bytes));
    match tokio::time::timeout(limits.timeout, read).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(format!("reading {} failed: {join}", path.display())),
        // The blocking read is left to finish or fail on its own; this
        // command does not wait for it.
        Err(_) => Err(format!(
            "reading {} took longer than {:?}; is it on a slow or unreachable filesystem? \
             (--artifact-read-timeout-secs raises the limit)",
            path.display(),
            limits.timeout
        )),
    }
}

fn read_regular_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    check_kind(path, &metadata)?;
    check_size(path, metadata.len(), max_bytes)?;
    // Non-blocking open: if the path was swapped for a FIFO since the check
    // above, opening it must not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open {shown}: {e}"))?;
    let opened = file
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    check_kind(path, &opened)?;
    let capacity = usize::try_from(opened.len().min(max_bytes)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    check_size(path, bytes.len() as u64, max_bytes)?;
    Ok(bytes)
}

fn check_kind(path: &Path, metadata: &std::fs::Metadata) -> Result<(), String> {
    let kind = metadata.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(format!(
        "{} is {what}; an image or executable must be a regular file",
        path.display()
    ))
}

fn check_size(path: &Path, len: u64, max_bytes: u64) -> Result<(), String> {
    if len <= max_bytes {
        return Ok(());
    }
    Err(format!(
        "{} is larger than the {} MiB a host reads from one file (--max-artifact-mib raises \
         the limit)",
        path.display(),
        max_bytes / (1024 * 1024)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: u64) -> FileLimits {
        FileLimits {
            max_bytes,
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn a_regular_file_within_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wasm");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(
            read_bounded(&path, limits(10)).await.unwrap(),
            b"0123456789"
        );
        let err = read_bounded(&path, limits(9)).await.unwrap_err();
        assert!(err.contains("--max-artifact-mib"), "{err}");
    }

    #[tokio::test]
    async fn devices_directories_and_fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for (path, what) in [
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
            (fifo.as_path(), "a FIFO"),
        ] {
            let err = read_bounded(path, limits(1 << 20)).await.unwrap_err();
            assert!(err.contains(what), "{}: {err}", path.display());
        }
    }

    #[tokio::test]
    async fn a_missing_file_names_the_path() {
        let err = read_bounded(Path::new("/nonexistent/x.wasm"), limits(1))
            .await
            .unwrap_err();
        assert!(err.contains("/nonexistent/x.wasm"), "{err}");
    }
}
