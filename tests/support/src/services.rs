//! Private `nats-server` and `redis-server` processes, one per test.
//!
//! Each server lives in its own temporary directory (JetStream store, Redis
//! working dir, logs) on a free loopback port, and is killed when its handle
//! drops, so a failing test leaves nothing running behind it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{SupportError, answers, find_binary, free_port, wait_until_ready};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a private server is started on fresh ports before giving up.
pub(crate) const START_ATTEMPTS: usize = 3;

/// A private `nats-server` with JetStream, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    launch: Launch,
}

/// How the server is configured.
#[derive(Clone)]
enum Launch {
    /// Flags only: no authentication, no TLS; the server's default max
    /// payload unless one is given.
    Open { max_payload: Option<usize> },
    /// A configuration file, with `TRELLIS_NATS_LISTEN` and
    /// `TRELLIS_NATS_STORE` set for it, and more variables besides.
    Config {
        file: PathBuf,
        env: Vec<(String, String)>,
    },
}

impl NatsServer {
    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Result<Self, SupportError> {
        NatsServer::launch(Launch::Open { max_payload: None })
    }

    /// Like [`NatsServer::start`], with a max payload of `bytes` (the default
    /// is 1 MiB), so that tests cross it with small payloads.
    pub fn start_with_max_payload(bytes: usize) -> Result<Self, SupportError> {
        NatsServer::launch(Launch::Open {
            max_payload: Some(bytes),
        })
    }

    /// Starts a server from a configuration file such as
    /// `deploy/nats/lattice.conf`, which reads its listen address and
    /// JetStream directory from `$TRELLIS_NATS_LISTEN` and
    /// `$TRELLIS_NATS_STORE`, and whatever else it needs from `env`.
    pub fn start_with_config(file: &Path, env: &[(&str, &str)]) -> Result<Self, SupportError> {
        NatsServer::launch(Launch::Config {
            file: file.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }

    fn launch(launch: Launch) -> Result<Self, SupportError> {
        let dir = tempfile::Builder::new()
            .prefix("trellis-nats-")
            .tempdir()
            .map_err(SupportError::io("creating a temp dir for nats-server"))?;
        let log = nats_log(dir.path());
        retry_on_port_clash(&Readiness::nats(&log), |port| {
            spawn_nats(dir.path(), port, &launch)
        })
        .map(|(child, port)| NatsServer {
            child: Some(child),
            port,
            dir,
            launch,
        })
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(nats_log(self.dir.path())).unwrap_or_default()
    }

    /// `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the JetStream store and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server, as a crash would; `restart` brings it back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same JetStream
    /// store, so clients reconnect and stored state survives.
    pub fn restart(&mut self) -> Result<(), SupportError> {
        self.kill();
        let mut child = spawn_nats(self.dir.path(), self.port, &self.launch)?;
        let log = nats_log(self.dir.path());
        let port = self.port;
        let ready = Readiness::nats(&log);
        let outcome = wait_until_ready(ready.what, &mut child, &log, READY_TIMEOUT, || {
            ready.probe(port)
        });
        self.child = Some(child);
        outcome
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn nats_log(dir: &Path) -> PathBuf {
    dir.join("nats-server.log")
}

/// The `nats-server` to run: the newest found (see
/// `trellis_lattice::nats_server`), or `$TRELLIS_NATS_SERVER`.
pub fn nats_server_binary() -> Result<PathBuf, SupportError> {
    trellis_lattice::nats_server::find()
        .map(|found| found.path)
        .ok_or(SupportError::MissingBinary {
            binary: "nats-server",
            package: "nats-server",
            env_var: trellis_lattice::nats_server::OVERRIDE_VAR,
        })
}

fn spawn_nats(dir: &Path, port: u16, launch: &Launch) -> Result<Child, SupportError> {
    let binary = nats_server_binary()?;
    let store = dir.join("jetstream");
    let log = nats_log(dir);
    let mut command = Command::new(binary);
    match launch {
        Launch::Open { max_payload } => {
            command
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(&store);
            // The max payload has no flag; a one-line config file sets it.
            if let Some(bytes) = max_payload {
                let file = dir.join("max-payload.conf");
                std::fs::write(&file, format!("max_payload: {bytes}\n"))
                    .map_err(SupportError::io("writing the nats-server config"))?;
                command.arg("-c").arg(file);
            }
        }
        Launch::Config { file, env } => {
            command
                .arg("-c")
                .arg(file)
                .env("TRELLIS_NATS_LISTEN", format!("127.0.0.1:{port}"))
                .env("TRELLIS_NATS_STORE", &store)
                .envs(env.iter().map(|(k, v)| (k, v)));
        }
    }
    command
        .arg("-l")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(&log)?)
        .spawn()
        .map_err(SupportError::io("spawning nats-server"))
}

/// A private `redis-server` that keeps nothing on disk, killed on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Result<Self, SupportError> {
        let dir = tempfile::Builder::new()
            .prefix("trellis-redis-")
            .tempdir()
            .map_err(SupportError::io("creating a temp dir for redis-server"))?;
        let binary = find_binary("redis-server", "redis-server", "TRELLIS_REDIS_SERVER")?;
        let log = dir.path().join("redis-server.log");
        let ready = redis_readiness(&log);
        let (child, port) =
            retry_on_port_clash(&ready, |port| spawn_redis(&binary, port, dir.path(), &log))?;
        Ok(RedisServer { child, port, dir })
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server and starts a fresh one on the same port, as a
    /// crash and a supervisor's restart would (nothing is kept: the test
    /// server saves no data).
    pub fn restart(&mut self) -> Result<(), SupportError> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let binary = find_binary("redis-server", "redis-server", "TRELLIS_REDIS_SERVER")?;
        let log = self.dir.path().join("redis-server.log");
        let mut child = spawn_redis(&binary, self.port, self.dir.path(), &log)?;
        let ready = redis_readiness(&log);
        let port = self.port;
        let outcome = wait_until_ready(ready.what, &mut child, &log, READY_TIMEOUT, || {
            ready.probe(port)
        });
        self.child = child;
        outcome
    }
}

fn redis_readiness(log: &Path) -> Readiness<'_> {
    Readiness {
        what: "redis-server",
        log,
        request: b"PING\r\n",
        reply: b"+PONG",
    }
}

