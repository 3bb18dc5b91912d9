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

/// The signed `kv-select` example running as `kv-select` behind
/// http-server, reading config `select-config`, with keyvalue links
/// `default` and `cache` to keyvalue-sqlite (one database each), all put
/// with wash. Returns the lattice and the URL once it answers.
async fn kv_select(greeting: &str) -> (trellis_e2e::app::TestLattice, String) {
    use trellis_e2e::app::{HTTP, LinkConfig, SQLITE, TestLattice};
    let lattice = TestLattice::start("builtins").await.unwrap();
    let wash = |args: &[&str]| {
        trellis_e2e::wash_ok(&lattice.nats.url(), lattice.ctl.lattice(), args)
            .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", lattice.host.log()))
    };
    lattice.start_provider(SQLITE).await.unwrap();
    lattice.start_provider(HTTP).await.unwrap();
    wash(&[
        "config",
        "put",
        "select-config",
        &format!("greeting={greeting}"),
    ]);
    let image = lattice.signer.sign_example("kv-select").unwrap();
    wash(&[
        "start",
        "component",
        image.to_str().unwrap(),
        "kv-select",
        "--config",
        "select-config",
        "--max-instances",
        "4",
    ]);
    for name in ["default", "cache"] {
        wash(&[
            "link",
            "put",
            "kv-select",
            SQLITE.0,
            "wasi",
            "keyvalue",
            "--interface",
            "store",
            "--interface",
            "atomics",
            "--link-name",
            name,
        ]);
    }
    let address = format!("127.0.0.1:{}", trellis_test_support::free_port().unwrap());
    lattice
        .config("select-http", &[("address", &address)])
        .await
        .unwrap();
    lattice
        .link(
            HTTP.0,
            "kv-select",
            ("wasi", "http", &["incoming-handler"]),
            LinkConfig::Source("select-http"),
        )
        .await
        .unwrap();
    let url = format!("http://{address}/");
    lattice
        .wait_until_ok(&url, Duration::from_secs(60))
        .await
        .unwrap();
    (lattice, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn set_link_name_config_and_logging_are_served_by_every_host() {
    use trellis_e2e::app::get;
    let (lattice, url) = kv_select("hello from config").await;
    let answer = |path: &str| {
        let url = format!("{url}{path}");
        async move { get(&url).await.unwrap() }
    };

    // `wait_until_ok` counted once on `default`.
    assert_eq!(
        answer("").await,
        (200, "hello from config 2 on link `default`\n".into())
    );
    // set-link-name sends this request's keyvalue calls by the second link,
    // whose store counts from nothing; the next plain request is back on
    // `default`.
    assert_eq!(
        answer("?link=cache").await,
        (200, "hello from config 1 on link `cache`\n".into())
    );
    assert_eq!(
        answer("?link=cache").await,
        (200, "hello from config 2 on link `cache`\n".into())
    );
    assert_eq!(
        answer("").await,
        (200, "hello from config 3 on link `default`\n".into())
    );
    // A link name with no link is refused, naming it; nothing is counted.
    let (status, body) = answer("?link=nosuch").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("no link named `nosuch`"), "{body}");
    assert!(body.contains("--link-name nosuch"), "{body}");
    // wasi:logging lines reach the host's log under the component's id.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !lattice.host.log().contains("counted 2 on link `cache`") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            lattice.host.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = lattice.host.log();
    let line = log
        .lines()
        .find(|l| l.contains("counted 2 on link `cache`"))
        .unwrap();
    assert!(line.contains("kv-select"), "{line}");

    // A config put through wash reaches the running component.
    trellis_e2e::wash_ok(
        &lattice.nats.url(),
        lattice.ctl.lattice(),
        &["config", "put", "select-config", "greeting=changed"],
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = answer("").await;
        if body.starts_with("changed ") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_importing_bus_1_and_config_draft_starts() {
    // The imports of a wasmCloud 1.x component (wasmcloud:bus 1.0.0 with
    // its owned handles, wasi:config/store 0.2.0-draft), and nothing else.
    let wasm = wat::parse_str(
        r#"(component
            (import "wasmcloud:bus/lattice@1.0.0" (instance
                (export "call-target-interface" (type (sub resource)))
                (export "[constructor]call-target-interface"
                    (func (param "namespace" string) (param "package" string)
                          (param "interface" string) (result (own 0))))
                (export "set-link-name"
                    (func (param "name" string) (param "interfaces" (list (own 0)))))
            ))
            (import "wasi:config/store@0.2.0-draft" (instance
                (type (variant (case "upstream" string) (case "io" string)))
                (export "error" (type (eq 0)))
                (export "get" (func (param "key" string) (result (result (option string) (error 1)))))
                (export "get-all" (func (result (result (list (tuple string string)) (error 1)))))
            ))
        )"#,
    )
    .unwrap();
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("bus1");
    let signer = Signer::new().unwrap();
    let image = file_url(
        &signer
            .sign_bytes("bus-one", &wasm, Default::default())
            .unwrap(),
    );
    let host = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let started = trellis_e2e::wash_ok(
        &nats.url(),
        &lattice,
        &["start", "component", &image, "bus-one"],
    );
    assert!(started.is_ok(), "{started:?}\n{}", host.log());
}

/// A component in a second language: JavaScript, built from source with
/// componentize-js (StarlingMonkey inside), signed like any other, served
/// behind the http-server. Its imports are wasi 0.2.10, which hosts link
/// as they link every 0.2.x.
#[tokio::test(flavor = "multi_thread")]
async fn a_javascript_component_built_with_componentize_js_answers_over_http() {
    use trellis_e2e::app::{HTTP, LinkConfig, TestLattice};
    let wasm = std::fs::read(trellis_test_support::example_js_component().unwrap()).unwrap();
    let lattice = TestLattice::start("js").await.unwrap();
    lattice.start_provider(HTTP).await.unwrap();
    let image = lattice
        .signer
        .sign_bytes("http-hello-js", &wasm, Default::default())
        .unwrap();
    lattice
        .ctl
        .scale_component(&trellis_lattice::ctl::ScaleComponentCommand {
            component_id: "hello-js".into(),
            component_ref: file_url(&image),
            max_instances: 4,
            host_id: lattice.host.id().into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\nhost log:\n{}", lattice.host.log()));
    let address = format!("127.0.0.1:{}", trellis_test_support::free_port().unwrap());
    lattice
        .config("js-http", &[("address", &address)])
        .await
        .unwrap();
    lattice
        .link(
            HTTP.0,
            "hello-js",
            ("wasi", "http", &["incoming-handler"]),
            LinkConfig::Source("js-http"),
        )
        .await
        .unwrap();
    let url = format!("http://{address}/?name=Ada");
    lattice
        .wait_until_ok(&url, Duration::from_secs(60))
        .await
        .unwrap();
    // Several calls, concurrently: each gets a fresh instance.
    let calls = (0..8).map(|_| trellis_e2e::app::get(&url));
    for answer in futures::future::join_all(calls).await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, "Hello, Ada, from JavaScript\n");
    }
}
