//! The control-interface client against a real, private `nats-server`.
//!
//! No host runs here: small responders subscribe to the control subjects
//! and answer with canned replies. These tests pin down what the client
//! puts on the wire (subjects, JSON bodies, headers) and how it reads what
//! comes back (scatter-gather, timeouts, refusals, bad JSON); they say
//! nothing about how a real host behaves.

#![cfg(feature = "client")]
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::Message;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use trellis_lattice::client::{ClientError, CtlClient};
use trellis_lattice::ctl::{
    ComponentAuctionRequest, DeleteInterfaceLinkDefinitionRequest, ScaleComponentCommand,
};
use trellis_lattice::event::{ComponentScaleFailed, ComponentScaled};
use trellis_lattice::rpc::{self, CallHeaders, RpcError, RpcErrorKind};
use trellis_lattice::{LatticeEvent, Link, WitFunction};
use trellis_test_support::NatsServer;

const LATTICE: &str = "test";
const CTL: &str = "wasmbus.ctl.v1.test";

/// A private NATS server, a client for lattice `test`, and a handle on the
/// same connection for the responders.
///
/// One connection, because NATS orders what one connection sends: a
/// responder's subscription is in place before the client's request
/// arrives. Over two connections a `flush` does not guarantee that.
struct Fixture {
    _nats: NatsServer,
    ctl: CtlClient,
    raw: async_nats::Client,
}

async fn fixture(timeout_ms: u64) -> Fixture {
    let nats = NatsServer::start().expect("nats-server starts");
    let raw = async_nats::connect(nats.url()).await.unwrap();
    let ctl = CtlClient::new(raw.clone(), LATTICE)
        .unwrap()
        .with_timeout(Duration::from_millis(timeout_ms))
        .with_gather_window(Duration::from_millis(timeout_ms));
    Fixture {
        _nats: nats,
        ctl,
        raw,
    }
}

/// Answers every request on `subject` with `reply` (raw bytes) and hands
/// each request to the test.
async fn respond_bytes(
    raw: &async_nats::Client,
    subject: &str,
    reply: Vec<u8>,
) -> mpsc::UnboundedReceiver<Message> {
    let mut sub = raw.subscribe(subject.to_owned()).await.unwrap();
    raw.flush().await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let raw = raw.clone();
    tokio::spawn(async move {
        while let Some(message) = sub.next().await {
            if let Some(inbox) = &message.reply {
                raw.publish(inbox.clone(), reply.clone().into())
                    .await
                    .unwrap();
                raw.flush().await.unwrap();
            }
            if tx.send(message).is_err() {
                break;
            }
        }
    });
    rx
}

/// Answers every request on `subject` with the JSON `reply`.
async fn respond(
    raw: &async_nats::Client,
    subject: &str,
    reply: Value,
) -> mpsc::UnboundedReceiver<Message> {
    respond_bytes(raw, subject, serde_json::to_vec(&reply).unwrap()).await
}

/// Subscribes to `subject` and never answers.
async fn stay_silent(raw: &async_nats::Client, subject: &str) -> async_nats::Subscriber {
    let sub = raw.subscribe(subject.to_owned()).await.unwrap();
    raw.flush().await.unwrap();
    sub
}

fn ok(response: Value) -> Value {
    json!({"success": true, "message": "", "response": response})
}

fn ack() -> Value {
    json!({"success": true, "message": "done"})
}

fn body(message: &Message) -> Value {
    serde_json::from_slice(&message.payload).unwrap()
}

fn host(id: &str) -> Value {
    json!({"id": id, "friendly_name": format!("{id}-name"), "lattice": LATTICE,
           "labels": {"zone": "eu"}, "version": "0.1.0", "uptime_seconds": 5})
}

fn inventory(host_id: &str) -> Value {
    json!({"host_id": host_id, "components": [
        {"id": "echo", "image_ref": "file:///echo.wasm", "max_instances": 2}
    ], "providers": []})
}

