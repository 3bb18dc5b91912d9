//! A private OCI registry (Debian's `docker-registry`, the CNCF
//! distribution registry), one per test.
//!
//! The registry keeps its blobs as plain files in its temporary directory,
//! so a test can corrupt or delete one and see how a client copes, and it
//! logs every request, so a test can count what a client fetched.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{SupportError, answers, free_port, wait_until_ready};

const BINARY: &str = "docker-registry";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 3;
const READY_REQUEST: &[u8] = b"GET /v2/ HTTP/1.0\r\n\r\n";
// Go answers in the protocol version of the request.
const READY_REPLY: &[u8] = b"HTTP/1.0 200 ";
// With a login required, an anonymous `/v2/` is refused once it is up.
const READY_REPLY_LOGIN: &[u8] = b"HTTP/1.0 401 ";

/// The user [`RegistryServer::start_with_login`] accepts.
pub const REGISTRY_USER: &str = "trellis";
/// Its password.
pub const REGISTRY_PASSWORD: &str = "trellis-registry-test";
/// bcrypt of [`REGISTRY_PASSWORD`] (the only hash format the registry's
/// htpasswd reads), made once with Python's `bcrypt` so no test needs a
/// bcrypt implementation.
const REGISTRY_PASSWORD_BCRYPT: &str =
    "$2b$05$ccTmroHUkjUGlWlin/1Kwefd01u/2UVMGLomdfVT8A0Q4paWPpFnW";

/// A private `docker-registry` on a free loopback port, without auth,
/// storing into its own temporary directory, killed on drop.
pub struct RegistryServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl RegistryServer {
    /// Starts a registry on a free loopback port and waits until `GET /v2/`
    /// answers 200.
    pub fn start() -> Result<Self, SupportError> {
        RegistryServer::start_inner(false)
    }

    /// Starts a registry that requires HTTP basic auth as [`REGISTRY_USER`]
    /// with [`REGISTRY_PASSWORD`] for every request.
    pub fn start_with_login() -> Result<Self, SupportError> {
        RegistryServer::start_inner(true)
    }

    fn start_inner(login: bool) -> Result<Self, SupportError> {
        let binary = find_registry()?;
        let dir = tempfile::Builder::new()
            .prefix("trellis-registry-")
            .tempdir()
            .map_err(SupportError::io("creating a temp dir for docker-registry"))?;
        let log = registry_log(dir.path());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            let mut child = spawn_registry(&binary, dir.path(), port, login)?;
            let reply = if login {
                READY_REPLY_LOGIN
            } else {
                READY_REPLY
            };
            let outcome = wait_until_ready(BINARY, &mut child, &log, READY_TIMEOUT, || {
                answers(port, READY_REQUEST, reply)
            });
            match outcome {
                Ok(()) => {
                    return Ok(RegistryServer {
                        child: Some(child),
                        port,
                        dir,
                    });
                }
                Err(err) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    // The port may have been taken between choosing and
                    // binding it; the registry then exits at once.
                    if attempt == START_ATTEMPTS {
                        return Err(err);
                    }
                }
            }
        }
    }

    /// `127.0.0.1:{port}`, the form image references use.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The filesystem storage root; blobs live under
    /// `docker/registry/v2/blobs/sha256/<2 hex>/<64 hex>/data`.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the registry keeps the content of the blob `digest`
    /// (`sha256:<hex>`; a bare hex digest is taken as sha256).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        let prefix = hex.get(..2).unwrap_or(hex);
        self.storage_dir()
            .join("docker/registry/v2/blobs")
            .join(algorithm)
            .join(prefix)
            .join(hex)
            .join("data")
    }

    /// Everything the registry has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(registry_log(self.dir.path())).unwrap_or_default()
    }

    /// How many `GET /v2/{repository}/blobs/...` requests the registry has
    /// served (HEAD requests and other repositories not counted).
    pub fn blob_gets(&self, repository: &str) -> usize {
        self.count_requests("GET", repository, "blobs")
    }

    /// How many `GET /v2/{repository}/manifests/...` requests the registry
    /// has served (HEAD requests and other repositories not counted).
    pub fn manifest_gets(&self, repository: &str) -> usize {
        self.count_requests("GET", repository, "manifests")
    }

    /// Kills the registry; its log and storage stay readable until drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Counts access-log lines (`... "GET /v2/x/blobs/sha256:... HTTP/1.1"
    /// 200 ...`), which appear once per request; the registry's other
    /// per-request line ("response completed") is deliberately not matched.
    fn count_requests(&self, method: &str, repository: &str, kind: &str) -> usize {
        let needle = format!("\"{method} /v2/{repository}/{kind}/");
        self.settled_log()
            .lines()
            .filter(|line| line.contains(&needle))
            .count()
    }

    /// The log once it has stopped growing: the access-log line is written
    /// after the handler returns, which can be just after a streamed blob
    /// has reached the client, so a count taken at once could miss it.
    fn settled_log(&self) -> String {
        let mut text = self.log();
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(25));
            let again = self.log();
            if again.len() == text.len() {
                break;
            }
            text = again;
        }
        text
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn registry_log(dir: &Path) -> PathBuf {
    dir.join("docker-registry.log")
}

/// PATH, then /usr/bin where Debian installs it (for callers that run
/// tests with a pared-down PATH).
fn find_registry() -> Result<PathBuf, SupportError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(BINARY))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| SupportError::Io {
            what: format!(
                "`{BINARY}` was not found on PATH or in /usr/bin; install it with \
                 `apt-get install docker-registry` (scripts/test.sh does this)"
            ),
            source: io::Error::from(io::ErrorKind::NotFound),
        })
}

/// The configuration is written by hand rather than taken from /etc so the
/// system registry's auth, port and in-memory blob cache stay out of it;
/// without that cache a blob corrupted on disk is read as it now is.
fn spawn_registry(
    binary: &Path,
    dir: &Path,
    port: u16,
    login: bool,
) -> Result<Child, SupportError> {
    let config = dir.join("config.yml");
    let storage = dir.join("storage");
    let mut text = format!(
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n\
         storage:\n  filesystem:\n    rootdirectory: \"{}\"\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        storage.display()
    );
    if login {
        let htpasswd = dir.join("htpasswd");
        std::fs::write(
            &htpasswd,
            format!("{REGISTRY_USER}:{REGISTRY_PASSWORD_BCRYPT}\n"),
        )
        .map_err(SupportError::io(format!("writing {}", htpasswd.display())))?;
        text.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: trellis-test\n    path: \"{}\"\n",
            htpasswd.display()
        ));
    }
    std::fs::write(&config, text)
        .map_err(SupportError::io(format!("writing {}", config.display())))?;
    let log = registry_log(dir);
    let stdout = std::fs::File::create(&log)
        .map_err(SupportError::io(format!("creating {}", log.display())))?;
    let stderr = stdout
        .try_clone()
        .map_err(SupportError::io(format!("sharing {}", log.display())))?;
    Command::new(binary)
        .arg("serve")
        .arg(&config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(SupportError::io("spawning docker-registry"))
}
