//! A host that dies and comes back: it keeps its id, wadm places its work
//! once, and a host told to stop while NATS is gone still stops in time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use trellis_e2e::app::{SQLITE, TestLattice};
use trellis_e2e::wadm::{
    SPREAD_APP, SPREAD_COMPONENT, WadmProcess, api_client, instance_counts, spread_manifest,
    wait_deployed,
};
use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice};
use trellis_test_support::NatsServer;

use crate::common::client;

/// wadm with its default 60 s host timeout: a host that came back under a
/// new id would leave its work "running" on a ghost for a minute, so a
/// quick recovery here shows the id was kept.
const PATIENT_WADM_ARGS: &[&str] = &["--resync-secs", "2", "--lease-secs", "3"];

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_host_comes_back_under_its_id_and_its_work_is_placed_once() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("restart");
    let signer = Signer::new().unwrap();
    let image = file_url(&signer.sign_example("http-hello").unwrap());
    let mut host = HostProcess::start(
        &nats.url(),
        &lattice,
        &["--allowed-issuers", &signer.issuer(), "--label", "tier=web"],
    )
    .unwrap();
    let wadm_process = WadmProcess::start(&nats.url(), &lattice, PATIENT_WADM_ARGS)
        .await
        .unwrap();
    let wadm = api_client(&nats.url(), &lattice).await.unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    wadm.put(&spread_manifest(&image, 2)).await.unwrap();
    wadm.deploy(SPREAD_APP, None).await.unwrap();
    let id = host.id().to_owned();
    let expected: BTreeMap<String, u32> = [(id.clone(), 2)].into();
    let wait = |timeout| {
        wait_deployed(
            &wadm,
            &ctl,
            (SPREAD_APP, SPREAD_COMPONENT),
            &expected,
            timeout,
            || wadm_process.log(),
        )
    };
    wait(Duration::from_secs(30)).await.unwrap();

    let crashed = Instant::now();
    let took = host.crash_and_restart().unwrap();
    assert_eq!(host.id(), id, "the restarted host has a new id");
    assert!(took < Duration::from_secs(3), "restart took {took:?}\n{}", host.log());
    loop {
        let listed = ctl.get_hosts_inventories().await.unwrap_or_default();
        if listed.iter().any(|inventory| inventory.host_id == id) {
            break;
        }
        assert!(
            crashed.elapsed() < Duration::from_secs(3),
            "the host was not back in the inventories within 3 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Back within a resync or two, far inside wadm's 60 s host timeout.
    wait(Duration::from_secs(20)).await.unwrap();
    let recovered = crashed.elapsed();
    // Placed once: the count never climbs past the spread afterwards.
    for _ in 0..20 {
        let counts = instance_counts(&ctl, SPREAD_COMPONENT).await;
        assert_eq!(counts, expected, "after recovering in {recovered:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("a crashed host's app was deployed again {recovered:?} after the crash");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_host_on_the_same_data_dir_is_refused() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("datadir");
    let first = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let data_dir = first.data_dir();
    let data_dir = data_dir.to_str().unwrap();
    let second = HostProcess::start_with_env(
        &nats.url(),
        &lattice,
        &[],
        &[("TRELLIS_DATA_DIR", data_dir)],
    );
    let err = second.err().expect("the second host must not start").to_string();
    assert!(err.contains("is in use by another running host"), "{err}");
    assert!(err.contains("--data-dir"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_nats_gone_exits_within_the_drain_timeout() {
    let mut lattice = TestLattice::start("sigterm").await.unwrap();
    lattice.start_provider(SQLITE).await.unwrap();
    lattice.start_component("http-hello", "hello", 1).await.unwrap();
    lattice.nats.kill();
    // Let the host notice the connection is gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    lattice.host.terminate().unwrap();
    let status = lattice.host.wait_exit(Duration::from_secs(30));
    let took = asked.elapsed();
    assert!(status.is_some(), "still running 30 s after SIGTERM:\n{}", lattice.host.log());
    // The drain timeout is 10 s; an idle host has nothing to drain.
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?} with NATS down:\n{}",
        lattice.host.log()
    );
}
