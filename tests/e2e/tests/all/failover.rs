//! A host that dies and comes back: it keeps its id, wadm places its work
//! once, and a host told to stop while NATS is gone still stops in time.
//! A provider whose data is on the dead host's disk (keyvalue-sqlite) is
//! not restarted empty elsewhere; one whose data is not (keyvalue-redis)
//! moves, and loses no acknowledged increment. On a NATS cluster, a host and
//! its providers move to another server when theirs dies.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use trellis_e2e::app::{SQLITE, TestLattice, example_manifest, increment};
use trellis_e2e::wadm::{
    FAST_WADM_ARGS, SPREAD_APP, SPREAD_COMPONENT, WadmProcess, api_client, instance_counts,
    spread_manifest, wait_deployed,
};
use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice, wash_ok};
use trellis_lattice::client::Replicas;
use trellis_test_support::{NatsCluster, NatsServer, RedisServer};
use wadm::store::DeployStatus;

use crate::common::{client, redis_count};

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
    assert!(
        took < Duration::from_secs(3),
        "restart took {took:?}\n{}",
        host.log()
    );
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
    // What it ran before the crash it loaded from its compile cache.
    let log = host.log();
    assert!(
        log.contains("component loaded from the disk compile cache"),
        "{log}"
    );
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
    let err = second
        .err()
        .expect("the second host must not start")
        .to_string();
    assert!(err.contains("is in use by another running host"), "{err}");
    assert!(err.contains("--data-dir"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_nats_gone_exits_within_the_drain_timeout() {
    let mut lattice = TestLattice::start("sigterm").await.unwrap();
    lattice.start_provider(SQLITE).await.unwrap();
    lattice
        .start_component("http-hello", "hello", 1)
        .await
        .unwrap();
    lattice.nats.kill();
    // Let the host notice the connection is gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    lattice.host.terminate().unwrap();
    let status = lattice.host.wait_exit(Duration::from_secs(30));
    let took = asked.elapsed();
    assert!(
        status.is_some(),
        "still running 30 s after SIGTERM:\n{}",
        lattice.host.log()
    );
    // The drain timeout is 10 s; an idle host has nothing to drain.
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?} with NATS down:\n{}",
        lattice.host.log()
    );
}

