//! `serve` driven the way a host drives a provider: link puts and deletes,
//! health checks, calls and shutdown, all as real requests on a private
//! NATS server, with a small in-memory `wasi:keyvalue` backend.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use trellis_lattice::Link;
use trellis_lattice::ctl::CtlResponse;
use trellis_lattice::keyvalue::{KvError, KvRequest, KvResponse};
use trellis_lattice::provider::ShutdownRequest;
use trellis_lattice::rpc::{RpcError, RpcErrorKind};
use trellis_lattice::subject::ProviderOperation;
use trellis_provider_sdk::ProviderLink;
use trellis_provider_sdk::keyvalue::{KeyValueProvider, KvBackend, KvStore};
use trellis_provider_sdk::testing::{self, ServedProvider, TestLattice, call_headers};

const LATTICE: &str = "sdk-test";
const PROVIDER: &str = "kv-memory";
const HOST: &str = "NHOSTOURS";

/// Opens a store only when the link says which `space` it is for, so a
/// link without it is a bad link put.
struct MemoryBackend;

#[derive(Default)]
struct MemoryStore {
    values: Mutex<HashMap<(String, String), Vec<u8>>>,
}

impl KvBackend for MemoryBackend {
    const NAME: &'static str = "memory";
    type Store = MemoryStore;

    async fn open(&self, link: &ProviderLink) -> Result<MemoryStore, String> {
        match link.target_config_values.get("space") {
            Some(_) => Ok(MemoryStore::default()),
            None => Err("set the link's target config key `space`".into()),
        }
    }
}

impl KvStore for MemoryStore {
    async fn handle(&self, request: KvRequest) -> Result<KvResponse, KvError> {
        let mut values = self.values.lock().unwrap();
        match request {
            KvRequest::Get { bucket, key } => {
                Ok(KvResponse::Value(values.get(&(bucket, key)).cloned()))
            }
            KvRequest::Set { bucket, key, value } => {
                values.insert((bucket, key), value);
                Ok(KvResponse::Done)
            }
            other => Err(KvError::Other(format!(
                "{} is not in this test store",
                other.function()
            ))),
        }
    }
}

/// The in-memory backend served in-process on a private lattice.
async fn start() -> ServedProvider {
    start_knowing(Vec::new()).await
}

/// [`start`], with host data that lists `links` as already existing, as a
/// host's does for a provider it restarts.
async fn start_knowing(links: Vec<Link>) -> ServedProvider {
    let lattice = TestLattice::start(LATTICE).await;
    let data = trellis_lattice::HostData {
        link_definitions: links,
        ..lattice.host_data(PROVIDER, HOST)
    };
    let nats = async_nats::connect(lattice.url()).await.unwrap();
    let handle = trellis_provider_sdk::ProviderHandle::new(nats, data).unwrap();
    let provider = KeyValueProvider::new(&handle, MemoryBackend);
    lattice.serve(handle, provider).await
}

/// Calls the provider as the host would for component `source`.
async fn call(
    served: &ServedProvider,
    source: &str,
    request: &KvRequest,
) -> Result<Result<KvResponse, KvError>, RpcError> {
    served
        .call_keyvalue(&call_headers(source, "default"), request)
        .await
}

fn link(source: &str, config: &[(&str, &str)]) -> ProviderLink {
    testing::keyvalue::link(source, PROVIDER, &["store"], config)
}

fn set(key: &str, value: &[u8]) -> KvRequest {
    testing::keyvalue::set("default", key, value)
}

fn get(key: &str) -> KvRequest {
    testing::keyvalue::get("default", key)
}

#[tokio::test]
async fn a_linked_component_s_calls_reach_its_store() {
    let served = start().await;
    assert!(served.health().await.healthy);
    let reply = served.put_link(&link("counter", &[("space", "a")])).await;
    assert!(reply.success, "{}", reply.message);

    assert_eq!(
        call(&served, "counter", &set("k", b"v")).await,
        Ok(Ok(KvResponse::Done))
    );
    assert_eq!(
        call(&served, "counter", &get("k")).await,
        Ok(Ok(KvResponse::Value(Some(b"v".to_vec()))))
    );
    // The store's own error travels as the function's error, not a transport one.
    let exists = KvRequest::Exists {
        bucket: "default".into(),
        key: "k".into(),
    };
    let Ok(Err(KvError::Other(message))) = call(&served, "counter", &exists).await else {
        panic!("expected the store's error");
    };
    assert!(message.contains("store.exists"), "{message}");
}

