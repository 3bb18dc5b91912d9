//! The reconcile loop under simulated churn (`wadm::sim`): 500 seeds in
//! five slices that run side by side, and the seeds that found bugs.
//! `cargo run -p wadm --example simulate -- --seed N` replays one with
//! its log (`RUST_LOG=wadm=debug`).

use wadm::sim;

fn seeds(range: std::ops::Range<u64>) {
    let failures: Vec<String> = range
        .filter_map(|seed| sim::run(seed).err())
        .map(|failure| failure.to_string())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn seeds_0_to_99_hold() {
    seeds(0..100);
}

#[test]
fn seeds_100_to_199_hold() {
    seeds(100..200);
}

#[test]
fn seeds_200_to_299_hold() {
    seeds(200..300);
}

#[test]
fn seeds_300_to_399_hold() {
    seeds(300..400);
}

#[test]
fn seeds_400_to_499_hold() {
    seeds(400..500);
}

// Each seed below failed before the fix it names, and fails again with
// that fix undone (checked by undoing it).

/// Seed 3: the second wadm's clock ran far enough ahead that it read the
/// first one's lease as expired and took it, while the first still acted
/// (the lease compared wall clocks).
#[test]
fn a_wadm_whose_clock_runs_ahead_never_acts_beside_the_holder() {
    sim::run(3).unwrap();
}

/// Seed 162: a ping missed a host that had just accepted work, so the
/// next pass planned from its older inventory and placed the work again.
#[test]
fn work_a_host_accepted_is_not_placed_again_when_its_ping_is_missed() {
    sim::run(162).unwrap();
}

/// Seed 207: a host restarted under its id kept, in wadm's picture, what
/// its dead process had run, so wadm "scaled it down" to more than it ran.
#[test]
fn a_restarted_host_is_planned_as_running_nothing() {
    sim::run(207).unwrap();
}

/// Seed 476: a long turn left heartbeats unread, and a host whose ping
/// answer then missed the window was taken for silent and replaced.
#[test]
fn unread_heartbeats_are_not_silence() {
    sim::run(476).unwrap();
}

/// Seed 7571: a command a host accepted just before it restarted stayed
/// "in flight" for the command timeout, so wadm did not send it to the
/// new process and the app never converged after the churn.
#[test]
fn work_sent_to_a_host_before_it_restarted_is_sent_again() {
    sim::run(7571).unwrap();
}
