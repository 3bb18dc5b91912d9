//! `wasi:blobstore` on a directory: the zero-setup store for development.
//!
//! Each link gets a root directory; a container is a directory in it and
//! an object is a file in that, so `ls` shows what a component stored.
//!
//! # Link target config
//!
//! | key | meaning |
//! |---|---|
//! | `root` | the directory. A relative path is taken from the provider's data directory (the host gives every provider one). Created when missing. |
//!
//! Without `root` it is `{data_dir}/{source_id}-{link_name}`; a provider
//! started without a data directory refuses such links and says to set
//! `root`.
//!
//! # On disk
//!
//! Container and object names may be any UTF-8; on disk, every byte other
//! than ASCII letters, digits, `-` and `_` (and a `.` that is not the
//! first character) is written `%XX`, so `photos/2024 cat.jpg` is the file
//! `photos%2F2024%20cat.jpg` and no name can climb out of its directory.
//! An object is written to a hidden temporary file and renamed over the
//! old one, so a reader (or a crash) sees the old object or the new one,
//! never half of one. Timestamps are file modification times.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use trellis_lattice::blobstore::{
    BlobRequest, BlobResponse, ContainerMetadata, ObjectId, ObjectMetadata,
};
use trellis_provider_sdk::ProviderLink;
use trellis_provider_sdk::blobstore::{BlobBackend, BlobStore};

/// Link target config: the root directory.
pub const ROOT_KEY: &str = "root";

/// Opens a directory per link.
#[derive(Debug)]
pub struct FsBackend {
    data_dir: Option<PathBuf>,
}

impl FsBackend {
    /// A backend whose default and relative roots live in `data_dir`.
    pub fn new(data_dir: Option<PathBuf>) -> Self {
        FsBackend { data_dir }
    }

    /// The root directory of `link`'s store.
    pub fn root(&self, link: &ProviderLink) -> Result<PathBuf, String> {
        let configured = link
            .target_config_values
            .get(ROOT_KEY)
            .filter(|p| !p.trim().is_empty())
            .map(PathBuf::from);
        match (configured, &self.data_dir) {
            (Some(path), _) if path.is_absolute() => Ok(path),
            (Some(path), Some(dir)) => Ok(dir.join(path)),
            (Some(path), None) => Ok(path),
            (None, Some(dir)) => Ok(dir.join(format!(
                "{}-{}",
                encode(&link.link.source_id),
                encode(&link.link.name)
            ))),
            (None, None) => Err(format!(
                "the link from `{}` named `{}` sets no `{ROOT_KEY}` and this provider has no data directory; set target config {ROOT_KEY}=/path/to/dir",
                link.link.source_id, link.link.name
            )),
        }
    }
}

impl BlobBackend for FsBackend {
    type Store = FsStore;

    async fn open(&self, link: &ProviderLink) -> Result<FsStore, String> {
        let root = self.root(link)?;
        std::fs::create_dir_all(&root)
            .map_err(|e| format!("cannot create the blobstore root {}: {e}", root.display()))?;
        tracing::info!(
            source_id = %link.link.source_id,
            link_name = %link.link.name,
            root = %root.display(),
            "blobstore directory open"
        );
        Ok(FsStore { root })
    }
}