#[tokio::test]
async fn ping_gathers_every_host_for_the_gather_window_and_sorts_them() {
    let f = fixture(500).await;
    let _b = respond(&f.raw, &format!("{CTL}.host.ping"), ok(host("NBBB"))).await;
    let _a = respond(&f.raw, &format!("{CTL}.host.ping"), ok(host("NAAA"))).await;

    let started = Instant::now();
    let hosts = f.ctl.ping_hosts().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500));
    let ids: Vec<_> = hosts.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["NAAA", "NBBB"]);
    assert_eq!(hosts[0].labels["zone"], "eu");
}

#[tokio::test]
async fn ping_of_an_empty_lattice_returns_nothing_without_waiting() {
    let f = fixture(5_000).await;
    let started = Instant::now();
    assert!(f.ctl.ping_hosts().await.unwrap().is_empty());
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn another_lattice_does_not_answer() {
    let f = fixture(300).await;
    let _other = respond(&f.raw, "wasmbus.ctl.v1.other.host.ping", ok(host("NOTHER"))).await;
    assert!(f.ctl.ping_hosts().await.unwrap().is_empty());
}

#[tokio::test]
async fn inventory_is_asked_of_the_named_host() {
    let f = fixture(2_000).await;
    let mut requests = respond(
        &f.raw,
        &format!("{CTL}.host.get.NHOST"),
        ok(inventory("NHOST")),
    )
    .await;
    let inv = f.ctl.get_inventory("NHOST").await.unwrap();
    assert_eq!(inv.host_id, "NHOST");
    assert_eq!(inv.components[0].max_instances, 2);
    assert!(requests.recv().await.unwrap().payload.is_empty());
}

#[tokio::test]
async fn inventories_of_all_hosts_follow_a_ping() {
    let f = fixture(300).await;
    let _a = respond(&f.raw, &format!("{CTL}.host.ping"), ok(host("NA"))).await;
    let _b = respond(&f.raw, &format!("{CTL}.host.ping"), ok(host("NB"))).await;
    let _ia = respond(&f.raw, &format!("{CTL}.host.get.NA"), ok(inventory("NA"))).await;
    let _ib = respond(&f.raw, &format!("{CTL}.host.get.NB"), ok(inventory("NB"))).await;
    let all = f.ctl.get_hosts_inventories().await.unwrap();
    let ids: Vec<_> = all.iter().map(|i| i.host_id.as_str()).collect();
    assert_eq!(ids, ["NA", "NB"]);
}

#[tokio::test]
async fn scale_sends_the_command_json_to_the_host() {
    let f = fixture(2_000).await;
    let mut requests = respond(&f.raw, &format!("{CTL}.component.scale.NHOST"), ack()).await;
    let command = ScaleComponentCommand {
        component_id: "echo".into(),
        component_ref: "file:///echo.wasm".into(),
        max_instances: 3,
        host_id: "NHOST".into(),
        config: vec!["cfg".into()],
        ..Default::default()
    };
    f.ctl.scale_component(&command).await.unwrap();
    let sent = body(&requests.recv().await.unwrap());
    assert_eq!(sent["count"], 3);
    assert_eq!(sent["component_ref"], "file:///echo.wasm");
    assert_eq!(sent["config"], json!(["cfg"]));
}

#[tokio::test]
async fn a_refusal_carries_the_host_message() {
    let f = fixture(2_000).await;
    let _r = respond(
        &f.raw,
        &format!("{CTL}.component.scale.NHOST"),
        json!({"success": false, "message": "component is not signed by an allowed issuer"}),
    )
    .await;
    let command = ScaleComponentCommand {
        component_id: "echo".into(),
        host_id: "NHOST".into(),
        max_instances: 1,
        ..Default::default()
    };
    let err = f.ctl.scale_component(&command).await.unwrap_err();
    match &err {
        ClientError::Refused { message, .. } => {
            assert_eq!(message, "component is not signed by an allowed issuer");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(err.to_string().contains("scale component `echo`"), "{err}");
}

#[tokio::test]
async fn a_silent_host_times_out_with_a_hint() {
    let f = fixture(300).await;
    let _s = stay_silent(&f.raw, &format!("{CTL}.host.get.NSLOW")).await;
    let started = Instant::now();
    let err = f.ctl.get_inventory("NSLOW").await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("wash get hosts"), "{err}");
}

#[tokio::test]
async fn nobody_listening_is_no_responders() {
    let f = fixture(5_000).await;
    let started = Instant::now();
    let err = f.ctl.get_links().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(matches!(err, ClientError::NoResponders { .. }), "{err:?}");
    assert!(err.to_string().contains("wash up"), "{err}");
}

#[tokio::test]
async fn a_reply_that_is_not_the_promised_json_is_a_decode_error() {
    let f = fixture(2_000).await;
    let _r = respond_bytes(&f.raw, &format!("{CTL}.host.get.NHOST"), b"<html>".to_vec()).await;
    let err = f.ctl.get_inventory("NHOST").await.unwrap_err();
    assert!(matches!(err, ClientError::Decode { .. }), "{err:?}");

    let _s = respond(&f.raw, &format!("{CTL}.host.get.NEMPTY"), ack()).await;
    let err = f.ctl.get_inventory("NEMPTY").await.unwrap_err();
    assert!(err.to_string().contains("no `response`"), "{err}");
}

#[tokio::test]
async fn ids_that_would_change_the_subject_are_refused_before_sending() {
    let f = fixture(2_000).await;
    let err = f.ctl.get_inventory("a.>").await.unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)), "{err:?}");
    let err = f.ctl.put_link(&Link::default()).await.unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn auction_collects_bids_and_skips_hosts_that_decline() {
    let f = fixture(400).await;
    let subject = format!("{CTL}.component.auction");
    let bid = |host_id: &str| {
        ok(
            json!({"component_id": "echo", "component_ref": "file:///echo.wasm",
                  "host_id": host_id, "constraints": {"zone": "eu"}}),
        )
    };
    let mut requests = respond(&f.raw, &subject, bid("NBID")).await;
    let _decline = respond(
        &f.raw,
        &subject,
        json!({"success": false, "message": "labels do not match"}),
    )
    .await;
    let request = ComponentAuctionRequest {
        component_id: "echo".into(),
        component_ref: "file:///echo.wasm".into(),
        constraints: BTreeMap::from([("zone".into(), "eu".into())]),
    };
    let acks = f.ctl.auction_component(&request).await.unwrap();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].host_id, "NBID");
    assert_eq!(
        body(&requests.recv().await.unwrap())["constraints"]["zone"],
        "eu"
    );
}

