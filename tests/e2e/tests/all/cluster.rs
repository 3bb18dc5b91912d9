//! The lattice across machines: `deploy/local-cluster.sh` makes three
//! network-namespace machines, each with a clustered nats-server (the
//! configs in `deploy/nats/`) and a host, wadm on two of them, and an edge
//! machine behind a leaf node. prod.yaml is deployed through the third
//! server; then a machine dies, one is cut off and comes back, and the
//! edge serves a call from the hub. Skips itself where namespaces cannot
//! be made.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use trellis_e2e::Signer;
use trellis_e2e::app::increment;
use trellis_e2e::cluster::LocalCluster;

use crate::common::redis_count;
use trellis_lattice::client::CtlClient;
use wadm::api::WadmClient;

/// wadm's host timeout in this test.
const HOST_TIMEOUT: Duration = Duration::from_secs(5);

/// The clients a test watches the lattice with.
struct Watch {
    ctl: CtlClient,
    wadm: WadmClient,
}

impl Watch {
    async fn new(cluster: &LocalCluster) -> Self {
        let nats = cluster.operator().await.unwrap();
        Watch {
            // Hosts in these namespaces answer a ping within milliseconds;
            // a short window keeps the test's own polling from blurring
            // the times it measures.
            ctl: CtlClient::new(nats.clone(), "default")
                .unwrap()
                .with_timeout(Duration::from_secs(2))
                .with_gather_window(Duration::from_millis(300)),
            wadm: WadmClient::new(nats, "default", Duration::from_secs(2)),
        }
    }

    /// The app's status word and reasons.
    async fn status(&self) -> (String, Vec<String>) {
        match self.wadm.status("kv-counter").await {
            Ok(report) => (
                report.status.status.as_str().to_owned(),
                report.status.reasons,
            ),
            Err(err) => (format!("unreachable: {err}"), Vec::new()),
        }
    }

    /// Per machine label: (kv-counter instances, http-server processes,
    /// keyvalue-redis processes), from every answering host's inventory.
    async fn placement(&self) -> BTreeMap<String, (u32, u32, u32)> {
        let mut seen = BTreeMap::new();
        for inventory in self.ctl.get_hosts_inventories().await.unwrap_or_default() {
            let machine = inventory.labels.get("machine").cloned().unwrap_or_default();
            let counter = inventory
                .components
                .iter()
                .filter(|c| c.id == "kv-counter")
                .map(|c| c.max_instances)
                .sum();
            let provider = |id: &str| {
                u32::try_from(inventory.providers.iter().filter(|p| p.id == id).count())
                    .unwrap_or(u32::MAX)
            };
            seen.insert(
                machine,
                (counter, provider("http-server"), provider("keyvalue-redis")),
            );
        }
        seen
    }

