//! `trellis-http-server`: the http-server provider process, started by a
//! Trellis host. See the library documentation for its link config.

use trellis_http_server::HttpServerProvider;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    trellis_provider_sdk::run(|handle| async move { Ok(HttpServerProvider::new(handle)) }).await
}