#[tokio::test]
async fn links_are_put_deleted_and_listed_as_json() {
    let f = fixture(2_000).await;
    let link = Link {
        source_id: "counter".into(),
        target: "kv".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into()],
        ..Default::default()
    };
    let mut puts = respond(&f.raw, &format!("{CTL}.link.put"), ack()).await;
    let mut dels = respond(&f.raw, &format!("{CTL}.link.del"), ack()).await;
    let _gets = respond(
        &f.raw,
        &format!("{CTL}.link.get"),
        ok(serde_json::to_value(vec![&link]).unwrap()),
    )
    .await;

    f.ctl.put_link(&link).await.unwrap();
    let sent: Link = serde_json::from_slice(&puts.recv().await.unwrap().payload).unwrap();
    assert_eq!(sent, link);

    let delete = DeleteInterfaceLinkDefinitionRequest {
        source_id: "counter".into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
    };
    f.ctl.delete_link(&delete).await.unwrap();
    assert_eq!(body(&dels.recv().await.unwrap())["source_id"], "counter");

    assert_eq!(f.ctl.get_links().await.unwrap(), vec![link]);
}

#[tokio::test]
async fn labels_go_to_the_host_subjects() {
    let f = fixture(2_000).await;
    let mut puts = respond(&f.raw, &format!("{CTL}.label.put.NHOST"), ack()).await;
    let mut dels = respond(&f.raw, &format!("{CTL}.label.del.NHOST"), ack()).await;
    f.ctl.put_label("NHOST", "zone", "eu").await.unwrap();
    assert_eq!(
        body(&puts.recv().await.unwrap()),
        json!({"key": "zone", "value": "eu"})
    );
    f.ctl.delete_label("NHOST", "zone").await.unwrap();
    assert_eq!(body(&dels.recv().await.unwrap())["key"], "zone");
}

