//! wasmCloud's own control-interface client (wasmcloud-control-interface
//! 3.x) drives a Trellis host: field names and subjects are compatible.

use std::time::Duration;

use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice};
use trellis_test_support::NatsServer;
use wasmcloud_control_interface::{ClientBuilder, Link};

#[tokio::test(flavor = "multi_thread")]
async fn the_wasmcloud_client_pings_scales_and_links() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("compat");
    let signer = Signer::new().unwrap();
    let hello = file_url(&signer.sign_example("http-hello").unwrap());
    let host = HostProcess::start(&nats.url(), &lattice, &["--label", "team=compat"]).unwrap();

    let nc = async_nats_wasmcloud::connect(nats.url()).await.unwrap();
    let client = ClientBuilder::new(nc)
        .lattice(lattice.as_str())
        .timeout(Duration::from_secs(30))
        .build();

    let hosts = client.get_hosts().await.unwrap();
    assert_eq!(hosts.len(), 1);
    let listed = hosts[0].data().unwrap();
    assert_eq!(listed.id(), host.id());
    assert_eq!(
        listed.labels().get("team").map(String::as_str),
        Some("compat")
    );

    let inventory = client.get_host_inventory(host.id()).await.unwrap();
    assert!(inventory.succeeded(), "{}", inventory.message());
    assert!(inventory.data().unwrap().components().is_empty());

    let scaled = client
        .scale_component(host.id(), &hello, "hello", 2, None, vec![], false)
        .await
        .unwrap();
    assert!(scaled.succeeded(), "{}", scaled.message());
    let inventory = client.get_host_inventory(host.id()).await.unwrap();
    let components = inventory.data().unwrap().components();
    assert_eq!(components.len(), 1);
    assert_eq!(components[0].id(), "hello");
    assert_eq!(components[0].max_instances(), 2);

    let link = Link::builder()
        .source_id("hello")
        .target("kv")
        .name("default")
        .wit_namespace("wasi")
        .wit_package("keyvalue")
        .interfaces(vec!["store".into(), "atomics".into()])
        .build()
        .unwrap();
    let put = client.put_link(link).await.unwrap();
    assert!(put.succeeded(), "{}", put.message());
    let links = client.get_links().await.unwrap();
    let links = links.data().unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].source_id(), "hello");
    assert_eq!(links[0].target(), "kv");
    assert_eq!(
        links[0].interfaces(),
        &vec!["store".to_string(), "atomics".to_string()]
    );
}