/// One link's store: a root directory of containers.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// A store on `root`, which must exist.
    pub fn new(root: PathBuf) -> Self {
        FsStore { root }
    }

    fn container(&self, name: &str) -> PathBuf {
        self.root.join(encode(name))
    }

    fn object(&self, container: &str, object: &str) -> PathBuf {
        self.container(container).join(encode(object))
    }

    /// The container's directory, or an error naming it when it is absent.
    fn existing(&self, name: &str) -> Result<PathBuf, String> {
        let dir = self.container(name);
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(format!("container `{name}` does not exist"))
        }
    }

    fn serve(&self, request: BlobRequest) -> Result<BlobResponse, String> {
        use BlobResponse::{Bool, Done};
        match request {
            BlobRequest::CreateContainer(name) => {
                let dir = self.container(&name);
                match std::fs::create_dir(&dir) {
                    Ok(()) => Ok(Done),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Err(format!("container `{name}` already exists"))
                    }
                    Err(e) => Err(format!("creating container `{name}`: {e}")),
                }
            }
            BlobRequest::GetContainer(name) => self.existing(&name).map(|_| Done),
            BlobRequest::DeleteContainer(name) => {
                match std::fs::remove_dir_all(self.container(&name)) {
                    Ok(()) => Ok(Done),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Done),
                    Err(e) => Err(format!("deleting container `{name}`: {e}")),
                }
            }
            BlobRequest::ContainerExists(name) => Ok(Bool(self.container(&name).is_dir())),
            BlobRequest::CopyObject { src, dest } => self.copy(&src, &dest, false),
            BlobRequest::MoveObject { src, dest } => self.copy(&src, &dest, true),
            BlobRequest::Info(name) => {
                let dir = self.existing(&name)?;
                let meta = std::fs::metadata(&dir).map_err(|e| format!("reading `{name}`: {e}"))?;
                Ok(BlobResponse::Container(ContainerMetadata {
                    name,
                    created_at: seconds(&meta),
                }))
            }
            BlobRequest::GetData {
                container,
                object,
                start,
                end,
            } => {
                self.existing(&container)?;
                read_range(&self.object(&container, &object), start, end)
                    .map(BlobResponse::Data)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => {
                            format!("object `{object}` does not exist in `{container}`")
                        }
                        _ => format!("reading `{object}` in `{container}`: {e}"),
                    })
            }
            BlobRequest::WriteData {
                container,
                object,
                data,
            } => {
                let dir = self.existing(&container)?;
                write_atomically(&dir, &encode(&object), &data)
                    .map(|()| Done)
                    .map_err(|e| format!("writing `{object}` in `{container}`: {e}"))
            }
            BlobRequest::ListObjects(container) => {
                let dir = self.existing(&container)?;
                let mut names = Vec::new();
                let entries =
                    std::fs::read_dir(&dir).map_err(|e| format!("listing `{container}`: {e}"))?;
                for entry in entries.flatten() {
                    let file = entry.file_name();
                    let Some(file) = file.to_str() else { continue };
                    // Hidden files are writes in progress.
                    if !file.starts_with('.')
                        && let Some(name) = decode(file)
                    {
                        names.push(name);
                    }
                }
                names.sort();
                Ok(BlobResponse::Names(names))
            }
            BlobRequest::DeleteObject { container, object } => {
                self.existing(&container)?;
                remove(&self.object(&container, &object), &object)
            }
            BlobRequest::DeleteObjects { container, objects } => {
                self.existing(&container)?;
                for object in &objects {
                    remove(&self.object(&container, object), object)?;
                }
                Ok(Done)
            }
            BlobRequest::HasObject { container, object } => {
                self.existing(&container)?;
                Ok(Bool(self.object(&container, &object).is_file()))
            }
            BlobRequest::ObjectInfo { container, object } => {
                self.existing(&container)?;
                let meta = std::fs::metadata(self.object(&container, &object))
                    .map_err(|_| format!("object `{object}` does not exist in `{container}`"))?;
                Ok(BlobResponse::Object(ObjectMetadata {
                    name: object,
                    container,
                    created_at: seconds(&meta),
                    size: meta.len(),
                }))
            }
            BlobRequest::Clear(container) => {
                let dir = self.existing(&container)?;
                let entries =
                    std::fs::read_dir(&dir).map_err(|e| format!("listing `{container}`: {e}"))?;
                for entry in entries.flatten() {
                    std::fs::remove_file(entry.path())
                        .map_err(|e| format!("clearing `{container}`: {e}"))?;
                }
                Ok(Done)
            }
        }
    }

    fn copy(
        &self,
        src: &ObjectId,
        dest: &ObjectId,
        then_remove: bool,
    ) -> Result<BlobResponse, String> {
        self.existing(&src.container)?;
        let dest_dir = self.existing(&dest.container)?;
        let from = self.object(&src.container, &src.object);
        let data = std::fs::read(&from).map_err(|_| {
            format!(
                "object `{}` does not exist in `{}`",
                src.object, src.container
            )
        })?;
        write_atomically(&dest_dir, &encode(&dest.object), &data)
            .map_err(|e| format!("writing `{}` in `{}`: {e}", dest.object, dest.container))?;
        if then_remove && from != self.object(&dest.container, &dest.object) {
            remove(&from, &src.object)?;
        }
        Ok(BlobResponse::Done)
    }
}

impl BlobStore for FsStore {
    async fn handle(&self, request: BlobRequest) -> Result<BlobResponse, String> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.serve(request))
            .await
            .map_err(|e| format!("the blobstore task failed: {e}"))?
    }
}