#[tokio::test]
async fn a_bad_link_put_fails_naming_the_problem_and_health_reports_it_until_fixed() {
    let served = start().await;
    let bad = link("counter", &[]);
    let reply = served.put_link(&bad).await;
    assert!(!reply.success);
    assert!(reply.message.contains("`space`"), "{}", reply.message);
    assert!(reply.message.contains("counter"), "{}", reply.message);

    let health = served.health().await;
    assert!(!health.healthy);
    let message = health.message.unwrap_or_default();
    assert!(
        message.contains("`space`") && message.contains("counter"),
        "{message}"
    );
    // A call on it hears why, not that there is no link: its host must
    // not wait for a link that has arrived and failed.
    let err = call(&served, "counter", &get("k")).await.unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Refused, "{err}");
    assert!(err.message.contains("cannot be served"), "{err}");
    assert!(err.message.contains("`space`"), "{err}");

    // A later good put of the same link clears it.
    let reply = served.put_link(&link("counter", &[("space", "a")])).await;
    assert!(reply.success, "{}", reply.message);
    let health = served.health().await;
    assert!(health.healthy, "{health:?}");
}

#[tokio::test]
async fn a_link_put_that_is_not_json_is_answered_with_a_failure() {
    let served = start().await;
    let reply: CtlResponse<()> = served
        .request_json(ProviderOperation::LinkPut, b"{not json".to_vec())
        .await;
    assert!(!reply.success);
    assert!(
        reply.message.contains("not valid JSON"),
        "{}",
        reply.message
    );
}

#[tokio::test]
async fn a_call_from_a_source_with_no_link_is_refused_naming_the_missing_link() {
    let served = start().await;
    served.put_link(&link("counter", &[("space", "a")])).await;
    let err = call(&served, "stranger", &get("k")).await.unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::NoLink);
    assert!(err.message.contains("`stranger`"), "{}", err.message);
    assert!(err.message.contains("`default`"), "{}", err.message);
    assert!(err.message.contains("wash link put"), "{}", err.message);
}

#[tokio::test]
async fn a_deleted_link_no_longer_routes_calls() {
    let served = start().await;
    let linked = link("counter", &[("space", "a")]);
    served.put_link(&linked).await;
    assert!(call(&served, "counter", &get("k")).await.is_ok());
    let reply = served.del_link(&linked.link).await;
    assert!(reply.success, "{}", reply.message);
    let err = call(&served, "counter", &get("k")).await.unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::NoLink);
}

#[tokio::test]
async fn deleting_another_package_s_link_leaves_the_keyvalue_link_alone() {
    let served = start().await;
    let linked = link("counter", &[("space", "a")]);
    served.put_link(&linked).await;
    // Same source and link name, other package: a different link.
    let other = Link {
        wit_namespace: "wasi".into(),
        wit_package: "blobstore".into(),
        ..linked.link.clone()
    };
    served.del_link(&other).await;
    assert_eq!(
        call(&served, "counter", &get("k")).await,
        Ok(Ok(KvResponse::Value(None)))
    );
}

