//! The `wadm` process: serves the wadm API and runs the reconcile loop for
//! one lattice. Run several for availability; one acts at a time.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use trellis_lattice::connect::NatsArgs;
use wadm::reconciler::{ReconcilerSettings, run};

/// How long wadm waits for a NATS server at start.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// wadm: keeps a lattice running the applications deployed to it.
#[derive(Debug, Parser)]
#[command(name = "wadm", version)]
struct Args {
    #[command(flatten)]
    nats: NatsArgs,
    /// Lattice name.
    #[arg(long, env = "TRELLIS_LATTICE", default_value = "default")]
    lattice: String,
    /// Seconds without hearing from a host before its work is placed
    /// elsewhere.
    #[arg(long = "host-timeout-secs", default_value_t = 60)]
    host_timeout_secs: u64,
    /// Seconds between full passes when nothing happens.
    #[arg(long = "resync-secs", default_value_t = 10)]
    resync_secs: u64,
    /// Seconds the acting wadm's lease lasts without renewal; another wadm
    /// takes over this long after the acting one dies.
    #[arg(long = "lease-secs", default_value_t = 15)]
    lease_secs: u64,
    /// Copies JetStream keeps of wadm's buckets (manifests, status, lease)
    /// and of the config bucket when wadm makes it [default: 3 on a
    /// cluster of 3 or more servers, else 1].
    #[arg(long, env = "TRELLIS_JS_REPLICAS")]
    js_replicas: Option<usize>,
    /// The JetStream domain holding wadm's buckets, for a wadm whose NATS
    /// server is a leaf node without JetStream (the hub's domain).
    #[arg(long, env = "TRELLIS_JS_DOMAIN")]
    js_domain: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr; `TRELLIS_LOG` filters them like the host's.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let nats = args
        .nats
        .connection()?
        .connect(|options| options.name("wadm"), CONNECT_WAIT)
        .await
        .context("connecting wadm to NATS")?;
    let settings = ReconcilerSettings {
        host_timeout: Duration::from_secs(args.host_timeout_secs),
        resync: Duration::from_secs(args.resync_secs),
        lease_ttl: Duration::from_secs(args.lease_secs),
        replicas: trellis_lattice::client::Replicas::from_flag(args.js_replicas),
        js_domain: args.js_domain,
        ..ReconcilerSettings::default()
    };
    run(nats, &args.lattice, settings)
        .await
        .context("wadm stopped")
}
