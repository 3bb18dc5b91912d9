//! Finding server binaries, picking ports and waiting for a child process
//! to answer: the parts every private server shares.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use thiserror::Error;

/// Why a private service or an example could not be made ready.
#[derive(Debug, Error)]
pub enum SupportError {
    /// The server binary is not installed.
    #[error(
        "`{binary}` was not found on PATH or in /usr/sbin; install it (Debian: apt-get install {package}) or set {env_var}"
    )]
    MissingBinary {
        /// The executable looked for.
        binary: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
        /// The environment variable that overrides the path.
        env_var: &'static str,
    },
    /// The process could not be started or stopped.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server did not answer in time.
    #[error("{what} did not become ready within {waited:?}; its log:\n{log}")]
    NotReady {
        /// Which server.
        what: String,
        /// How long it was given.
        waited: Duration,
        /// The tail of its log file.
        log: String,
    },
    /// Building an example component failed.
    #[error("building the example components failed: {0}")]
    Build(String),
}

impl SupportError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SupportError {
        let what = what.into();
        move |source| SupportError::Io { what, source }
    }
}

/// A loopback port that was free a moment ago. Servers are started with
/// it straight away; the caller retries on the rare collision.
pub fn free_port() -> Result<u16, SupportError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(SupportError::io("binding port 0"))?;
    let port = listener
        .local_addr()
        .map_err(SupportError::io("reading a bound port"))?
        .port();
    Ok(port)
}

/// The path of a server binary: `$env_var` if set, else PATH, else
/// /usr/sbin (where Debian puts nats-server).
pub(crate) fn find_binary(
    binary: &'static str,
    package: &'static str,
    env_var: &'static str,
) -> Result<PathBuf, SupportError> {
    if let Some(path) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
        .ok_or(SupportError::MissingBinary {
            binary,
            package,
            env_var,
        })
}

/// Polls `probe` until it succeeds, the child exits, or `timeout` passes.
pub(crate) fn wait_until_ready(
    what: &str,
    child: &mut Child,
    log: &Path,
    timeout: Duration,
    mut probe: impl FnMut() -> bool,
) -> Result<(), SupportError> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if probe() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SupportError::NotReady {
                what: format!("{what} (exited with {status})"),
                waited: started.elapsed(),
                log: read_tail(log),
            });
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(SupportError::NotReady {
        what: what.to_owned(),
        waited: timeout,
        log: read_tail(log),
    })
}

fn read_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let start = text.len().saturating_sub(4000);
    text.get(start..).unwrap_or_default().to_owned()
}

/// Sends `request` (if any) and says whether the reply starts with `expect`.
pub(crate) fn answers(port: u16, request: &[u8], expect: &[u8]) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if !request.is_empty() && stream.write_all(request).is_err() {
        return false;
    }
    let mut buf = vec![0u8; expect.len()];
    stream.read_exact(&mut buf).is_ok() && buf == expect
}