/// Bytes `start..=end` of `path`, cut at its end.
fn read_range(path: &Path, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if start >= len {
        return Ok(Vec::new());
    }
    let last = end.min(len - 1);
    let count = usize::try_from(last - start + 1).unwrap_or(usize::MAX);
    file.seek(SeekFrom::Start(start))?;
    let mut data = Vec::with_capacity(count);
    file.take(count as u64).read_to_end(&mut data)?;
    Ok(data)
}

/// Writes `data` to a hidden file in `dir`, syncs it and renames it to
/// `file`.
fn write_atomically(dir: &Path, file: &str, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temp = dir.join(format!(".{file}.{:016x}.partial", rand::random::<u64>()));
    let result = (|| {
        let mut out = std::fs::File::create(&temp)?;
        out.write_all(data)?;
        out.sync_all()?;
        std::fs::rename(&temp, dir.join(file))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn remove(path: &Path, object: &str) -> Result<BlobResponse, String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(BlobResponse::Done),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BlobResponse::Done),
        Err(e) => Err(format!("deleting `{object}`: {e}")),
    }
}

fn seconds(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// A name as a file name: see the module documentation.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        let plain =
            byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && i > 0);
        if plain {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if out.is_empty() {
        // The empty name is a name too; `%` alone cannot come from a
        // non-empty one.
        out.push('%');
    }
    out
}

/// The name a file name encodes, if it is one [`encode`] makes.
pub fn decode(file: &str) -> Option<String> {
    if file == "%" {
        return Some(String::new());
    }
    let bytes = file.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = file.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_round_trip_and_never_leave_their_directory() {
        for name in ["cat.jpg", "a/b/../c", "..", ".hidden", "", "日本 語", "%41"] {
            let file = encode(name);
            assert!(
                !file.contains('/') && !file.starts_with('.') && file != "..",
                "{file}"
            );
            assert_eq!(decode(&file).as_deref(), Some(name));
        }
        assert_eq!(encode("photos/2024 cat.jpg"), "photos%2F2024%20cat.jpg");
    }

    fn store() -> (tempfile::TempDir, FsStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_path_buf());
        (dir, store)
    }

    #[test]
    fn objects_are_written_read_in_ranges_listed_copied_and_removed() {
        let (_dir, store) = store();
        store
            .serve(BlobRequest::CreateContainer("c".into()))
            .unwrap();
        let err = store
            .serve(BlobRequest::CreateContainer("c".into()))
            .unwrap_err();
        assert!(err.contains("already exists"), "{err}");
        let write = |object: &str, data: &[u8]| BlobRequest::WriteData {
            container: "c".into(),
            object: object.into(),
            data: data.to_vec(),
        };
        store.serve(write("a/1", b"hello world")).unwrap();
        let range = |start, end| BlobRequest::GetData {
            container: "c".into(),
            object: "a/1".into(),
            start,
            end,
        };
        assert_eq!(
            store.serve(range(0, u64::MAX)).unwrap(),
            BlobResponse::Data(b"hello world".to_vec())
        );
        assert_eq!(
            store.serve(range(6, 7)).unwrap(),
            BlobResponse::Data(b"wo".to_vec())
        );
        assert_eq!(
            store.serve(range(99, 100)).unwrap(),
            BlobResponse::Data(Vec::new())
        );
        store
            .serve(BlobRequest::CopyObject {
                src: ObjectId {
                    container: "c".into(),
                    object: "a/1".into(),
                },
                dest: ObjectId {
                    container: "c".into(),
                    object: "b".into(),
                },
            })
            .unwrap();
        assert_eq!(
            store.serve(BlobRequest::ListObjects("c".into())).unwrap(),
            BlobResponse::Names(vec!["a/1".into(), "b".into()])
        );
        let BlobResponse::Object(info) = store
            .serve(BlobRequest::ObjectInfo {
                container: "c".into(),
                object: "b".into(),
            })
            .unwrap()
        else {
            panic!("not object info")
        };
        assert_eq!(info.size, 11);
        store.serve(BlobRequest::Clear("c".into())).unwrap();
        assert_eq!(
            store.serve(BlobRequest::ListObjects("c".into())).unwrap(),
            BlobResponse::Names(Vec::new())
        );
        let err = store.serve(write_to("missing")).unwrap_err();
        assert!(err.contains("container `missing` does not exist"), "{err}");
    }

    fn write_to(container: &str) -> BlobRequest {
        BlobRequest::WriteData {
            container: container.into(),
            object: "o".into(),
            data: vec![1],
        }
    }
}
