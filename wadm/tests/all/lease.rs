//! The wadm lease against a private nats-server.

use std::time::Duration;

use async_nats::jetstream;
use trellis_lattice::client::Replicas;
use trellis_test_support::NatsServer;
use wadm::lease::Lease;

async fn lease(nats: &NatsServer, holder: &str, ttl: Duration) -> Lease {
    let client = async_nats::connect(nats.url()).await.unwrap();
    Lease::open(
        &jetstream::new(client),
        "test",
        holder.into(),
        ttl,
        Replicas::Auto,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn one_holder_at_a_time_and_another_takes_over_after_expiry() {
    let nats = NatsServer::start().unwrap();
    let ttl = Duration::from_millis(800);
    let mut first = lease(&nats, "first", ttl).await;
    let mut second = lease(&nats, "second", ttl).await;

    assert!(first.acquire().await.unwrap());
    assert!(first.is_held());
    assert!(!second.acquire().await.unwrap());
    assert!(!second.is_held());

    // Renewing keeps it.
    tokio::time::sleep(ttl / 2).await;
    assert!(first.acquire().await.unwrap());
    tokio::time::sleep(ttl / 2).await;
    assert!(!second.acquire().await.unwrap());

    // The holder stops renewing: after the lease runs out the other takes it.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(!first.is_held());
    assert!(second.acquire().await.unwrap());
    assert!(!first.acquire().await.unwrap());
}

#[tokio::test]
async fn racing_acquirers_never_both_win() {
    let nats = NatsServer::start().unwrap();
    let ttl = Duration::from_secs(30);
    let mut leases = Vec::new();
    for n in 0..4 {
        leases.push(lease(&nats, &format!("wadm-{n}"), ttl).await);
    }
    let results = futures::future::join_all(leases.iter_mut().map(|lease| lease.acquire())).await;
    let winners = results.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(winners, 1);
}
