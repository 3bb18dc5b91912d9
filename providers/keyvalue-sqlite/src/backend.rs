//! Turning a link into a store: which file, and sharing one connection
//! among the links that name the same file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use trellis_provider_sdk::ProviderLink;
use trellis_provider_sdk::keyvalue::KvBackend;

use crate::store::{WeakStore, create_parent};
use crate::{SqliteError, SqliteStore};

type OpenStores = Arc<Mutex<HashMap<PathBuf, WeakStore>>>;

/// The link target config key naming the database file.
pub const PATH_KEY: &str = "path";

/// Opens a [`SqliteStore`] for each link, from its `path` target config or
/// the default file in the provider's data directory.
#[derive(Debug)]
pub struct SqliteBackend {
    data_dir: Option<PathBuf>,
    /// Stores by canonical path; weak, so a file closes when the last link
    /// to it is deleted.
    open: OpenStores,
}

impl SqliteBackend {
    /// A backend whose default files and relative paths live in `data_dir`
    /// (the host's [`trellis_provider_sdk::ProviderHandle::data_dir`]).
    pub fn new(data_dir: Option<PathBuf>) -> Self {
        SqliteBackend {
            data_dir,
            open: OpenStores::default(),
        }
    }

    /// The database file for `link`, before any directory is created.
    pub fn store_path(&self, link: &ProviderLink) -> Result<PathBuf, SqliteError> {
        let configured = link
            .target_config_values
            .get(PATH_KEY)
            .filter(|p| !p.trim().is_empty())
            .map(PathBuf::from);
        match (configured, &self.data_dir) {
            (Some(path), _) if path.is_absolute() => Ok(path),
            (Some(path), Some(dir)) => Ok(dir.join(path)),
            (Some(path), None) => Ok(path),
            (None, Some(dir)) => Ok(dir.join(default_file_name(link))),
            (None, None) => Err(SqliteError::NoPath {
                source_id: link.link.source_id.clone(),
                link_name: link.link.name.clone(),
            }),
        }
    }
}

impl KvBackend for SqliteBackend {
    const NAME: &'static str = "sqlite";
    type Store = SqliteStore;

    async fn open(&self, link: &ProviderLink) -> Result<SqliteStore, String> {
        let path = self.store_path(link).map_err(|e| e.to_string())?;
        let open = Arc::clone(&self.open);
        let store = tokio::task::spawn_blocking(move || open_shared(&open, &path))
            .await
            .map_err(|e| format!("opening the SQLite store failed: {e}"))?
            .map_err(|e| e.to_string())?;
        tracing::info!(
            source_id = %link.link.source_id,
            link_name = %link.link.name,
            path = %store.path().display(),
            "SQLite store open"
        );
        Ok(store)
    }
}

/// The store already open on `path`'s file, or a new one.
fn open_shared(open: &OpenStores, path: &Path) -> Result<SqliteStore, SqliteError> {
    create_parent(path)?;
    let path = canonical(path);
    let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(store) = open.get(&path).and_then(WeakStore::upgrade) {
        return Ok(store);
    }
    let store = SqliteStore::open(&path)?;
    open.retain(|_, weak| weak.upgrade().is_some());
    open.insert(path, store.downgrade());
    Ok(store)
}

/// `{source_id}-{link_name}.sqlite3`. Ids are subject tokens, which may
/// still hold a path separator; it must not become a directory.
fn default_file_name(link: &ProviderLink) -> String {
    let clean = |s: &str| s.replace(['/', '\\'], "_");
    format!(
        "{}-{}.sqlite3",
        clean(&link.link.source_id),
        clean(&link.link.name)
    )
}

/// The same file however a link spells it (`./a.db`, `a.db`, a symlink),
/// so links to one file share one connection. The parent must exist.
fn canonical(path: &Path) -> PathBuf {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    match (parent.map(std::fs::canonicalize), path.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => path.to_owned(),
    }
}
