//! How fast wadm makes the lattice match a manifest, printed as a table.
//!
//! Three real `trellis-host` processes labelled `tier=web` and one real
//! `wadm` (host timeout 3 s, resync 2 s) on a private NATS. For 1, 10 and
//! 100 instances of the signed `http-hello` component spread over the three
//! hosts, the time from putting and deploying the manifest (what `wash app
//! deploy` does) until wadm reports `deployed` and the hosts' inventories
//! show every instance; the app is undeployed between rows. Then, with 9
//! instances running, one host is killed: the time until the app is back
//! to `deployed` with all 9 on the two hosts left, which is bounded below
//! by the host timeout.
//!
//! Run with `cargo bench -p trellis-e2e --bench wadm`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use trellis_e2e::wadm::{
    FAST_WADM_ARGS, SPREAD_APP, SPREAD_COMPONENT, WadmProcess, api_client, instance_counts,
    spread_manifest, wait_deployed,
};
use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice};
use trellis_lattice::client::CtlClient;
use trellis_test_support::NatsServer;

/// How `n` instances split over three hosts (what the planner's even spread
/// gives; the order of hosts does not matter for the check).
fn split(n: u32) -> Vec<u32> {
    let mut shares: Vec<u32> = (0..3).map(|i| n / 3 + u32::from(i < n % 3)).collect();
    shares.retain(|s| *s > 0);
    shares.sort_unstable();
    shares
}

fn sorted_counts(counts: &BTreeMap<String, u32>) -> Vec<u32> {
    let mut values: Vec<u32> = counts.values().copied().collect();
    values.sort_unstable();
    values
}

async fn wait_for_shares(ctl: &CtlClient, shares: &[u32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while sorted_counts(&instance_counts(ctl, SPREAD_COMPONENT).await) != shares {
        assert!(
            Instant::now() < deadline,
            "instances never reached {shares:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() {
    eprintln!("building and starting NATS, three hosts and wadm…");
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("wadm-bench");
    let signer = Signer::new().unwrap();
    let image = file_url(&signer.sign_example("http-hello").unwrap());
    let mut hosts: Vec<HostProcess> = (0..3)
        .map(|_| HostProcess::start(&nats.url(), &lattice, &["--label", "tier=web"]).unwrap())
        .collect();
    let wadm_process = WadmProcess::start(&nats.url(), &lattice, FAST_WADM_ARGS)
        .await
        .unwrap();
    let wadm = api_client(&nats.url(), &lattice).await.unwrap();
    let connection = async_nats::connect(nats.url()).await.unwrap();
    let ctl = CtlClient::new(connection, &lattice)
        .unwrap()
        .with_timeout(Duration::from_secs(30));
    // The first deploy also compiles the component on each host; warm the
    // compile caches so the rows measure scheduling, not compilation.
    wadm.put(&spread_manifest(&image, 3)).await.unwrap();
    wadm.deploy(SPREAD_APP, None).await.unwrap();
    wait_for_shares(&ctl, &split(3), Duration::from_secs(120)).await;
    wadm.undeploy(SPREAD_APP).await.unwrap();
    wait_for_shares(&ctl, &[], Duration::from_secs(60)).await;

    let mut rows = Vec::new();
    for instances in [1, 10, 100] {
        let manifest = spread_manifest(&image, instances)
            .replace("version: v1", &format!("version: n{instances}"));
        let started = Instant::now();
        wadm.put(&manifest).await.unwrap();
        wadm.deploy(SPREAD_APP, None).await.unwrap();
        let shares = split(instances);
        wait_for_shares(&ctl, &shares, Duration::from_secs(60)).await;
        let placed = started.elapsed();
        let deployed = loop {
            let status = wadm.status(SPREAD_APP).await.unwrap();
            if status.status.status == wadm::store::DeployStatus::Deployed {
                break started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{status:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        rows.push((format!("deploy {instances} instances"), placed, deployed));
        wadm.undeploy(SPREAD_APP).await.unwrap();
        wait_for_shares(&ctl, &[], Duration::from_secs(60)).await;
    }

    let manifest = spread_manifest(&image, 9).replace("version: v1", "version: recover");
    wadm.put(&manifest).await.unwrap();
    wadm.deploy(SPREAD_APP, None).await.unwrap();
    wait_for_shares(&ctl, &[3, 3, 3], Duration::from_secs(60)).await;
    let mut dead = hosts.remove(0);
    let killed = Instant::now();
    dead.kill();
    let survivors: BTreeMap<String, u32> = hosts.iter().map(|h| (h.id().to_owned(), 0)).collect();
    let deadline = Duration::from_secs(60);
    let placed = loop {
        let counts = instance_counts(&ctl, SPREAD_COMPONENT).await;
        let on_survivors: u32 = counts
            .iter()
            .filter(|(host, _)| survivors.contains_key(*host))
            .map(|(_, n)| n)
            .sum();
        if on_survivors == 9 {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < deadline, "never recovered: {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut shares = BTreeMap::new();
    for (host, n) in instance_counts(&ctl, SPREAD_COMPONENT).await {
        if survivors.contains_key(&host) {
            shares.insert(host, n);
        }
    }
    wait_deployed(
        &wadm,
        &ctl,
        (SPREAD_APP, SPREAD_COMPONENT),
        &shares,
        deadline,
        || wadm_process.log(),
    )
    .await
    .unwrap();
    rows.push((
        "recover 9 instances after a host is killed".into(),
        placed,
        killed.elapsed(),
    ));

    println!();
    println!("wadm: 3 hosts, host timeout 3 s, resync 2 s, http-hello spread evenly");
    println!("| what | instances placed (s) | status deployed (s) |");
    println!("|---|---|---|");
    for (what, placed, deployed) in rows {
        println!(
            "| {what} | {:.2} | {:.2} |",
            placed.as_secs_f64(),
            deployed.as_secs_f64()
        );
    }
}
