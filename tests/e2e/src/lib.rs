//! Helpers for Trellis's end-to-end tests: start real `trellis-host`
//! processes, run the real `wash`, and sign real example components and
//! providers, all against a private `nats-server` from
//! `trellis-test-support`. The package's `test-provider` binary is a
//! provider that speaks the protocol by hand ([`test_provider`]); [`wadm`]
//! runs the `wadm` binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use trellis_claims::{KeyKind, KeyPair, ProviderSignOptions, SignOptions};

pub mod app;
pub mod browser;
pub mod cluster;
pub mod load;
pub mod observe;
pub mod wadm;

/// How long a host may take to join the lattice.
const HOST_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The cluster key every host a test starts signs calls with, as the hosts
/// of one lattice share theirs; a test that wants a host outside the
/// cluster passes `--cluster-seed` itself.
pub fn cluster_key() -> &'static KeyPair {
    static KEY: std::sync::OnceLock<KeyPair> = std::sync::OnceLock::new();
    KEY.get_or_init(|| KeyKind::Cluster.generate())
}

/// A `trellis-host` child process, killed on drop.
pub struct HostProcess {
    child: Child,
    id: String,
    log: PathBuf,
    launch: HostLaunch,
    _dir: TempDir,
}

/// What a [`HostProcess`] was started with, to start it again.
struct HostLaunch {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl HostProcess {
    /// Starts a host on `lattice` at `nats_url` with extra flags, and waits
    /// until it prints its id (it does once it answers the control
    /// interface). Its data directory is private to it. A host whose flags
    /// name no `--allowed-issuers` gets `--allow-any-issuer`: each test
    /// signs with an account of its own, and the tests of the issuer rule
    /// pass it themselves.
    pub fn start(nats_url: &str, lattice: &str, args: &[&str]) -> anyhow::Result<Self> {
        HostProcess::start_with_env(nats_url, lattice, args, &[])
    }