#[tokio::test]
async fn config_round_trips_and_a_missing_one_is_none() {
    let f = fixture(2_000).await;
    let config = BTreeMap::from([("bucket".to_string(), "counts".to_string())]);
    let mut puts = respond(&f.raw, &format!("{CTL}.config.put.kv"), ack()).await;
    let _get = respond(
        &f.raw,
        &format!("{CTL}.config.get.kv"),
        ok(json!({"bucket": "counts"})),
    )
    .await;
    let _missing = respond(
        &f.raw,
        &format!("{CTL}.config.get.nope"),
        json!({"success": true, "message": "no such config"}),
    )
    .await;
    let mut dels = respond(&f.raw, &format!("{CTL}.config.del.kv"), ack()).await;

    f.ctl.put_config("kv", &config).await.unwrap();
    assert_eq!(
        body(&puts.recv().await.unwrap()),
        json!({"bucket": "counts"})
    );
    assert_eq!(f.ctl.get_config("kv").await.unwrap(), Some(config));
    assert_eq!(f.ctl.get_config("nope").await.unwrap(), None);
    f.ctl.delete_config("kv").await.unwrap();
    assert!(dels.recv().await.unwrap().payload.is_empty());
}

#[tokio::test]
async fn claims_are_listed_as_flat_maps() {
    let f = fixture(2_000).await;
    let _r = respond(
        &f.raw,
        &format!("{CTL}.claims.get"),
        ok(json!([{"sub": "MCOMP", "iss": "AACCT", "name": "echo"}])),
    )
    .await;
    let claims = f.ctl.get_claims().await.unwrap();
    assert_eq!(claims[0]["sub"], "MCOMP");
}

#[tokio::test]
async fn stop_host_sends_the_drain_time_in_whole_seconds() {
    let f = fixture(2_000).await;
    let mut requests = respond(&f.raw, &format!("{CTL}.host.stop.NHOST"), ack()).await;
    f.ctl
        .stop_host("NHOST", Some(Duration::from_millis(1500)))
        .await
        .unwrap();
    assert_eq!(
        body(&requests.recv().await.unwrap()),
        json!({"host_id": "NHOST", "timeout": 2})
    );
}

async fn publish_event(raw: &async_nats::Client, event: LatticeEvent) {
    let cloud = event.to_cloud_event("NHOST").unwrap();
    let subject = format!("wasmbus.evt.{LATTICE}.{}", event.kind().as_str());
    raw.publish(subject, cloud.to_json().unwrap().into())
        .await
        .unwrap();
    raw.flush().await.unwrap();
}

#[tokio::test]
async fn events_stream_skips_what_is_not_a_cloud_event() {
    let f = fixture(2_000).await;
    let mut events = f.ctl.subscribe_events().await.unwrap();
    f.raw
        .publish(format!("wasmbus.evt.{LATTICE}.junk"), "not json".into())
        .await
        .unwrap();
    let scaled = ComponentScaled {
        host_id: "NHOST".into(),
        component_id: "echo".into(),
        max_instances: 1,
        ..Default::default()
    };
    publish_event(&f.raw, LatticeEvent::ComponentScaled(scaled.clone())).await;
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event.parse().unwrap(),
        LatticeEvent::ComponentScaled(scaled)
    );
}

/// A host stand-in that acks a scale command and then publishes `event`.
async fn ack_then_publish(f: &Fixture, event: LatticeEvent) {
    let mut sub = f
        .raw
        .subscribe(format!("{CTL}.component.scale.NHOST"))
        .await
        .unwrap();
    f.raw.flush().await.unwrap();
    let raw = f.raw.clone();
    tokio::spawn(async move {
        let message = sub.next().await.unwrap();
        let reply = serde_json::to_vec(&ack()).unwrap();
        raw.publish(message.reply.unwrap(), reply.into())
            .await
            .unwrap();
        publish_event(&raw, event).await;
    });
}

