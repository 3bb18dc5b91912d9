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
    /// Serve Prometheus metrics at `http://HOST:PORT/metrics`.
    #[arg(long, env = "TRELLIS_WADM_METRICS_ADDR", value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr; `TRELLIS_LOG` filters them like the host's.
    let _telemetry = trellis_telemetry::init(&trellis_telemetry::Service {
        name: "wadm",
        filter_var: "TRELLIS_LOG",
        default_filter: "info",
        timestamps: true,
    });
    let args = Args::parse();
    let nats = args
        .nats
        .connection()?
        .connect(|options| options.name("wadm"), CONNECT_WAIT)
        .await
        .context("connecting wadm to NATS")?;
    let metrics = std::sync::Arc::new(wadm::metrics::WadmMetrics::default());
    if let Some(addr) = &args.metrics_addr {
        let listener = trellis_telemetry::metrics::bind(addr).await?;
        let served = std::sync::Arc::clone(&metrics);
        let render: trellis_telemetry::metrics::Render = std::sync::Arc::new(move || {
            let text = served.encode();
            Box::pin(async move { text })
        });
        tracing::info!(addr = %addr, "serving metrics at /metrics");
        tokio::spawn(trellis_telemetry::metrics::serve(listener, render));
    }
    let settings = ReconcilerSettings {
        host_timeout: Duration::from_secs(args.host_timeout_secs),
        resync: Duration::from_secs(args.resync_secs),
        lease_ttl: Duration::from_secs(args.lease_secs),
        replicas: trellis_lattice::client::Replicas::from_flag(args.js_replicas),
        js_domain: args.js_domain,
        metrics,
        ..ReconcilerSettings::default()
    };
    run(nats, &args.lattice, settings)
        .await
        .context("wadm stopped")
}