fn spawn_redis(binary: &Path, port: u16, dir: &Path, log: &Path) -> Result<Child, SupportError> {
    Command::new(binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log_file(log)?)
        .stderr(Stdio::null())
        .spawn()
        .map_err(SupportError::io("spawning redis-server"))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_file(path: &Path) -> Result<File, SupportError> {
    File::create(path).map_err(SupportError::io(format!("creating {}", path.display())))
}

/// How to tell that a freshly started server is ready.
struct Readiness<'a> {
    what: &'static str,
    log: &'a Path,
    request: &'static [u8],
    reply: &'static [u8],
}

impl<'a> Readiness<'a> {
    /// NATS greets every new connection with an `INFO` line.
    fn nats(log: &'a Path) -> Self {
        Readiness {
            what: "nats-server",
            log,
            request: b"",
            reply: b"INFO ",
        }
    }

    fn probe(&self, port: u16) -> bool {
        answers(port, self.request, self.reply)
    }
}

/// Starts a server on a fresh port, trying again when the port was taken
/// between choosing it and binding it (the server then exits at once).
fn retry_on_port_clash(
    ready: &Readiness<'_>,
    mut spawn: impl FnMut(u16) -> Result<Child, SupportError>,
) -> Result<(Child, u16), SupportError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port()?;
        let mut child = spawn(port)?;
        let outcome = wait_until_ready(ready.what, &mut child, ready.log, READY_TIMEOUT, || {
            ready.probe(port)
        });
        match outcome {
            Ok(()) => return Ok((child, port)),
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                if attempt == START_ATTEMPTS {
                    return Err(err);
                }
            }
        }
    }
}
