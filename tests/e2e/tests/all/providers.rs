//! The host's provider supervisor, driven through the control interface
//! against the `test-provider` binary (which speaks the provider protocol
//! by hand): start with claims checked, health, links, crash and restart,
//! stop, and providers going away with their host.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::Stream;
use tempfile::TempDir;
use trellis_claims::ProviderSignOptions;
use trellis_e2e::{HostProcess, Signer, file_url, kill_9, test_provider, unique_lattice, wash_ok};
use trellis_lattice::client::{ClientError, CtlClient};
use trellis_lattice::ctl::{StartProviderCommand, StopProviderCommand};
use trellis_lattice::event::{CloudEvent, EventKind};
use trellis_lattice::provider::HealthCheckResponse;
use trellis_lattice::subject::ProviderOperation;
use trellis_lattice::{Link, Subjects};
use trellis_test_support::NatsServer;

use crate::common::{client, wait_for_event};

const PROVIDER: &str = "test-provider";
const EVENT_WAIT: Duration = Duration::from_secs(30);

/// A private NATS, one host, a control client and a signer.
struct Fixture {
    nats: NatsServer,
    lattice: String,
    host: HostProcess,
    ctl: CtlClient,
    signer: Signer,
    scratch: TempDir,
}

impl Fixture {
    async fn start(prefix: &str, host_args: &[&str]) -> Fixture {
        let nats = NatsServer::start().unwrap();
        let lattice = unique_lattice(prefix);
        let host = HostProcess::start(&nats.url(), &lattice, host_args).unwrap();
        let ctl = client(&nats.url(), &lattice).await;
        Fixture {
            nats,
            lattice,
            host,
            ctl,
            signer: Signer::new().unwrap(),
            scratch: TempDir::new().unwrap(),
        }
    }

    /// The test provider, signed by this fixture's signer.
    fn signed_provider(&self) -> PathBuf {
        let options = ProviderSignOptions {
            name: Some("test provider".into()),
            rev: Some(3),
            ..Default::default()
        };
        self.signer
            .sign_provider_with(&test_provider().unwrap(), options)
            .unwrap()
    }

    /// Puts named config `name` telling the provider where to write its pid
    /// (plus `extra`), and returns the pid file's path.
    async fn pid_config(&self, name: &str, extra: &[(&str, &str)]) -> PathBuf {
        let pid_file = self.scratch.path().join(format!("{name}.pid"));
        let mut values = vec![("pid_file".to_owned(), pid_file.display().to_string())];
        values.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.ctl
            .put_config(name, &values.into_iter().collect())
            .await
            .unwrap();
        pid_file
    }

    fn command(&self, executable: &Path, configs: &[&str]) -> StartProviderCommand {
        StartProviderCommand {
            provider_id: PROVIDER.into(),
            provider_ref: file_url(executable),
            host_id: self.host.id().into(),
            config: configs.iter().map(|c| (*c).to_owned()).collect(),
            annotations: Some([("app".to_owned(), "demo".to_owned())].into()),
        }
    }

    /// Starts the signed test provider with a pid file; returns its pid.
    async fn start_provider(&self) -> (u32, PathBuf) {
        let pid_file = self.pid_config("tp", &[]).await;
        let command = self.command(&self.signed_provider(), &["tp"]);
        self.ctl
            .start_provider(&command)
            .await
            .unwrap_or_else(|e| panic!("{e}; host log:\n{}", self.host.log()));
        (read_pid(&pid_file, None), pid_file)
    }

    /// Asks the provider for its health directly, as the host does.
    async fn health(&self) -> HealthCheckResponse {
        let subject = Subjects::new(&self.lattice)
            .unwrap()
            .provider(PROVIDER, ProviderOperation::Health)
            .unwrap();
        let reply = self
            .ctl
            .nats()
            .request(subject, Vec::<u8>::new().into())
            .await
            .unwrap();
        serde_json::from_slice(&reply.payload).unwrap()
    }

