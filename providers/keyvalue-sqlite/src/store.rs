//! One SQLite database file and the `wasi:keyvalue` functions on it.
//!
//! A store owns one connection behind a mutex; requests run on tokio's
//! blocking pool because every SQLite call may touch the disk or wait on
//! another process's lock. One connection per file serialises this
//! process's requests, which SQLite does for writes anyway. Measured with
//! 64 requests in flight on 2 cores, more connections only cost: 1, 2 and 4
//! connections gave about 31k, 14k and 11k increments/s and 63k, 38k and
//! 30k sets/s (writers then wait on each other's file lock), and about 90k
//! gets/s whatever the number.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use trellis_lattice::keyvalue::{self, KeyResponse, KvError, KvRequest, KvResponse};
use trellis_provider_sdk::keyvalue::KvStore;

use crate::SqliteError;

/// How many keys one `list-keys` page holds.
pub const LIST_PAGE_SIZE: u32 = 1000;

/// How long a statement waits for another process's write lock before it
/// reports the store busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv (
    bucket TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  BLOB NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID";

// Values are read as BLOB even when an operator wrote TEXT with the shell.
const GET: &str = "SELECT CAST(value AS BLOB) FROM kv WHERE bucket = ?1 AND key = ?2";
const SET: &str = "INSERT INTO kv (bucket, key, value) VALUES (?1, ?2, ?3)
    ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value";
const DELETE: &str = "DELETE FROM kv WHERE bucket = ?1 AND key = ?2";
const EXISTS: &str = "SELECT 1 FROM kv WHERE bucket = ?1 AND key = ?2";
const LIST: &str = "SELECT key FROM kv WHERE bucket = ?1 ORDER BY key LIMIT ?2 OFFSET ?3";

/// A `wasi:keyvalue` store in one SQLite file. Cheap to clone; clones share
/// the connection.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    db: Arc<Database>,
}

#[derive(Debug)]
struct Database {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if needed) the
    /// database at `path` with its own connection. Blocks: call it from a
    /// blocking context.
    pub fn open(path: &Path) -> Result<Self, SqliteError> {
        create_parent(path)?;
        // SQLite reports any failure to create the file as "unable to open
        // database file"; creating it here first yields the OS's reason
        // (permission denied, read-only file system, not a directory).
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| SqliteError::Unwritable {
                path: path.to_owned(),
                source,
            })?;
        let conn = configure(path).map_err(|source| SqliteError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(SqliteStore {
            db: Arc::new(Database {
                path: path.to_owned(),
                conn: Mutex::new(conn),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// Whether `self` and `other` use the same connection (links to the
    /// same file do).
    pub fn shares_connection_with(&self, other: &SqliteStore) -> bool {
        Arc::ptr_eq(&self.db, &other.db)
    }

    /// A reference that does not keep the file open.
    pub(crate) fn downgrade(&self) -> WeakStore {
        WeakStore(Arc::downgrade(&self.db))
    }

    /// Runs `work` on the connection in tokio's blocking pool.
    async fn with_connection<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection, &Path) -> Result<T, KvError> + Send + 'static,
    ) -> Result<T, KvError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let mut conn = db.conn.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut conn, &db.path)
        })
        .await
        .map_err(|e| KvError::Other(format!("the SQLite worker failed: {e}")))?
    }
}

/// A store that may have been closed since; see [`SqliteStore::downgrade`].
#[derive(Debug)]
pub(crate) struct WeakStore(Weak<Database>);

impl WeakStore {
    /// The store, if some link still holds it.
    pub(crate) fn upgrade(&self) -> Option<SqliteStore> {
        self.0.upgrade().map(|db| SqliteStore { db })
    }
}

/// Creates the directories `path` needs.
pub(crate) fn create_parent(path: &Path) -> Result<(), SqliteError> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|source| SqliteError::Unwritable {
            path: path.to_owned(),
            source,
        }),
        None => Ok(()),
    }
}

fn configure(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "SQLite did not switch to WAL mode");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

impl KvStore for SqliteStore {
    async fn handle(&self, request: KvRequest) -> Result<KvResponse, KvError> {
        self.with_connection(move |conn, path| {
            apply(conn, request).map_err(|e| match e {
                Failure::Sqlite(e) => {
                    KvError::Other(format!("SQLite store {}: {e}", path.display()))
                }
                Failure::Store(e) => e,
            })
        })
        .await
    }

