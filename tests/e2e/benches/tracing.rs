//! What tracing costs: kv-counter's throughput with every hop exporting
//! spans over OTLP/HTTP to a collector (the test-support receiver, which
//! decodes each export), against the same app with no collector
//! configured, measured in the same run. Rows of the two lattices
//! alternate, so drift in the machine's speed hits both alike.
//!
//! Run with `cargo bench -p trellis-e2e --bench tracing`.
//! `TRELLIS_BENCH_REQUESTS` sets the requests per row (default 2000).

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use trellis_e2e::app::{HTTP, SQLITE, TestLattice};
use trellis_e2e::load::{Sample, load, requests_per_row};
use trellis_test_support::OtlpReceiver;

const CONCURRENCY: [usize; 2] = [1, 16];
const WARMUP: usize = 200;

/// A lattice running the counter on SQLite, with `env` for its host (and
/// so its providers); returns it with the counter's URL.
async fn counter_lattice(name: &str, env: &[(&str, &str)]) -> (TestLattice, String) {
    let lattice = TestLattice::start_with_env(name, &[], env).await.unwrap();
    for provider in [SQLITE, HTTP] {
        lattice.start_provider(provider).await.unwrap();
    }
    let db = lattice.dir.path().join("bench.sqlite3");
    lattice
        .config("bench-sqlite", &[("path", db.to_str().unwrap())])
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
    eprintln!("starting two lattices (NATS, a host, two providers), one exporting traces…");
    let collector = OtlpReceiver::start().unwrap();
    let lattices = [
        (
            "on",
            counter_lattice(
                "bench-traced",
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint())],
            )
            .await,
        ),
        ("off", counter_lattice("bench-untraced", &[]).await),
    ];
    for (_, (_, url)) in &lattices {
        load(url, WARMUP, 8).await;
    }
    let mut rows: Vec<(&str, usize, Sample)> = Vec::new();
    for concurrency in CONCURRENCY {
        for (traces, (_, url)) in &lattices {
            rows.push((traces, concurrency, load(url, total, concurrency).await));
        }
    }
    // The batch exporter sends every 5 s by default; let the last go out.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    println!();
    println!("kv-counter on SQLite: HTTP GET → http-server → host → keyvalue-sqlite");
    println!("traces: every hop exports its span over OTLP/HTTP (batched), or none is configured");
    println!("| traces | concurrency | requests | errors |    req/s | p50 ms | p99 ms |");
    println!("|--------|-------------|----------|--------|----------|--------|--------|");
    for (traces, concurrency, sample) in &rows {
        println!(
            "| {:<6} | {:>11} | {:>8} | {:>6} | {:>8.0} | {:>6} | {:>6} |",
            traces,
            concurrency,
            sample.latencies.len(),
            sample.errors,
            sample.rate(),
            ms(sample.percentile(0.5)),
            ms(sample.percentile(0.99)),
        );
    }
    println!();
    println!("req/s with traces exported, relative to none (1.00 = no cost)");
    println!("| concurrency | on/off |");
    println!("|-------------|--------|");
    for pair in rows.chunks(2) {
        let [(_, concurrency, on), (_, _, off)] = pair else {
            continue;
        };
        println!("| {:>11} | {:>6.2} |", concurrency, on.rate() / off.rate());
    }
    println!();
    println!("spans the collector received: {}", collector.spans().len());
}