    /// Starts `command` expecting a refusal; checks that the
    /// `provider_start_failed` event gives the same reason and that the
    /// host lives on, and returns the reason.
    async fn refusal(&self, command: &StartProviderCommand) -> String {
        let mut events = self.ctl.subscribe_events().await.unwrap();
        let err = self.ctl.start_provider(command).await.unwrap_err();
        let ClientError::Refused { message, .. } = err else {
            panic!("expected a refusal, got {err}");
        };
        let failed = wait_for(&mut events, EventKind::ProviderStartFailed).await;
        assert_eq!(failed["error"], message.as_str());
        assert_eq!(failed["provider_ref"], command.provider_ref.as_str());
        assert_eq!(self.ctl.ping_hosts().await.unwrap().len(), 1);
        let inventory = self.ctl.get_inventory(self.host.id()).await.unwrap();
        assert!(inventory.providers.is_empty(), "{inventory:?}");
        message
    }
}

async fn wait_for(
    events: &mut (impl Stream<Item = CloudEvent> + Unpin),
    kind: EventKind,
) -> serde_json::Value {
    wait_for_event(events, kind, EVENT_WAIT, |data| {
        data["provider_id"] == PROVIDER
    })
    .await
}

/// The pid the provider wrote, once it is there (and not `old`).
fn read_pid(path: &Path, old: Option<u32>) -> u32 {
    let deadline = Instant::now() + EVENT_WAIT;
    while Instant::now() < deadline {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .filter(|pid| Some(*pid) != old)
        {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no new pid in {}", path.display());
}

/// Whether `pid` is a live process (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z')
        })
        .unwrap_or(false)
}

