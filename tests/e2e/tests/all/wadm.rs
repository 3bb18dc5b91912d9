//! wadm end to end: the real `wadm` binary deploying a manifest onto real
//! hosts, rescheduling when a host dies, and handing over between wadm
//! processes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use trellis_e2e::wadm::{WadmProcess, api_client};
use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice, wash, wash_ok};
use trellis_lattice::client::CtlClient;
use trellis_test_support::NatsServer;
use wadm::api::WadmClient;
use wadm::store::DeployStatus;

use crate::common::client;

/// Short timings so that a dead host or wadm is noticed within seconds.
const WADM_ARGS: &[&str] = &[
    "--host-timeout-secs",
    "3",
    "--resync-secs",
    "2",
    "--lease-secs",
    "3",
];

const COMPONENT_ID: &str = "spread-hello";

fn spread_manifest(image: &str, instances: u32) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: spread
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

/// Instances of the app's component per host, for hosts running any.
async fn counts(ctl: &CtlClient) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for inventory in ctl.get_hosts_inventories().await.unwrap_or_default() {
        if let Some(c) = inventory.components.iter().find(|c| c.id == COMPONENT_ID) {
            counts.insert(inventory.host_id.clone(), c.max_instances);
        }
    }
    counts
}

/// Waits until the app is `deployed` and runs `expected` instances per
/// host, or panics with the last status, counts and wadm log.
async fn wait_deployed(
    wadm: &WadmClient,
    ctl: &CtlClient,
    expected: &BTreeMap<String, u32>,
    timeout: Duration,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let status = wadm.status("spread").await;
        let seen = counts(ctl).await;
        let deployed = matches!(&status, Ok(s) if s.status.status == DeployStatus::Deployed);
        if deployed && &seen == expected {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "not deployed as expected {expected:?}: status {status:?}, counts {seen:?}; wadm \
                 log:\n{}",
                log()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn web_host(nats: &NatsServer, lattice: &str, signer: &Signer, zone: &str) -> HostProcess {
    let zone = format!("zone={zone}");
    HostProcess::start(
        &nats.url(),
        lattice,
        &[
            "--allowed-issuers",
            &signer.issuer(),
            "--label",
            "tier=web",
            "--label",
            &zone,
        ],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spread_app_is_deployed_and_rescheduled_when_a_host_dies() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("wadm");
    let signer = Signer::new().unwrap();
    let image = file_url(&signer.sign_example("http-hello").unwrap());
    let mut hosts = vec![
        web_host(&nats, &lattice, &signer, "a"),
        web_host(&nats, &lattice, &signer, "b"),
        web_host(&nats, &lattice, &signer, "c"),
    ];
    // Not a web host: the spread must leave it alone.
    let _db = HostProcess::start(&nats.url(), &lattice, &["--label", "tier=db"]).unwrap();
    let wadm_process = WadmProcess::start(&nats.url(), &lattice, WADM_ARGS)
        .await
        .unwrap();
    let wadm = api_client(&nats.url(), &lattice).await.unwrap();
    let ctl = client(&nats.url(), &lattice).await;

    wadm.put(&spread_manifest(&image, 6)).await.unwrap();
    wadm.deploy("spread", None).await.unwrap();
    let expected = hosts.iter().map(|h| (h.id().to_owned(), 2)).collect();
    wait_deployed(&wadm, &ctl, &expected, Duration::from_secs(30), || {
        wadm_process.log()
    })
    .await;

    let mut dead = hosts.remove(0);
    dead.kill();
    let expected = hosts.iter().map(|h| (h.id().to_owned(), 3)).collect();
    // Host timeout 3 s + resync 2 s + compiling the component on the hosts.
    wait_deployed(&wadm, &ctl, &expected, Duration::from_secs(30), || {
        wadm_process.log()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_wadm_finishes_a_deploy_when_the_acting_one_dies() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("wadm-takeover");
    let signer = Signer::new().unwrap();
    let image = file_url(&signer.sign_example("http-hello").unwrap());
    let hosts = [
        web_host(&nats, &lattice, &signer, "a"),
        web_host(&nats, &lattice, &signer, "b"),
    ];
    let mut first = WadmProcess::start(&nats.url(), &lattice, WADM_ARGS)
        .await
        .unwrap();
    // The first wadm takes the free lease within a tick of starting.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !first.log().contains("took the wadm lease") {
        assert!(
            Instant::now() < deadline,
            "first wadm never acted:\n{}",
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = WadmProcess::start(&nats.url(), &lattice, WADM_ARGS)
        .await
        .unwrap();
    let wadm = api_client(&nats.url(), &lattice).await.unwrap();
    let ctl = client(&nats.url(), &lattice).await;

    wadm.put(&spread_manifest(&image, 4)).await.unwrap();
    wadm.deploy("spread", None).await.unwrap();
    first.kill();

    let expected = hosts.iter().map(|h| (h.id().to_owned(), 2)).collect();
    wait_deployed(&wadm, &ctl, &expected, Duration::from_secs(30), || {
        second.log()
    })
    .await;
    assert!(
        second.log().contains("took the wadm lease"),
        "{}",
        second.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wash_app_deploys_a_manifest_with_a_relative_image_and_waits() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("wash-app");
    let signer = Signer::new().unwrap();
    let signed = signer.sign_example("http-hello").unwrap();
    let host = web_host(&nats, &lattice, &signer, "a");
    let wadm_process = WadmProcess::start(&nats.url(), &lattice, WADM_ARGS)
        .await
        .unwrap();

    // The image is named relative to the manifest, as in examples/manifests.
    let dir = signed.parent().unwrap();
    let image = format!("file://{}", signed.file_name().unwrap().to_str().unwrap());
    let file = dir.join("spread.yaml");
    std::fs::write(&file, spread_manifest(&image, 2)).unwrap();
    let file = file.to_str().unwrap();

    let validated = wash_ok(&nats.url(), &lattice, &["app", "validate", file]).unwrap();
    assert!(
        validated.contains("`spread` version v1 is valid"),
        "{validated}"
    );
    let out = wash(
        &nats.url(),
        &lattice,
        &["app", "deploy", file, "--wait", "-o", "json"],
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\nwadm log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        wadm_process.log()
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["status"]["status"], "deployed", "{stdout}");

    let ctl = client(&nats.url(), &lattice).await;
    let expected = BTreeMap::from([(host.id().to_owned(), 2)]);
    assert_eq!(counts(&ctl).await, expected);

    let listed = wash_ok(&nats.url(), &lattice, &["app", "list"]).unwrap();
    assert!(
        listed.contains("spread") && listed.contains("deployed"),
        "{listed}"
    );
    let versions = wash_ok(&nats.url(), &lattice, &["app", "versions", "spread"]).unwrap();
    assert!(versions.contains("v1"), "{versions}");

    wash_ok(&nats.url(), &lattice, &["app", "delete", "spread"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !counts(&ctl).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "not removed; wadm log:\n{}",
            wadm_process.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let missing = wash(&nats.url(), &lattice, &["app", "status", "spread"]).unwrap();
    assert!(!missing.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_whose_image_is_missing_is_failed_with_the_reason() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("wadm-failed");
    let signer = Signer::new().unwrap();
    let _host = web_host(&nats, &lattice, &signer, "a");
    let wadm_process = WadmProcess::start(&nats.url(), &lattice, WADM_ARGS)
        .await
        .unwrap();
    let wadm = api_client(&nats.url(), &lattice).await.unwrap();

    wadm.put(&spread_manifest("file:///nowhere/missing.wasm", 1))
        .await
        .unwrap();
    wadm.deploy("spread", None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = wadm.status("spread").await.unwrap();
        if report.status.status == DeployStatus::Failed {
            let reasons = report.status.reasons.join("\n");
            assert!(reasons.contains("missing.wasm"), "{reasons}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never failed: {report:?}; wadm log:\n{}",
            wadm_process.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
