//! Hosts joining a lattice, and a signed component's life on one of them.

use std::time::Duration;

use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice, wash_ok};
use trellis_lattice::event::EventKind;
use trellis_test_support::NatsServer;

use crate::common::{client, scale_command, wait_for_event};

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_are_listed_with_their_labels() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("hosts");
    let east = HostProcess::start(&nats.url(), &lattice, &["--label", "zone=east"]).unwrap();
    let west = HostProcess::start(&nats.url(), &lattice, &["--label", "zone=west"]).unwrap();

    let out = wash_ok(&nats.url(), &lattice, &["get", "hosts", "-o", "json"]).unwrap();
    let hosts: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(hosts.len(), 2, "{out}");
    for (host, zone) in [(&east, "east"), (&west, "west")] {
        let listed = hosts
            .iter()
            .find(|h| h["id"] == host.id())
            .unwrap_or_else(|| panic!("{} missing: {out}", host.id()));
        assert_eq!(listed["labels"]["zone"], zone);
        assert_eq!(listed["labels"]["hostcore.os"], std::env::consts::OS);
        assert_eq!(listed["labels"]["hostcore.arch"], std::env::consts::ARCH);
    }

    let table = wash_ok(&nats.url(), &lattice, &["get", "hosts"]).unwrap();
    assert!(
        table.contains(east.id()) && table.contains(west.id()),
        "{table}"
    );
    assert!(table.contains("zone=east"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_component_scales_answers_calls_and_stops() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("scale");
    let signer = Signer::new().unwrap();
    let hello = file_url(&signer.sign_example("http-hello").unwrap());
    let host = HostProcess::start(
        &nats.url(),
        &lattice,
        &["--allowed-issuers", &signer.issuer()],
    )
    .unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    let mut events = ctl.subscribe_events().await.unwrap();

    wash_ok(
        &nats.url(),
        &lattice,
        &[
            "scale",
            "component",
            host.id(),
            "hello",
            &hello,
            "--max-instances",
            "3",
        ],
    )
    .unwrap();
    let scaled = wait_for_event(
        &mut events,
        EventKind::ComponentScaled,
        Duration::from_secs(30),
        |data| data["component_id"] == "hello",
    )
    .await;
    assert_eq!(scaled["max_instances"], 3);
    assert_eq!(scaled["host_id"], host.id());
    assert_eq!(scaled["claims"]["issuer"], signer.issuer());
    // Its stderr is a file here, so it carries no colour codes.
    assert!(!host.log().contains('\x1b'), "{}", host.log());

    let inventory = wash_ok(
        &nats.url(),
        &lattice,
        &["get", "inventory", host.id(), "-o", "json"],
    )
    .unwrap();
    assert!(inventory.contains("\"hello\""), "{inventory}");
    let inventory = ctl.get_inventory(host.id()).await.unwrap();
    let hello_entry = inventory
        .components
        .iter()
        .find(|c| c.id == "hello")
        .unwrap();
    assert_eq!(hello_entry.max_instances, 3);
    assert_eq!(hello_entry.name.as_deref(), Some("http-hello"));

    let answer = wash_ok(
        &nats.url(),
        &lattice,
        &["call", "hello", "wasi:http/incoming-handler.handle"],
    )
    .unwrap();
    assert!(answer.contains("Hello from Trellis"), "{answer}");

    wash_ok(
        &nats.url(),
        &lattice,
        &["stop", "component", host.id(), "hello"],
    )
    .unwrap();
    let stopped = wait_for_event(
        &mut events,
        EventKind::ComponentScaled,
        Duration::from_secs(30),
        |data| data["component_id"] == "hello" && data["max_instances"] == 0,
    )
    .await;
    assert_eq!(stopped["host_id"], host.id());
    let inventory = ctl.get_inventory(host.id()).await.unwrap();
    assert!(inventory.components.is_empty(), "{inventory:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_host_says_so_and_exits() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("stop");
    let mut host = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    let mut events = ctl.subscribe_events().await.unwrap();
    ctl.stop_host(host.id(), None).await.unwrap();
    let id = host.id().to_owned();
    wait_for_event(
        &mut events,
        EventKind::HostStopped,
        Duration::from_secs(20),
        |data| data["host_id"] == id.as_str(),
    )
    .await;
    let status = host
        .wait_exit(Duration::from_secs(20))
        .expect("host exits after host.stop");
    assert!(status.success(), "{status:?}\n{}", host.log());
    assert!(ctl.ping_hosts().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_swaps_the_image_without_dropping_calls() {
    use trellis_lattice::ctl::UpdateComponentCommand;
    use trellis_lattice::http::{HttpRequest, HttpResponse, INCOMING_HANDLER};
    use trellis_lattice::rpc::{self, CallHeaders};
    use trellis_lattice::wit::WitFunction;

    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("update");
    let signer = Signer::new().unwrap();
    let v1 = file_url(&signer.sign_example("http-hello").unwrap());
    let wasm =
        std::fs::read(trellis_test_support::example_component("http-hello").unwrap()).unwrap();
    let options = trellis_claims::SignOptions {
        ver: Some("2.0.0".into()),
        ..Default::default()
    };
    let v2 = file_url(&signer.sign_bytes("hello-v2", &wasm, options).unwrap());
    let host = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    ctl.scale_component(&scale_command(host.id(), "hello", &v1, 4))
        .await
        .unwrap();

    let handle = WitFunction::parse(INCOMING_HANDLER).unwrap();
    let body = rpc::encode(&HttpRequest::get("/")).unwrap();
    let headers = CallHeaders {
        source_id: "test".into(),
        link_name: "default".into(),
        ..CallHeaders::default()
    };
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (ctl, handle, body, headers) =
            (ctl.clone(), handle.clone(), body.clone(), headers.clone());
        callers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..40 {
                let reply = ctl.call("hello", &handle, body.clone(), &headers).await;
                match reply.map(|bytes| rpc::decode_reply::<HttpResponse>(&bytes)) {
                    Ok(Ok(response)) if response.status == 200 => {}
                    other => failures.push(format!("{other:?}")),
                }
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctl.update_component(&UpdateComponentCommand {
        component_id: "hello".into(),
        host_id: host.id().into(),
        new_component_ref: v2.clone(),
        annotations: None,
    })
    .await
    .unwrap();
    let mut failures = Vec::new();
    for caller in callers {
        failures.extend(caller.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} calls failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    let inventory = ctl.get_inventory(host.id()).await.unwrap();
    assert_eq!(inventory.components[0].image_ref, v2);
    assert_eq!(inventory.components[0].max_instances, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_that_traps_as_it_starts_is_refused_and_the_running_one_keeps_serving() {
    use trellis_lattice::ctl::UpdateComponentCommand;

    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("traps");
    let signer = Signer::new().unwrap();
    let v1 = file_url(&signer.sign_example("http-hello").unwrap());
    let wasm =
        std::fs::read(trellis_test_support::example_component("http-hello").unwrap()).unwrap();
    let trapping = trellis_test_support::trapping_at_start(&wasm).unwrap();
    let broken = file_url(
        &signer
            .sign_bytes("hello-broken", &trapping, Default::default())
            .unwrap(),
    );
    let host = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    let refusal = |err: &dyn std::fmt::Display| {
        let err = err.to_string();
        assert!(err.contains("fails as it is instantiated"), "{err}");
        assert!(err.contains("unreachable"), "{err}");
        assert!(err.contains(&broken), "{err}");
    };

    let fresh = ctl
        .scale_component(&scale_command(host.id(), "fresh", &broken, 1))
        .await
        .unwrap_err();
    refusal(&fresh);
    ctl.scale_component(&scale_command(host.id(), "hello", &v1, 2))
        .await
        .unwrap();
    let update = ctl
        .update_component(&UpdateComponentCommand {
            component_id: "hello".into(),
            host_id: host.id().into(),
            new_component_ref: broken.clone(),
            annotations: None,
        })
        .await
        .unwrap_err();
    refusal(&update);
    let inventory = ctl.get_inventory(host.id()).await.unwrap();
    let images: Vec<(&str, &str)> = inventory
        .components
        .iter()
        .map(|c| (c.id.as_str(), c.image_ref.as_str()))
        .collect();
    assert_eq!(images, [("hello", v1.as_str())]);
    let out = wash_ok(
        &nats.url(),
        &lattice,
        &["call", "hello", "wasi:http/incoming-handler.handle"],
    )
    .unwrap();
    assert!(out.contains("Hello"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_carry_the_inventory() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("beat");
    let signer = Signer::new().unwrap();
    let hello = file_url(&signer.sign_example("http-hello").unwrap());
    let host = HostProcess::start(
        &nats.url(),
        &lattice,
        &["--heartbeat-secs", "1", "--label", "role=edge"],
    )
    .unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    let mut events = ctl.subscribe_events().await.unwrap();
    wash_ok(
        &nats.url(),
        &lattice,
        &[
            "scale",
            "component",
            host.id(),
            "hello",
            &hello,
            "--max-instances",
            "2",
        ],
    )
    .unwrap();
    let id = host.id().to_owned();
    let beat = wait_for_event(
        &mut events,
        EventKind::HostHeartbeat,
        Duration::from_secs(15),
        |data| {
            data["host_id"] == id.as_str()
                && data["components"].as_array().is_some_and(|c| !c.is_empty())
        },
    )
    .await;
    assert_eq!(beat["components"][0]["id"], "hello");
    assert_eq!(beat["components"][0]["max_instances"], 2);
    assert_eq!(beat["labels"]["role"], "edge");
    assert!(beat["uptime_seconds"].is_u64());
}

/// `wash get events --watch`: a scale shows up as a line, as JSON with
/// `-o json`, filtered by type; an unknown type is refused by name.
#[tokio::test(flavor = "multi_thread")]
async fn wash_get_events_watch_prints_each_event_as_it_happens() {
    use std::io::{BufRead, BufReader};
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("events");
    let signer = Signer::new().unwrap();
    let hello = file_url(&signer.sign_example("http-hello").unwrap());
    let host = HostProcess::start(
        &nats.url(),
        &lattice,
        &["--allowed-issuers", &signer.issuer()],
    )
    .unwrap();
    let watch = |extra: &[&str]| {
        let mut child = std::process::Command::new(
            trellis_test_support::workspace_binary("wash", "wash").unwrap(),
        )
        .args(["get", "events", "--watch", "--type", "component_scaled"])
        .args(extra)
        .env("TRELLIS_NATS_URL", nats.url())
        .env("TRELLIS_LATTICE", &lattice)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        // It says so once it is subscribed.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(line.contains("watching events"), "{line}");
        child
    };
    let json = watch(&["--count", "1", "-o", "json"]);
    let text = watch(&["--count", "1"]);
    wash_ok(
        &nats.url(),
        &lattice,
        &[
            "scale",
            "component",
            host.id(),
            "hello",
            &hello,
            "--max-instances",
            "2",
        ],
    )
    .unwrap();
    let read = |child: std::process::Child| {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let line = read(json);
    let event: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(event["type"], "com.wasmcloud.lattice.component_scaled");
    assert_eq!(event["data"]["component_id"], "hello");
    assert_eq!(event["data"]["max_instances"], 2);
    let line = read(text);
    assert!(line.contains("component_scaled"), "{line}");
    assert!(line.contains(host.id()), "{line}");
    // No heartbeat got through the filter: each printed exactly one line.
    assert_eq!(line.lines().count(), 1, "{line}");

    let out = trellis_e2e::wash(
        &nats.url(),
        &lattice,
        &["get", "events", "--type", "scaled"],
    )
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`scaled` is not a lattice event type"),
        "{err}"
    );
}
