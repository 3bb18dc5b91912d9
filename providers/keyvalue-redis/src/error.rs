/// Why a link's Redis store could not be opened. Messages show the URL with
/// its password redacted and say what to change.
#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    /// The link names no server.
    #[error(
        "the link from `{source_id}` (link `{link_name}`) names no Redis server; set the \
         link's target config key `url`, e.g. `redis://127.0.0.1:6379/`"
    )]
    NoUrl {
        /// The linked component.
        source_id: String,
        /// The link's name.
        link_name: String,
    },
    /// The URL does not parse.
    #[error(
        "`{url}` is not a Redis URL ({message}); set the link's target config key `url` \
         to one like `redis://host:6379/0`"
    )]
    BadUrl {
        /// The URL, password redacted.
        url: String,
        /// What the Redis client said.
        message: String,
    },
    /// Connecting or the first `PING` failed.
    #[error(
        "cannot reach Redis at {url}: {message}; check that Redis runs there and that the \
         link's target config key `url` is right"
    )]
    Unreachable {
        /// The URL, password redacted.
        url: String,
        /// What went wrong.
        message: String,
    },
}
