//! The http-server capability provider: turns HTTP requests into calls to a
//! component's `wasi:http/incoming-handler`.
//!
//! Each link from this provider to a component (`wasi:http`, interface
//! `incoming-handler`) gets its own HTTP/1.1 listener. The link is applied
//! only once its address is bound, so a port already in use fails the link
//! put with a message naming the address, and health checks report it until
//! the link is put again with a free address or deleted. Deleting the link
//! closes the listener and frees the port; putting it again with a new
//! address moves it.
//!
//! Link **source** config (the provider's side of the link):
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `address` (or `ADDRESS`) | `host:port` to listen on | `127.0.0.1:8000` ([`DEFAULT_ADDRESS`]) |
//! | `timeout_ms` | how long a request waits for the component | the host data's RPC timeout |
//!
//! Each request becomes one [`HttpRequest`](trellis_lattice::http::HttpRequest)
//! sent with [`call_http`](trellis_provider_sdk::ProviderHandle::call_http);
//! the component's status, headers and body go back to the client. When
//! the call fails the client gets plain text saying why: `503` when no
//! instance of the component is running, `504` when it did not answer in
//! time, `500` when it failed, and `502` for anything else.
//!
//! Bodies up to 256 KiB travel inside the call and its reply; larger ones
//! stream in both directions as they are read ([`trellis_lattice::chunk`]),
//! up to the host's `--max-body-mib` (100 MiB by default; a request
//! declaring more gets `413`).
//!
//! ```text
//! $ wash config put web address=127.0.0.1:8080
//! $ wash link put http-server hello wasi http --interface incoming-handler --source-config web
//! $ curl http://127.0.0.1:8080/
//! Hello from Trellis
//! ```
//!
//! In code, the binary is [`HttpServerProvider`] served by the SDK:
//!
//! ```no_run
//! use trellis_http_server::HttpServerProvider;
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     trellis_provider_sdk::run(|handle| async move { Ok(HttpServerProvider::new(handle)) }).await
//! }
//! ```

mod config;
mod forward;
mod listener;
mod provider;

pub use config::{ConfigError, DEFAULT_ADDRESS, ListenConfig};
pub use provider::HttpServerProvider;