#[tokio::test]
async fn shutdown_for_another_host_is_ignored_and_ours_stops_serve() {
    let served = start().await;
    // A process not addressed stays silent, so no reply is expected.
    served.request_shutdown("NHOSTSOMEONEELSE").await;
    // Long enough for a wrongly obeyed request to have stopped it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(served.health().await.healthy);
    assert!(served.is_serving());

    let ours = ShutdownRequest {
        host_id: HOST.into(),
    };
    let reply: CtlResponse<()> = served
        .request_json(
            ProviderOperation::Shutdown,
            serde_json::to_vec(&ours).unwrap(),
        )
        .await;
    assert!(reply.success);
    served
        .wait_until_stopped(Duration::from_secs(10))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_stop_future_ends_serve() {
    let served = start().await;
    served.stop().await;
}

#[tokio::test]
async fn a_call_that_no_host_of_the_lattice_signed_is_refused_before_the_provider_sees_it() {
    use trellis_claims::KeyKind;
    use trellis_claims::invocation::{Invocation, InvocationSigner, now_ms};

    let served = start().await;
    let reply = served.put_link(&link("counter", &[("space", "a")])).await;
    assert!(reply.success, "{}", reply.message);
    let request = set("k", b"forged");
    let function = request.function();
    let body = request.encode().unwrap();
    let refused = |reply: bytes::Bytes, why: &str| {
        let err = trellis_lattice::rpc::decode_reply::<rmpv::Value>(&reply).unwrap_err();
        assert_eq!(err.kind, RpcErrorKind::Refused, "{err}");
        assert!(err.message.contains(why), "{err}");
        assert!(err.message.contains(PROVIDER), "{err}");
    };

    let unsigned = call_headers("counter", "default");
    refused(
        served
            .call_unsigned(&function, &unsigned, body.clone())
            .await,
        "no invocation signature",
    );
    let stranger = InvocationSigner::new(KeyKind::Cluster.generate(), "NSTRANGER").unwrap();
    let subject = served.rpc_subject(&function);
    let invocation = Invocation {
        subject: &subject,
        source_id: "counter",
        link_name: "default",
        body: &body,
    };
    let foreign = trellis_lattice::rpc::CallHeaders {
        invocation: Some(stranger.sign(&invocation, now_ms()).unwrap()),
        ..unsigned.clone()
    };
    refused(
        served.call(&function, &foreign, body.clone()).await,
        "not one of this lattice's cluster issuers",
    );
    // Nothing was written.
    assert_eq!(
        call(&served, "counter", &get("k")).await,
        Ok(Ok(KvResponse::Value(None)))
    );
}

#[tokio::test]
async fn host_data_without_cluster_issuers_is_refused_at_start() {
    let lattice = TestLattice::start(LATTICE).await;
    let data = trellis_lattice::HostData {
        cluster_issuers: Vec::new(),
        ..lattice.host_data(PROVIDER, HOST)
    };
    let nats = async_nats::connect(lattice.url()).await.unwrap();
    let err = trellis_provider_sdk::ProviderHandle::new(nats.clone(), data.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cluster_issuers"), "{err}");
    // Unless the host explicitly turned the check off.
    let unchecked = trellis_lattice::HostData {
        insecure_skip_invocation_check: true,
        ..data
    };
    assert!(trellis_provider_sdk::ProviderHandle::new(nats, unchecked).is_ok());
}

#[tokio::test]
async fn right_after_a_start_a_call_waits_for_its_link_instead_of_being_told_there_is_none() {
    let known = link("counter", &[("space", "a")]);
    let served = start_knowing(vec![known.link.clone()]).await;

    // The host puts the link a little after the call arrives, as it does
    // once a restarted provider answers its first health check.
    let putter = {
        let client = (*served).clone();
        let known = known.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.put_link(&known).await
        })
    };
    assert_eq!(
        call(&served, "counter", &set("k", b"v")).await,
        Ok(Ok(KvResponse::Done))
    );
    assert!(putter.await.unwrap().success);

    // A link the host data named but never put gives up after a moment,
    // saying the provider is starting.
    let served = start_knowing(vec![known.link.clone()]).await;
    let err = call(&served, "counter", &set("k", b"v")).await.unwrap_err();
    assert!(err.message.contains("is starting"), "{err}");
    assert!(!err.message.contains("wash link put"), "{err}");
}

/// Opens stores only while its store is "up": what a provider whose
/// server is unreachable for a while sees.
struct FlakyBackend(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl KvBackend for FlakyBackend {
    const NAME: &'static str = "flaky";
    type Store = MemoryStore;

    async fn open(&self, _link: &ProviderLink) -> Result<MemoryStore, String> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(MemoryStore::default())
        } else {
            Err("the store does not answer".into())
        }
    }
}

#[tokio::test]
async fn a_link_whose_store_was_away_is_applied_again_until_it_is_served() {
    let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lattice = TestLattice::start(LATTICE).await;
    let nats = async_nats::connect(lattice.url()).await.unwrap();
    let handle =
        trellis_provider_sdk::ProviderHandle::new(nats, lattice.host_data(PROVIDER, HOST)).unwrap();
    let provider = KeyValueProvider::new(&handle, FlakyBackend(std::sync::Arc::clone(&up)));
    let served = lattice.serve(handle, provider).await;
    let reply = served.put_link(&link("counter", &[])).await;
    assert!(!reply.success);
    let err = call(&served, "counter", &get("k")).await.unwrap_err();
    assert!(err.message.contains("does not answer"), "{err}");

    // The store comes back; nobody puts the link again.
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match call(&served, "counter", &set("k", b"v")).await {
            Ok(_) => break,
            Err(err) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "never recovered: {err}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert!(served.health().await.healthy);
}
