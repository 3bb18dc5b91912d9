//! Compiled components kept on disk, so a restarted host does not compile
//! again what it compiled before.
//!
//! Loading a compiled artifact runs machine code the host did not produce
//! in this process, so nothing is loaded unless it proves where it came
//! from. Each file carries the engine fingerprint and the claims hash it
//! was compiled for, and an HMAC-SHA256 over both and the artifact, keyed
//! by a secret derived from the host's own identity key. A file that is
//! cut short, altered, written for another engine or component, or
//! written by another host fails the check; it is deleted and the
//! component is compiled again.
//!
//! File format, version 1 (all integers little-endian):
//!
//! ```text
//! b"TRELLISC"            8 bytes, magic
//! version: u32           1
//! fingerprint: u16 len, bytes (UTF-8)
//! claims hash: u16 len, bytes (UTF-8)
//! mac: 32 bytes          HMAC-SHA256(key, every byte above ‖ artifact)
//! artifact               Component::serialize()
//! ```

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::HostError;

type HmacSha256 = Hmac<Sha256>;

const MAGIC: &[u8; 8] = b"TRELLISC";
const VERSION: u32 = 1;
const MAC_LEN: usize = 32;
/// The file extension of cache entries; nothing else in the directory is
/// touched.
const EXTENSION: &str = "cwasm";

/// Why a cache file was not used. Never fatal: the component is compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Rejected {
    #[error("it is not a Trellis compile-cache file (bad magic or cut short)")]
    Malformed,
    #[error("it is format version {0}; this host reads version {VERSION}")]
    Version(u32),
    #[error("it was compiled by another engine or wasmtime version")]
    ForeignEngine,
    #[error("it was compiled for another component")]
    ForeignComponent,
    #[error("its authentication code does not match (altered, or written by another host)")]
    BadMac,
}

/// Where compiled components are kept, and the key that proves an entry
/// was written by this host.
#[derive(Clone)]
pub struct DiskCache {
    dir: PathBuf,
    key: [u8; 32],
    max_bytes: u64,
    fingerprint: String,
}

impl DiskCache {
    /// A cache in `dir` (made if missing), holding at most `max_bytes` of
    /// entries, authenticated with a key derived from `secret` (the host's
    /// identity seed), for artifacts of `engine`.
    pub fn open(
        dir: &Path,
        secret: &[u8],
        max_bytes: u64,
        engine: &Engine,
    ) -> Result<Self, HostError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            HostError::BadRequest(format!(
                "cannot create the compile cache {}: {e}; pass a writable --data-dir, or \
                 --compile-cache-max-mib 0 to turn the cache off",
                dir.display()
            ))
        })?;
        let mut derive = Sha256::new();
        derive.update(b"trellis compile cache v1\0");
        derive.update(secret);
        Ok(DiskCache {
            dir: dir.to_owned(),
            key: derive.finalize().into(),
            max_bytes,
            fingerprint: engine_fingerprint(engine),
        })
    }

    /// The entry for the component whose claims hash is `hash`, if there is
    /// one and it passes every check. One that fails is deleted.
    #[allow(unsafe_code)]
    pub fn load(&self, engine: &Engine, hash: &str) -> Option<Component> {
        let path = self.path(hash);
        let bytes = std::fs::read(&path).ok()?;
        let artifact = match decode(&bytes, &self.key, &self.fingerprint, hash) {
            Ok(artifact) => artifact,
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "compile cache entry ignored; compiling again");
                self.remove(&path);
                return None;
            }
        };
        // SAFETY: wasmtime requires that the bytes be an artifact it
        // serialized itself. The MAC above shows this host wrote them with
        // an engine of this fingerprint for a component of this hash, and
        // they are checked in memory, so they cannot change after the check.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(component) => {
                // Recently used entries are the last to be evicted.
                if let Ok(file) = std::fs::File::options().write(true).open(&path) {
                    let _ = file.set_modified(std::time::SystemTime::now());
                }
                Some(component)
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "compile cache entry unreadable; compiling again");
                self.remove(&path);
                None
            }
        }
    }

    /// Keeps `component` (claims hash `hash`), then evicts the oldest
    /// entries past the size limit. Failures are logged: the cache is an
    /// optimisation, never a reason to refuse a component.
    pub fn store(&self, hash: &str, component: &Component) {
        let artifact = match component.serialize() {
            Ok(artifact) => artifact,
            Err(err) => {
                tracing::warn!(error = %err, "could not serialize a compiled component for the cache");
                return;
            }
        };
        let bytes = encode(&self.key, &self.fingerprint, hash, &artifact);
        if bytes.len() as u64 > self.max_bytes {
            return;
        }
        let path = self.path(hash);
        // Written aside and renamed, so a crash never leaves half a file
        // under the entry's name.
        let written = tempfile::NamedTempFile::new_in(&self.dir).and_then(|mut file| {
            file.write_all(&bytes)?;
            file.as_file().sync_data()?;
            file.persist(&path).map_err(|e| e.error)?;
            Ok(())
        });
        if let Err(err) = written {
            tracing::warn!(path = %path.display(), error = %err, "could not write a compile cache entry");
            return;
        }
        self.evict();
    }

    /// Where the entry for `hash` lives: named by a digest, so no hash can
    /// name a path outside the directory.
    pub fn path(&self, hash: &str) -> PathBuf {
        let mut name = Sha256::new();
        name.update(self.fingerprint.as_bytes());
        name.update([0]);
        name.update(hash.as_bytes());
        let digest = data_encoding::HEXLOWER.encode(&name.finalize()[..16]);
        self.dir.join(format!("{digest}.{EXTENSION}"))
    }

    /// Deletes the least recently used entries until they fit the limit.
    fn evict(&self) {
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = read
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == EXTENSION))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            self.remove(&path);
            total = total.saturating_sub(len);
        }
    }

    fn remove(&self, path: &Path) {
        if let Err(err) = std::fs::remove_file(path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %err, "could not remove a compile cache entry");
        }
    }
}

