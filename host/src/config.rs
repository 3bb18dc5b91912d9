//! Everything a host is told at start-up. The binary fills this from flags
//! and `TRELLIS_*` environment variables; `wash up` and the tests build it
//! directly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use trellis_lattice::connect::{DEFAULT_NATS_URL, NatsAuth, NatsConnection};

/// How a host joins a lattice and what it will run.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The lattice to join.
    pub lattice: String,
    /// Where NATS answers and how to authenticate to it.
    pub nats: NatsConnection,
    /// The credentials handed to this host's providers; `None` hands them
    /// the host's own. They always get the host's URLs and TLS settings.
    pub provider_nats_auth: Option<NatsAuth>,
    /// The host's identity seed (`SN…`). When absent, the seed kept in
    /// `{data_dir}/host.nk` is used, made and stored on first start, so a
    /// restarted host keeps its id.
    pub host_seed: Option<String>,
    /// Copies JetStream keeps of the lattice buckets (LATTICEDATA,
    /// CONFIGDATA) when this host makes them.
    pub js_replicas: trellis_lattice::client::Replicas,
    /// The JetStream domain holding lattice state, when it is not the one
    /// this host's server belongs to (an edge host behind a leaf node
    /// reaching the hub's).
    pub js_domain: Option<String>,
    /// The seed of the key this host signs invocations with (`SC…`); a
    /// fresh one is made when absent. Hosts of one lattice share it, or
    /// list each other's public keys in [`HostConfig::cluster_issuers`].
    pub cluster_seed: Option<String>,
    /// Cluster keys (`C…`) whose signed calls this host's providers accept,
    /// in addition to the host's own.
    pub cluster_issuers: Vec<String>,
    /// How old a signed call may be when a provider receives it.
    pub invocation_window: Duration,
    /// Sends calls unsigned and tells this host's providers not to check.
    /// Only for measuring what the check costs: with it, anyone on the
    /// lattice can act for any component.
    pub insecure_unsigned_invocations: bool,
    /// Labels in addition to the built-in `hostcore.*` ones.
    pub labels: BTreeMap<String, String>,
    /// Accounts whose components and providers may run.
    pub allowed_issuers: Vec<String>,
    /// Trusts any valid signer. Without it, and with no allowed issuers,
    /// the host refuses to start: there is no implicit "any".
    pub allow_any_issuer: bool,
    /// Runs unsigned components. For local development only.
    pub allow_unsigned: bool,
    /// How often the heartbeat event goes out.
    pub heartbeat_interval: Duration,
    /// The longest one call may run before it is interrupted.
    pub call_timeout: Duration,
    /// The most linear memory one instance may use, in bytes.
    pub max_memory_bytes: u64,
    /// How long a graceful stop waits for calls in flight.
    pub drain_timeout: Duration,
    /// Where the host keeps files: verified provider executables, the
    /// registry cache (`oci/`) and one directory per provider (handed to it
    /// as its `data_dir`).
    pub data_dir: PathBuf,
    /// The most bytes of compiled components kept in `data_dir/compiled`
    /// so a restart need not compile them again; 0 keeps none.
    pub compile_cache_max_bytes: u64,
    /// Whether `data_dir/providers` is on storage every host shares (NFS,
    /// say): then no provider's data is local to this host, and wadm may
    /// move providers freely.
    pub shared_provider_data: bool,
    /// How long a new provider process has to answer its first health check.
    pub provider_start_timeout: Duration,
    /// How often running providers are asked for their health.
    pub provider_health_interval: Duration,
    /// How long a provider asked to shut down may take before it is killed.
    pub provider_stop_grace: Duration,
    /// How to reach registries for `oci://` references.
    pub registry: trellis_oci::RegistryOptions,
    /// How large a local component image or provider executable may be,
    /// and how long reading it may take.
    pub file_limits: crate::files::FileLimits,
    /// How many labels the host carries and how long they may be.
    pub label_limits: trellis_lattice::ctl::LabelLimits,
    /// How much a control command may carry: annotations, config, links.
    pub input_limits: trellis_lattice::ctl::InputLimits,
    /// How much each component may write to the host's log.
    pub guest_log: crate::guest_log::GuestLogLimits,
    /// The largest payload (call parameters, reply, HTTP body) this host and
    /// its providers send or accept, in bytes; larger ones than a NATS
    /// message holds cross in chunks.
    pub max_body_bytes: u64,
    /// Whether providers serve metrics for [`crate::Host::metrics`] to
    /// merge (set when the host's metrics are served).
    pub metrics: bool,
}

impl HostConfig {
    /// The bounds on the payloads this host sends and accepts.
    pub fn chunk_limits(&self) -> trellis_lattice::chunk::ChunkLimits {
        trellis_lattice::chunk::ChunkLimits {
            max_body: self.max_body_bytes,
            ..Default::default()
        }
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            lattice: trellis_lattice::subject::DEFAULT_LATTICE.to_owned(),
            nats: NatsConnection::new(DEFAULT_NATS_URL),
            provider_nats_auth: None,
            host_seed: None,
            js_replicas: trellis_lattice::client::Replicas::Auto,
            js_domain: None,
            shared_provider_data: false,
            cluster_seed: None,
            cluster_issuers: Vec::new(),
            invocation_window: trellis_claims::invocation::DEFAULT_INVOCATION_WINDOW,
            insecure_unsigned_invocations: false,
            labels: BTreeMap::new(),
            allowed_issuers: Vec::new(),
            allow_any_issuer: false,
            allow_unsigned: false,
            heartbeat_interval: Duration::from_secs(30),
            call_timeout: Duration::from_secs(10),
            max_memory_bytes: 64 * 1024 * 1024,
            drain_timeout: Duration::from_secs(10),
            data_dir: default_data_dir(),
            compile_cache_max_bytes: 1024 * 1024 * 1024,
            provider_start_timeout: Duration::from_secs(10),
            provider_health_interval: Duration::from_secs(30),
            provider_stop_grace: Duration::from_secs(5),
            registry: trellis_oci::RegistryOptions::default(),
            file_limits: crate::files::FileLimits::default(),
            label_limits: trellis_lattice::ctl::LabelLimits::default(),
            input_limits: trellis_lattice::ctl::InputLimits::default(),
            guest_log: crate::guest_log::GuestLogLimits::default(),
            max_body_bytes: trellis_lattice::chunk::DEFAULT_MAX_BODY_BYTES,
            metrics: false,
        }
    }
}

/// `$TRELLIS_HOME/data`, else `~/.trellis/data` (next to the keys `wash`
/// keeps in `~/.trellis/keys`), so a provider's files (the dev SQLite
/// store, say) survive a restart of `wash up`. Without either variable,
/// a `trellis-data` folder in the temporary directory.
pub fn default_data_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("TRELLIS_HOME") {
        return PathBuf::from(home).join("data");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".trellis").join("data"),
        None => std::env::temp_dir().join("trellis-data"),
    }
}

/// The labels every host carries, describing the machine it runs on.
pub fn builtin_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("hostcore.os".to_owned(), std::env::consts::OS.to_owned()),
        (
            "hostcore.arch".to_owned(),
            std::env::consts::ARCH.to_owned(),
        ),
        (
            "hostcore.osfamily".to_owned(),
            std::env::consts::FAMILY.to_owned(),
        ),
    ])
}
