//! One link's connection to Redis and the `wasi:keyvalue` functions on it.
//!
//! The connection is a [`ConnectionManager`]: one multiplexed connection
//! that every request shares and that reconnects by itself after Redis
//! restarts. Every command runs under a deadline shorter than the lattice's
//! default call timeout, so while Redis is unreachable a component gets the
//! store's own error ("Redis at … did not answer") rather than a bare RPC
//! timeout.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, ErrorKind, FromRedisValue, RedisError};
use trellis_lattice::keyvalue::{KeyResponse, KvError, KvRequest, KvResponse};
use trellis_provider_sdk::keyvalue::KvStore;

use crate::{RedisStoreError, bucket_pattern, redact_url, redis_key};

/// The `COUNT` hint of each `SCAN` behind `list-keys`.
pub const SCAN_PAGE_SIZE: u32 = 1000;

/// How long opening a store may take, connection and first `PING` together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one command may take, waiting for a reconnect included.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1500);

/// A `wasi:keyvalue` store on one Redis server. Cheap to clone; clones
/// share the connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    /// The URL with its password redacted, for messages.
    url: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .finish()
    }
}

impl RedisStore {
    /// Connects to `url` and checks with `PING` that the server answers,
    /// all within 3 seconds.
    pub async fn connect(url: &str) -> Result<Self, RedisStoreError> {
        RedisStore::connect_with(url, None).await
    }

    /// [`RedisStore::connect`], authenticating with `password` (a link
    /// secret) instead of any password in the URL.
    pub async fn connect_with(url: &str, password: Option<&str>) -> Result<Self, RedisStoreError> {
        use redis::IntoConnectionInfo;
        let shown = redact_url(url);
        let bad_url = |e: redis::RedisError| RedisStoreError::BadUrl {
            url: shown.clone(),
            message: e.to_string(),
        };
        let mut info = url.into_connection_info().map_err(bad_url)?;
        if let Some(password) = password {
            info.redis.password = Some(password.to_owned());
        }
        let client = redis::Client::open(info).map_err(bad_url)?;
        let unreachable = |message: String| RedisStoreError::Unreachable {
            url: shown.clone(),
            message,
        };
        // No retries inside the manager: its first back-off alone is 1-2 s.
        // A failed connection is instead retried by the next request, so a
        // refused link put fails at once with its real reason, and a
        // restarted Redis is found by the first request after it is back.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(0);
        let connecting = async {
            let mut conn = ConnectionManager::new_with_config(client, config).await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            Ok::<_, RedisError>(conn)
        };
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(RedisStore { conn, url: shown })
    }

