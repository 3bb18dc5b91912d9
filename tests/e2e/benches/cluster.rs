//! The counter app across three machines, next to the same app on one:
//! requests/s and p50/p99 latency, printed as a table with the ratio.
//!
//! "Three machines" are `deploy/local-cluster.sh`'s network namespaces: a
//! clustered nats-server (TLS, routes) and a host in each, wadm on two,
//! Redis on the third; requests go to the http-server on the first, the
//! counter component runs on all three and the Redis provider on one, so
//! calls cross machines and routes. "One machine" is one nats-server, one
//! host and wadm on loopback, with its own Redis. Both run prod.yaml,
//! deployed with `wash app deploy`. Needs root for the namespaces; without
//! it, only the one-machine rows print.
//!
//! Run with `cargo bench -p trellis-e2e --bench cluster`.
//! `TRELLIS_BENCH_REQUESTS` sets the requests per row (default 2000).

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use trellis_e2e::app::example_manifest;
use trellis_e2e::cluster::LocalCluster;
use trellis_e2e::load::{Sample, load, requests_per_row};
use trellis_e2e::wadm::WadmProcess;
use trellis_e2e::{HostProcess, Signer, unique_lattice, wash_ok};
use trellis_test_support::{NatsServer, RedisServer, free_port};

const CONCURRENCY: [usize; 2] = [1, 16];
const WARMUP: usize = 200;

fn print(setup: &str, concurrency: usize, sample: &Sample) {
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    println!(
        "| {setup:<14} | {concurrency:>11} | {:>8} | {:>6} | {:>8.0} | {:>6} | {:>6} |",
        sample.latencies.len(),
        sample.errors,
        sample.rate(),
        ms(sample.percentile(0.5)),
        ms(sample.percentile(0.99)),
    );
}

/// Waits until `url` counts.
async fn ready(url: &str) {
    for _ in 0..300 {
        if trellis_e2e::app::increment(url).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{url} never answered");
}

#[tokio::main]
async fn main() {
    let total = requests_per_row();
    let signer = Signer::new().unwrap();
    let dir = tempfile::tempdir().unwrap();

    eprintln!("starting one machine: NATS, a host, wadm and Redis on loopback…");
    let nats = NatsServer::start().unwrap();
    let redis = RedisServer::start().unwrap();
    let lattice = unique_lattice("bench-one");
    let _host = HostProcess::start(
        &nats.url(),
        &lattice,
        &["--allowed-issuers", &signer.issuer()],
    )
    .unwrap();
    let _wadm = WadmProcess::start(&nats.url(), &lattice, &[])
        .await
        .unwrap();
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let one_dir = dir.path().join("one");
    std::fs::create_dir_all(&one_dir).unwrap();
    let manifest = example_manifest(&signer, &one_dir, "prod", &address, &redis.url());
    wash_ok(
        &nats.url(),
        &lattice,
        &["app", "deploy", manifest.to_str().unwrap(), "--wait"],
    )
    .unwrap();
    let one_url = format!("http://{address}/");
    ready(&one_url).await;

    eprintln!("starting three machines (deploy/local-cluster.sh)…");
    let cluster = LocalCluster::up(false, &signer.issuer(), 60).unwrap();
    let three_url = match &cluster {
        Some(cluster) => {
            let manifest = cluster.prod_manifest(&signer, dir.path()).unwrap();
            let deployed = cluster
                .wash_via(
                    &cluster.urls(&["1", "2", "3"]),
                    &["app", "deploy", manifest.to_str().unwrap(), "--wait"],
                )
                .unwrap();
            assert!(deployed.status.success(), "{}", cluster.logs());
            let url = format!("http://{}:8080/", cluster.addr("1"));
            ready(&url).await;
            Some(url)
        }
        None => None,
    };

    let mut setups = vec![("one machine", one_url)];
    if let Some(url) = three_url {
        setups.push(("three machines", url));
    }
    for (_, url) in &setups {
        load(url, WARMUP, 8).await;
    }
    let mut rows = Vec::new();
    for concurrency in CONCURRENCY {
        for (setup, url) in &setups {
            rows.push((*setup, concurrency, load(url, total, concurrency).await));
        }
    }

    println!();
    println!("kv-counter on Redis (prod.yaml): HTTP → http-server → host → keyvalue-redis");
    println!("| setup          | concurrency | requests | errors |    req/s | p50 ms | p99 ms |");
    println!("|----------------|-------------|----------|--------|----------|--------|--------|");
    for (setup, concurrency, sample) in &rows {
        print(setup, *concurrency, sample);
    }
    println!();
    println!("three machines relative to one (req/s ratio; p99 ratio)");
    println!("| concurrency | req/s | p99 |");
    println!("|-------------|-------|-----|");
    for pair in rows.chunks(2) {
        let [(_, concurrency, one), (_, _, three)] = pair else {
            continue;
        };
        println!(
            "| {concurrency:>11} | {:>5.2} | {:>3.2} |",
            three.rate() / one.rate(),
            three.percentile(0.99).as_secs_f64() / one.percentile(0.99).as_secs_f64()
        );
    }
}
