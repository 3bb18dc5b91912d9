//! Component-to-component calls routed by links: an import with no link
//! fails with an error naming the missing link; once linked, the call
//! crosses the lattice to the target.

use std::time::Duration;

use trellis_claims::SignOptions;
use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice};
use trellis_lattice::Link;
use trellis_lattice::rpc::{self, CallHeaders, RpcErrorKind};
use trellis_lattice::wit::WitFunction;
use trellis_test_support::NatsServer;

use crate::common::{client, scale_command};
use crate::limits::LIMITS_COMPONENT;

/// Imports `trellis:test/limits` and exports `relay`, which calls the
/// imported `ping` and returns its answer.
const RELAY_COMPONENT: &str = r#"
(component
  (import "trellis:test/limits" (instance $dep (export "ping" (func (result u32)))))
  (alias export $dep "ping" (func $ping))
  (core func $ping_lowered (canon lower (func $ping)))
  (core instance $imports (export "ping" (func $ping_lowered)))
  (core module $m
    (import "dep" "ping" (func $p (result i32)))
    (func (export "relay") (result i32) (call $p)))
  (core instance $i (instantiate $m (with "dep" (instance $imports))))
  (func $relay (result u32) (canon lift (core func $i "relay")))
  (instance $api (export "relay" (func $relay)))
  (export "trellis:test/relay" (instance $api)))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_import_follows_its_link_across_hosts() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("links");
    let signer = Signer::new().unwrap();
    let relay = file_url(
        &signer
            .sign_bytes(
                "relay",
                &wat::parse_str(RELAY_COMPONENT).unwrap(),
                SignOptions::default(),
            )
            .unwrap(),
    );
    let limits = file_url(
        &signer
            .sign_bytes(
                "limits",
                &wat::parse_str(LIMITS_COMPONENT).unwrap(),
                SignOptions::default(),
            )
            .unwrap(),
    );
    // Caller and callee on different hosts: the call must cross NATS.
    let front = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let back = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    for (host, id, image) in [(&front, "relay", &relay), (&back, "pinger", &limits)] {
        ctl.scale_component(&scale_command(host.id(), id, image, 2))
            .await
            .unwrap();
    }
    let function = WitFunction::parse("trellis:test/relay.relay").unwrap();
    let headers = CallHeaders {
        source_id: "test".into(),
        link_name: "default".into(),
        ..Default::default()
    };
    let body = rpc::encode(&rmpv::Value::Array(vec![])).unwrap();

    let reply = ctl
        .call("relay", &function, body.clone(), &headers)
        .await
        .unwrap();
    let err = rpc::decode_reply::<rmpv::Value>(&reply).unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Application, "{err}");
    assert!(err.message.contains("no link named `default`"), "{err}");
    assert!(err.message.contains("trellis:test/limits"), "{err}");
    assert!(err.message.contains("wash link put relay"), "{err}");

    ctl.put_link(&Link {
        source_id: "relay".into(),
        target: "pinger".into(),
        wit_namespace: "trellis".into(),
        wit_package: "test".into(),
        interfaces: vec!["limits".into()],
        ..Link::default()
    })
    .await
    .unwrap();
    // The link reaches the front host through JetStream KV; give the watch
    // a moment rather than assuming it is instant.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = ctl
            .call("relay", &function, body.clone(), &headers)
            .await
            .unwrap();
        match rpc::decode_reply::<rmpv::Value>(&reply) {
            Ok(value) => {
                assert_eq!(value, rmpv::Value::Array(vec![42.into()]));
                break;
            }
            Err(err) if tokio::time::Instant::now() < deadline => {
                assert!(err.message.contains("no link"), "{err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("still failing after the link was put: {err}"),
        }
    }
}
