//! Throughput and latency of the kv-counter app, printed as a table, with
//! signed invocations checked (the default) and, as the baseline measured
//! in the same run, with `--insecure-unsigned-invocations`.
//!
//! Every request takes the whole path a user's would: HTTP over loopback
//! TCP to the http-server provider, a NATS call to the host running
//! kv-counter, and from the component's `atomics.increment` a NATS call to
//! the keyvalue provider, which commits to SQLite (a file in a temp dir,
//! WAL) or Redis (a private redis-server). With the check on, the host
//! proves that last call and the provider checks it: signed with the
//! host's cluster key the first time, sealed with the key the two then
//! share after that. All
//! processes are release builds on one machine: two lattices (NATS, a host,
//! three providers each), Redis and this client. Rows of the two lattices
//! alternate, so drift in the machine's speed hits both alike.
//!
//! Run with `cargo bench -p trellis-e2e --bench counter`.
//! `TRELLIS_BENCH_REQUESTS` sets the requests per row (default 2000).

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use trellis_e2e::app::{HTTP, REDIS, SQLITE, TestLattice};
use trellis_e2e::load::{Sample, load, requests_per_row};
use trellis_test_support::RedisServer;

const CONCURRENCY: [usize; 3] = [1, 16, 64];
const WARMUP: usize = 200;

struct Row {
    backend: &'static str,
    check: &'static str,
    concurrency: usize,
    sample: Sample,
}

impl Row {
    fn rate(&self) -> f64 {
        self.sample.rate()
    }

    fn print(&self) {
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
        println!(
            "| {:<7} | {:<5} | {:>11} | {:>8} | {:>6} | {:>8.0} | {:>6} | {:>6} |",
            self.backend,
            self.check,
            self.concurrency,
            self.sample.latencies.len(),
            self.sample.errors,
            self.rate(),
            ms(self.sample.percentile(0.5)),
            ms(self.sample.percentile(0.99)),
        );
    }
}

/// One lattice with the three providers, both stores configured, and the
/// counter app; returns it with the counter's URL.
async fn counter_lattice(
    name: &str,
    host_args: &[&str],
    redis: &RedisServer,
) -> (TestLattice, String) {
    let lattice = TestLattice::start_with(name, host_args).await.unwrap();
    for provider in [SQLITE, REDIS, HTTP] {
        lattice.start_provider(provider).await.unwrap();
    }
    let db = lattice.dir.path().join("bench.sqlite3");
    lattice
        .config("bench-sqlite", &[("path", db.to_str().unwrap())])
        .await
        .unwrap();
    // Both lattices increment the same Redis key; atomically, so that is fine.
    lattice
        .config("bench-redis", &[("url", &redis.url())])
        .await
        .unwrap();
    let max = *CONCURRENCY.iter().max().unwrap() as u32;
    let url = lattice
        .counter_app(SQLITE.0, "bench-sqlite", max)
        .await
        .unwrap();
    (lattice, url)
}

#[tokio::main]
async fn main() {
    let total = requests_per_row();
    eprintln!("building and starting Redis and two lattices (NATS, a host, three providers)…");
    let redis = RedisServer::start().unwrap();
    let lattices = [
        ("on", counter_lattice("bench-signed", &[], &redis).await),
        (
            "off",
            counter_lattice(
                "bench-unsigned",
                &["--insecure-unsigned-invocations"],
                &redis,
            )
            .await,
        ),
    ];

    let mut rows = Vec::new();
    for (backend, provider, config) in [
        ("sqlite", SQLITE.0, "bench-sqlite"),
        ("redis", REDIS.0, "bench-redis"),
    ] {
        for (_, (lattice, _)) in &lattices {
            lattice.link_counter_store(provider, config).await.unwrap();
        }
        // Let every host and provider see the link before measuring.
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (_, (_, url)) in &lattices {
            load(url, WARMUP, 8).await;
        }
        for concurrency in CONCURRENCY {
            for (check, (_, url)) in &lattices {
                let sample = load(url, total, concurrency).await;
                rows.push(Row {
                    backend,
                    check,
                    concurrency,
                    sample,
                });
            }
        }
    }

    println!();
    println!("kv-counter: HTTP GET → http-server → host → keyvalue provider (atomics.increment)");
    println!(
        "check: invocations proven by the host (signed once, then sealed) and checked by the provider"
    );
    println!("| backend | check | concurrency | requests | errors |    req/s | p50 ms | p99 ms |");
    println!("|---------|-------|-------------|----------|--------|----------|--------|--------|");
    for row in &rows {
        row.print();
    }
    println!();
    println!("req/s with the check on, relative to off (1.00 = no cost; the target is ≥ 0.90)");
    println!("| backend | concurrency | on/off |");
    println!("|---------|-------------|--------|");
    for pair in rows.chunks(2) {
        let [on, off] = pair else { continue };
        println!(
            "| {:<7} | {:>11} | {:>6.2} |",
            on.backend,
            on.concurrency,
            on.rate() / off.rate()
        );
    }
}
