//! `trellis-blobstore-nats`: the provider process. A Trellis host starts it
//! with host data on stdin; see the library's documentation for the link
//! config it reads.

use std::process::ExitCode;

use trellis_blobstore_nats::NatsBackend;
use trellis_provider_sdk::blobstore::BlobstoreProvider;

#[tokio::main]
async fn main() -> ExitCode {
    trellis_provider_sdk::run(|handle| async move {
        Ok(BlobstoreProvider::new(&handle, NatsBackend::new()))
    })
    .await
}