/// The host among `hosts` running provider `id`, by index.
async fn host_running(
    ctl: &trellis_lattice::client::CtlClient,
    hosts: &[HostProcess],
    id: &str,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for inventory in ctl.get_hosts_inventories().await.unwrap_or_default() {
            if inventory.providers.iter().any(|p| p.id == id)
                && let Some(at) = hosts.iter().position(|h| h.id() == inventory.host_id)
            {
                return at;
            }
        }
        assert!(Instant::now() < deadline, "`{id}` runs on no host");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The counter app (`name`: dev or prod) deployed with `wash app deploy
/// --wait` on two hosts under wadm; returns the counter's URL, counted
/// up to `count`.
struct CounterOnTwoHosts {
    nats: NatsServer,
    lattice: String,
    hosts: Vec<HostProcess>,
    wadm: WadmProcess,
    url: String,
    _dir: tempfile::TempDir,
    // Holds the signed artifacts the manifest points at.
    _signer: Signer,
}

impl CounterOnTwoHosts {
    /// The next count, once the counter answers again (within 60 s).
    async fn next_count(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match increment(&self.url).await {
                Ok(value) => return value,
                Err(err) => {
                    assert!(
                        Instant::now() < deadline,
                        "the counter never came back: {err}\n{}",
                        self.wadm.log()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn deploy(name: &str, redis: &str, count: u64) -> Self {
        let nats = NatsServer::start().unwrap();
        let lattice = unique_lattice(name);
        let hosts = vec![
            HostProcess::start(&nats.url(), &lattice, &[]).unwrap(),
            HostProcess::start(&nats.url(), &lattice, &[]).unwrap(),
        ];
        let wadm = WadmProcess::start(&nats.url(), &lattice, FAST_WADM_ARGS)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", trellis_test_support::free_port().unwrap());
        let signer = Signer::new().unwrap();
        let manifest = example_manifest(&signer, dir.path(), name, &address, redis);
        wash_ok(
            &nats.url(),
            &lattice,
            &["app", "deploy", manifest.to_str().unwrap(), "--wait"],
        )
        .unwrap_or_else(|e| panic!("{e:#}\nwadm log:\n{}", wadm.log()));
        let url = format!("http://{address}/");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = 0;
        while last < count {
            match increment(&url).await {
                Ok(value) => {
                    assert_eq!(value, last + 1, "an increment was lost or doubled");
                    last = value;
                }
                Err(err) => {
                    assert!(
                        Instant::now() < deadline,
                        "the counter never answered: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        CounterOnTwoHosts {
            nats,
            lattice,
            hosts,
            wadm,
            url,
            _dir: dir,
            _signer: signer,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sqlite_counter_is_never_restarted_from_one_on_another_host() {
    const COUNT: u64 = 30;
    let mut app = CounterOnTwoHosts::deploy("dev", "redis://127.0.0.1:1/", COUNT).await;
    let ctl = client(&app.nats.url(), &app.lattice).await;
    let wadm = api_client(&app.nats.url(), &app.lattice).await.unwrap();
    let home = host_running(&ctl, &app.hosts, "keyvalue-sqlite").await;
    let home_id = app.hosts[home].id().to_owned();
    // wadm records where the data is within a pass or two.
    let store = {
        let js = async_nats::jetstream::new(async_nats::connect(app.nats.url()).await.unwrap());
        wadm::store::ManifestStore::open(&js, &app.lattice, Replicas::Auto)
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let homes = store.data_homes().await.unwrap();
        if homes
            .get("keyvalue-sqlite")
            .is_some_and(|h| h.host_id == home_id)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no data home recorded: {homes:?}\n{}",
            app.wadm.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    app.hosts[home].kill();
    // Past the host timeout (3 s) and a resync (2 s), with room to spare:
    // the counter must never answer a count it already gave.
    let until = Instant::now() + Duration::from_secs(10);
    let mut reason = None;
    while Instant::now() < until {
        if let Ok(value) = increment(&app.url).await {
            assert!(value > COUNT, "the counter restarted from {value}");
        }
        if let Ok(report) = wadm.status("kv-counter").await
            && report.status.status == DeployStatus::Failed
        {
            reason = report
                .status
                .reasons
                .into_iter()
                .find(|r| r.contains("keyvalue-sqlite"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reason = reason.unwrap_or_else(|| panic!("the app never failed:\n{}", app.wadm.log()));
    assert!(reason.contains(&home_id), "{reason}");
    assert!(reason.contains("keyvalue-sqlite"), "{reason}");

    // The host comes back with its data: the count goes on.
    app.hosts[home].crash_and_restart().unwrap();
    assert_eq!(app.next_count().await, COUNT + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_redis_counter_moves_to_another_host_and_keeps_its_count() {
    const COUNT: u64 = 30;
    let redis = RedisServer::start().unwrap();
    let mut app = CounterOnTwoHosts::deploy("prod", &redis.url(), COUNT).await;
    let ctl = client(&app.nats.url(), &app.lattice).await;
    let at = host_running(&ctl, &app.hosts, "keyvalue-redis").await;
    app.hosts[at].kill();
    assert_eq!(
        app.next_count().await,
        COUNT + 1,
        "an acknowledged increment was lost"
    );
    let other = &app.hosts[1 - at];
    assert_eq!(app.hosts.len(), 2);
    assert_eq!(
        host_running(&ctl, std::slice::from_ref(other), "keyvalue-redis").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_and_its_providers_move_to_another_server_when_theirs_dies() {
    let mut cluster = NatsCluster::start(3).unwrap();
    let lattice = unique_lattice("reconnect");
    // The host lists server 1 first, and hands the list to its providers.
    let host = HostProcess::start(&cluster.urls(), &lattice, &[]).unwrap();
    let operator = cluster.url(2);
    let wadm = WadmProcess::start(&operator, &lattice, FAST_WADM_ARGS)
        .await
        .unwrap();
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new().unwrap();
    let address = format!("127.0.0.1:{}", trellis_test_support::free_port().unwrap());
    let manifest = example_manifest(&signer, dir.path(), "prod", &address, &redis.url());
    wash_ok(
        &operator,
        &lattice,
        &["app", "deploy", manifest.to_str().unwrap(), "--wait"],
    )
    .unwrap_or_else(|e| panic!("{e:#}\nwadm log:\n{}", wadm.log()));
    let url = format!("http://{address}/");
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked < 10 {
        match increment(&url).await {
            Ok(value) => acked = value,
            Err(err) => {
                assert!(
                    Instant::now() < deadline,
                    "the counter never answered: {err}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    cluster.kill(0);
    let killed = Instant::now();
    let mut answered_after = None;
    while killed.elapsed() < Duration::from_secs(10) || answered_after.is_none() {
        if let Ok(value) = increment(&url).await {
            assert!(value > acked, "count went from {acked} to {value}");
            acked = value;
            answered_after.get_or_insert(killed.elapsed());
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the counter never answered after server 1 died:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("server 1 killed: the counter answered again after {answered_after:?}");
    let stored = redis_count(&redis.url());
    assert!(
        stored >= acked,
        "Redis has {stored}, {acked} were acknowledged"
    );
    // Host and providers both reconnected rather than restarting.
    let ctl = client(&operator, &lattice).await;
    let inventory = ctl.get_inventory(host.id()).await.unwrap();
    assert_eq!(inventory.providers.len(), 2, "{inventory:?}");
    assert!(host.log().contains("reconnect"), "{}", host.log());
}
