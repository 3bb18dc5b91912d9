//! `wadm` processes for the tests: the real binary, killed on drop, with
//! an API client and its log.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;
use wadm::api::WadmClient;

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
        let client = api_client(nats_url, lattice).await?;
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