fn assert_gone_soon(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still running");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_provider_starts_is_listed_and_passes_health() {
    let fx = Fixture::start("prov-start", &[]).await;
    let mut events = fx.ctl.subscribe_events().await.unwrap();
    let (pid, pid_file) = fx.start_provider().await;

    let started = wait_for(&mut events, EventKind::ProviderStarted).await;
    assert_eq!(started["host_id"], fx.host.id());
    assert_eq!(started["annotations"]["app"], "demo");
    assert_eq!(started["claims"]["issuer"], fx.signer.issuer());
    assert_eq!(started["claims"]["name"], "test provider");
    wait_for(&mut events, EventKind::HealthCheckPassed).await;
    assert!(fx.health().await.healthy);

    let inventory = fx.ctl.get_inventory(fx.host.id()).await.unwrap();
    let [listed] = inventory.providers.as_slice() else {
        panic!("one provider expected: {inventory:?}");
    };
    assert_eq!(listed.id, PROVIDER);
    assert_eq!(listed.name.as_deref(), Some("test provider"));
    assert_eq!(listed.revision, 3);
    assert!(listed.image_ref.as_deref().unwrap().starts_with("file://"));

    let claims = fx.ctl.get_claims().await.unwrap();
    assert!(
        claims.iter().any(
            |c| c.get("name").map(String::as_str) == Some("test provider")
                && c.get("issuer") == Some(&fx.signer.issuer())
        ),
        "{claims:?}"
    );

    // Starting it again changes nothing: same process, still one provider.
    let again = fx.command(&fx.signed_provider(), &["tp"]);
    fx.ctl.start_provider(&again).await.unwrap();
    assert_eq!(read_pid(&pid_file, None), pid);
    let inventory = fx.ctl.get_inventory(fx.host.id()).await.unwrap();
    assert_eq!(inventory.providers.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_provider_is_refused_by_default() {
    let fx = Fixture::start("prov-unsigned", &[]).await;
    let unsigned = fx
        .signer
        .copy_executable(&test_provider().unwrap())
        .unwrap();
    let message = fx.refusal(&fx.command(&unsigned, &[])).await;
    assert!(message.contains("not signed"), "{message}");
    assert!(message.contains("test-provider.jwt"), "{message}");
    assert!(message.contains("--allow-unsigned"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_provider_runs_with_allow_unsigned() {
    let fx = Fixture::start("prov-devmode", &["--allow-unsigned"]).await;
    let unsigned = fx
        .signer
        .copy_executable(&test_provider().unwrap())
        .unwrap();
    fx.ctl
        .start_provider(&fx.command(&unsigned, &[]))
        .await
        .unwrap();
    assert!(fx.health().await.healthy);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_provider_is_refused() {
    let fx = Fixture::start("prov-tampered", &["--allow-unsigned"]).await;
    let signed = fx.signed_provider();
    let mut bytes = std::fs::read(&signed).unwrap();
    bytes.push(0);
    std::fs::write(&signed, bytes).unwrap();
    let message = fx.refusal(&fx.command(&signed, &[])).await;
    assert!(message.contains("changed after signing"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_exits_at_once_fails_to_start_with_its_status() {
    let fx = Fixture::start("prov-exits", &[]).await;
    fx.pid_config("dies", &[("exit_with", "3")]).await;
    let message = fx
        .refusal(&fx.command(&fx.signed_provider(), &["dies"]))
        .await;
    assert!(message.contains("exited with status 3"), "{message}");
    assert!(
        message.contains("told to exit with 3"),
        "quotes its output: {message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_provider_is_restarted() {
    let fx = Fixture::start("prov-crash", &[]).await;
    let (pid, pid_file) = fx.start_provider().await;
    let mut events = fx.ctl.subscribe_events().await.unwrap();

    kill_9(pid).unwrap();

    let stopped = wait_for(&mut events, EventKind::ProviderStopped).await;
    assert_eq!(stopped["reason"], "exited with signal 9");
    wait_for(&mut events, EventKind::ProviderStarted).await;
    let restarted = read_pid(&pid_file, Some(pid));
    assert!(alive(restarted));
    assert!(fx.health().await.healthy);
    assert!(
        fx.host.log().contains("restarting provider"),
        "{}",
        fx.host.log()
    );
    let inventory = fx.ctl.get_inventory(fx.host.id()).await.unwrap();
    assert_eq!(inventory.providers.len(), 1);
}

/// The staged copies under a host's `bin/` directory.
fn staged_copies(host: &HostProcess) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(host.data_dir().join("bin")).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn a_staged_copy_swapped_on_disk_is_not_run_at_the_next_restart() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::start("prov-swap", &[]).await;
    let (pid, _) = fx.start_provider().await;
    let copies = staged_copies(&fx.host);
    assert_eq!(copies.len(), 1, "{copies:?}");
    let staged = &copies[0];
    let mode = std::fs::metadata(staged).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o500, "the staged copy is read-only");
    // An attacker who may write there (here: root) swaps the copy, then
    // makes the provider crash so the host restarts it.
    // The running process holds the file, so it is replaced, not rewritten.
    let marker = fx.scratch.path().join("swapped-code-ran");
    let swapped = staged.with_file_name("swap");
    std::fs::write(
        &swapped,
        format!("#!/bin/sh\ntouch {}\nsleep 30\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&swapped, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::rename(&swapped, staged).unwrap();
    let mut events = fx.ctl.subscribe_events().await.unwrap();
    kill_9(pid).unwrap();
    wait_for(&mut events, EventKind::ProviderStopped).await;
    let failed = wait_for(&mut events, EventKind::ProviderStartFailed).await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("changed on disk after it was verified"),
        "{error}"
    );
    assert!(!marker.exists(), "the swapped executable ran");
    assert_eq!(fx.ctl.ping_hosts().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_link_is_a_failed_health_check_until_it_is_deleted() {
    let fx = Fixture::start("prov-health", &["--provider-health-secs", "1"]).await;
    fx.start_provider().await;
    let mut events = fx.ctl.subscribe_events().await.unwrap();
    let bad = [("fail".to_owned(), "port 8080 is already in use".to_owned())].into();
    fx.ctl.put_config("bad-port", &bad).await.unwrap();
    let link = Link {
        source_id: PROVIDER.into(),
        target: "some-component".into(),
        wit_namespace: "wasi".into(),
        wit_package: "http".into(),
        interfaces: vec!["incoming-handler".into()],
        source_config: vec!["bad-port".into()],
        ..Link::default()
    };
    fx.ctl.put_link(&link).await.unwrap();

    let failed = wait_for(&mut events, EventKind::HealthCheckFailed).await;
    let reason = failed["message"].as_str().unwrap();
    assert!(reason.contains("port 8080 is already in use"), "{reason}");
    assert_eq!(fx.ctl.ping_hosts().await.unwrap().len(), 1);
    assert!(!fx.health().await.healthy);

    fx.ctl
        .delete_link(
            &trellis_lattice::ctl::DeleteInterfaceLinkDefinitionRequest {
                source_id: link.source_id.clone(),
                name: link.name.clone(),
                wit_namespace: link.wit_namespace.clone(),
                wit_package: link.wit_package.clone(),
            },
        )
        .await
        .unwrap();
    // The provider heard of the deletion; the next periodic check passes.
    wait_for(&mut events, EventKind::HealthCheckPassed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wash_starts_and_stops_a_provider_which_then_stays_stopped() {
    let fx = Fixture::start("prov-stop", &[]).await;
    let pid_file = fx.pid_config("tp", &[]).await;
    let executable = fx.signed_provider();
    let mut events = fx.ctl.subscribe_events().await.unwrap();
    let out = wash_ok(
        &fx.nats.url(),
        &fx.lattice,
        &[
            "start",
            "provider",
            executable.to_str().unwrap(),
            PROVIDER,
            "--config",
            "tp",
            "-o",
            "json",
        ],
    )
    .unwrap();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["host_id"], fx.host.id(), "chosen by auction");
    assert_eq!(report["status"], "started");
    let pid = read_pid(&pid_file, None);

    let out = wash_ok(
        &fx.nats.url(),
        &fx.lattice,
        &["stop", "provider", PROVIDER, "-o", "json"],
    )
    .unwrap();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "stopped");
    let stopped = wait_for(&mut events, EventKind::ProviderStopped).await;
    assert_eq!(stopped["reason"], "stop");
    assert_gone_soon(pid);
    let inventory = fx.ctl.get_inventory(fx.host.id()).await.unwrap();
    assert!(inventory.providers.is_empty(), "{inventory:?}");

    // No restart follows a requested stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!fx.host.log().contains("restarting provider"));
    assert_eq!(read_pid(&pid_file, None), pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_host_stops_its_providers() {
    let mut fx = Fixture::start("prov-hoststop", &[]).await;
    let (pid, _) = fx.start_provider().await;
    let mut events = fx.ctl.subscribe_events().await.unwrap();
    fx.ctl.stop_host(fx.host.id(), None).await.unwrap();
    let stopped = wait_for(&mut events, EventKind::ProviderStopped).await;
    assert_eq!(stopped["reason"], "stop");
    assert!(fx.host.wait_exit(Duration::from_secs(30)).is_some());
    assert_gone_soon(pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_exits_when_its_host_is_killed() {
    let mut fx = Fixture::start("prov-orphan", &[]).await;
    let (pid, _) = fx.start_provider().await;
    fx.host.kill();
    // Its stdin closed with the host: no orphan left on the lattice.
    assert_gone_soon(pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_a_provider_that_does_not_run_is_not_an_error() {
    let fx = Fixture::start("prov-absent", &[]).await;
    fx.ctl
        .stop_provider(&StopProviderCommand {
            host_id: fx.host.id().into(),
            provider_id: PROVIDER.into(),
        })
        .await
        .unwrap();
}