fn scale_echo() -> ScaleComponentCommand {
    ScaleComponentCommand {
        component_id: "echo".into(),
        host_id: "NHOST".into(),
        max_instances: 1,
        ..Default::default()
    }
}

#[tokio::test]
async fn scale_and_wait_returns_the_hosts_scaled_event() {
    let f = fixture(2_000).await;
    let scaled = ComponentScaled {
        host_id: "NHOST".into(),
        component_id: "echo".into(),
        max_instances: 1,
        ..Default::default()
    };
    ack_then_publish(&f, LatticeEvent::ComponentScaled(scaled.clone())).await;
    let got = f
        .ctl
        .scale_component_and_wait(&scale_echo(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got, scaled);
}

#[tokio::test]
async fn scale_and_wait_reports_the_hosts_failure() {
    let f = fixture(2_000).await;
    let failed = ComponentScaleFailed {
        host_id: "NHOST".into(),
        component_id: "echo".into(),
        error: "file not found".into(),
        ..Default::default()
    };
    ack_then_publish(&f, LatticeEvent::ComponentScaleFailed(failed)).await;
    let err = f
        .ctl
        .scale_component_and_wait(&scale_echo(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::ScaleFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("file not found"), "{err}");
}

#[tokio::test]
async fn scale_and_wait_gives_up_when_no_event_comes() {
    let f = fixture(2_000).await;
    let _r = respond(&f.raw, &format!("{CTL}.component.scale.NHOST"), ack()).await;
    let err = f
        .ctl
        .scale_component_and_wait(&scale_echo(), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("component_scaled"), "{err}");
}

#[tokio::test]
async fn call_sends_body_and_headers_to_the_rpc_subject() {
    let f = fixture(2_000).await;
    let reply = rpc::encode_reply::<String>(&Ok("pong".into())).unwrap();
    let mut requests = respond_bytes(
        &f.raw,
        "test.echo.rpc.trellis:demo/echo.ping",
        reply.clone(),
    )
    .await;
    let function = WitFunction::parse("trellis:demo/echo.ping").unwrap();
    let headers = CallHeaders {
        source_id: "wash".into(),
        link_name: "default".into(),
        ..Default::default()
    };
    let body = rpc::encode(&("hello",)).unwrap();
    let got = f
        .ctl
        .call("echo", &function, body.clone(), &headers)
        .await
        .unwrap();
    assert_eq!(got, reply);
    assert_eq!(rpc::decode_reply::<String>(&got), Ok("pong".into()));

    let request = requests.recv().await.unwrap();
    assert_eq!(request.payload.to_vec(), body);
    let sent = request.headers.unwrap();
    assert_eq!(sent.get(rpc::SOURCE_ID_HEADER).unwrap().as_str(), "wash");
}

#[tokio::test]
async fn call_returns_an_error_reply_for_the_caller_to_decode() {
    let f = fixture(2_000).await;
    let error = RpcError::new(RpcErrorKind::Application, "trap");
    let reply = rpc::encode_reply::<()>(&Err(error.clone())).unwrap();
    let _r = respond_bytes(&f.raw, "test.echo.rpc.trellis:demo/echo.boom", reply).await;
    let function = WitFunction::parse("trellis:demo/echo.boom").unwrap();
    let got = f
        .ctl
        .call("echo", &function, Vec::new(), &CallHeaders::default())
        .await
        .unwrap();
    assert_eq!(rpc::decode_reply::<()>(&got), Err(error));
}

#[tokio::test]
async fn a_call_nobody_serves_names_the_target() {
    let f = fixture(2_000).await;
    let function = WitFunction::parse("trellis:demo/echo.ping").unwrap();
    let err = f
        .ctl
        .call("ghost", &function, Vec::new(), &CallHeaders::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NoResponders { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing serves `ghost`"), "{err}");
}
