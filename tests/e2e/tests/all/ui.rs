//! `wash ui` in a real browser: headless Chromium (Debian's) driven by
//! playwright-core, against a lattice running the counter app under wadm.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use trellis_e2e::app::example_manifest;
use trellis_e2e::wadm::{FAST_WADM_ARGS, WadmProcess, api_client};
use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice, wash_ok};
use trellis_lattice::ctl::ScaleComponentCommand;
use trellis_test_support::{NatsServer, free_port};
use wadm::store::DeployStatus;

use crate::common::client;

/// Reads `child`'s stdout lines on a thread, so a test can wait on them.
fn lines(stdout: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Kills a child process when the test ends, however it ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_the_lattice_and_follows_a_scale_live() {
    let ui_dir = trellis_e2e::browser::ensure_browser().unwrap();
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("ui");
    let signer = Signer::new().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port().unwrap());
    let host = HostProcess::start(&nats.url(), &lattice, &["--metrics-addr", &metrics]).unwrap();
    let wadm_process = WadmProcess::start(&nats.url(), &lattice, FAST_WADM_ARGS)
        .await
        .unwrap();
    let wadm = api_client(&nats.url(), &lattice).await.unwrap();
    let ctl = client(&nats.url(), &lattice).await;

    // The counter app, deployed through wadm.
    let dir = tempfile::TempDir::new().unwrap();
    let http = format!("127.0.0.1:{}", free_port().unwrap());
    let manifest = example_manifest(&signer, dir.path(), "dev", &http, "");
    wash_ok(
        &nats.url(),
        &lattice,
        &["app", "deploy", manifest.to_str().unwrap()],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = wadm.status("kv-counter").await.ok();
        if status
            .as_ref()
            .is_some_and(|s| s.status.status == DeployStatus::Deployed)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not deployed: {status:?}\nwadm log:\n{}",
            wadm_process.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A component outside any app, for the scale (wadm would undo a scale
    // of one it manages).
    let hello = file_url(&signer.sign_example("http-hello").unwrap());
    ctl.scale_component(&ScaleComponentCommand {
        component_id: "hello".into(),
        component_ref: hello.clone(),
        max_instances: 1,
        host_id: host.id().into(),
        ..Default::default()
    })
    .await
    .unwrap();

    let ui_addr = format!("127.0.0.1:{}", free_port().unwrap());
    let wash = trellis_test_support::workspace_binary("wash", "wash").unwrap();
    let mut ui = Reaped(
        Command::new(wash)
            .args(["ui", "--addr", &ui_addr, "--metrics-addr", &metrics])
            .env("TRELLIS_NATS_URL", nats.url())
            .env("TRELLIS_LATTICE", &lattice)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let printed = lines(ui.0.stdout.take().unwrap());
    let first = printed.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(first.contains(&format!("http://{ui_addr}/")), "{first}");
    // A page elsewhere that rebinds its name to this address reads nothing.
    let rebound = reqwest::Client::new()
        .get(format!("http://{ui_addr}/api/snapshot"))
        .header("host", "rebound.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);

    let artifacts = trellis_test_support::workspace_root().join("target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("wash-ui.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut browser = Reaped(
        Command::new("node")
            .arg(ui_dir.join("check.mjs"))
            .args([
                &format!("http://{ui_addr}/"),
                host.id(),
                "kv-counter",
                "kv-counter",
                screenshot.to_str().unwrap(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let answers = lines(browser.0.stdout.take().unwrap());
    let ready = answers.recv_timeout(Duration::from_secs(120)).unwrap();
    assert_eq!(
        ready, "READY",
        "the page did not list the host, the app and the component"
    );

    wash_ok(
        &nats.url(),
        &lattice,
        &[
            "scale",
            "component",
            host.id(),
            "hello",
            &hello,
            "--max-instances",
            "3",
        ],
    )
    .unwrap();
    let scaled = Instant::now();
    let mut stdin = browser.0.stdin.take().unwrap();
    writeln!(stdin, "expect hello 3").unwrap();
    let found = answers.recv_timeout(Duration::from_secs(15)).unwrap();
    let shown = scaled.elapsed();
    assert!(found.starts_with("FOUND"), "{found}");
    assert!(
        shown <= Duration::from_secs(2),
        "the page took {shown:?} to show the scale"
    );
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = browser.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the browser script did not exit");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success());
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
