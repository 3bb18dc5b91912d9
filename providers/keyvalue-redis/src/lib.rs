//! `wasi:keyvalue` on Redis: the store for production lattices, shared by
//! every provider process and host that points at the same server.
//!
//! The provider process (`trellis-keyvalue-redis`) serves every link put to
//! it; each link gets a connection to the Redis server its config names.
//! Links to the same URL still get separate connections: Redis multiplexes
//! them cheaply and one slow link cannot hold up another.
//!
//! # Link target config
//!
//! | key | meaning |
//! |---|---|
//! | `url` (or `URL`, as wasmCloud's Redis provider reads it) | the server, e.g. `redis://127.0.0.1:6379/0`, `rediss://:password@host/` or `redis+unix:///run/redis.sock` |
//!
//! A password belongs in a secret, not in the URL (which is named config,
//! readable by whoever reads lattice state): a link whose target configs
//! list a secret reference named `password` (`SECRET_password`) is given
//! that secret, sealed for this provider, and it authenticates with it.
//!
//! There is no default: a link without a URL is refused rather than
//! quietly writing to whatever Redis runs on localhost. The link put fails
//! unless the server answers `PING` within 3 seconds; messages show the URL
//! with any password replaced by `***`.
//!
//! # Keys in Redis
//!
//! Key `key` of bucket `bucket` (the identifier the component opened) is
//! the Redis string key `{bucket}:{key}`, so operators can read and write
//! the data with `redis-cli`:
//!
//! ```text
//! redis-cli GET default:hits        # bucket "default", key "hits"
//! redis-cli --scan --pattern 'default:*'
//! ```
//!
//! Counters (`atomics.increment`) are Redis integers (`INCRBY`), which are
//! ASCII decimal strings, as the SQLite provider stores them too.
//! `list-keys` walks `SCAN MATCH {bucket}:*` and returns the SCAN cursor as
//! its own; like SCAN, a page may be empty before the last one, and a key
//! written during the walk may be listed twice or not at all.
//!
//! After Redis restarts, the first request finds the old connection dead;
//! the connection is re-established and a read or a write of a fixed value
//! (`set`, `delete`) is sent once more, so it succeeds. An increment is not
//! sent twice, since it may have been applied before the connection broke:
//! it fails with an error that says so. While Redis is down, requests fail
//! with a store error and the provider's health check says which server is
//! down.
//!
//! # Use from Rust
//!
//! ```no_run
//! use trellis_keyvalue_redis::RedisStore;
//! use trellis_lattice::keyvalue::{KvRequest, KvResponse};
//! use trellis_provider_sdk::keyvalue::KvStore;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
//! let request = KvRequest::Increment { bucket: "default".into(), key: "hits".into(), delta: 1 };
//! let KvResponse::Counter(hits) = store.handle(request).await? else { unreachable!() };
//! println!("{hits} hits");
//! # Ok(())
//! # }
//! ```

mod backend;
mod error;
mod keys;
mod store;

pub use backend::{RedisBackend, URL_KEYS};
pub use error::RedisStoreError;
pub use keys::{bucket_pattern, redact_url, redis_key};
pub use store::{RedisStore, SCAN_PAGE_SIZE};
