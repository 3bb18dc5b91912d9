//! `deploy/local-cluster.sh` from tests and benchmarks: three network
//! namespaces, each a "machine" with a clustered nats-server and a host
//! (wadm on two), plus an edge machine behind a leaf node. Needs root;
//! [`LocalCluster::up`] says why it cannot run instead of failing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};

use crate::Signer;
use crate::app::example_manifest;

/// A local cluster, taken down on drop.
pub struct LocalCluster {
    name: String,
    subnet: String,
    state: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl LocalCluster {
    /// Brings a cluster up (with the edge machine when `edge`), with
    /// hosts that run what `issuer` signed and a wadm host timeout of
    /// `host_timeout_secs`. `Ok(None)` when this machine cannot make
    /// network namespaces, with the reason printed.
    pub fn up(edge: bool, issuer: &str, host_timeout_secs: u64) -> anyhow::Result<Option<Self>> {
        if let Some(reason) = namespaces_unavailable() {
            eprintln!("skipping: {reason}");
            return Ok(None);
        }
        // Short and unique per process: link names are at most 15 bytes.
        let pid = std::process::id();
        let name = format!("t{:x}", pid % 0xfffff);
        let subnet = format!("10.{}.{}", 100 + (pid / 250) % 100, pid % 250);
        let state = tempfile::Builder::new()
            .prefix("trellis-local-cluster-")
            .tempdir()?;
        let mut cluster = LocalCluster {
            name,
            subnet,
            state,
            env: BTreeMap::new(),
        };
        let mut args = vec!["up"];
        if edge {
            args.push("--edge");
        }
        let output = cluster
            .script(&args)
            .env("TRELLIS_ALLOWED_ISSUERS", issuer)
            .env("TRELLIS_HOST_TIMEOUT_SECS", host_timeout_secs.to_string())
            .output()?;
        if !output.status.success() {
            bail!(
                "local-cluster.sh up failed:\n{}{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                cluster.logs()
            );
        }
        let env = cluster.run(&["env"])?;
        cluster.env = env
            .trim()
            .trim_start_matches("export ")
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(Some(cluster))
    }

    fn script(&self, args: &[&str]) -> Command {
        let script = trellis_test_support::workspace_root().join("deploy/local-cluster.sh");
        let bin = trellis_test_support::workspace_binary("trellis-host", "trellis-host")
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .unwrap_or_default();
        let mut command = Command::new("bash");
        command
            .arg(script)
            .args(args)
            .env("TRELLIS_LOCAL_CLUSTER_NAME", &self.name)
            .env("TRELLIS_LOCAL_CLUSTER_SUBNET", &self.subnet)
            .env("TRELLIS_LOCAL_CLUSTER_DIR", self.state.path().join("state"))
            .env("TRELLIS_HOME", self.state.path().join("home"))
            .env("TRELLIS_BIN", bin)
            .stdin(Stdio::null());
        command
    }

    /// Runs `local-cluster.sh ARGS`; its stdout, or an error with its output.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.script(args).output()?;
        if !output.status.success() {
            bail!(
                "local-cluster.sh {args:?} failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Machine `m`'s address (`"edge"` for the edge).
    pub fn addr(&self, machine: &str) -> String {
        match machine {
            "edge" => format!("{}.10", self.subnet),
            m => format!("{}.{m}", self.subnet),
        }
    }

    /// Redis on machine 3.
    pub fn redis_url(&self) -> String {
        format!("redis://{}:6379/", self.addr("3"))
    }

    /// `wash ARGS` as the operator, connected to `urls` (comma-separated
    /// `tls://` URLs; the script's default starts with machine 3).
    pub fn wash_via(&self, urls: &str, args: &[&str]) -> anyhow::Result<Output> {
        let binary = trellis_test_support::workspace_binary("wash", "wash")?;
        Command::new(binary)
            .args(args)
            .envs(&self.env)
            .env("TRELLIS_NATS_URL", urls)
            .env("TRELLIS_HOME", self.state.path().join("home"))
            .env("TRELLIS_TIMEOUT_MS", "20000")
            .stdin(Stdio::null())
            .output()
            .context("running wash")
    }

    /// `wash ARGS` through every server, machine 1's first; fails on a
    /// non-zero exit.
    pub fn wash(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.wash_via(&self.urls(&["1", "2", "3"]), args)?;
        if !output.status.success() {
            bail!(
                "wash {args:?} failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The client URLs of `machines`, in that order.
    pub fn urls(&self, machines: &[&str]) -> String {
        machines
            .iter()
            .map(|m| format!("tls://{}:4222", self.addr(m)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A NATS connection as the operator, through every server, machine
    /// 1's first.
    pub async fn operator(&self) -> anyhow::Result<async_nats::Client> {
        let connection = trellis_lattice::connect::NatsConnection {
            auth: trellis_lattice::connect::NatsAuth::User {
                user: "operator".into(),
                password: self
                    .env
                    .get("TRELLIS_NATS_PASSWORD")
                    .cloned()
                    .unwrap_or_default(),
            },
            tls_ca: self.env.get("TRELLIS_NATS_TLS_CA").map(PathBuf::from),
            ..trellis_lattice::connect::NatsConnection::new(self.urls(&["1", "2", "3"]))
        };
        Ok(connection
            .connect(|options| options, std::time::Duration::from_secs(20))
            .await?)
    }

    /// prod.yaml with the http-server on machine 1 (so the test knows where
    /// to send requests), everything else on the hub's machines, and its
    /// Redis on machine 3.
    pub fn prod_manifest(&self, signer: &Signer, dir: &std::path::Path) -> anyhow::Result<PathBuf> {
        let path = example_manifest(signer, dir, "prod", "0.0.0.0:8080", &self.redis_url());
        let text = std::fs::read_to_string(&path)?;
        let hub = "\n            spread:\n              - name: hub\n                requirements:\n                  site: hub";
        let text = text
            .replace(
                "            instances: 64",
                &format!("            instances: 64{hub}"),
            )
            .replace(
                "        id: keyvalue-redis\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: 1",
                &format!("        id: keyvalue-redis\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: 1{hub}"),
            )
            .replace(
                "        id: http-server\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: 1",
                "        id: http-server\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: 1\n            spread:\n              - name: first\n                requirements:\n                  machine: m1",
            );
        if text.matches("spread:").count() != 3 {
            bail!("prod.yaml changed shape; the placement edits did not apply:\n{text}");
        }
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Every process's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        let state = self.state.path().join("state");
        for machine in ["m1", "m2", "m3", "medge"] {
            for what in ["host", "wadm", "nats"] {
                let path = state.join(machine).join(format!("{what}.log"));
                if let Ok(log) = std::fs::read_to_string(&path) {
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    text.push_str(&format!("--- {machine} {what}\n"));
                    for line in tail.into_iter().rev() {
                        text.push_str(line);
                        text.push('\n');
                    }
                }
            }
        }
        text
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.script(&["down"]).output();
    }
}

/// Why network namespaces cannot be made here, if they cannot.
fn namespaces_unavailable() -> Option<String> {
    let probe = format!("trellis-probe-{}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &probe])
        .stderr(Stdio::piped())
        .output();
    match made {
        Ok(output) if output.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).output();
            None
        }
        Ok(output) => Some(format!(
            "network namespaces cannot be made here (ip netns add: {})",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(err) => Some(format!(
            "network namespaces cannot be made here (no ip command: {err})"
        )),
    }
}