    async fn check(&self) -> Result<(), String> {
        self.with_connection(|conn, path| {
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
                .map_err(|e| KvError::Other(format!("SQLite store {}: {e}", path.display())))
        })
        .await
        .map_err(|e| e.to_string())
    }
}

/// A request's failure before it is put in the caller's words.
enum Failure {
    Sqlite(rusqlite::Error),
    Store(KvError),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sqlite(e)
    }
}

impl From<KvError> for Failure {
    fn from(e: KvError) -> Self {
        Failure::Store(e)
    }
}

fn apply(conn: &mut Connection, request: KvRequest) -> Result<KvResponse, Failure> {
    Ok(match request {
        KvRequest::Get { bucket, key } => KvResponse::Value(get(conn, &bucket, &key)?),
        KvRequest::Set { bucket, key, value } => {
            conn.prepare_cached(SET)?
                .execute(params![bucket, key, value])?;
            KvResponse::Done
        }
        KvRequest::Delete { bucket, key } => {
            conn.prepare_cached(DELETE)?.execute(params![bucket, key])?;
            KvResponse::Done
        }
        KvRequest::Exists { bucket, key } => {
            KvResponse::Exists(conn.prepare_cached(EXISTS)?.exists(params![bucket, key])?)
        }
        KvRequest::ListKeys { bucket, cursor } => {
            KvResponse::Keys(list_keys(conn, &bucket, cursor)?)
        }
        KvRequest::Increment { bucket, key, delta } => {
            KvResponse::Counter(increment(conn, &bucket, &key, delta)?)
        }
        KvRequest::GetMany { bucket, keys } => {
            // One read transaction, so the values come from one moment.
            let tx = conn.transaction()?;
            let mut found = Vec::with_capacity(keys.len());
            for key in keys {
                let value = get(&tx, &bucket, &key)?;
                found.push(value.map(|v| (key, v)));
            }
            tx.commit()?;
            KvResponse::Many(found)
        }
        KvRequest::SetMany { bucket, entries } => {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut set = tx.prepare_cached(SET)?;
                for (key, value) in entries {
                    set.execute(params![bucket, key, value])?;
                }
            }
            tx.commit()?;
            KvResponse::Done
        }
        KvRequest::DeleteMany { bucket, keys } => {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut delete = tx.prepare_cached(DELETE)?;
                for key in keys {
                    delete.execute(params![bucket, key])?;
                }
            }
            tx.commit()?;
            KvResponse::Done
        }
    })
}

fn get(conn: &Connection, bucket: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached(GET)?
        .query_row(params![bucket, key], |row| row.get(0))
        .optional()
}

/// One page of keys in key order; the cursor is the offset of the next page.
fn list_keys(
    conn: &Connection,
    bucket: &str,
    cursor: Option<u64>,
) -> rusqlite::Result<KeyResponse> {
    let offset = cursor.unwrap_or(0);
    // An offset past i64::MAX is past every row.
    let Ok(sql_offset) = i64::try_from(offset) else {
        return Ok(KeyResponse::default());
    };
    let mut keys = conn
        .prepare_cached(LIST)?
        .query_map(params![bucket, LIST_PAGE_SIZE + 1, sql_offset], |row| {
            row.get(0)
        })?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    // The extra row only says whether another page follows.
    let more = keys.len() > LIST_PAGE_SIZE as usize;
    keys.truncate(LIST_PAGE_SIZE as usize);
    Ok(KeyResponse {
        cursor: more.then(|| offset + u64::from(LIST_PAGE_SIZE)),
        keys,
    })
}

/// Read-modify-write under SQLite's write lock, taken up front
/// (`BEGIN IMMEDIATE`) so two processes cannot both read the old value.
fn increment(conn: &mut Connection, bucket: &str, key: &str, delta: u64) -> Result<u64, Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = get(&tx, bucket, key)?;
    let current = keyvalue::parse_counter(key, current.as_deref())?;
    let next = current.checked_add(delta).ok_or_else(|| {
        KvError::Other(format!(
            "cannot increment `{key}`: {current} + {delta} does not fit in 64 bits"
        ))
    })?;
    tx.prepare_cached(SET)?
        .execute(params![bucket, key, next.to_string().into_bytes()])?;
    tx.commit()?;
    Ok(next)
}
