//! `trellis-messaging-nats`: the messaging-nats provider process, started
//! by a Trellis host. See the library documentation for its link config.

use trellis_messaging_nats::MessagingProvider;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    trellis_provider_sdk::run(|handle| async move { Ok(MessagingProvider::new(handle)) }).await
}
