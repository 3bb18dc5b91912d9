//! `trellis-secrets-nats-kv`: runs the secrets backend for one lattice.
//! Unlike the providers a host starts, it runs on its own, with its own
//! NATS user and its key file on its own machine; see the library's
//! documentation for what it serves.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use trellis_claims::Policy;
use trellis_lattice::HostData;
use trellis_lattice::client::{Replicas, jetstream, open_kv_bucket};
use trellis_lattice::connect::NatsArgs;
use trellis_provider_sdk::ProviderHandle;
use trellis_secrets_nats_kv::keyring::Keyring;
use trellis_secrets_nats_kv::{Backend, BackendProvider, default_bucket};

/// The secrets backend of a Trellis lattice: values in JetStream KV,
/// sealed with a key that stays on this machine.
#[derive(Debug, Parser)]
#[command(name = "trellis-secrets-nats-kv", version)]
struct Args {
    #[command(flatten)]
    nats: NatsArgs,
    /// Lattice name.
    #[arg(long, env = "TRELLIS_LATTICE", default_value = "default")]
    lattice: String,
    /// The backend's id: what secret references name as their `backend`.
    #[arg(long, env = "TRELLIS_SECRETS_ID", default_value = trellis_lattice::secret::DEFAULT_BACKEND)]
    id: String,
    /// The file holding the sealing key; created with a fresh key if it
    /// does not exist. Keep it (and a backup) off the lattice.
    #[arg(long, env = "TRELLIS_SECRETS_KEY_FILE")]
    key_file: PathBuf,
    /// The KV bucket values are kept in [default: SECRETS_{lattice}].
    #[arg(long, env = "TRELLIS_SECRETS_BUCKET")]
    bucket: Option<String>,
    /// The cluster keys (C…, comma separated) of the hosts whose fetches
    /// are served: every host of the lattice signs its calls with one.
    #[arg(
        long,
        env = "TRELLIS_CLUSTER_ISSUERS",
        value_delimiter = ',',
        required = true
    )]
    cluster_issuers: Vec<String>,
    /// Accounts (A…, comma separated) whose signed components and
    /// providers may be granted secrets. Required: an access rule names a
    /// claims subject, which only its issuer makes it trustworthy.
    #[arg(
        long,
        env = "TRELLIS_SECRETS_ALLOWED_ISSUERS",
        value_delimiter = ',',
        required = true
    )]
    allowed_issuers: Vec<String>,
    /// Copies JetStream keeps of the bucket [default: 3 on a cluster of 3
    /// or more servers, else 1].
    #[arg(long, env = "TRELLIS_JS_REPLICAS")]
    js_replicas: Option<usize>,
    /// The JetStream domain holding the bucket.
    #[arg(long, env = "TRELLIS_JS_DOMAIN")]
    js_domain: Option<String>,
    /// Serve Prometheus metrics at `http://HOST:PORT/metrics`.
    #[arg(long, env = "TRELLIS_SECRETS_METRICS_ADDR", value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = trellis_telemetry::init(&trellis_telemetry::Service {
        name: "secrets-nats-kv",
        filter_var: "TRELLIS_LOG",
        default_filter: "info",
        timestamps: true,
    });
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "secrets backend failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let claims = Policy::allow_issuers(&args.allowed_issuers).context("--allowed-issuers")?;
    let keys = Keyring::open(&args.key_file).map_err(anyhow::Error::msg)?;
    let connection = args.nats.connection()?;
    let mut host_data = HostData::from_connection(&connection);
    host_data.lattice_rpc_prefix.clone_from(&args.lattice);
    host_data.provider_key.clone_from(&args.id);
    host_data.host_id.clone_from(&args.id);
    host_data.cluster_issuers = args.cluster_issuers;
    host_data.metrics_addr = args.metrics_addr;
    let handle = ProviderHandle::connect(host_data)
        .await
        .context("connecting the secrets backend to NATS")?;
    let js = jetstream(handle.nats().clone(), args.js_domain.as_deref());
    let bucket = args.bucket.unwrap_or_else(|| default_bucket(&args.lattice));
    let kv = open_kv_bucket(&js, &bucket, Replicas::from_flag(args.js_replicas))
        .await
        .with_context(|| format!("opening the secrets bucket {bucket}"))?;
    let backend = Arc::new(Backend::new(handle.clone(), kv, keys, claims));
    tracing::info!(id = %args.id, lattice = %args.lattice, bucket = %bucket, "secrets backend serving");
    let admin = tokio::spawn(Arc::clone(&backend).serve_admin());
    let stop = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "signal received",
            _ = terminate() => "signal received",
        }
    };
    let served = trellis_provider_sdk::serve(handle, BackendProvider(backend), stop).await;
    admin.abort();
    served.context("serving the secrets backend")
}

async fn terminate() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        term.recv().await;
        return;
    }
    std::future::pending::<()>().await;
}
