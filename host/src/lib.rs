//! The Trellis host node.
//!
//! A host joins a lattice over NATS, runs signed WebAssembly components
//! with wasmtime, and obeys the control interface (`wasmbus.ctl.v1.*`).
//! `trellis-host` is the binary; `wash up` runs the same [`Host`]
//! in-process.
//!
//! ```no_run
//! # async fn run() -> Result<(), trellis_host::HostError> {
//! use trellis_lattice::connect::NatsConnection;
//!
//! let config = trellis_host::HostConfig {
//!     nats: NatsConnection::new("nats://127.0.0.1:4222"),
//!     // The accounts whose signatures this host accepts.
//!     allowed_issuers: vec!["ACDJ…".into()],
//!     ..Default::default()
//! };
//! let host = trellis_host::Host::start(config).await?;
//! host.stop_requested().await;
//! host.stop("asked to stop").await;
//! # Ok(()) }
//! ```

mod blobstore;
mod builtin;
mod component;
mod config;
mod ctl;
mod engine;
mod error;
mod events;
pub mod files;
pub mod guest_log;
mod host;
mod identity;
mod imports;
mod keyvalue;
mod outbound;
mod policy;
mod provider;
mod rpc;
mod state;
pub mod value;

pub use component::{ComponentSpec, RunningComponent};
pub use config::{HostConfig, builtin_labels};
pub use error::HostError;
pub use host::{Host, HostInner, VERSION};
pub use identity::SEED_FILE;
pub use imports::{component_exports, lattice_imports};

/// Logs to stderr through `tracing`, filtered by `TRELLIS_LOG` (e.g.
/// `info,trellis_host=debug`; default `info`). For binaries that run a host.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: `wash up --detach` and
    // service managers write the log to a file.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM: how a host process is asked to stop.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => return,
                _ = tokio::signal::ctrl_c() => return,
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