    /// The server's URL with any password redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs one command that may safely run twice (a read, or a write of
    /// a fixed value) under [`COMMAND_TIMEOUT`], once more if the
    /// connection turned out to be gone: the first request after a Redis
    /// restart finds the old connection dead, and the manager has a new one
    /// for the second attempt.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Failure> {
        self.run(cmd, Repeat::Idempotent).await
    }

    /// Runs `cmd`, repeating it after a connection failure only if `repeat`
    /// allows it.
    async fn run<T: FromRedisValue>(&self, cmd: &Cmd, repeat: Repeat) -> Result<T, Failure> {
        let mut conn = self.conn.clone();
        let attempt = async {
            match cmd.query_async(&mut conn).await {
                // A refused connection means the command was never sent, so
                // even INCRBY may go again; the refusal made the manager
                // start a new connection, which a Redis that is back accepts.
                Err(e) if e.is_connection_refusal() => cmd.query_async(&mut conn).await,
                Err(e) if lost_in_flight(&e) => match repeat {
                    Repeat::Idempotent => cmd.query_async(&mut conn).await,
                    Repeat::AtMostOnce => Err(e),
                },
                other => other,
            }
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, attempt).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(e)) if repeat == Repeat::AtMostOnce && lost_in_flight(&e) => {
                Err(Failure::Store(KvError::Other(format!(
                    "Redis at {} dropped the connection while the command was in flight ({e}); it \
                     may or may not have been applied, so it was not sent again. The connection \
                     is re-established: read the value before trying again",
                    self.url
                ))))
            }
            Ok(result) => result.map_err(Failure::Redis),
        }
    }

    /// Puts a failure in the caller's words.
    fn store_error(&self, failure: Failure) -> KvError {
        match failure {
            Failure::Timeout => KvError::Other(format!(
                "Redis at {} did not answer within {COMMAND_TIMEOUT:?}",
                self.url
            )),
            Failure::Redis(e) => KvError::Other(format!("Redis at {}: {e}", self.url)),
            Failure::Store(e) => e,
        }
    }

    async fn apply(&self, request: KvRequest) -> Result<KvResponse, Failure> {
        Ok(match request {
            KvRequest::Get { bucket, key } => {
                KvResponse::Value(self.query(&Cmd::get(redis_key(&bucket, &key))).await?)
            }
            KvRequest::Set { bucket, key, value } => {
                self.query::<()>(&Cmd::set(redis_key(&bucket, &key), value))
                    .await?;
                KvResponse::Done
            }
            KvRequest::Delete { bucket, key } => {
                self.query::<()>(&Cmd::del(redis_key(&bucket, &key)))
                    .await?;
                KvResponse::Done
            }
            KvRequest::Exists { bucket, key } => {
                KvResponse::Exists(self.query(&Cmd::exists(redis_key(&bucket, &key))).await?)
            }
            KvRequest::ListKeys { bucket, cursor } => {
                KvResponse::Keys(self.list_keys(&bucket, cursor.unwrap_or(0)).await?)
            }
            KvRequest::Increment { bucket, key, delta } => {
                KvResponse::Counter(self.increment(&bucket, &key, delta).await?)
            }
            KvRequest::GetMany { bucket, keys } => {
                KvResponse::Many(self.get_many(&bucket, keys).await?)
            }
            KvRequest::SetMany { bucket, entries } => {
                if !entries.is_empty() {
                    let mut cmd = redis::cmd("MSET");
                    for (key, value) in &entries {
                        cmd.arg(redis_key(&bucket, key)).arg(value.as_slice());
                    }
                    self.query::<()>(&cmd).await?;
                }
                KvResponse::Done
            }
            KvRequest::DeleteMany { bucket, keys } => {
                if !keys.is_empty() {
                    let keys: Vec<String> = keys.iter().map(|k| redis_key(&bucket, k)).collect();
                    self.query::<()>(&Cmd::del(keys)).await?;
                }
                KvResponse::Done
            }
        })
    }

    async fn list_keys(&self, bucket: &str, cursor: u64) -> Result<KeyResponse, Failure> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(bucket_pattern(bucket))
            .arg("COUNT")
            .arg(SCAN_PAGE_SIZE);
        let (next, found): (u64, Vec<Vec<u8>>) = self.query(&cmd).await?;
        let prefix = redis_key(bucket, "");
        let keys = found
            .into_iter()
            .filter_map(|key| {
                // A key that is not UTF-8 was not written through Trellis and
                // could not be named by a component anyway.
                String::from_utf8(key)
                    .ok()
                    .and_then(|key| key.strip_prefix(&prefix).map(str::to_owned))
            })
            .collect();
        Ok(KeyResponse {
            keys,
            cursor: (next != 0).then_some(next),
        })
    }

    /// `INCRBY`, which is atomic in Redis however many providers share it.
    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, Failure> {
        let cannot = |why: String| {
            Failure::Store(KvError::Other(format!("cannot increment `{key}`: {why}")))
        };
        let delta = i64::try_from(delta).map_err(|_| {
            cannot(format!(
                "Redis counters are signed 64-bit; {delta} is too large"
            ))
        })?;
        let incr = Cmd::incr(redis_key(bucket, key), delta);
        let next: i64 = match self.run(&incr, Repeat::AtMostOnce).await {
            Err(Failure::Redis(e)) if e.kind() == ErrorKind::ResponseError => {
                let detail = e.detail().unwrap_or_default();
                return Err(if detail.contains("not an integer") {
                    cannot("its value is not an unsigned decimal number".into())
                } else {
                    cannot(format!("Redis says: {e}"))
                });
            }
            other => other?,
        };
        // A negative result means the stored value was negative, which the
        // contract's unsigned counters cannot express.
        u64::try_from(next).map_err(|_| cannot(format!("the counter is negative ({next})")))
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, Failure> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let redis_keys: Vec<String> = keys.iter().map(|k| redis_key(bucket, k)).collect();
        let values: Vec<Option<Vec<u8>>> = self.query(redis::cmd("MGET").arg(redis_keys)).await?;
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|v| (key, v)))
            .collect())
    }
}

/// Why a command produced no result.
/// Whether a command may be sent again after its connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    /// Running it twice does what running it once does.
    Idempotent,
    /// It must not be applied twice (INCRBY).
    AtMostOnce,
}

/// Whether `e` says the connection broke after the command may have left:
/// its effect is unknown.
fn lost_in_flight(e: &RedisError) -> bool {
    e.is_connection_dropped() || (e.is_io_error() && !e.is_connection_refusal())
}

enum Failure {
    Timeout,
    Redis(RedisError),
    Store(KvError),
}

impl From<RedisError> for Failure {
    fn from(e: RedisError) -> Self {
        Failure::Redis(e)
    }
}

impl KvStore for RedisStore {
    async fn handle(&self, request: KvRequest) -> Result<KvResponse, KvError> {
        self.apply(request).await.map_err(|f| self.store_error(f))
    }

    async fn check(&self) -> Result<(), String> {
        match self.query::<()>(&redis::cmd("PING")).await {
            Ok(()) => Ok(()),
            Err(Failure::Redis(e)) => Err(format!("Redis at {} does not answer: {e}", self.url)),
            Err(other) => Err(self.store_error(other).to_string()),
        }
    }
}
