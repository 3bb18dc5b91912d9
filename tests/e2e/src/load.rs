//! Load for the benchmarks: many GETs of the counter, and their latencies.

use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::app::increment;

/// Requests per benchmark row: `TRELLIS_BENCH_REQUESTS`, else 2000.
pub fn requests_per_row() -> usize {
    std::env::var("TRELLIS_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// What one run of [`load`] measured.
pub struct Sample {
    /// Latency of each successful request.
    pub latencies: Vec<Duration>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Requests that failed.
    pub errors: usize,
}

impl Sample {
    /// The `p` quantile (0.5 is the median) of the latencies.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let at = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[at.min(sorted.len() - 1)]
    }

    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Sends `total` counter requests to `url` with `concurrency` in flight.
pub async fn load(url: &str, total: usize, concurrency: usize) -> Sample {
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
    Sample {
        latencies: results.into_iter().flatten().collect(),
        elapsed,
        errors,
    }
}
