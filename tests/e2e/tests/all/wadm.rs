//! wadm end to end: the real `wadm` binary deploying a manifest onto real
//! hosts, rescheduling when a host dies, and handing over between wadm
//! processes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use trellis_e2e::app::{TestLattice, increment};
use trellis_e2e::wadm::{
    FAST_WADM_ARGS, SPREAD_APP, SPREAD_COMPONENT, WadmProcess, api_client, instance_counts,
    spread_manifest, wait_deployed,
};
use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice, wash, wash_ok};
use trellis_lattice::client::CtlClient;
use trellis_test_support::{NatsServer, RedisServer, free_port};
use wadm::api::WadmClient;
use wadm::store::DeployStatus;

use crate::common::{client, redis_get};

const WADM_ARGS: &[&str] = FAST_WADM_ARGS;

/// Waits for the spread app with `expected` instances per host, or panics.
async fn wait_spread(
    wadm: &WadmClient,
    ctl: &CtlClient,
    expected: &BTreeMap<String, u32>,
    log: impl Fn() -> String,
) {
    wait_deployed(
        wadm,
        ctl,
        (SPREAD_APP, SPREAD_COMPONENT),
        expected,
        Duration::from_secs(30),
        log,
    )
    .await
    .unwrap();
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
    wadm.deploy(SPREAD_APP, None).await.unwrap();
    let expected = hosts.iter().map(|h| (h.id().to_owned(), 2)).collect();
    wait_spread(&wadm, &ctl, &expected, || wadm_process.log()).await;

    let mut dead = hosts.remove(0);
    dead.kill();
    let expected = hosts.iter().map(|h| (h.id().to_owned(), 3)).collect();
    // Host timeout 3 s + resync 2 s + compiling the component on the hosts.
    wait_spread(&wadm, &ctl, &expected, || wadm_process.log()).await;
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
    wadm.deploy(SPREAD_APP, None).await.unwrap();
    first.kill();

    let expected = hosts.iter().map(|h| (h.id().to_owned(), 2)).collect();
    wait_spread(&wadm, &ctl, &expected, || second.log()).await;
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
    assert_eq!(instance_counts(&ctl, SPREAD_COMPONENT).await, expected);

    let listed = wash_ok(&nats.url(), &lattice, &["app", "list"]).unwrap();
    assert!(
        listed.contains("spread") && listed.contains("deployed"),
        "{listed}"
    );
    let versions = wash_ok(&nats.url(), &lattice, &["app", "versions", "spread"]).unwrap();
    assert!(versions.contains("v1"), "{versions}");

    wash_ok(&nats.url(), &lattice, &["app", "delete", "spread"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !instance_counts(&ctl, SPREAD_COMPONENT).await.is_empty() {
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
    wadm.deploy(SPREAD_APP, None).await.unwrap();
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

fn example_manifest(lattice: &TestLattice, name: &str, address: &str, redis: &str) -> PathBuf {
    trellis_e2e::app::example_manifest(&lattice.signer, lattice.dir.path(), name, address, redis)
}

#[tokio::test(flavor = "multi_thread")]
async fn deploying_prod_over_dev_moves_the_counter_from_sqlite_to_redis() {
    let lattice = TestLattice::start("devprod").await.unwrap();
    let redis = RedisServer::start().unwrap();
    let url_nats = lattice.nats.url();
    let name = lattice.ctl.lattice().to_owned();
    // Three hosts: the counter spreads over all of them, each provider
    // runs on one, so calls cross hosts on their way to the store.
    let _more_hosts = [
        HostProcess::start(&url_nats, &name, &[]).unwrap(),
        HostProcess::start(&url_nats, &name, &[]).unwrap(),
    ];
    let _wadm = WadmProcess::start(&url_nats, &name, WADM_ARGS)
        .await
        .unwrap();
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let url = format!("http://{address}/");
    let dev = example_manifest(&lattice, "dev", &address, &redis.url());
    let prod = example_manifest(&lattice, "prod", &address, &redis.url());
    let deploy = |file: &PathBuf| {
        wash_ok(
            &url_nats,
            &name,
            &["app", "deploy", file.to_str().unwrap(), "--wait"],
        )
        .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", lattice.host.log()))
    };

    deploy(&dev);
    lattice
        .wait_until_ok(&url, Duration::from_secs(60))
        .await
        .unwrap();
    // Count well past anything Redis will reach in this test, so which
    // store answered is plain from the value.
    let mut before = 0;
    for _ in 0..20 {
        before = increment(&url).await.unwrap();
    }
    assert!(before >= 21, "SQLite counted the first requests: {before}");
    let images = |inventories: Vec<trellis_lattice::ctl::HostInventory>| -> Vec<String> {
        inventories
            .iter()
            .flat_map(|i| i.components.iter())
            .filter(|c| c.id == "kv-counter")
            .map(|c| c.image_ref.clone())
            .collect()
    };
    let dev_images = images(lattice.ctl.get_hosts_inventories().await.unwrap());
    assert_eq!(dev_images.len(), 3, "the counter runs on all three hosts");

    // A client keeps counting through the swap.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client_loop = tokio::spawn({
        let (url, stop) = (url.clone(), stop.clone());
        async move {
            let (mut answered, mut failed) = (Vec::new(), Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match increment(&url).await {
                    Ok(value) => answered.push(value),
                    Err(err) => failed.push(err.to_string()),
                }
            }
            (answered, failed)
        }
    });
    deploy(&prod);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, failed) = client_loop.await.unwrap();
    println!(
        "dev to prod under a client loop: {} answered, {} failed",
        answered.len(),
        failed.len()
    );
    // wadm moves the link only once Redis runs, and stops SQLite only once
    // the link has left it, so no call finds nothing to serve it; a host
    // that reaches a provider a moment before (or after) that provider
    // hears of the moved link calls again once it has.
    assert!(
        failed.is_empty(),
        "{} requests failed: {failed:?}",
        failed.len()
    );
    // Every answer is the next count of one store or the other: SQLite's
    // from where it was, then Redis's from 1. None skipped, none repeated.
    let moved = answered
        .iter()
        .zip(answered.iter().skip(1))
        .position(|(earlier, later)| later < earlier)
        .map_or(0, |i| i + 1);
    let (sqlite, redis_counts) = (answered[..moved].to_vec(), answered[moved..].to_vec());
    let expected_sqlite: Vec<u64> = (before + 1..=before + sqlite.len() as u64).collect();
    assert_eq!(sqlite, expected_sqlite);
    let expected_redis: Vec<u64> = (1..=redis_counts.len() as u64).collect();
    assert_eq!(
        redis_counts, expected_redis,
        "Redis counts from 1, every one acknowledged"
    );
    assert!(!redis_counts.is_empty(), "the counter never moved to Redis");
    let next = increment(&url).await.unwrap();
    assert_eq!(next, redis_counts.len() as u64 + 1);
    assert_eq!(
        redis_get(&redis.url(), "default:counter"),
        Some(next.to_string()),
        "Redis holds every acknowledged increment"
    );
    // The same component binary kept running on every host: prod.yaml
    // changed a link (and which provider runs), nothing else.
    let after = lattice.ctl.get_hosts_inventories().await.unwrap();
    let providers: Vec<String> = after
        .iter()
        .flat_map(|i| i.providers.iter().map(|p| p.id.clone()))
        .collect();
    assert!(
        providers.contains(&"keyvalue-redis".to_owned()),
        "{providers:?}"
    );
    assert!(
        !providers.contains(&"keyvalue-sqlite".to_owned()),
        "{providers:?}"
    );
    assert_eq!(images(after), dev_images);

    // Deploying dev.yaml again (an older version) goes back to SQLite,
    // where the count was left.
    deploy(&dev);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match increment(&url).await {
            // SQLite kept its count.
            Ok(value) if value > before => break,
            _ if Instant::now() > deadline => panic!("the counter never moved back to SQLite"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// [`wash_ok`], failing the test with `log()` (wadm's log) on error.
fn wash_stdout(
    nats: &NatsServer,
    lattice: &str,
    args: &[&str],
    log: &dyn Fn() -> String,
) -> String {
    wash_ok(&nats.url(), lattice, args).unwrap_or_else(|e| panic!("{e:#}\nwadm log:\n{}", log()))
}

#[tokio::test(flavor = "multi_thread")]
async fn wash_app_plan_shows_deploy_upgrade_and_undeploy_and_changes_nothing() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("wash-plan");
    let signer = Signer::new().unwrap();
    let signed = signer.sign_example("http-hello").unwrap();
    let host = web_host(&nats, &lattice, &signer, "a");
    let wadm_process = WadmProcess::start(&nats.url(), &lattice, WADM_ARGS)
        .await
        .unwrap();
    let log = || wadm_process.log();
    let ctl = client(&nats.url(), &lattice).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, instances: u32| {
        let file = dir.path().join(name);
        std::fs::write(&file, spread_manifest(&file_url(&signed), instances)).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let v1 = write("v1.yaml", 2);
    // The host answers pings once it has started.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ctl.ping_hosts().await.map(|h| h.len()).unwrap_or(0) < 1 {
        assert!(Instant::now() < deadline, "the host never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A first deploy: one start on the host, and nothing happens.
    let json = wash_stdout(&nats, &lattice, &["app", "plan", &v1, "-o", "json"], &log);
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["action"], "deploy", "{json}");
    assert_eq!(plan["deployed_version"], serde_json::Value::Null, "{json}");
    let steps = &plan["hosts"][host.id()];
    assert_eq!(steps[0]["kind"], "start_component", "{json}");
    assert_eq!(steps[0]["target"], SPREAD_COMPONENT, "{json}");
    assert_eq!(plan["instances"][0]["after"][host.id()], 2, "{json}");
    let text = wash_stdout(&nats, &lattice, &["app", "plan", &v1], &log);
    assert!(
        text.contains(&format!("host {}:", host.id()))
            && text.contains(&format!("start component {SPREAD_COMPONENT}")),
        "{text}"
    );
    let dry = wash_stdout(&nats, &lattice, &["app", "deploy", &v1, "--dry-run"], &log);
    assert_eq!(dry, text, "deploy --dry-run is the plan");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(instance_counts(&ctl, SPREAD_COMPONENT).await.is_empty());
    let listed = wash_stdout(&nats, &lattice, &["app", "list", "-o", "json"], &log);
    assert_eq!(listed.trim(), "[]", "a plan stores nothing");

    wash_stdout(&nats, &lattice, &["app", "deploy", &v1, "--wait"], &log);
    let again = wash_stdout(&nats, &lattice, &["app", "plan", &v1], &log);
    assert!(again.contains("no changes"), "{again}");

    // An upgrade to three instances: one scale on the same host.
    let v2 = write("v2.yaml", 3);
    let text = wash_stdout(&nats, &lattice, &["app", "plan", &v2], &log);
    assert!(
        text.contains(&format!("scale component {SPREAD_COMPONENT}"))
            && text.contains("2 → 3 instances")
            && text.contains("(deployed now: v1)"),
        "{text}"
    );

    // An undeploy: the stop, and the app keeps running.
    let json = wash_stdout(
        &nats,
        &lattice,
        &["app", "undeploy", SPREAD_APP, "--dry-run", "-o", "json"],
        &log,
    );
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["action"], "undeploy", "{json}");
    assert_eq!(
        plan["hosts"][host.id()][0]["kind"],
        "stop_component",
        "{json}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expected = BTreeMap::from([(host.id().to_owned(), 2)]);
    assert_eq!(instance_counts(&ctl, SPREAD_COMPONENT).await, expected);
    let status = wash_stdout(&nats, &lattice, &["app", "status", SPREAD_APP], &log);
    assert!(status.contains("deployed"), "{status}");

    let missing = wash(
        &nats.url(),
        &lattice,
        &["app", "undeploy", "nothing-here", "--dry-run"],
    )
    .unwrap();
    assert!(!missing.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_deployed_right_after_another_is_undeployed_takes_over_its_providers() {
    let lattice = TestLattice::start("undeploy-race").await.unwrap();
    let redis = RedisServer::start().unwrap();
    let url_nats = lattice.nats.url();
    let name = lattice.ctl.lattice().to_owned();
    let wadm_process = WadmProcess::start(&url_nats, &name, WADM_ARGS)
        .await
        .unwrap();
    let log = || {
        format!(
            "wadm log:\n{}\nhost log:\n{}",
            wadm_process.log(),
            lattice.host.log()
        )
    };
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let url = format!("http://{address}/");
    let first = example_manifest(&lattice, "dev", &address, &redis.url());
    // The same components and providers, by the same ids, in another app.
    let second = lattice.dir.path().join("second.yaml");
    let text = std::fs::read_to_string(&first).unwrap();
    let renamed = text.replacen("name: kv-counter\n", "name: kv-counter-two\n", 1);
    assert_ne!(renamed, text);
    std::fs::write(&second, renamed).unwrap();
    let deploy = |file: &PathBuf| {
        wash_ok(
            &url_nats,
            &name,
            &["app", "deploy", file.to_str().unwrap(), "--wait"],
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", log()));
    };

    deploy(&first);
    lattice
        .wait_until_ok(&url, Duration::from_secs(60))
        .await
        .unwrap();
    wash_ok(&url_nats, &name, &["app", "undeploy", "kv-counter"]).unwrap();
    // At once: the first app's providers are still stopping.
    deploy(&second);
    lattice
        .wait_until_ok(&url, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", log()));
    let inventory = lattice.ctl.get_hosts_inventories().await.unwrap();
    let owners: Vec<String> = inventory
        .iter()
        .flat_map(|i| i.providers.iter())
        .filter_map(|p| wadm::ownership::owner_app(p.annotations.as_ref()).map(str::to_owned))
        .collect();
    assert_eq!(
        owners,
        ["kv-counter-two", "kv-counter-two"],
        "{inventory:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_whose_import_no_link_serves_is_refused_before_anything_runs() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("imports");
    let signer = Signer::new().unwrap();
    // A host answers for the lattice's links.
    let _host = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let _wadm = WadmProcess::start(&nats.url(), &lattice, WADM_ARGS)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let dev = trellis_e2e::app::example_manifest(&signer, dir.path(), "dev", &address, "");
    let text = std::fs::read_to_string(&dev).unwrap();
    // dev.yaml without the counter's link to its keyvalue provider.
    let start = text
        .find("        - type: link\n          properties:\n            target: kv")
        .unwrap();
    let end = start + text[start..].find("\n    - name:").unwrap();
    let unlinked = dir.path().join("unlinked.yaml");
    std::fs::write(&unlinked, format!("{}{}", &text[..start], &text[end + 1..])).unwrap();
    let dev = dev.to_str().unwrap();
    let unlinked = unlinked.to_str().unwrap();

    let valid = wash_ok(&nats.url(), &lattice, &["app", "validate", dev]).unwrap();
    assert!(
        valid.contains("every import of its components is served"),
        "{valid}"
    );
    for args in [
        vec!["app", "validate", unlinked],
        vec!["app", "deploy", unlinked],
    ] {
        let out = wash(&nats.url(), &lattice, &args).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} passed");
        for expected in [
            "component `counter` imports `wasi:keyvalue/store`",
            "wasi:keyvalue/atomics",
            "no `default` link covers it",
            "`namespace: wasi`, `package: keyvalue`, `interfaces: [store]`",
            "wash link put kv-counter TARGET wasi keyvalue --interface store",
        ] {
            assert!(
                stderr.contains(expected),
                "{args:?}: no {expected:?} in {stderr}"
            );
        }
    }
    // Refused before anything was stored.
    let listed = wash_ok(&nats.url(), &lattice, &["app", "list", "-o", "json"]).unwrap();
    assert!(!listed.contains("kv-counter"), "{listed}");

    // A link already in the lattice covers the imports.
    wash_ok(
        &nats.url(),
        &lattice,
        &[
            "link",
            "put",
            "kv-counter",
            "kv",
            "wasi",
            "keyvalue",
            "--interface",
            "store",
            "--interface",
            "atomics",
        ],
    )
    .unwrap();
    let deployed = wash_ok(&nats.url(), &lattice, &["app", "deploy", unlinked]).unwrap();
    assert!(deployed.contains("deploying"), "{deployed}");
}

/// Each host's image of the spread component.
async fn images(ctl: &CtlClient) -> BTreeMap<String, String> {
    let mut images = BTreeMap::new();
    for inventory in ctl.get_hosts_inventories().await.unwrap_or_default() {
        if let Some(c) = inventory
            .components
            .iter()
            .find(|c| c.id == SPREAD_COMPONENT)
        {
            images.insert(inventory.host_id.clone(), c.image_ref.clone());
        }
    }
    images
}

/// [`spread_manifest`] behind an http-server provider (`provider`) on
/// `address`, with `version` as its version.
fn web_spread_manifest(image: &str, provider: &str, address: &str, version: &str) -> String {
    let mut text = spread_manifest(image, 3).replace("version: v1", &format!("version: {version}"));
    text.push_str(&format!(
        r#"    - name: httpserver
      type: capability
      properties:
        image: {provider}
        id: spread-http
      traits:
        - type: spreadscaler
          properties:
            instances: 1
        - type: link
          properties:
            target: hello
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            source_config:
              - name: spread-http
                properties:
                  address: {address}
"#
    ));
    text
}

/// Waits until the spread app is `failed` and returns its reasons.
async fn wait_failed(wadm: &WadmClient, log: impl Fn() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = wadm.status(SPREAD_APP).await.unwrap().status;
        if status.status == DeployStatus::Failed {
            return status.reasons.join("\n");
        }
        assert!(
            Instant::now() < deadline,
            "not failed: {status:?}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_image_rolls_host_by_host_halts_where_it_cannot_start_and_rolls_back() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("rollout");
    let signer = Signer::new().unwrap();
    let hosts: Vec<HostProcess> = ["a", "b", "c"]
        .into_iter()
        .map(|zone| web_host(&nats, &lattice, &signer, zone))
        .collect();
    let wadm_process = WadmProcess::start(&nats.url(), &lattice, WADM_ARGS)
        .await
        .unwrap();
    let log = || wadm_process.log();
    let wadm = api_client(&nats.url(), &lattice).await.unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    let built = trellis_test_support::example_component("http-hello").unwrap();
    let wasm = std::fs::read(&built).unwrap();
    let sign = |name: &str, wasm: &[u8]| {
        file_url(
            &signer
                .sign_bytes(name, wasm, trellis_claims::SignOptions::default())
                .unwrap(),
        )
    };
    let (v1, v4) = (sign("hello-v1", &wasm), sign("hello-v4", &wasm));
    // v2 is not signed: every host refuses it. v3 is signed but traps as
    // it is instantiated.
    let dir = tempfile::tempdir().unwrap();
    let unsigned = dir.path().join("unsigned.wasm");
    std::fs::copy(&built, &unsigned).unwrap();
    let v2 = file_url(&unsigned);
    let v3 = sign(
        "hello-v3",
        &trellis_test_support::trapping_at_start(&wasm).unwrap(),
    );
    let http = trellis_test_support::workspace_binary("trellis-http-server", "trellis-http-server")
        .unwrap();
    let provider = file_url(&signer.sign_provider(&http).unwrap());
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let url = format!("http://{address}/");
    let version =
        |image: &str, version: &str| web_spread_manifest(image, &provider, &address, version);
    let expected: BTreeMap<String, u32> = hosts.iter().map(|h| (h.id().to_owned(), 1)).collect();
    let all_on = |image: &str| -> BTreeMap<String, String> {
        hosts
            .iter()
            .map(|h| (h.id().to_owned(), image.to_owned()))
            .collect()
    };
    let deployed = |timeout| {
        wait_deployed(
            &wadm,
            &ctl,
            (SPREAD_APP, SPREAD_COMPONENT),
            &expected,
            timeout,
            log,
        )
    };
    let rollback = |to: &str| {
        let rolled = wash_ok(
            &nats.url(),
            &lattice,
            &["app", "rollback", SPREAD_APP, "--wait", "-o", "json"],
        )
        .unwrap();
        let rolled: serde_json::Value = serde_json::from_str(&rolled).unwrap();
        assert_eq!(rolled["status"]["status"], "deployed", "{rolled}");
        assert_eq!(rolled["status"]["version"], to, "{rolled}");
    };

    wadm.put(&version(&v1, "v1")).await.unwrap();
    wadm.deploy(SPREAD_APP, None).await.unwrap();
    deployed(Duration::from_secs(30)).await.unwrap();
    assert_eq!(images(&ctl).await, all_on(&v1));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(trellis_e2e::app::get(&url).await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "{url} never answered\n{}", log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A client keeps calling over HTTP through everything that follows.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client_loop = tokio::spawn({
        let (url, stop) = (url.clone(), stop.clone());
        async move {
            let (mut answered, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match trellis_e2e::app::get(&url).await {
                    Ok((200, body)) if body.contains("Hello") => answered += 1,
                    Ok((status, body)) => failed.push(format!("{status}: {body}")),
                    Err(err) => failed.push(format!("{err:#}")),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (answered, failed)
        }
    });

    // Neither v2 (refused) nor v3 (traps) can start: the first host's
    // failure halts each rollout there, every host keeps v1, and
    // rollback returns to it.
    for (broken, name, why) in [
        (&v2, "v2", "refused to run"),
        (&v3, "v3", "fails as it is instantiated"),
    ] {
        wadm.put(&version(broken, name)).await.unwrap();
        wadm.deploy(SPREAD_APP, Some(name)).await.unwrap();
        let halted = wait_failed(&wadm, log).await;
        assert!(
            halted.contains("rollout halted")
                && halted.contains(why)
                && halted.contains("wash app rollback spread"),
            "{halted}"
        );
        for _ in 0..5 {
            assert_eq!(images(&ctl).await, all_on(&v1));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        rollback("v1");
        assert_eq!(images(&ctl).await, all_on(&v1));
    }

    // A good image rolls over the hosts one at a time.
    wadm.put(&version(&v4, "v4")).await.unwrap();
    wadm.deploy(SPREAD_APP, Some("v4")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut mixed = false;
    loop {
        let now = images(&ctl).await;
        let on_new = now.values().filter(|image| **image == v4).count();
        mixed |= on_new > 0 && on_new < hosts.len();
        let status = wadm.status(SPREAD_APP).await.unwrap().status;
        if now == all_on(&v4) && status.status == DeployStatus::Deployed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not rolled out: {now:?} {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, failed) = client_loop.await.unwrap();
    println!(
        "rollouts under a client loop: {answered} answered, {} failed; saw both images at once: {mixed}",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} requests failed: {failed:?}",
        failed.len()
    );
    assert!(answered > 100, "only {answered} requests answered");
}

/// Link names from a manifest, end to end: two `link` traits from one
/// component to one keyvalue provider, told apart by `name`, each with its
/// own database; the component picks one per request with `set-link-name`
/// and reads its greeting from config the manifest defines.
#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_names_two_links_and_set_link_name_picks_between_them() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("link-names");
    let signer = Signer::new().unwrap();
    let _host = web_host(&nats, &lattice, &signer, "a");
    let wadm_process = WadmProcess::start(&nats.url(), &lattice, WADM_ARGS)
        .await
        .unwrap();
    let component = signer.sign_example("kv-select").unwrap();
    let provider = |package: &str| {
        let built = trellis_test_support::workspace_binary(package, package).unwrap();
        file_url(&signer.sign_provider(&built).unwrap())
    };
    let (kv, http) = (
        provider("trellis-keyvalue-sqlite"),
        provider("trellis-http-server"),
    );
    let dir = tempfile::tempdir().unwrap();
    let db = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let manifest = format!(
        r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: link-names
  annotations:
    version: v1
spec:
  components:
    - name: select
      type: component
      properties:
        image: {image}
        id: kv-select
        config:
          - name: greeting
            properties:
              greeting: from the manifest
      traits:
        - type: spreadscaler
          properties:
            instances: 2
        - type: link
          properties:
            target: kv
            namespace: wasi
            package: keyvalue
            interfaces: [store, atomics]
            target_config:
              - name: main-db
                properties:
                  path: {main}
        - type: link
          properties:
            name: cache
            target: kv
            namespace: wasi
            package: keyvalue
            interfaces: [store, atomics]
            target_config:
              - name: cache-db
                properties:
                  path: {cache}
    - name: kv
      type: capability
      properties:
        image: {kv}
        id: names-kv
      traits:
        - type: spreadscaler
          properties:
            instances: 1
    - name: web
      type: capability
      properties:
        image: {http}
        id: names-http
      traits:
        - type: spreadscaler
          properties:
            instances: 1
        - type: link
          properties:
            target: select
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            source_config:
              - name: names-http
                properties:
                  address: {address}
"#,
        image = file_url(&component),
        main = db("main.sqlite3"),
        cache = db("cache.sqlite3"),
    );
    let file = dir.path().join("link-names.yaml");
    std::fs::write(&file, manifest).unwrap();
    let out = wash(
        &nats.url(),
        &lattice,
        &["app", "deploy", file.to_str().unwrap(), "--wait"],
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}\nwadm log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        wadm_process.log()
    );
    let url = format!("http://{address}/");
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        match trellis_e2e::app::get(&url).await {
            Ok((200, body)) => break body,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            other => panic!("{url}: {other:?}"),
        }
    };
    assert_eq!(first, "from the manifest 1 on link `default`\n");
    let cached = trellis_e2e::app::get(&format!("{url}?link=cache"))
        .await
        .unwrap();
    assert_eq!(
        cached,
        (200, "from the manifest 1 on link `cache`\n".into())
    );
    let again = trellis_e2e::app::get(&url).await.unwrap();
    assert_eq!(
        again,
        (200, "from the manifest 2 on link `default`\n".into())
    );
    // Each link's count is in its own file.
    assert!(std::path::Path::new(&db("main.sqlite3")).is_file());
    assert!(std::path::Path::new(&db("cache.sqlite3")).is_file());
}
