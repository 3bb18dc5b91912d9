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
mod compile_cache;
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
mod metrics;
mod outbound;
mod policy;
mod provider;
mod rpc;
mod secrets;
mod state;
pub mod value;

pub use component::{ComponentSpec, RunningComponent};
pub use config::{HostConfig, builtin_labels};
pub use error::HostError;
pub use host::{Host, HostInner, VERSION};
pub use identity::SEED_FILE;
pub use imports::{component_exports, lattice_imports};

/// Logs to stderr through `tracing`, filtered by `TRELLIS_LOG` (e.g.
/// `info,trellis_host=debug`; default `info`), as text or as JSON lines
/// (`TRELLIS_LOG_FORMAT=json`), and exports traces when the `OTEL_*`
/// variables name a collector. For binaries that run a host; keep the
/// guard until the process exits.
pub fn init_logging() -> trellis_telemetry::Telemetry {
    trellis_telemetry::init(&trellis_telemetry::Service {
        name: "trellis-host",
        filter_var: "TRELLIS_LOG",
        default_filter: "info",
        timestamps: true,
    })
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
