//! `wasi:keyvalue` on a SQLite file: the embedded, zero-setup store for
//! development (and for single-machine deployments that want one file).
//!
//! The provider process (`trellis-keyvalue-sqlite`) serves every link put
//! to it; each link gets a store, which is a SQLite database file. A store
//! holds any number of buckets: the bucket identifier a component opens is
//! a column, not a file, so `open("default")` and `open("sessions")` live
//! side by side in one database.
//!
//! # Link target config
//!
//! | key | meaning |
//! |---|---|
//! | `path` | the database file. A relative path is taken from the provider's data directory (the host gives every provider one), or from the working directory when there is none. Parent directories are created. |
//!
//! Without `path` the store is `{data_dir}/{source_id}-{link_name}.sqlite3`;
//! a provider started without a data directory refuses such links and says
//! to set `path`. Links that name the same file share it (and one
//! connection to it), so two components can see each other's data.
//!
//! # On disk
//!
//! One table, `kv(bucket TEXT, key TEXT, value BLOB, PRIMARY KEY (bucket, key))`,
//! in WAL mode with `synchronous=NORMAL`: a committed write survives the
//! provider being killed (not a power cut, which `FULL` would cover at the
//! cost of an fsync per write). Counters (`atomics.increment`) are ASCII
//! decimal, as Redis stores them, and an increment is a read-modify-write
//! inside `BEGIN IMMEDIATE`, so several processes sharing a file never lose
//! an update. Operators can read the file with the `sqlite3` shell:
//!
//! ```text
//! sqlite3 counter.sqlite3 "SELECT key, CAST(value AS TEXT) FROM kv WHERE bucket = 'default'"
//! ```
//!
//! # Use from Rust
//!
//! ```no_run
//! use trellis_keyvalue_sqlite::SqliteStore;
//! use trellis_lattice::keyvalue::{KvRequest, KvResponse};
//! use trellis_provider_sdk::keyvalue::KvStore;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteStore::open(std::path::Path::new("/tmp/demo.sqlite3"))?;
//! let request = KvRequest::Increment { bucket: "default".into(), key: "hits".into(), delta: 1 };
//! assert_eq!(store.handle(request).await?, KvResponse::Counter(1));
//! # Ok(())
//! # }
//! ```

mod backend;
mod error;
mod store;

pub use backend::{PATH_KEY, SqliteBackend};
pub use error::SqliteError;
pub use store::{LIST_PAGE_SIZE, SqliteStore};
