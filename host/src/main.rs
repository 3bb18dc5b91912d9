//! `trellis-host`: run one Trellis host node until it is told to stop
//! (Ctrl-C, SIGTERM, or a `host.stop` control command).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use trellis_host::{Host, HostConfig};
use trellis_lattice::connect::{NatsArgs, NatsAuth};

/// Run a Trellis host node.
#[derive(Debug, Parser)]
#[command(name = "trellis-host", version)]
struct Args {
    /// The lattice to join.
    #[arg(long, env = "TRELLIS_LATTICE", default_value = "default")]
    lattice: String,
    #[command(flatten)]
    nats: NatsArgs,
    /// A NATS credentials file to hand providers instead of the host's own.
    #[arg(long, env = "TRELLIS_PROVIDER_NATS_CREDS")]
    provider_nats_creds: Option<PathBuf>,
    /// An nkey seed file to hand providers instead of the host's credentials.
    #[arg(long, env = "TRELLIS_PROVIDER_NATS_NKEY")]
    provider_nats_nkey: Option<PathBuf>,
    /// A NATS user to hand providers (with --provider-nats-password).
    #[arg(long, env = "TRELLIS_PROVIDER_NATS_USER")]
    provider_nats_user: Option<String>,
    /// The password of --provider-nats-user.
    #[arg(long, env = "TRELLIS_PROVIDER_NATS_PASSWORD", hide_env_values = true)]
    provider_nats_password: Option<String>,
    /// The host's identity seed (SN…). When omitted, the host keeps its
    /// identity in its data dir (host.nk), made on first start, so a
    /// restart comes back under the same id.
    #[arg(long, env = "TRELLIS_HOST_SEED", hide_env_values = true)]
    host_seed: Option<String>,
    /// Copies JetStream keeps of the lattice buckets (LATTICEDATA,
    /// CONFIGDATA) [default: 3 on a cluster of 3 or more servers, else 1].
    #[arg(long, env = "TRELLIS_JS_REPLICAS")]
    js_replicas: Option<usize>,
    /// The JetStream domain that holds lattice state, for a host whose
    /// NATS server is a leaf node without JetStream (the hub's domain).
    #[arg(long, env = "TRELLIS_JS_DOMAIN")]
    js_domain: Option<String>,
    /// The seed of the key this host signs calls with (SC…); a fresh key
    /// when omitted. Give every host of a lattice the same one, or list
    /// each host's key in --cluster-issuers.
    #[arg(long, env = "TRELLIS_CLUSTER_SEED", hide_env_values = true)]
    cluster_seed: Option<String>,
    /// More cluster keys (C…, comma separated) whose signed calls this
    /// host's providers accept; the host's own is always accepted.
    #[arg(long, env = "TRELLIS_CLUSTER_ISSUERS", value_delimiter = ',')]
    cluster_issuers: Vec<String>,
    /// Milliseconds a signed call stays valid: how much clock skew between
    /// machines is tolerated, and how long providers remember call ids.
    #[arg(long, env = "TRELLIS_INVOCATION_WINDOW_MS", default_value_t = 30_000)]
    invocation_window_ms: u64,
    /// Send calls unsigned and let this host's providers serve them
    /// unchecked. Only for measuring what the check costs: anyone on the
    /// lattice can then act for any component.
    #[arg(long, env = "TRELLIS_INSECURE_UNSIGNED_INVOCATIONS")]
    insecure_unsigned_invocations: bool,
    /// A label, as key=value; repeat for more.
    #[arg(long = "label", short = 'l')]
    labels: Vec<String>,
    /// Accounts allowed to sign components and providers (comma separated
    /// A… keys). This or --allow-any-issuer is required.
    #[arg(long, env = "TRELLIS_ALLOWED_ISSUERS", value_delimiter = ',')]
    allowed_issuers: Vec<String>,
    /// Run anything validly signed, by any account. For development only.
    #[arg(
        long,
        env = "TRELLIS_ALLOW_ANY_ISSUER",
        conflicts_with = "allowed_issuers"
    )]
    allow_any_issuer: bool,
    /// Run unsigned components. For local development only.
    #[arg(long, env = "TRELLIS_ALLOW_UNSIGNED")]
    allow_unsigned: bool,
    /// Seconds between heartbeats.
    #[arg(long, env = "TRELLIS_HEARTBEAT_SECS", default_value_t = 30)]
    heartbeat_secs: u64,
    /// Milliseconds one call may run before it is interrupted.
    #[arg(long, env = "TRELLIS_CALL_TIMEOUT_MS", default_value_t = 10_000)]
    call_timeout_ms: u64,
    /// Mebibytes of linear memory one instance may use.
    #[arg(long, env = "TRELLIS_MAX_MEMORY_MIB", default_value_t = 64)]
    max_memory_mib: u64,
    /// Where the host keeps provider executables and provider data
    /// [default: $TRELLIS_HOME/data, else ~/.trellis/data].
    #[arg(long, env = "TRELLIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Mebibytes of compiled components kept in the data dir's compiled/
    /// folder, so a restart loads instead of compiling them; 0 turns the
    /// cache off.
    #[arg(long, env = "TRELLIS_COMPILE_CACHE_MAX_MIB", default_value_t = 1024)]
    compile_cache_max_mib: u64,
    /// The data dir's providers/ folder is on storage every host shares
    /// (NFS, say), so wadm may move stateful providers between hosts.
    #[arg(long, env = "TRELLIS_SHARED_PROVIDER_DATA")]
    shared_provider_data: bool,
    /// Seconds between health checks of running providers.
    #[arg(long, env = "TRELLIS_PROVIDER_HEALTH_SECS", default_value_t = 30)]
    provider_health_secs: u64,
    /// Seconds a new provider has to answer its first health check.
    #[arg(
        long,
        env = "TRELLIS_PROVIDER_START_TIMEOUT_SECS",
        default_value_t = 10
    )]
    provider_start_timeout_secs: u64,
    /// The most labels the host carries (besides the built-in hostcore.* ones).
    #[arg(long, env = "TRELLIS_MAX_LABELS", default_value_t = 64)]
    max_labels: usize,
    /// The longest label key, in bytes.
    #[arg(long, env = "TRELLIS_MAX_LABEL_KEY_BYTES", default_value_t = 128)]
    max_label_key_bytes: usize,
    /// The longest label value, in bytes.
    #[arg(long, env = "TRELLIS_MAX_LABEL_VALUE_BYTES", default_value_t = 1024)]
    max_label_value_bytes: usize,
    /// The most annotations on one component or provider.
    #[arg(long, env = "TRELLIS_MAX_ANNOTATIONS", default_value_t = 32)]
    max_annotations: usize,
    /// The longest annotation value, in bytes.
    #[arg(long, env = "TRELLIS_MAX_ANNOTATION_BYTES", default_value_t = 1024)]
    max_annotation_bytes: usize,
    /// The most keys in one named config.
    #[arg(long, env = "TRELLIS_MAX_CONFIG_KEYS", default_value_t = 256)]
    max_config_keys: usize,
    /// The longest config value, in bytes.
    #[arg(long, env = "TRELLIS_MAX_CONFIG_VALUE_BYTES", default_value_t = 65536)]
    max_config_value_bytes: usize,
    /// The longest id, name, WIT name, config name or key in a command, in bytes.
    #[arg(long, env = "TRELLIS_MAX_FIELD_BYTES", default_value_t = 256)]
    max_field_bytes: usize,
    /// The most entries in a command's list (link interfaces and configs,
    /// allowed hosts).
    #[arg(long, env = "TRELLIS_MAX_LIST_LEN", default_value_t = 32)]
    max_list_len: usize,
    /// The longest image or provider reference, in bytes.
    #[arg(long, env = "TRELLIS_MAX_REF_BYTES", default_value_t = 4096)]
    max_ref_bytes: usize,
    /// Lines of stdout and stderr a component may write in a burst.
    #[arg(long, env = "TRELLIS_GUEST_LOG_BURST", default_value_t = 200)]
    guest_log_burst: u32,
    /// Lines per second a component may write in the long run.
    #[arg(long, env = "TRELLIS_GUEST_LOG_LINES_PER_SEC", default_value_t = 50)]
    guest_log_lines_per_sec: u32,
    /// Bytes of one guest output line kept in the log.
    #[arg(long, env = "TRELLIS_GUEST_LOG_LINE_BYTES", default_value_t = 4096)]
    guest_log_line_bytes: usize,
    /// The largest local component image or provider executable read, in MiB.
    #[arg(long, env = "TRELLIS_MAX_ARTIFACT_MIB", default_value_t = 256)]
    max_artifact_mib: u64,
    /// The largest payload (call parameters, reply, HTTP body) sent or
    /// accepted, in MiB; an HTTP request over it is answered 413.
    #[arg(long, env = "TRELLIS_MAX_BODY_MIB", default_value_t = 100)]
    max_body_mib: u64,
    /// Seconds reading one local image or executable may take.
    #[arg(long, env = "TRELLIS_ARTIFACT_READ_TIMEOUT_SECS", default_value_t = 30)]
    artifact_read_timeout_secs: u64,
    #[command(flatten)]
    registry: trellis_oci::RegistryArgs,
    /// Serve Prometheus metrics (the host's and its providers') at
    /// `http://HOST:PORT/metrics`.
    #[arg(long, env = "TRELLIS_METRICS_ADDR", value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
}