/// What artifacts of `engine` are compatible with: wasmtime's own
/// compatibility hash (its version and every setting that changes code),
/// as hex.
fn engine_fingerprint(engine: &Engine) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut sha = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut sha);
    data_encoding::HEXLOWER.encode(&sha.0.finalize())
}

fn mac(key: &[u8; 32], head: &[u8], artifact: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(head);
    mac.update(artifact);
    mac
}

fn push_field(out: &mut Vec<u8>, field: &str) {
    let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&field.as_bytes()[..usize::from(len)]);
}

/// A cache file for `artifact`.
pub(crate) fn encode(key: &[u8; 32], fingerprint: &str, hash: &str, artifact: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(artifact.len() + 128);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    push_field(&mut out, fingerprint);
    push_field(&mut out, hash);
    let tag = mac(key, &out, artifact).finalize().into_bytes();
    out.extend_from_slice(&tag);
    out.extend_from_slice(artifact);
    out
}

/// The artifact in `bytes`, once its header names `fingerprint` and `hash`
/// and its MAC checks out under `key`.
pub(crate) fn decode<'a>(
    bytes: &'a [u8],
    key: &[u8; 32],
    fingerprint: &str,
    hash: &str,
) -> Result<&'a [u8], Rejected> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(Rejected::Malformed)?;
    let (version, rest) = rest.split_at_checked(4).ok_or(Rejected::Malformed)?;
    let version = u32::from_le_bytes(version.try_into().map_err(|_| Rejected::Malformed)?);
    if version != VERSION {
        return Err(Rejected::Version(version));
    }
    let (found_fingerprint, rest) = field(rest)?;
    let (found_hash, rest) = field(rest)?;
    let head_len = bytes.len() - rest.len();
    let (tag, artifact) = rest.split_at_checked(MAC_LEN).ok_or(Rejected::Malformed)?;
    if found_fingerprint != fingerprint.as_bytes() {
        return Err(Rejected::ForeignEngine);
    }
    if found_hash != hash.as_bytes() {
        return Err(Rejected::ForeignComponent);
    }
    mac(key, &bytes[..head_len], artifact)
        .verify_slice(tag)
        .map_err(|_| Rejected::BadMac)?;
    Ok(artifact)
}

fn field(bytes: &[u8]) -> Result<(&[u8], &[u8]), Rejected> {
    let (len, rest) = bytes.split_at_checked(2).ok_or(Rejected::Malformed)?;
    let len = u16::from_le_bytes([len[0], len[1]]);
    rest.split_at_checked(usize::from(len))
        .ok_or(Rejected::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn the_file_format_is_pinned() {
        let bytes = encode(&KEY, "fp", "HASH", b"artifact");
        let golden = include_str!("../tests/golden/compile-cache-v1.hex");
        assert_eq!(data_encoding::HEXLOWER.encode(&bytes), golden.trim());
        assert_eq!(decode(&bytes, &KEY, "fp", "HASH"), Ok(&b"artifact"[..]));
    }

    #[test]
    fn every_altered_byte_is_caught() {
        let bytes = encode(&KEY, "fp", "HASH", b"artifact");
        for at in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[at] ^= 0x01;
            assert!(
                decode(&altered, &KEY, "fp", "HASH").is_err(),
                "byte {at} altered and accepted"
            );
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], &KEY, "fp", "HASH").is_err());
        }
    }

    #[test]
    fn entries_of_another_engine_component_or_host_are_refused() {
        let bytes = encode(&KEY, "fp", "HASH", b"artifact");
        assert_eq!(
            decode(&bytes, &KEY, "other", "HASH"),
            Err(Rejected::ForeignEngine)
        );
        assert_eq!(
            decode(&bytes, &KEY, "fp", "OTHER"),
            Err(Rejected::ForeignComponent)
        );
        assert_eq!(
            decode(&bytes, &[8; 32], "fp", "HASH"),
            Err(Rejected::BadMac)
        );
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert_eq!(decode(&v2, &KEY, "fp", "HASH"), Err(Rejected::Version(2)));
    }
}
