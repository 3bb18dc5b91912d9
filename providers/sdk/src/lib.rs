//! The Trellis provider SDK: everything a capability provider process needs
//! except the contract's functions themselves.
//!
//! A host starts a provider executable and writes one line of "host data"
//! to its stdin ([`HostData`]); [`run`] reads it, connects to NATS, serves
//! the provider's RPC subjects in a queue group, applies links as the host
//! sends them (with their named config already resolved), answers health
//! checks, and stops cleanly on a `shutdown` request, on SIGTERM or Ctrl-C,
//! or when stdin closes, which is how a provider notices that its host died.
//! A provider author implements [`Provider`] (or, for `wasi:keyvalue`, just
//! [`keyvalue::KvBackend`]) and calls components back through
//! [`ProviderHandle`]. With the `testing` feature, the `testing` module serves a
//! provider on a private lattice for its tests, and plays its host.
//!
//! ```no_run
//! use trellis_provider_sdk::{IncomingCall, Provider, ProviderHandle, ProviderLink, reply};
//! use trellis_lattice::{Link, RpcError};
//!
//! struct Echo;
//!
//! impl Provider for Echo {
//!     async fn link_put(&self, _link: &ProviderLink) -> Result<(), String> {
//!         Ok(())
//!     }
//!     async fn link_del(&self, _link: &Link) {}
//!     async fn call(&self, call: IncomingCall) -> Result<Vec<u8>, RpcError> {
//!         reply(&call.body.to_vec())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     trellis_provider_sdk::run(|_handle: ProviderHandle| async { Ok(Echo) }).await
//! }
//! ```

pub mod blobstore;
mod error;
mod handle;
pub mod keyvalue;
pub mod metrics;
mod serve;
#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;
use std::process::ExitCode;

use bytes::Bytes;
pub use error::SdkError;
pub use handle::ProviderHandle;
use serde::Serialize;
pub use serve::serve;
pub use trellis_lattice::HostData;
pub use trellis_lattice::provider::ProviderLink;
use trellis_lattice::rpc::{self, CallHeaders, RpcError, RpcErrorKind};
use trellis_lattice::{Link, WitFunction};

/// Environment variable that may hold the host data instead of stdin, for
/// running a provider by hand while developing it.
pub const HOST_DATA_ENV: &str = "TRELLIS_HOST_DATA";

/// One call from a component (or another provider) to this provider.
#[derive(Clone, Debug)]
pub struct IncomingCall {
    /// The function called, e.g. `wasi:keyvalue/store.get`.
    pub function: WitFunction,
    /// Who called, and under which link.
    pub headers: CallHeaders,
    /// The encoded parameters.
    pub body: Bytes,
}

/// What a provider implements: its links and its contract's functions.
///
/// Every method may be called concurrently with the others, except that
/// link puts and deletes arrive one at a time, in order.
pub trait Provider: Send + Sync + 'static {
    /// A link that targets or originates from this provider was put (or the
    /// provider just started and is told about an existing one). Return the
    /// reason when it cannot be served, such as an unreachable server or a
    /// port in use: the host reports it, and health checks fail until a
    /// later put of the same link succeeds or it is deleted.
    fn link_put(&self, link: &ProviderLink) -> impl Future<Output = Result<(), String>> + Send;

    /// A link was deleted; release what [`Provider::link_put`] set up.
    fn link_del(&self, link: &Link) -> impl Future<Output = ()> + Send;

    /// Serves one call; returns the complete reply body, usually built with
    /// [`reply`]. An `Err` travels back to the caller as a transport error.
    fn call(&self, call: IncomingCall) -> impl Future<Output = Result<Vec<u8>, RpcError>> + Send;

    /// Checks what the provider depends on; `Err` says what is wrong.
    /// Failed links are reported by the SDK and need not be repeated here.
    fn health(&self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }

    /// The provider is about to stop: flush and close what it holds.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Encodes a successful reply carrying `value`.