/// The `--provider-nats-*` credentials, if any were given.
fn provider_auth(args: &Args) -> anyhow::Result<Option<NatsAuth>> {
    let auth = NatsAuth::from_flags(
        "--provider-nats",
        args.provider_nats_creds.clone(),
        args.provider_nats_nkey.clone(),
        args.provider_nats_user.clone(),
        args.provider_nats_password.clone(),
    )?;
    Ok((auth != NatsAuth::Anonymous).then_some(auth))
}

fn parse_labels(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("label `{pair}` is not key=value");
        };
        labels.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    Ok(labels)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = trellis_host::init_logging();
    let args = Args::parse();
    let provider_nats_auth = provider_auth(&args)?;
    // Bound first: a taken address stops the host before it joins.
    let metrics = match &args.metrics_addr {
        Some(addr) => Some(trellis_telemetry::metrics::bind(addr).await?),
        None => None,
    };
    let config = HostConfig {
        nats: args.nats.connection().context("reading the NATS options")?,
        provider_nats_auth,
        lattice: args.lattice,
        host_seed: args.host_seed,
        js_replicas: trellis_lattice::client::Replicas::from_flag(args.js_replicas),
        shared_provider_data: args.shared_provider_data,
        js_domain: args.js_domain,
        cluster_seed: args.cluster_seed,
        cluster_issuers: args.cluster_issuers,
        invocation_window: Duration::from_millis(args.invocation_window_ms.max(1)),
        insecure_unsigned_invocations: args.insecure_unsigned_invocations,
        labels: parse_labels(&args.labels)?,
        allowed_issuers: args.allowed_issuers,
        allow_any_issuer: args.allow_any_issuer,
        allow_unsigned: args.allow_unsigned,
        heartbeat_interval: Duration::from_secs(args.heartbeat_secs.max(1)),
        call_timeout: Duration::from_millis(args.call_timeout_ms.max(1)),
        max_memory_bytes: args.max_memory_mib.max(1) * 1024 * 1024,
        compile_cache_max_bytes: args.compile_cache_max_mib.saturating_mul(1024 * 1024),
        provider_health_interval: Duration::from_secs(args.provider_health_secs.max(1)),
        provider_start_timeout: Duration::from_secs(args.provider_start_timeout_secs.max(1)),
        guest_log: trellis_host::guest_log::GuestLogLimits {
            burst_lines: args.guest_log_burst,
            lines_per_second: args.guest_log_lines_per_sec,
            max_line_bytes: args.guest_log_line_bytes.max(1),
        },
        label_limits: trellis_lattice::ctl::LabelLimits {
            max_labels: args.max_labels,
            max_key_bytes: args.max_label_key_bytes,
            max_value_bytes: args.max_label_value_bytes,
        },
        input_limits: trellis_lattice::ctl::InputLimits {
            max_annotations: args.max_annotations,
            max_annotation_bytes: args.max_annotation_bytes,
            max_config_keys: args.max_config_keys,
            max_config_value_bytes: args.max_config_value_bytes,
            max_field_bytes: args.max_field_bytes,
            max_list_len: args.max_list_len,
            max_ref_bytes: args.max_ref_bytes,
        },
        file_limits: trellis_host::files::FileLimits {
            max_bytes: args.max_artifact_mib.max(1) * 1024 * 1024,
            timeout: Duration::from_secs(args.artifact_read_timeout_secs.max(1)),
        },
        max_body_bytes: args.max_body_mib.max(1) * 1024 * 1024,
        metrics: metrics.is_some(),
        registry: args
            .registry
            .options()
            .map_err(anyhow::Error::msg)
            .context("reading registry credentials")?,
        ..HostConfig::default()
    };
    let config = match args.data_dir {
        Some(data_dir) => HostConfig { data_dir, ..config },
        None => config,
    };
    let host = Host::start(config).await.context("starting the host")?;
    let _metrics = metrics.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "serving metrics at /metrics");
        }
        tokio::spawn(trellis_telemetry::metrics::serve(
            listener,
            host.metrics_render(),
        ))
    });
    println!("{}", host.id());
    let reason = tokio::select! {
        () = host.stop_requested() => "stop requested over the control interface",
        () = trellis_host::shutdown_signal() => "signal received",
    };
    host.stop(reason).await;
    Ok(())
}
