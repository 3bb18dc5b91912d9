//! Resource limits: a call that never ends is interrupted, a call that
//! takes too much memory fails, and in both cases the host keeps serving.

use std::time::{Duration, Instant};

use trellis_claims::SignOptions;
use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice};
use trellis_lattice::client::CtlClient;
use trellis_lattice::rpc::{self, CallHeaders, RpcError, RpcErrorKind};
use trellis_lattice::wit::WitFunction;
use trellis_test_support::NatsServer;

use crate::common::{client, scale_command};

/// A component exporting `trellis:test/limits` with a function that spins
/// forever, one that grows memory by a number of 64 KiB pages, and one
/// that answers at once.
pub const LIMITS_COMPONENT: &str = r#"
(component
  (core module $m
    (memory (export "memory") 1)
    (func (export "spin") (loop $forever (br $forever)))
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
    (func (export "ping") (result i32) (i32.const 42)))
  (core instance $i (instantiate $m))
  (func $spin (canon lift (core func $i "spin")))
  (func $grow (param "pages" u32) (result s32) (canon lift (core func $i "grow")))
  (func $ping (result u32) (canon lift (core func $i "ping")))
  (instance $api
    (export "spin" (func $spin))
    (export "grow" (func $grow))
    (export "ping" (func $ping)))
  (export "trellis:test/limits" (instance $api)))
"#;

struct Limits {
    _nats: NatsServer,
    _host: HostProcess,
    ctl: CtlClient,
}

async fn start(call_timeout_ms: &str, max_memory_mib: &str) -> Limits {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("limits");
    let signer = Signer::new().unwrap();
    let wasm = wat::parse_str(LIMITS_COMPONENT).unwrap();
    let image = file_url(
        &signer
            .sign_bytes("limits", &wasm, SignOptions::default())
            .unwrap(),
    );
    let host = HostProcess::start(
        &nats.url(),
        &lattice,
        &[
            "--call-timeout-ms",
            call_timeout_ms,
            "--max-memory-mib",
            max_memory_mib,
        ],
    )
    .unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    ctl.scale_component(&scale_command(host.id(), "limits", &image, 4))
        .await
        .unwrap();
    Limits {
        _nats: nats,
        _host: host,
        ctl,
    }
}

async fn call(ctl: &CtlClient, function: &str, args: rmpv::Value) -> Result<rmpv::Value, RpcError> {
    let function = WitFunction::parse(&format!("trellis:test/limits.{function}")).unwrap();
    let headers = CallHeaders {
        source_id: "test".into(),
        link_name: "default".into(),
        ..CallHeaders::default()
    };
    let reply = ctl
        .call("limits", &function, rpc::encode(&args).unwrap(), &headers)
        .await
        .unwrap();
    rpc::decode_reply::<rmpv::Value>(&reply)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_call_is_interrupted_and_others_still_run() {
    let limits = start("1500", "64").await;
    let spinning = {
        let ctl = limits.ctl.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = call(&ctl, "spin", rmpv::Value::Array(vec![])).await;
            (result, started.elapsed())
        })
    };
    // While one instance spins, another call is answered promptly.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let pong = call(&limits.ctl, "ping", rmpv::Value::Array(vec![]))
        .await
        .unwrap();
    assert_eq!(pong, rmpv::Value::Array(vec![42.into()]));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "ping took {:?}",
        started.elapsed()
    );

    let (result, took) = spinning.await.unwrap();
    let err = result.unwrap_err();
    assert!(
        matches!(err.kind, RpcErrorKind::Timeout | RpcErrorKind::Application),
        "{err}"
    );
    assert!(err.message.contains("interrupted"), "{err}");
    assert!(
        took < Duration::from_secs(10),
        "interrupted only after {took:?}"
    );

    let pong = call(&limits.ctl, "ping", rmpv::Value::Array(vec![]))
        .await
        .unwrap();
    assert_eq!(pong, rmpv::Value::Array(vec![42.into()]));
}

#[tokio::test(flavor = "multi_thread")]
async fn growing_memory_past_the_cap_fails_only_that_call() {
    let limits = start("5000", "2").await;
    // 2 MiB is 32 pages; the module starts with 1. Growing by 8 fits.
    let grown = call(&limits.ctl, "grow", rmpv::Value::Array(vec![8.into()]))
        .await
        .unwrap();
    assert_eq!(
        grown,
        rmpv::Value::Array(vec![1.into()]),
        "memory.grow returns the old size"
    );
    let err = call(&limits.ctl, "grow", rmpv::Value::Array(vec![64.into()]))
        .await
        .unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Application, "{err}");
    assert!(
        err.message.contains("memory") || err.message.contains("limit"),
        "{err}"
    );
    let pong = call(&limits.ctl, "ping", rmpv::Value::Array(vec![]))
        .await
        .unwrap();
    assert_eq!(pong, rmpv::Value::Array(vec![42.into()]));
}
