//! The wadm lease against a private nats-server.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use chrono::{DateTime, Utc};
use trellis_lattice::client::Replicas;
use trellis_test_support::NatsServer;
use wadm::io::{LeaseEntry, LeaseIo};
use wadm::lease::{Lease, open_bucket};
use wadm::store::StoreError;

async fn bucket(nats: &NatsServer) -> kv::Store {
    let client = async_nats::connect(nats.url()).await.unwrap();
    open_bucket(&jetstream::new(client), "test", Replicas::Auto)
        .await
        .unwrap()
}

/// The lease bucket seen by a process whose wall clock is `skew` off.
struct Skewed<'a> {
    bucket: &'a kv::Store,
    skew: chrono::Duration,
}

impl LeaseIo for Skewed<'_> {
    fn wall_clock(&self) -> DateTime<Utc> {
        Utc::now() + self.skew
    }

    async fn lease_entry(&self) -> Result<Option<LeaseEntry>, StoreError> {
        self.bucket.lease_entry().await
    }

    async fn lease_write(&self, value: Vec<u8>, expected: Option<u64>) -> Result<bool, StoreError> {
        self.bucket.lease_write(value, expected).await
    }
}

#[tokio::test]
async fn one_holder_at_a_time_and_another_takes_over_once_it_stops_renewing() {
    let nats = NatsServer::start().unwrap();
    let bucket = bucket(&nats).await;
    let ttl = Duration::from_millis(800);
    let mut first = Lease::new("first".into(), ttl);
    let mut second = Lease::new("second".into(), ttl);

    assert!(first.acquire(&bucket).await.unwrap());
    assert!(first.is_held());
    assert!(!second.acquire(&bucket).await.unwrap());
    assert!(!second.is_held());

    // Renewing keeps it.
    tokio::time::sleep(ttl / 2).await;
    assert!(first.acquire(&bucket).await.unwrap());
    tokio::time::sleep(ttl / 2).await;
    assert!(!second.acquire(&bucket).await.unwrap());

    // The holder stops renewing: once the other has seen the same record
    // for a lease time, the holder's time is up and the other takes it.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(!first.is_held());
    assert!(second.acquire(&bucket).await.unwrap());
    assert!(!first.acquire(&bucket).await.unwrap());
}

#[tokio::test]
async fn a_wadm_whose_clock_runs_ahead_does_not_take_a_held_lease() {
    let nats = NatsServer::start().unwrap();
    let bucket = bucket(&nats).await;
    let ttl = Duration::from_millis(800);
    let mut holder = Lease::new("holder".into(), ttl);
    let mut ahead = Lease::new("ahead".into(), ttl);
    // A minute ahead: by its clock, the holder's record ran out long ago.
    let skewed = Skewed {
        bucket: &bucket,
        skew: chrono::Duration::minutes(1),
    };
    assert!(holder.acquire(&bucket).await.unwrap());
    for _ in 0..6 {
        assert!(!ahead.acquire(&skewed).await.unwrap());
        assert!(holder.is_held());
        tokio::time::sleep(ttl / 4).await;
        assert!(holder.acquire(&bucket).await.unwrap());
    }
    // Nor does one whose clock runs behind.
    let mut behind = Lease::new("behind".into(), ttl);
    let slow = Skewed {
        bucket: &bucket,
        skew: chrono::Duration::minutes(-1),
    };
    assert!(!behind.acquire(&slow).await.unwrap());
    assert!(holder.acquire(&bucket).await.unwrap());
}

#[tokio::test]
async fn a_wadm_started_after_the_holder_died_waits_one_lease_time() {
    let nats = NatsServer::start().unwrap();
    let bucket = bucket(&nats).await;
    let ttl = Duration::from_millis(600);
    let mut dead = Lease::new("dead".into(), ttl);
    assert!(dead.acquire(&bucket).await.unwrap());
    drop(dead);
    tokio::time::sleep(ttl * 2).await;
    // Its record is there, long run out by every clock; a newcomer cannot
    // tell a dead holder from one whose clock is behind, so it waits.
    let mut newcomer = Lease::new("newcomer".into(), ttl);
    assert!(!newcomer.acquire(&bucket).await.unwrap());
    tokio::time::sleep(ttl / 2).await;
    assert!(!newcomer.acquire(&bucket).await.unwrap());
    tokio::time::sleep(ttl / 2 + Duration::from_millis(50)).await;
    assert!(newcomer.acquire(&bucket).await.unwrap());
}

#[tokio::test]
async fn racing_acquirers_never_both_win() {
    let nats = NatsServer::start().unwrap();
    let bucket = bucket(&nats).await;
    let ttl = Duration::from_secs(30);
    let mut leases: Vec<Lease> = (0..4)
        .map(|n| Lease::new(format!("wadm-{n}"), ttl))
        .collect();
    let results =
        futures::future::join_all(leases.iter_mut().map(|lease| lease.acquire(&bucket))).await;
    let winners = results.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(winners, 1);
}
