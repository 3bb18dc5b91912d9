//! `trellis-keyvalue-redis`: the provider process. A Trellis host starts it
//! with host data on stdin; see the library's documentation for the link
//! config it reads and how keys are laid out in Redis.

use std::process::ExitCode;

use trellis_keyvalue_redis::RedisBackend;
use trellis_provider_sdk::keyvalue::KeyValueProvider;

#[tokio::main]
async fn main() -> ExitCode {
    trellis_provider_sdk::run(
        |handle| async move { Ok(KeyValueProvider::new(&handle, RedisBackend)) },
    )
    .await
}
