//! The Trellis host node.
//!
//! A host joins a lattice over NATS, runs signed WebAssembly components
//! with wasmtime, and obeys the control interface (`wasmbus.ctl.v1.*`).
//! `trellis-host` is the binary; `wash up` runs the same [`Host`]
//! in-process.
//!
//! ```no_run
//! # async fn run() -> Result<(), trellis_host::HostError> {
//! let config = trellis_host::HostConfig {
//!     nats_url: "nats://127.0.0.1:4222".into(),
//!     ..Default::default()
//! };
//! let host = trellis_host::Host::start(config).await?;
//! host.stop_requested().await;
//! host.stop("asked to stop").await;
//! # Ok(()) }
//! ```

mod component;
mod config;
mod ctl;
mod engine;
mod error;
mod events;
mod host;
mod imports;
mod policy;
mod rpc;
mod state;
pub mod value;

pub use config::{HostConfig, builtin_labels};
pub use error::HostError;
pub use host::{Host, HostInner, VERSION};
