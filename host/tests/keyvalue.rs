//! `wasi:keyvalue` across the lattice: the kv-counter example runs on an
//! in-process host, and each bucket operation it makes must arrive over
//! NATS at whatever its link names. A small responder task plays the
//! provider, keeping values in a map, so the test sees exactly what
//! crossed the wire. Also covered: components that import an interface
//! only for its types.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use trellis_host::{Host, HostConfig};
use trellis_lattice::Link;
use trellis_lattice::client::{ClientError, CtlClient};
use trellis_lattice::connect::NatsConnection;
use trellis_lattice::ctl::ScaleComponentCommand;
use trellis_lattice::http::{HttpRequest, HttpResponse};
use trellis_lattice::keyvalue::{self, KvError, KvRequest, KvResponse};
use trellis_lattice::rpc::CallHeaders;
use trellis_lattice::subject::Subjects;
use trellis_test_support::{NatsServer, example_component};

const LATTICE: &str = "kvtest";
/// The id the stand-in provider serves under.
const PROVIDER: &str = "kvtest";
const COUNTER: &str = "counter";
const WAIT: Duration = Duration::from_secs(60);

/// A component that imports an interface holding nothing but a record,
/// as any component does that `use`s a type from an interface.
const TYPES_ONLY_COMPONENT: &str = r#"
(component
  (import "trellis:test/shapes@0.1.0" (instance
    (type $point (record (field "x" u32) (field "y" u32)))
    (export "point" (type (eq $point))))))
"#;

/// Values by (bucket, key), and the headers of every call received.
#[derive(Default)]
struct Store {
    values: HashMap<(String, String), Vec<u8>>,
    callers: Vec<CallHeaders>,
}

/// A host on a private NATS server, and a control client for it.
struct Lattice {
    // Kept so the server lives as long as the test.
    _nats: NatsServer,
    _data_dir: tempfile::TempDir,
    nats_url: String,
    host: Host,
    ctl: CtlClient,
}

impl Lattice {
    async fn start() -> Self {
        let nats = NatsServer::start().unwrap();
        let nats_url = nats.url();
        let data_dir = tempfile::tempdir().unwrap();
        let host = Host::start(HostConfig {
            data_dir: data_dir.path().to_owned(),
            lattice: LATTICE.into(),
            nats: NatsConnection::new(nats_url.clone()),
            allow_any_issuer: true,
            allow_unsigned: true,
            call_timeout: Duration::from_secs(5),
            ..HostConfig::default()
        })
        .await
        .unwrap();
        let client = async_nats::connect(&nats_url).await.unwrap();
        let ctl = CtlClient::new(client, LATTICE).unwrap().with_timeout(WAIT);
        Lattice {
            _nats: nats,
            _data_dir: data_dir,
            nats_url,
            host,
            ctl,
        }
    }

    async fn scale(&self, id: &str, wasm: &Path) -> Result<(), ClientError> {
        let command = ScaleComponentCommand {
            component_id: id.into(),
            component_ref: format!("file://{}", wasm.display()),
            max_instances: 1,
            host_id: self.host.id().into(),
            ..Default::default()
        };
        self.ctl
            .scale_component_and_wait(&command, WAIT)
            .await
            .map(|_| ())
    }

    async fn scale_counter(&self) {
        let wasm = example_component("kv-counter").unwrap();
        self.scale(COUNTER, &wasm).await.unwrap();
    }

    async fn link_counter_to(&self, target: &str) {
        self.ctl
            .put_link(&Link {
                source_id: COUNTER.into(),
                target: target.into(),
                name: "default".into(),
                wit_namespace: "wasi".into(),
                wit_package: "keyvalue".into(),
                interfaces: vec!["store".into(), "atomics".into()],
                source_config: vec![],
                target_config: vec![],
            })
            .await
            .unwrap();
    }

    async fn get(&self, path: &str) -> HttpResponse {
        let component = self.host.inner().component(COUNTER).unwrap();
        component.handle_http(HttpRequest::get(path)).await.unwrap()
    }

