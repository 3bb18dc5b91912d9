//! Lattices sharing one NATS server do not see each other.

use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice, wash, wash_ok};
use trellis_test_support::NatsServer;

#[tokio::test(flavor = "multi_thread")]
async fn two_lattices_on_one_nats_do_not_see_each_others_hosts_links_or_calls() {
    let nats = NatsServer::start().unwrap();
    let blue = unique_lattice("blue");
    let green = unique_lattice("green");
    let signer = Signer::new().unwrap();
    let hello = file_url(&signer.sign_example("http-hello").unwrap());
    let blue_host = HostProcess::start(&nats.url(), &blue, &[]).unwrap();
    let green_host = HostProcess::start(&nats.url(), &green, &[]).unwrap();

    let hosts: Vec<serde_json::Value> = serde_json::from_str(
        &wash_ok(&nats.url(), &blue, &["get", "hosts", "-o", "json"]).unwrap(),
    )
    .unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0]["id"], blue_host.id());

    wash_ok(
        &nats.url(),
        &blue,
        &[
            "link",
            "put",
            "hello",
            "kv",
            "wasi",
            "keyvalue",
            "--interface",
            "store",
        ],
    )
    .unwrap();
    let blue_links = wash_ok(&nats.url(), &blue, &["link", "get", "-o", "json"]).unwrap();
    let green_links = wash_ok(&nats.url(), &green, &["link", "get", "-o", "json"]).unwrap();
    assert!(blue_links.contains("keyvalue"), "{blue_links}");
    assert!(!green_links.contains("keyvalue"), "{green_links}");

    wash_ok(
        &nats.url(),
        &blue,
        &[
            "scale",
            "component",
            blue_host.id(),
            "hello",
            &hello,
            "--max-instances",
            "1",
        ],
    )
    .unwrap();
    let answer = wash_ok(
        &nats.url(),
        &blue,
        &["call", "hello", "wasi:http/incoming-handler.handle"],
    )
    .unwrap();
    assert!(answer.contains("Hello from Trellis"));
    let across = wash(
        &nats.url(),
        &green,
        &["call", "hello", "wasi:http/incoming-handler.handle"],
    )
    .unwrap();
    assert!(
        !across.status.success(),
        "a call on the green lattice reached blue's component"
    );
    drop(green_host);
}
