//! Lattice state lives in JetStream KV, not in any one host.

use trellis_e2e::{HostProcess, unique_lattice, wash_ok};
use trellis_test_support::NatsServer;

#[tokio::test(flavor = "multi_thread")]
async fn a_host_started_later_learns_links_and_config() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("state");
    let mut first = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    wash_ok(
        &nats.url(),
        &lattice,
        &[
            "link",
            "put",
            "counter",
            "kv-redis",
            "wasi",
            "keyvalue",
            "--interface",
            "store",
            "--interface",
            "atomics",
            "--target-config",
            "redis-url",
        ],
    )
    .unwrap();
    wash_ok(
        &nats.url(),
        &lattice,
        &["config", "put", "redis-url", "url=redis://127.0.0.1:6380"],
    )
    .unwrap();

    // The only host that saw those commands dies; a new one starts.
    first.kill();
    let _second = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();

    let links: Vec<serde_json::Value> = serde_json::from_str(
        &wash_ok(&nats.url(), &lattice, &["link", "get", "-o", "json"]).unwrap(),
    )
    .unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0]["source_id"], "counter");
    assert_eq!(links[0]["target"], "kv-redis");
    assert_eq!(
        links[0]["interfaces"],
        serde_json::json!(["store", "atomics"])
    );
    assert_eq!(links[0]["target_config"], serde_json::json!(["redis-url"]));

    let config: serde_json::Value = serde_json::from_str(
        &wash_ok(
            &nats.url(),
            &lattice,
            &["config", "get", "redis-url", "-o", "json"],
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(config["url"], "redis://127.0.0.1:6380", "{config}");
}
