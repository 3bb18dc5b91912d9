//! A private NATS cluster on loopback: several `nats-server` processes
//! joined by routes, each with JetStream, and optionally a leaf-node port
//! on each for edge servers to join.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{SupportError, answers, free_port, wait_until_ready};
use crate::services::{START_ATTEMPTS, nats_server_binary};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// One server of a [`NatsCluster`].
struct Member {
    child: Option<Child>,
    client_port: u16,
    config: PathBuf,
    log: PathBuf,
}

/// Servers joined in one cluster (`trellis-test`), killed on drop.
pub struct NatsCluster {
    members: Vec<Member>,
    leaf_ports: Vec<u16>,
    dir: TempDir,
}

impl NatsCluster {
    /// Starts `size` clustered servers with JetStream and waits until
    /// JetStream has a meta leader (so replicated streams can be made).
    pub fn start(size: usize) -> Result<Self, SupportError> {
        NatsCluster::start_with(size, false)
    }

    /// Like [`NatsCluster::start`], with a leaf-node listener on each
    /// server ([`NatsCluster::leaf_urls`]).
    pub fn start_with_leafnodes(size: usize) -> Result<Self, SupportError> {
        NatsCluster::start_with(size, true)
    }

    /// Starts the cluster on fresh ports, again (up to [`START_ATTEMPTS`]
    /// times) when a member exits because another process took one of its
    /// ports between choosing and binding it.
    fn start_with(size: usize, leafnodes: bool) -> Result<Self, SupportError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match NatsCluster::try_start(size, leafnodes) {
                Err(SupportError::NotReady { log, .. })
                    if attempt < START_ATTEMPTS && log.contains("address already in use") => {}
                outcome => return outcome,
            }
        }
    }

    fn try_start(size: usize, leafnodes: bool) -> Result<Self, SupportError> {
        let dir = tempfile::Builder::new()
            .prefix("trellis-nats-cluster-")
            .tempdir()
            .map_err(SupportError::io("creating a temp dir for the NATS cluster"))?;
        let ports = |n| (0..n).map(|_| free_port()).collect::<Result<Vec<_>, _>>();
        let client_ports = ports(size)?;
        let route_ports = ports(size)?;
        let leaf_ports = if leafnodes { ports(size)? } else { Vec::new() };
        let routes = route_ports
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut members = Vec::with_capacity(size);
        for (index, (client, route)) in client_ports.iter().zip(&route_ports).enumerate() {
            let name = format!("n{}", index + 1);
            let store = dir.path().join(&name).join("jetstream");
            let mut text = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{client}\"\n\
                 jetstream {{ store_dir: {store:?} }}\n\
                 cluster {{ name: trellis-test, listen: \"127.0.0.1:{route}\", routes: [{routes}] }}\n",
            );
            if let Some(leaf) = leaf_ports.get(index) {
                let _ = writeln!(text, "leafnodes {{ listen: \"127.0.0.1:{leaf}\" }}");
            }
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(&config, text)
                .map_err(SupportError::io("writing a cluster member's config"))?;
            members.push(Member {
                child: None,
                client_port: *client,
                config,
                log: dir.path().join(format!("{name}.log")),
            });
        }
        let mut cluster = NatsCluster {
            members,
            leaf_ports,
            dir,
        };
        for index in 0..size {
            cluster.spawn(index)?;
        }
        for index in 0..size {
            cluster.wait_ready(index)?;
        }
        cluster.wait_for_jetstream()?;
        Ok(cluster)
    }

    fn spawn(&mut self, index: usize) -> Result<(), SupportError> {
        let member = &mut self.members[index];
        let child = Command::new(nats_server_binary()?)
            .arg("-c")
            .arg(&member.config)
            .arg("-l")
            .arg(&member.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(SupportError::io("spawning a clustered nats-server"))?;
        member.child = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self, index: usize) -> Result<(), SupportError> {
        let member = &mut self.members[index];
        let port = member.client_port;
        let Some(child) = member.child.as_mut() else {
            return Ok(());
        };
        wait_until_ready("nats-server", child, &member.log, READY_TIMEOUT, || {
            answers(port, b"", b"INFO ")
        })
    }

    /// Waits until every running member's log shows a JetStream meta
    /// leader: before that, creating a stream fails with "JetStream
    /// cluster not ready".
    fn wait_for_jetstream(&self) -> Result<(), SupportError> {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            let elected = self.members.iter().any(|m| {
                std::fs::read_to_string(&m.log).is_ok_and(|log| {
                    log.contains("JetStream cluster new metadata leader")
                        || log.contains("Self is new JetStream cluster metadata leader")
                })
            });
            if elected {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(SupportError::NotReady {
            what: "the NATS cluster's JetStream".to_owned(),
            waited: READY_TIMEOUT,
            log: self.log(0),
        })
    }

    /// Every member's URL, comma separated, as clients take them.
    pub fn urls(&self) -> String {
        (0..self.members.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Member `index`'s client URL.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.members[index].client_port)
    }

    /// Member `index`'s leaf-node URL, when started with leaf nodes.
    pub fn leaf_url(&self, index: usize) -> Option<String> {
        self.leaf_ports
            .get(index)
            .map(|p| format!("nats-leaf://127.0.0.1:{p}"))
    }

    /// Member `index`'s log so far.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(&self.members[index].log).unwrap_or_default()
    }

    /// The directory holding the stores, configs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills member `index`, as a crash would.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `index` again with its store, and waits until it answers.
    pub fn restart(&mut self, index: usize) -> Result<(), SupportError> {
        self.kill(index);
        self.spawn(index)?;
        self.wait_ready(index)
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.kill(index);
        }
    }
}
