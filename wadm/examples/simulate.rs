//! Runs the reconcile-loop simulation over many seeds, or replays one.
//!
//! `cargo run -p wadm --example simulate -- --seeds 10000` runs seeds
//! 0..10000; `--seed N` replays one, with wadm's logs when `RUST_LOG` is
//! set. Exits non-zero when any seed fails.

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<u64>())
    };
    let seeds = match (value("--seed"), value("--seeds")) {
        (Some(Ok(seed)), _) => seed..seed + 1,
        (None, Some(Ok(count))) => 0..count,
        (None, None) => 0..500,
        _ => {
            eprintln!("usage: simulate [--seeds COUNT | --seed SEED]");
            return ExitCode::from(2);
        }
    };
    let _telemetry = std::env::var_os("RUST_LOG").is_some().then(|| {
        trellis_telemetry::init(&trellis_telemetry::Service {
            name: "wadm-simulate",
            filter_var: "RUST_LOG",
            default_filter: "warn",
            timestamps: true,
        })
    });
    let started = Instant::now();
    let (mut failed, mut max_passes, mut handovers, mut runs) = (0u64, 0u32, 0u64, 0u64);
    for seed in seeds {
        runs += 1;
        match wadm::sim::run(seed) {
            Ok(outcome) => {
                max_passes = max_passes.max(outcome.settle_passes);
                handovers += u64::from(outcome.handovers);
            }
            Err(failure) => {
                failed += 1;
                println!("{failure}");
            }
        }
    }
    println!(
        "{runs} seeds in {:.1?}: {failed} failed; at most {max_passes} passes to settle; \
         {handovers} lease handovers",
        started.elapsed()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