    /// How long until the app is `deployed` and placed as the spread says.
    async fn converged(&self, within: Duration, what: &str, cluster: &LocalCluster) -> Duration {
        let started = Instant::now();
        loop {
            let (word, reasons) = self.status().await;
            let placed = self.placement().await;
            if word == "deployed" && matches_spread(&placed) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "{what}: not converged within {within:?}: {word} {reasons:?} {placed:?}\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether the placement is exactly the spread: 64 counter instances over
/// the hub, one http-server on m1, one keyvalue-redis.
fn matches_spread(placed: &BTreeMap<String, (u32, u32, u32)>) -> bool {
    let counters: u32 = placed.values().map(|p| p.0).sum();
    let http: u32 = placed.values().map(|p| p.1).sum();
    let redis: u32 = placed.values().map(|p| p.2).sum();
    counters == 64 && http == 1 && redis == 1 && placed.get("m1").is_some_and(|p| p.1 == 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lattice_across_three_machines_survives_a_dead_machine_and_a_partition() {
    let signer = Signer::new().unwrap();
    let Some(cluster) = LocalCluster::up(true, &signer.issuer(), HOST_TIMEOUT.as_secs()).unwrap()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = cluster.prod_manifest(&signer, dir.path()).unwrap();

    // Deployed through the third server only.
    let deployed = cluster
        .wash_via(
            &cluster.urls(&["3"]),
            &["app", "deploy", manifest.to_str().unwrap(), "--wait"],
        )
        .unwrap();
    assert!(
        deployed.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&deployed.stdout),
        String::from_utf8_lossy(&deployed.stderr),
        cluster.logs()
    );
    let watch = Watch::new(&cluster).await;
    watch
        .converged(Duration::from_secs(60), "first deploy", &cluster)
        .await;
    // The counter answers through the host on the first machine.
    let url = format!("http://{}:8080/", cluster.addr("1"));
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked < 20 {
        match increment(&url).await {
            Ok(value) => {
                assert_eq!(value, acked + 1);
                acked = value;
            }
            Err(err) => {
                assert!(
                    Instant::now() < deadline,
                    "the counter never answered: {err}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    // kill -9 of a machine's nats-server and host: the one running the
    // Redis provider, unless that is machine 1 (the HTTP entry point);
    // else one running counter instances. Its share must move.
    let placed = watch.placement().await;
    let share = |m: &str| placed.get(&format!("m{m}")).copied().unwrap_or_default();
    let victim = ["2", "3"]
        .into_iter()
        .find(|m| share(m).2 == 1)
        .or_else(|| ["2", "3"].into_iter().find(|m| share(m).0 > 0))
        .unwrap_or_else(|| panic!("machines 2 and 3 run nothing: {placed:?}"));
    cluster.run(&["kill", victim]).unwrap();
    let killed = Instant::now();
    // Keep counting through the outage: every answer is a new count.
    // Recovered once the hosts that answer run exactly the spread again.
    // The counting runs beside the watching, so a call that waits on the
    // dead machine does not delay the moment recovery is seen.
    let recovered_flag = std::sync::atomic::AtomicBool::new(false);
    let recovery = async {
        loop {
            let placed = watch.placement().await;
            let gone = !placed.contains_key(&format!("m{victim}"));
            if gone && matches_spread(&placed) && watch.status().await.0 == "deployed" {
                recovered_flag.store(true, std::sync::atomic::Ordering::Relaxed);
                return killed.elapsed();
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "not deployed again after machine {victim} died: {placed:?}\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let counting = async {
        let mut acked = acked;
        while !recovered_flag.load(std::sync::atomic::Ordering::Relaxed) {
            match increment(&url).await {
                Ok(value) => {
                    assert!(value > acked, "count went from {acked} to {value}");
                    acked = value;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        acked
    };
    let (recovered, counted) = tokio::join!(recovery, counting);
    acked = counted;
    println!("machine {victim} killed: deployed again after {recovered:?}");
    assert!(
        recovered <= HOST_TIMEOUT + Duration::from_secs(2),
        "deployed again only after {recovered:?}\n{}",
        cluster.logs()
    );
    // The lattice KV works with one server down: named config is written
    // to and read back from CONFIGDATA through the surviving servers.
    cluster
        .wash(&["config", "put", "outage-check", "written=during-the-outage"])
        .unwrap();
    let read = cluster.wash(&["config", "get", "outage-check"]).unwrap();
    assert!(read.contains("during-the-outage"), "{read}");
    let next = increment(&url).await.unwrap();
    assert!(next > acked);
    acked = next;
    // No acknowledged increment is lost: Redis holds at least every one.
    let stored = redis_count(&cluster.redis_url());
    assert!(
        stored >= acked,
        "Redis has {stored}, {acked} were acknowledged"
    );
    cluster.run(&["restart", victim]).unwrap();
    watch
        .converged(Duration::from_secs(60), "after the restart", &cluster)
        .await;

    // Partition machine 3 for 10 s, then heal it: the state converges to
    // the spread, with no extra instances.
    cluster.run(&["partition", "3"]).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    cluster.run(&["heal", "3"]).unwrap();
    let healed = Instant::now();
    // Converged counts only once machine 3 answers again with whatever it
    // kept running while cut off.
    let back = |placed: &BTreeMap<String, (u32, u32, u32)>| placed.len() == 4;
    while !back(&watch.placement().await) {
        assert!(
            healed.elapsed() < Duration::from_secs(30),
            "machine 3 never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    watch
        .converged(Duration::from_secs(60), "after the partition", &cluster)
        .await;
    println!(
        "machine 3 partitioned for 10 s: converged {:?} after healing",
        healed.elapsed()
    );
    // And stays so. A sample in which some host's answer missed the
    // gather window (a loaded machine) says nothing and is skipped.
    let mut complete = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while complete < 10 {
        let placed = watch.placement().await;
        if back(&placed) {
            assert!(
                matches_spread(&placed),
                "{placed:?}, {:?} after healing\n{}",
                healed.elapsed(),
                cluster.logs()
            );
            complete += 1;
        }
        assert!(Instant::now() < deadline, "too few complete samples");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The Redis behind the counter was across the partition too: its
    // client reconnects with backoff, so the first calls after healing may
    // time out. Recovery is bounded, and nothing acknowledged is lost.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        match increment(&url).await {
            Ok(n) => break n,
            Err(err) if Instant::now() < deadline => {
                println!("after healing, still recovering: {err}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => panic!("the counter did not recover within 30 s of healing: {err}"),
        }
    };
    assert!(after > acked);

    // A host behind a leaf node serves a call from the hub.
    let hello = trellis_e2e::file_url(&signer.sign_example("http-hello").unwrap());
    let hello = hello.trim_start_matches("file://").to_owned();
    cluster
        .wash(&[
            "start",
            "component",
            &hello,
            "edge-hello",
            "--constraint",
            "site=edge",
        ])
        .unwrap();
    let edge_host = watch.placement().await;
    assert!(edge_host.contains_key("medge"), "{edge_host:?}");
    let answer = cluster
        .wash_via(
            &cluster.urls(&["1"]),
            &["call", "edge-hello", "wasi:http/incoming-handler.handle"],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&answer.stdout);
    assert!(
        answer.status.success() && text.contains("Hello"),
        "{text}{}\n{}",
        String::from_utf8_lossy(&answer.stderr),
        cluster.logs()
    );
}