pub fn reply<T: Serialize>(value: &T) -> Result<Vec<u8>, RpcError> {
    rpc::encode_reply(&Ok::<&T, RpcError>(value))
        .map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))
}

/// The whole life of a provider process: reads host data, sets up logging,
/// connects to NATS, builds the provider with `build`, serves until told to
/// stop, and turns the outcome into an exit code (errors are logged).
pub async fn run<P, F, Fut>(build: F) -> ExitCode
where
    P: Provider,
    F: FnOnce(ProviderHandle) -> Fut,
    Fut: Future<Output = Result<P, String>>,
{
    let (host_data, stdin) = match read_host_data().await {
        Ok(read) => read,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let _telemetry = init_logging(&host_data);
    match run_with(host_data, stdin, build).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "provider failed");
            ExitCode::FAILURE
        }
    }
}

async fn run_with<P, F, Fut>(
    host_data: HostData,
    stdin: Option<HostGone>,
    build: F,
) -> Result<(), SdkError>
where
    P: Provider,
    F: FnOnce(ProviderHandle) -> Fut,
    Fut: Future<Output = Result<P, String>>,
{
    let handle = ProviderHandle::connect(host_data).await?;
    let provider = build(handle.clone()).await.map_err(SdkError::Build)?;
    let stop = async move {
        match stdin {
            Some(stdin) => tokio::select! {
                () = signal() => "signal received",
                _ = stdin => "the host closed stdin (it stopped or died)",
            },
            None => {
                signal().await;
                "signal received"
            }
        }
    };
    serve(handle, provider, stop).await
}

/// Resolves when stdin reaches EOF.
type HostGone = tokio::sync::oneshot::Receiver<()>;

/// Reads host data from [`HOST_DATA_ENV`] or else the first line of stdin,
/// and watches the rest of stdin for EOF.
///
/// stdin is read on a plain thread rather than with `tokio::io::stdin`:
/// tokio reads it on a blocking-pool thread, and a runtime shutting down
/// waits for those, so a provider told to stop while its host still holds
/// stdin open would hang. A detached thread does not keep the process alive.
async fn read_host_data() -> Result<(HostData, Option<HostGone>), SdkError> {
    if let Ok(text) = std::env::var(HOST_DATA_ENV) {
        return Ok((HostData::decode(&text)?, None));
    }
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let (gone_tx, gone_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("host-stdin".into())
        .spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::stdin().lock().lines();
            let first = lines.next().transpose();
            if first_tx.send(first).is_err() {
                return;
            }
            // Anything written after the host data is ignored.
            for line in lines {
                if line.is_err() {
                    break;
                }
            }
            let _ = gone_tx.send(());
        })
        .map_err(SdkError::Stdin)?;
    let line = first_rx
        .await
        .map_err(|_| SdkError::NoHostData)?
        .map_err(SdkError::Stdin)?
        .ok_or(SdkError::NoHostData)?;
    Ok((HostData::decode(&line)?, Some(gone_rx)))
}

async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                () = ctrl_c => {}
                _ = term.recv() => {}
            },
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

/// Logs to stderr (the host re-logs each line) at the level the host asked
/// for, unless `RUST_LOG` says otherwise; traces are exported as the
/// provider's id when the `OTEL_*` variables it inherits name a collector.
fn init_logging(host_data: &HostData) -> trellis_telemetry::Telemetry {
    use trellis_lattice::host_data::LogLevel;
    let level = match host_data.log_level.unwrap_or_default() {
        LogLevel::Error | LogLevel::Critical => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    };
    // A second initialisation (tests serving several providers in one
    // process) keeps the first subscriber, which is what we want.
    trellis_telemetry::init(&trellis_telemetry::Service {
        name: &host_data.provider_key,
        filter_var: "RUST_LOG",
        default_filter: level,
        timestamps: true,
    })
}
