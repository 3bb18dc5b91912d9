//! `wadm` processes for the tests: the real binary, killed on drop, with
//! an API client and its log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;
use trellis_lattice::client::CtlClient;
use wadm::api::WadmClient;
use wadm::store::DeployStatus;

/// How long wadm may take to answer its API after starting.
const WADM_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A `wadm` child process, killed on drop.
pub struct WadmProcess {
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl WadmProcess {
    /// Starts wadm on `lattice` at `nats_url` with extra flags, and waits
    /// until its API answers.
    pub async fn start(nats_url: &str, lattice: &str, args: &[&str]) -> anyhow::Result<Self> {
        let client = api_client(nats_url, lattice).await?;
        WadmProcess::start_with(nats_url, lattice, args, &client).await
    }

    /// [`WadmProcess::start`], asking `client` whether the API answers (a
    /// client with credentials, on a secured lattice).
    pub async fn start_with(
        nats_url: &str,
        lattice: &str,
        args: &[&str],
        client: &WadmClient,
    ) -> anyhow::Result<Self> {
        let binary = trellis_test_support::workspace_binary("wadm", "wadm")?;
        let dir = TempDir::new()?;
        let log = dir.path().join("wadm.log");
        let child = Command::new(binary)
            .args(["--nats-url", nats_url, "--lattice", lattice])
            .args(args)
            .env("TRELLIS_LOG", "info,wadm=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("spawning wadm")?;
        let process = WadmProcess {
            child,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + WADM_START_TIMEOUT;
        while client.list().await.is_err() {
            if Instant::now() > deadline {
                bail!("wadm did not answer its API; its log:\n{}", process.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(process)
    }

    /// What wadm has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process at once, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WadmProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A wadm API client on `lattice` with a generous timeout.
pub async fn api_client(nats_url: &str, lattice: &str) -> anyhow::Result<WadmClient> {
    let nats = async_nats::connect(nats_url).await?;
    Ok(WadmClient::new(nats, lattice, Duration::from_secs(10)))
}

/// wadm flags for tests and benchmarks: a dead host or wadm is noticed
/// within seconds.
pub const FAST_WADM_ARGS: &[&str] = &[
    "--host-timeout-secs",
    "3",
    "--resync-secs",
    "2",
    "--lease-secs",
    "3",
];

/// The app [`spread_manifest`] describes.
pub const SPREAD_APP: &str = "spread";
/// The id its component runs under (`{app}-{component}`).
pub const SPREAD_COMPONENT: &str = "spread-hello";

/// An app of one component, `image`, spread as `instances` over the hosts
/// labelled `tier=web`.
pub fn spread_manifest(image: &str, instances: u32) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {SPREAD_APP}
  annotations:
    version: v1
spec:
  components:
    - name: hello
      type: component
      properties:
        image: {image}
      traits:
        - type: spreadscaler
          properties:
            instances: {instances}
            spread:
              - name: web
                requirements:
                  tier: web
"#
    )
}

/// Instances of `component_id` per host, for the hosts running any.
pub async fn instance_counts(ctl: &CtlClient, component_id: &str) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for inventory in ctl.get_hosts_inventories().await.unwrap_or_default() {
        if let Some(c) = inventory.components.iter().find(|c| c.id == component_id) {
            counts.insert(inventory.host_id.clone(), c.max_instances);
        }
    }
    counts
}

/// Waits until `app` is `deployed` and its component `component_id` runs
/// `expected` instances per host; the error carries the last status,
/// counts and `log()` (wadm's log).
pub async fn wait_deployed(
    wadm: &WadmClient,
    ctl: &CtlClient,
    (app, component_id): (&str, &str),
    expected: &BTreeMap<String, u32>,
    timeout: Duration,
    log: impl Fn() -> String,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = wadm.status(app).await;
        let seen = instance_counts(ctl, component_id).await;
        let deployed = matches!(&status, Ok(s) if s.status.status == DeployStatus::Deployed);
        if deployed && &seen == expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "not deployed as expected {expected:?}: status {status:?}, counts {seen:?}; wadm \
                 log:\n{}",
                log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
