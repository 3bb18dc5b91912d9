//! How fast wadm makes the lattice match a manifest, printed as a table.
//!
//! Three real `trellis-host` processes labelled `tier=web` and one real
//! `wadm` (host timeout 3 s, resync 2 s) on a private NATS. For 1, 10, 100 and
//! 1,000 instances of the signed `http-hello` component spread over the three
//! hosts, the time from putting and deploying the manifest (what `wash app
//! deploy` does) until wadm reports `deployed` and the hosts' inventories
//! show every instance; the app is undeployed between rows. Then, with 9
//! instances running, one host is killed: the time until the app is back
//! to `deployed` with all 9 on the two hosts left, which is bounded below
//! by the host timeout.
//!
//! The baseline, measured in the same run: the same instances placed by
//! sending each host its scale command directly (`wash scale component`
//! on each host), so the ratio is what wadm's observe, plan and status
//! cost on top of the hosts' own work. Inventories are polled with a
//! 20 ms gather window, which bounds the resolution.
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
use trellis_lattice::ctl::ScaleComponentCommand;
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
    // The default 1 s gather window would be the resolution of every row.
    let ctl = CtlClient::new(connection, &lattice)
        .unwrap()
        .with_timeout(Duration::from_secs(30))
        .with_gather_window(Duration::from_millis(20));
    // The first deploy also compiles the component on each host; warm the
    // compile caches so the rows measure scheduling, not compilation.
    wadm.put(&spread_manifest(&image, 3)).await.unwrap();
    wadm.deploy(SPREAD_APP, None).await.unwrap();
    wait_for_shares(&ctl, &split(3), Duration::from_secs(120)).await;
    wadm.undeploy(SPREAD_APP).await.unwrap();
    wait_for_shares(&ctl, &[], Duration::from_secs(60)).await;

    let mut rows = Vec::new();
    for instances in [1, 10, 100, 1000] {
        let manifest = spread_manifest(&image, instances)
            .replace("version: v1", &format!("version: n{instances}"));
        let direct = direct_scale(&ctl, &hosts, &image, instances).await;
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
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        rows.push((
            format!("deploy {instances} instances"),
            placed,
            deployed,
            Some(direct),
        ));
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
        None,
    ));

    println!();
    println!("wadm: 3 hosts, host timeout 3 s, resync 2 s, http-hello spread evenly");
    println!(
        "| what | instances placed (s) | status deployed (s) | direct scale (s) | deployed / direct |"
    );
    println!("|---|---|---|---|---|");
    for (what, placed, deployed, direct) in rows {
        let (direct, ratio) = match direct {
            Some(d) => (
                format!("{:.3}", d.as_secs_f64()),
                format!("{:.1}", deployed.as_secs_f64() / d.as_secs_f64()),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {what} | {:.3} | {:.3} | {direct} | {ratio} |",
            placed.as_secs_f64(),
            deployed.as_secs_f64()
        );
    }
}

/// The baseline: `instances` placed by scale commands sent straight to the
/// hosts, as the planner would split them; the time until the inventories
/// show them. Scales them back to nothing afterwards.
async fn direct_scale(
    ctl: &CtlClient,
    hosts: &[HostProcess],
    image: &str,
    instances: u32,
) -> Duration {
    let shares = split(instances);
    let scale = |host: &HostProcess, count: u32| ScaleComponentCommand {
        component_ref: image.to_owned(),
        component_id: SPREAD_COMPONENT.to_owned(),
        max_instances: count,
        host_id: host.id().to_owned(),
        ..Default::default()
    };
    let starts: Vec<ScaleComponentCommand> = hosts
        .iter()
        .zip(&shares)
        .map(|(host, share)| scale(host, *share))
        .collect();
    let started = Instant::now();
    let sent = futures::future::join_all(starts.iter().map(|c| ctl.scale_component(c))).await;
    sent.into_iter().for_each(|r| r.unwrap());
    wait_for_shares(ctl, &shares, Duration::from_secs(60)).await;
    let took = started.elapsed();
    let stops: Vec<ScaleComponentCommand> = starts
        .iter()
        .map(|c| ScaleComponentCommand {
            max_instances: 0,
            ..c.clone()
        })
        .collect();
    let stopped = futures::future::join_all(stops.iter().map(|c| ctl.scale_component(c))).await;
    stopped.into_iter().for_each(|r| r.unwrap());
    wait_for_shares(ctl, &[], Duration::from_secs(60)).await;
    took
}