    /// Serves `wasi:keyvalue` as [`PROVIDER`] from an in-memory map until
    /// the test ends.
    async fn serve_keyvalue(&self) -> Arc<Mutex<Store>> {
        let store = Arc::new(Mutex::new(Store::default()));
        let nats = async_nats::connect(&self.nats_url).await.unwrap();
        let subjects = Subjects::new(LATTICE).unwrap();
        let mut calls = nats
            .queue_subscribe(
                subjects.rpc_wildcard(PROVIDER).unwrap(),
                subjects.rpc_queue_group(PROVIDER).unwrap(),
            )
            .await
            .unwrap();
        // The subscription is live once the server has seen it; without
        // this a call made right away could find no responder.
        nats.flush().await.unwrap();
        let served = Arc::clone(&store);
        tokio::spawn(async move {
            while let Some(message) = calls.next().await {
                let call = subjects.parse_rpc(&message.subject).unwrap();
                let request = KvRequest::decode(
                    &call.function.interface.interface,
                    &call.function.function,
                    &message.payload,
                )
                .unwrap();
                let headers = CallHeaders::from_lookup(|name| {
                    let value = message.headers.as_ref()?.get(name)?;
                    Some(value.as_str().to_owned())
                });
                let result = {
                    let mut store = served.lock().unwrap();
                    store.callers.push(headers);
                    answer(&mut store.values, &request)
                };
                let reply = keyvalue::encode_reply(&request, result).unwrap();
                nats.publish(message.reply.unwrap(), reply.into())
                    .await
                    .unwrap();
            }
        });
        store
    }
}

/// What a provider would answer; only what the counter uses is served.
fn answer(
    values: &mut HashMap<(String, String), Vec<u8>>,
    request: &KvRequest,
) -> Result<KvResponse, KvError> {
    match request {
        KvRequest::Get { bucket, key } => Ok(KvResponse::Value(
            values.get(&(bucket.clone(), key.clone())).cloned(),
        )),
        KvRequest::Increment { bucket, key, delta } => {
            let slot = (bucket.clone(), key.clone());
            let now = keyvalue::parse_counter(key, values.get(&slot).map(Vec::as_slice))? + delta;
            values.insert(slot, now.to_string().into_bytes());
            Ok(KvResponse::Counter(now))
        }
        other => Err(KvError::Other(format!(
            "the test provider does not serve {}",
            other.function()
        ))),
    }
}

/// Runs the counter with its keyvalue link to `target` (or none) and
/// returns the body of the 500 its first request must get.
async fn counter_failure(target: Option<&str>) -> String {
    let lattice = Lattice::start().await;
    if let Some(target) = target {
        lattice.link_counter_to(target).await;
    }
    lattice.scale_counter().await;

    let response = lattice.get("/").await;

    assert_eq!(response.status, 500);
    lattice.host.stop("test done").await;
    text(&response)
}

fn text(response: &HttpResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_increment_reaches_the_linked_provider() {
    let lattice = Lattice::start().await;
    let store = lattice.serve_keyvalue().await;
    lattice.link_counter_to(PROVIDER).await;
    lattice.scale_counter().await;

    for expected in ["1\n", "2\n", "3\n"] {
        let response = lattice.get("/").await;
        assert_eq!(response.status, 200, "{}", text(&response));
        assert_eq!(text(&response), expected);
    }

    {
        let store = store.lock().unwrap();
        let key = ("default".to_owned(), "counter".to_owned());
        assert_eq!(store.values.get(&key).map(Vec::as_slice), Some(&b"3"[..]));
        assert_eq!(store.callers.len(), 3);
        for caller in &store.callers {
            assert_eq!(caller.source_id, COUNTER);
            assert_eq!(caller.link_name, "default");
        }
    }
    lattice.host.stop("test done").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_link_the_component_is_told_which_link_to_put() {
    let body = counter_failure(None).await;
    assert!(
        body.contains("component `counter` has no link named `default` for wasi:keyvalue/store"),
        "{body}"
    );
    assert!(body.contains("wash link put counter"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_to_a_target_nobody_serves_is_reported_not_trapped() {
    let body = counter_failure(Some("nobody")).await;
    assert!(
        body.contains("nothing on the lattice serves `nobody`"),
        "{body}"
    );
    assert!(body.contains("wasi:keyvalue/atomics"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interface_imported_only_for_its_types_needs_no_link() {
    let lattice = Lattice::start().await;
    let dir = tempfile::tempdir().unwrap();
    let shapes = dir.path().join("shapes.wasm");
    std::fs::write(&shapes, wat::parse_str(TYPES_ONLY_COMPONENT).unwrap()).unwrap();

    lattice.scale("shapes", &shapes).await.unwrap();
    lattice
        .scale("echo", &example_component("messaging-echo").unwrap())
        .await
        .unwrap();

    assert!(lattice.host.inner().component("shapes").is_some());
    assert!(lattice.host.inner().component("echo").is_some());
    lattice.host.stop("test done").await;
}