    /// [`HostProcess::start`] with extra environment variables, such as
    /// registry credentials.
    pub fn start_with_env(
        nats_url: &str,
        lattice: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let dir = TempDir::new()?;
        let trust: &[&str] = if args.contains(&"--allowed-issuers") {
            &[]
        } else {
            &["--allow-any-issuer"]
        };
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut all_args = owned(&["--nats-url", nats_url, "--lattice", lattice]);
        all_args.extend(owned(trust));
        all_args.extend(owned(args));
        let launch = HostLaunch {
            args: all_args,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let log = dir.path().join("host.log");
        let (child, id) = spawn_host(&launch, dir.path(), &log)?;
        Ok(HostProcess {
            child,
            id,
            log,
            launch,
            _dir: dir,
        })
    }

    /// Kills the process with SIGKILL, as a crash would, and starts it
    /// again at once with the same flags and data directory; returns how
    /// long the new process took to answer the control interface. Its log
    /// starts afresh.
    pub fn crash_and_restart(&mut self) -> anyhow::Result<Duration> {
        self.kill();
        let started = std::time::Instant::now();
        let (child, id) = spawn_host(&self.launch, self._dir.path(), &self.log)?;
        self.child = child;
        self.id = id;
        Ok(started.elapsed())
    }

    /// The host's data directory (`TRELLIS_DATA_DIR`): staged provider
    /// executables, the registry cache, provider data.
    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    /// The host's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The host's process id (its providers are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the host has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process at once, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends the process SIGTERM, as a service manager stopping it would.
    pub fn terminate(&self) -> anyhow::Result<()> {
        signal(self.child.id(), "TERM")
    }

    /// Waits for the process to exit on its own, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// Spawns `trellis-host` with `launch` in `dir` and waits for its id.
fn spawn_host(launch: &HostLaunch, dir: &Path, log: &Path) -> anyhow::Result<(Child, String)> {
    let binary = trellis_test_support::workspace_binary("trellis-host", "trellis-host")?;
    let mut child = Command::new(binary)
        .args(&launch.args)
        .env("TRELLIS_LOG", "info,trellis_host=debug")
        .env("TRELLIS_DATA_DIR", dir.join("data"))
        .env("TRELLIS_CLUSTER_SEED", cluster_key().seed()?)
        .env_remove("TRELLIS_ALLOWED_ISSUERS")
        .env_remove("TRELLIS_ALLOW_UNSIGNED")
        .env_remove("TRELLIS_ALLOW_ANY_ISSUER")
        .env_remove("TRELLIS_CLUSTER_ISSUERS")
        .env_remove("TRELLIS_INSECURE_UNSIGNED_INVOCATIONS")
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("spawning trellis-host")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(HOST_START_TIMEOUT) {
        Ok(line) if line.trim().starts_with('N') => Ok((child, line.trim().to_owned())),
        other => {
            let _ = child.kill();
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            bail!("trellis-host did not start ({other:?}); its log:\n{log_text}");
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills process `pid` with SIGKILL, as a crash would, and fails if the
/// signal could not be sent.
pub fn kill_9(pid: u32) -> anyhow::Result<()> {
    signal(pid, "KILL")
}

/// Sends `signal` (`TERM`, `KILL`, …) to process `pid`.
pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed ({status})");
    }
    Ok(())
}

/// Runs the real `wash` against `nats_url`/`lattice`.
pub fn wash(nats_url: &str, lattice: &str, args: &[&str]) -> anyhow::Result<Output> {
    let binary = trellis_test_support::workspace_binary("wash", "wash")?;
    Command::new(binary)
        .args(args)
        .env("TRELLIS_NATS_URL", nats_url)
        .env("TRELLIS_LATTICE", lattice)
        .env("TRELLIS_TIMEOUT_MS", "20000")
        .stdin(Stdio::null())
        .output()
        .context("running wash")
}

/// `wash` with its own `$TRELLIS_HOME`, as a user of this machine runs it:
/// whether it succeeded, and its stdout and stderr.
pub fn wash_at(home: &std::path::Path, args: &[&str]) -> (bool, String) {
    let Ok(binary) = trellis_test_support::workspace_binary("wash", "wash") else {
        return (false, "wash could not be built".into());
    };
    let output = std::process::Command::new(binary)
        .args(args)
        .env("TRELLIS_HOME", home)
        .env_remove("TRELLIS_NATS_URL")
        .env_remove("TRELLIS_NATS_USER")
        .env_remove("TRELLIS_NATS_PASSWORD")
        .env("TRELLIS_TIMEOUT_MS", "10000")
        .stdin(std::process::Stdio::null())
        .output();
    let Ok(output) = output else {
        return (false, "wash could not be run".into());
    };
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// stdout of a successful `wash` run, or an error with its stderr.
pub fn wash_ok(nats_url: &str, lattice: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = wash(nats_url, lattice, args)?;
    if !output.status.success() {
        bail!(
            "wash {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A signing account and a folder of artifacts it signed.
pub struct Signer {
    /// The account key.
    pub account: KeyPair,
    dir: TempDir,
}

impl Signer {
    /// A fresh account.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Signer {
            account: KeyKind::Account.generate(),
            dir: TempDir::new()?,
        })
    }

    /// The account's public key.
    pub fn issuer(&self) -> String {
        self.account.public_key()
    }

    /// Signs `wasm` as a new component named `name`, writes it to this
    /// signer's folder and returns the path.
    pub fn sign_bytes(
        &self,
        name: &str,
        wasm: &[u8],
        options: SignOptions,
    ) -> anyhow::Result<PathBuf> {
        let subject = KeyKind::Component.generate().public_key();
        let options = SignOptions {
            name: Some(name.to_owned()),
            ..options
        };
        let signed = trellis_claims::sign_component(wasm, &self.account, &subject, &options)?;
        let path = self.dir.path().join(format!("{name}_s.wasm"));
        std::fs::write(&path, signed)?;
        Ok(path)
    }

    /// Builds the example component `package` from source and signs it.
    pub fn sign_example(&self, package: &str) -> anyhow::Result<PathBuf> {
        let built = trellis_test_support::example_component(package)?;
        let wasm = std::fs::read(&built)?;
        self.sign_bytes(package, &wasm, SignOptions::default())
    }

    /// Copies the provider `executable` into this signer's folder, signs it
    /// for this machine's target with its claims beside it (`X.jwt`), and
    /// returns the copy's path. Copies keep tests that sign the same
    /// binary with different accounts apart.
    pub fn sign_provider(&self, executable: &Path) -> anyhow::Result<PathBuf> {
        self.sign_provider_with(executable, ProviderSignOptions::default())
    }

    /// [`Signer::sign_provider`] with explicit options (expiry, name, …).
    pub fn sign_provider_with(
        &self,
        executable: &Path,
        options: ProviderSignOptions,
    ) -> anyhow::Result<PathBuf> {
        let copy = self.copy_executable(executable)?;
        let bytes = std::fs::read(&copy)?;
        let subject = KeyKind::Provider.generate().public_key();
        let target = trellis_claims::native_target();
        let token = trellis_claims::sign_provider(
            [(target.as_str(), bytes.as_slice())],
            &self.account,
            &subject,
            &options,
        )?;
        std::fs::write(trellis_claims::provider_claims_path(&copy), token.jwt)?;
        Ok(copy)
    }

    /// Copies an executable into this signer's folder, unsigned.
    pub fn copy_executable(&self, executable: &Path) -> anyhow::Result<PathBuf> {
        let name = executable
            .file_name()
            .with_context(|| format!("{} has no file name", executable.display()))?;
        let copy = self.dir.path().join(name);
        std::fs::copy(executable, &copy)
            .with_context(|| format!("copying {}", executable.display()))?;
        Ok(copy)
    }

    /// Copies an artifact into this signer's folder under a new name.
    pub fn place(&self, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes)?;
        Ok(path)
    }
}

/// The `test-provider` binary of this package, built if needed.
pub fn test_provider() -> anyhow::Result<PathBuf> {
    Ok(trellis_test_support::workspace_binary(
        "trellis-e2e",
        "test-provider",
    )?)
}

/// A `file://` URL for `path`.
pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// A lattice name no other test uses.
pub fn unique_lattice(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid_like()[..8])
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:016x}{:08x}", nanos, std::process::id())
        .chars()
        .rev()
        .collect()
}
