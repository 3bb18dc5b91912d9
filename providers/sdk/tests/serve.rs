//! `serve` driven the way a host drives a provider: link puts and deletes,
//! health checks, calls and shutdown, all as real requests on a private
//! NATS server, with a small in-memory `wasi:keyvalue` backend.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use trellis_lattice::ctl::CtlResponse;
use trellis_lattice::keyvalue::{self, KvError, KvRequest, KvResponse};
use trellis_lattice::provider::{HealthCheckResponse, ShutdownRequest};
use trellis_lattice::rpc::{CallHeaders, RpcError, RpcErrorKind};
use trellis_lattice::subject::ProviderOperation;
use trellis_lattice::{HostData, Link, Subjects};
use trellis_provider_sdk::keyvalue::{KeyValueProvider, KvBackend, KvStore};
use trellis_provider_sdk::{ProviderHandle, ProviderLink, SdkError, serve};
use trellis_test_support::NatsServer;

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

/// One provider served in-process, and a second connection acting as host.
struct Served {
    nats: async_nats::Client,
    subjects: Subjects,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), SdkError>>,
    _server: NatsServer,
}

impl Served {
    async fn start() -> Self {
        let server = NatsServer::start().unwrap();
        let provider_nats = async_nats::connect(server.url()).await.unwrap();
        let host_data = HostData {
            host_id: HOST.into(),
            lattice_rpc_prefix: LATTICE.into(),
            lattice_rpc_url: server.url(),
            provider_key: PROVIDER.into(),
            ..HostData::default()
        };
        let handle = ProviderHandle::new(provider_nats, host_data).unwrap();
        let provider = KeyValueProvider::new(&handle, MemoryBackend);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(handle, provider, async move {
            let _ = stopped.await;
            "the test stopped it"
        }));
        let served = Served {
            nats: async_nats::connect(server.url()).await.unwrap(),
            subjects: Subjects::new(LATTICE).unwrap(),
            stop: Some(stop),
            task,
            _server: server,
        };
        served.wait_until_serving().await;
        served
    }

    fn subject(&self, op: ProviderOperation) -> String {
        self.subjects.provider(PROVIDER, op).unwrap()
    }

    /// `serve` subscribes before it answers anything; poll health until then.
    async fn wait_until_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let subject = self.subject(ProviderOperation::Health);
        while self
            .nats
            .request(subject.clone(), Vec::new().into())
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the provider never answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn request_json<T: serde::de::DeserializeOwned>(
        &self,
        op: ProviderOperation,
        body: Vec<u8>,
    ) -> T {
        let reply = self
            .nats
            .request(self.subject(op), body.into())
            .await
            .unwrap();
        serde_json::from_slice(&reply.payload).unwrap()
    }

    async fn put(&self, link: &ProviderLink) -> CtlResponse<()> {
        let body = serde_json::to_vec(link).unwrap();
        self.request_json(ProviderOperation::LinkPut, body).await
    }

    async fn delete(&self, link: &Link) -> CtlResponse<()> {
        let body = serde_json::to_vec(link).unwrap();
        self.request_json(ProviderOperation::LinkDel, body).await
    }

    async fn health(&self) -> HealthCheckResponse {
        self.request_json(ProviderOperation::Health, Vec::new())
            .await
    }

    /// Calls the provider as the host would for component `source`.
    async fn call(
        &self,
        source: &str,
        request: &KvRequest,
    ) -> Result<Result<KvResponse, KvError>, RpcError> {
        let headers = CallHeaders {
            source_id: source.into(),
            link_name: "default".into(),
            ..CallHeaders::default()
        };
        let mut map = async_nats::HeaderMap::new();
        for (name, value) in headers.to_pairs() {
            map.insert(name, value.as_str());
        }
        let subject = self.subjects.rpc(PROVIDER, &request.function()).unwrap();
        let reply = self
            .nats
            .request_with_headers(subject, map, request.encode().unwrap().into())
            .await
            .unwrap();
        keyvalue::decode_reply(request, &reply.payload)
    }

    async fn shutdown(&self, host_id: &str) {
        let body = serde_json::to_vec(&ShutdownRequest {
            host_id: host_id.into(),
        })
        .unwrap();
        // A process not addressed stays silent, so no reply is expected.
        self.nats
            .publish(self.subject(ProviderOperation::Shutdown), body.into())
            .await
            .unwrap();
        self.nats.flush().await.unwrap();
    }
}

