//! Throughput and latency of the kv-counter app, printed as a table.
//!
//! Every request takes the whole path a user's would: HTTP over loopback
//! TCP to the http-server provider, a NATS call to the host running
//! kv-counter, and from the component's `atomics.increment` a NATS call to
//! the keyvalue provider, which commits to SQLite (a file in a temp dir,
//! WAL) or Redis (a private redis-server). All processes are release builds
//! on one machine: NATS, the host, three providers and this client.
//!
//! Run with `cargo bench -p trellis-e2e`. `TRELLIS_BENCH_REQUESTS` sets the
//! requests per row (default 2000).

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use trellis_e2e::app::{HTTP, REDIS, SQLITE, TestLattice, increment};
use trellis_test_support::RedisServer;

const CONCURRENCY: [usize; 3] = [1, 16, 64];
const WARMUP: usize = 200;

struct Row {
    backend: &'static str,
    concurrency: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
}

impl Row {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
    }

    fn print(&self) {
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
        println!(
            "| {:<7} | {:>11} | {:>8} | {:>6} | {:>10.0} | {:>7} | {:>7} |",
            self.backend,
            self.concurrency,
            self.latencies.len(),
            self.errors,
            self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            ms(self.percentile(0.5)),
            ms(self.percentile(0.99)),
        );
    }
}

/// Sends `total` requests with `concurrency` in flight at a time.
async fn load(url: &str, total: usize, concurrency: usize) -> (Vec<Duration>, Duration, usize) {
    let started = Instant::now();
    let results: Vec<Result<Duration, String>> = futures::stream::iter(0..total)
        .map(|_| async {
            let t = Instant::now();
            increment(url).await.map(|_| t.elapsed())
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let errors = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(first)) = results.iter().find(|r| r.is_err()) {
        eprintln!("{errors} requests failed; the first: {first}");
    }
    (results.into_iter().flatten().collect(), elapsed, errors)
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("TRELLIS_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    eprintln!("building and starting NATS, Redis, a host and three providers…");
    let lattice = TestLattice::start("bench").await.unwrap();
    let redis = RedisServer::start().unwrap();
    for provider in [SQLITE, REDIS, HTTP] {
        lattice.start_provider(provider).await.unwrap();
    }
    let db = lattice.dir.path().join("bench.sqlite3");
    lattice
        .config("bench-sqlite", &[("path", db.to_str().unwrap())])
        .await
        .unwrap();
    lattice
        .config("bench-redis", &[("url", &redis.url())])
        .await
        .unwrap();
    let max = *CONCURRENCY.iter().max().unwrap() as u32;
    let url = lattice
        .counter_app(SQLITE.0, "bench-sqlite", max)
        .await
        .unwrap();

    let mut rows = Vec::new();
    for (backend, provider, config) in [
        ("sqlite", SQLITE.0, "bench-sqlite"),
        ("redis", REDIS.0, "bench-redis"),
    ] {
        lattice.link_counter_store(provider, config).await.unwrap();
        // Let every host and provider see the link before measuring.
        tokio::time::sleep(Duration::from_secs(1)).await;
        load(&url, WARMUP, 8).await;
        for concurrency in CONCURRENCY {
            let (latencies, elapsed, errors) = load(&url, total, concurrency).await;
            rows.push(Row {
                backend,
                concurrency,
                latencies,
                elapsed,
                errors,
            });
        }
    }

    println!();
    println!("kv-counter: HTTP GET → http-server → host → keyvalue provider (atomics.increment)");
    println!("| backend | concurrency | requests | errors |    req/s | p50 ms | p99 ms |");
    println!("|---------|-------------|----------|--------|----------|--------|--------|");
    for row in &rows {
        row.print();
    }
}
