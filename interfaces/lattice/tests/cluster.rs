//! Lattice buckets on a real 3-server NATS cluster: replicated three ways
//! by default, and still readable and writable with one server dead, with
//! no acknowledged write lost.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::{Duration, Instant};

use async_nats::jetstream;
use trellis_lattice::client::{Replicas, open_kv_bucket};
use trellis_test_support::{NatsCluster, NatsServer};

async fn connect(urls: &str) -> async_nats::Client {
    let servers: Vec<async_nats::ServerAddr> =
        urls.split(',').map(|u| u.parse().unwrap()).collect();
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(servers)
        .await
        .unwrap()
}

async fn replicas(js: &jetstream::Context, bucket: &str) -> usize {
    let mut stream = js.get_stream(format!("KV_{bucket}")).await.unwrap();
    stream.info().await.unwrap().config.num_replicas
}

/// Waits until the client has heard of the cluster's other servers: the
/// first INFO may come before the routes are up.
async fn wait_for_peers(client: &async_nats::Client, servers: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.server_info().connect_urls.len() < servers {
        assert!(Instant::now() < deadline, "{:?}", client.server_info());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_on_a_cluster_have_three_replicas_and_survive_a_dead_server() {
    let mut cluster = NatsCluster::start(3).unwrap();
    let client = connect(&cluster.urls()).await;
    wait_for_peers(&client, 3).await;
    let js = jetstream::new(client.clone());
    let store = open_kv_bucket(&js, "LATTICEDATA_test", Replicas::Auto)
        .await
        .unwrap();
    assert_eq!(replicas(&js, "LATTICEDATA_test").await, 3);
    open_kv_bucket(&js, "CONFIGDATA_test", Replicas::Exactly(1))
        .await
        .unwrap();
    assert_eq!(replicas(&js, "CONFIGDATA_test").await, 1);

    // Writes acknowledged before, during and after one server's death
    // are all there afterwards.
    let mut acked = Vec::new();
    for n in 0..300u32 {
        if n == 100 {
            cluster.kill(0);
        }
        let key = format!("k{n}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match store.put(&key, n.to_string().into()).await {
                Ok(_) => break,
                // While the client moves to another server and the stream
                // elects a new leader, a put may fail; it is not acked.
                Err(err) => {
                    assert!(
                        Instant::now() < deadline,
                        "put {key} never succeeded: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        acked.push(key);
    }
    for (n, key) in acked.iter().enumerate() {
        let value = store.get(key).await.unwrap();
        assert_eq!(value.as_deref(), Some(n.to_string().as_bytes()), "{key}");
    }

    // A bucket with one replica (made before the cluster grew) is raised.
    cluster.restart(0).unwrap();
    // It may live on the server that was dead; wait until it is back.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let back = match js.get_stream("KV_CONFIGDATA_test").await {
            Ok(mut stream) => stream.info().await.is_ok(),
            Err(_) => false,
        };
        if back {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the one-replica stream never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A raise that fails (the restarted server still catching up) is
    // logged and tried again the next time a process opens the bucket.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        open_kv_bucket(&js, "CONFIGDATA_test", Replicas::Auto)
            .await
            .unwrap();
        if replicas(&js, "CONFIGDATA_test").await == 3 {
            break;
        }
        if Instant::now() >= deadline {
            panic!(
                "the bucket was never raised to 3 replicas: {}",
                why_not_raised(&client, &js).await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the client knows of the cluster, and what a raise by hand says.
async fn why_not_raised(client: &async_nats::Client, js: &jetstream::Context) -> String {
    let known = client.server_info().connect_urls;
    let raised = match js.get_stream("KV_CONFIGDATA_test").await {
        Ok(mut stream) => match stream.info().await {
            Ok(info) => {
                let mut config = info.config.clone();
                config.num_replicas = 3;
                js.update_stream(config)
                    .await
                    .map(|_| "a raise by hand worked".to_owned())
                    .unwrap_or_else(|e| format!("a raise by hand failed: {e}"))
            }
            Err(e) => format!("no stream info: {e}"),
        },
        Err(e) => format!("no stream: {e}"),
    };
    format!("the client knows of the servers {known:?}; {raised}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lone_server_gets_one_replica() {
    let nats = NatsServer::start().unwrap();
    let client = connect(&nats.url()).await;
    let js = jetstream::new(client);
    open_kv_bucket(&js, "LATTICEDATA_one", Replicas::Auto)
        .await
        .unwrap();
    assert_eq!(replicas(&js, "LATTICEDATA_one").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_of_two_gets_one_replica() {
    let cluster = NatsCluster::start(2).unwrap();
    let client = connect(&cluster.urls()).await;
    wait_for_peers(&client, 2).await;
    let js = jetstream::new(client);
    open_kv_bucket(&js, "LATTICEDATA_two", Replicas::Auto)
        .await
        .unwrap();
    assert_eq!(replicas(&js, "LATTICEDATA_two").await, 1);
}