fn link(source: &str, config: &[(&str, &str)]) -> ProviderLink {
    ProviderLink {
        link: Link {
            source_id: source.into(),
            target: PROVIDER.into(),
            wit_namespace: keyvalue::NAMESPACE.into(),
            wit_package: keyvalue::PACKAGE.into(),
            interfaces: vec!["store".into()],
            ..Link::default()
        },
        target_config_values: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ProviderLink::default()
    }
}

fn set(key: &str, value: &[u8]) -> KvRequest {
    KvRequest::Set {
        bucket: "default".into(),
        key: key.into(),
        value: value.to_vec(),
    }
}

fn get(key: &str) -> KvRequest {
    KvRequest::Get {
        bucket: "default".into(),
        key: key.into(),
    }
}

#[tokio::test]
async fn a_linked_component_s_calls_reach_its_store() {
    let served = Served::start().await;
    assert!(served.health().await.healthy);
    let reply = served.put(&link("counter", &[("space", "a")])).await;
    assert!(reply.success, "{}", reply.message);

    assert_eq!(
        served.call("counter", &set("k", b"v")).await,
        Ok(Ok(KvResponse::Done))
    );
    assert_eq!(
        served.call("counter", &get("k")).await,
        Ok(Ok(KvResponse::Value(Some(b"v".to_vec()))))
    );
    // The store's own error travels as the function's error, not a transport one.
    let exists = KvRequest::Exists {
        bucket: "default".into(),
        key: "k".into(),
    };
    let Ok(Err(KvError::Other(message))) = served.call("counter", &exists).await else {
        panic!("expected the store's error");
    };
    assert!(message.contains("store.exists"), "{message}");
}

#[tokio::test]
async fn a_bad_link_put_fails_naming_the_problem_and_health_reports_it_until_fixed() {
    let served = Served::start().await;
    let bad = link("counter", &[]);
    let reply = served.put(&bad).await;
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

    // A later good put of the same link clears it.
    let reply = served.put(&link("counter", &[("space", "a")])).await;
    assert!(reply.success, "{}", reply.message);
    let health = served.health().await;
    assert!(health.healthy, "{health:?}");
}

#[tokio::test]
async fn a_link_put_that_is_not_json_is_answered_with_a_failure() {
    let served = Served::start().await;
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
    let served = Served::start().await;
    served.put(&link("counter", &[("space", "a")])).await;
    let err = served.call("stranger", &get("k")).await.unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Refused);
    assert!(err.message.contains("`stranger`"), "{}", err.message);
    assert!(err.message.contains("`default`"), "{}", err.message);
    assert!(err.message.contains("wash link put"), "{}", err.message);
}

#[tokio::test]
async fn a_deleted_link_no_longer_routes_calls() {
    let served = Served::start().await;
    let linked = link("counter", &[("space", "a")]);
    served.put(&linked).await;
    assert!(served.call("counter", &get("k")).await.is_ok());
    let reply = served.delete(&linked.link).await;
    assert!(reply.success, "{}", reply.message);
    let err = served.call("counter", &get("k")).await.unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Refused);
}

#[tokio::test]
async fn deleting_another_package_s_link_leaves_the_keyvalue_link_alone() {
    let served = Served::start().await;
    let linked = link("counter", &[("space", "a")]);
    served.put(&linked).await;
    // Same source and link name, other package: a different link.
    let other = Link {
        wit_namespace: "wasi".into(),
        wit_package: "blobstore".into(),
        ..linked.link.clone()
    };
    served.delete(&other).await;
    assert_eq!(
        served.call("counter", &get("k")).await,
        Ok(Ok(KvResponse::Value(None)))
    );
}

#[tokio::test]
async fn shutdown_for_another_host_is_ignored_and_ours_stops_serve() {
    let mut served = Served::start().await;
    served.shutdown("NHOSTSOMEONEELSE").await;
    // Long enough for a wrongly obeyed request to have stopped it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(served.health().await.healthy);
    assert!(!served.task.is_finished());

    let reply = served
        .nats
        .request(
            served.subject(ProviderOperation::Shutdown),
            serde_json::to_vec(&ShutdownRequest {
                host_id: HOST.into(),
            })
            .unwrap()
            .into(),
        )
        .await
        .unwrap();
    let reply: CtlResponse<()> = serde_json::from_slice(&reply.payload).unwrap();
    assert!(reply.success);
    let outcome = tokio::time::timeout(Duration::from_secs(10), &mut served.task)
        .await
        .expect("serve did not return after shutdown");
    outcome.unwrap().unwrap();
}

#[tokio::test]
async fn the_stop_future_ends_serve() {
    let mut served = Served::start().await;
    served.stop.take().unwrap().send(()).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), &mut served.task)
        .await
        .expect("serve did not return after its stop future resolved");
    outcome.unwrap().unwrap();
}
