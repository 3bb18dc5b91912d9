//! The messaging-nats provider end to end: a private nats-server, the
//! provider served in-process as its binary would serve it, links
//! delivered the way a host delivers them, and NATS clients playing the
//! components and the outside world.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};
use trellis_lattice::ctl::CtlResponse;
use trellis_lattice::messaging::{BrokerMessage, HANDLE_MESSAGE};
use trellis_lattice::provider::HealthCheckResponse;
use trellis_lattice::rpc::{self, CallHeaders, RpcError, RpcErrorKind, WitResult};
use trellis_lattice::subject::ProviderOperation;
use trellis_lattice::{HostData, Link, Subjects, WitFunction};
use trellis_messaging_nats::MessagingProvider;
use trellis_provider_sdk::{ProviderHandle, ProviderLink};
use trellis_test_support::NatsServer;

const PROVIDER_ID: &str = "messaging";
const LATTICE: &str = "test";

/// A private lattice with the provider serving on it.
struct Lattice {
    _nats: NatsServer,
    client: async_nats::Client,
    subjects: Subjects,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

impl Lattice {
    async fn start() -> Lattice {
        let nats = NatsServer::start().unwrap();
        let client = async_nats::connect(nats.url()).await.unwrap();
        let host_data = HostData {
            host_id: "NTESTHOST".into(),
            lattice_rpc_prefix: LATTICE.into(),
            lattice_rpc_url: nats.url(),
            provider_key: PROVIDER_ID.into(),
            ..HostData::default()
        };
        let provider_nats = async_nats::connect(nats.url()).await.unwrap();
        let handle = ProviderHandle::new(provider_nats, host_data).unwrap();
        let provider = MessagingProvider::new(handle.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.await;
                "the test is over"
            };
            trellis_provider_sdk::serve(handle, provider, stop)
                .await
                .unwrap();
        });
        let lattice = Lattice {
            _nats: nats,
            client,
            subjects: Subjects::new(LATTICE).unwrap(),
            stop: Some(stop),
            served,
        };
        lattice.wait_until_serving().await;
        lattice
    }

    async fn wait_until_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let subject = self.provider_subject(ProviderOperation::Health);
        while self
            .client
            .request(subject.clone(), Bytes::new())
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the provider never answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn provider_subject(&self, op: ProviderOperation) -> String {
        self.subjects.provider(PROVIDER_ID, op).unwrap()
    }

    async fn put_link(&self, link: &ProviderLink) -> CtlResponse<()> {
        let body = serde_json::to_vec(link).unwrap();
        let reply = self
            .client
            .request(
                self.provider_subject(ProviderOperation::LinkPut),
                body.into(),
            )
            .await
            .unwrap();
        serde_json::from_slice(&reply.payload).unwrap()
    }

    async fn del_link(&self, link: &Link) -> CtlResponse<()> {
        let body = serde_json::to_vec(link).unwrap();
        let reply = self
            .client
            .request(
                self.provider_subject(ProviderOperation::LinkDel),
                body.into(),
            )
            .await
            .unwrap();
        serde_json::from_slice(&reply.payload).unwrap()
    }

    async fn health(&self) -> HealthCheckResponse {
        let reply = self
            .client
            .request(
                self.provider_subject(ProviderOperation::Health),
                Bytes::new(),
            )
            .await
            .unwrap();
        serde_json::from_slice(&reply.payload).unwrap()
    }

    /// Plays component `id`'s handler: passes each delivered message on,
    /// with the call's subject and link name, and answers with `answer`
    /// wrapped in the array of results a host sends.
    async fn handler_component(
        &self,
        id: &str,
        answer: impl Fn(&BrokerMessage) -> WitResult<(), String> + Send + 'static,
    ) -> mpsc::UnboundedReceiver<(String, String, BrokerMessage)> {
        let mut calls = self
            .client
            .subscribe(self.subjects.rpc_wildcard(id).unwrap())
            .await
            .unwrap();
        self.client.flush().await.unwrap();
        let (delivered, received) = mpsc::unbounded_channel();
        let client = self.client.clone();
        tokio::spawn(async move {
            while let Some(call) = calls.next().await {
                let (msg,): (BrokerMessage,) = rpc::decode(&call.payload).unwrap();
                let link_name = call
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(rpc::LINK_NAME_HEADER))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default();
                let results = vec![answer(&msg)];
                let _ = delivered.send((call.subject.to_string(), link_name, msg));
                if let Some(reply) = call.reply {
                    let bytes = rpc::encode_reply(&Ok::<_, RpcError>(results)).unwrap();
                    client.publish(reply, bytes.into()).await.unwrap();
                }
            }
        });
        received
    }

    /// Calls `trellis:messaging/consumer.{function}` on the provider as
    /// component `source` would, under the default link.
    async fn consumer_call<T: serde::Serialize>(
        &self,
        source: &str,
        function: &str,
        params: &T,
    ) -> Bytes {
        let function =
            WitFunction::parse(&format!("trellis:messaging/consumer.{function}")).unwrap();
        let subject = self.subjects.rpc(PROVIDER_ID, &function).unwrap();
        let call = CallHeaders {
            source_id: source.into(),
            link_name: "default".into(),
            traceparent: None,
            tracestate: None,
        };
        let mut headers = async_nats::HeaderMap::new();
        for (name, value) in call.to_pairs() {
            headers.insert(name, value.as_str());
        }
        let body = rpc::encode(params).unwrap();
        self.client
            .request_with_headers(subject, headers, body.into())
            .await
            .unwrap()
            .payload
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.served)
            .await
            .unwrap()
            .unwrap();
    }
}

fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A link from the provider to `component`'s handler.
fn handler_link(component: &str, source_config: &[(&str, &str)]) -> ProviderLink {
    ProviderLink {
        link: Link {
            source_id: PROVIDER_ID.into(),
            target: component.into(),
            wit_namespace: "trellis".into(),
            wit_package: "messaging".into(),
            interfaces: vec!["handler".into()],
            ..Link::default()
        },
        source_config_values: config(source_config),
        target_config_values: BTreeMap::new(),
    }
}

/// A link from `component` to the provider's consumer.
fn consumer_link(component: &str, target_config: &[(&str, &str)]) -> ProviderLink {
    ProviderLink {
        link: Link {
            source_id: component.into(),
            target: PROVIDER_ID.into(),
            wit_namespace: "trellis".into(),
            wit_package: "messaging".into(),
            interfaces: vec!["consumer".into()],
            ..Link::default()
        },
        source_config_values: BTreeMap::new(),
        target_config_values: config(target_config),
    }
}

async fn next<T>(received: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .expect("nothing arrived within 5 s")
        .unwrap()
}

#[tokio::test]
async fn a_message_on_a_subscribed_subject_reaches_the_component() {
    let lattice = Lattice::start().await;
    let mut delivered = lattice
        .handler_component("echo", |_| WitResult::Ok(()))
        .await;
    let put = lattice
        .put_link(&handler_link(
            "echo",
            &[("subscriptions", "orders.*, audit")],
        ))
        .await;
    assert!(put.success, "{}", put.message);

    lattice
        .client
        .publish_with_reply("orders.new", "replies.1", Bytes::from_static(b"one pizza"))
        .await
        .unwrap();
    let (subject, link_name, msg) = next(&mut delivered).await;
    assert_eq!(
        subject,
        lattice
            .subjects
            .rpc("echo", &WitFunction::parse(HANDLE_MESSAGE).unwrap())
            .unwrap()
    );
    assert_eq!(link_name, "default");
    assert_eq!(
        msg,
        BrokerMessage {
            subject: "orders.new".into(),
            body: b"one pizza".to_vec(),
            reply_to: Some("replies.1".into()),
        }
    );

    lattice.client.publish("audit", Bytes::new()).await.unwrap();
    let (_, _, msg) = next(&mut delivered).await;
    assert_eq!(msg.subject, "audit");
    assert!(msg.body.is_empty());
    assert_eq!(msg.reply_to, None);
    assert!(lattice.health().await.healthy);
    lattice.stop().await;
}

#[tokio::test]
async fn a_handler_error_does_not_stop_the_subscription() {
    let lattice = Lattice::start().await;
    let mut delivered = lattice
        .handler_component("picky", |msg| {
            if msg.body == b"bad" {
                WitResult::Err("cannot handle this".into())
            } else {
                WitResult::Ok(())
            }
        })
        .await;
    let put = lattice
        .put_link(&handler_link("picky", &[("subscriptions", "jobs")]))
        .await;
    assert!(put.success, "{}", put.message);

    lattice.client.publish("jobs", "bad".into()).await.unwrap();
    assert_eq!(next(&mut delivered).await.2.body, b"bad");
    lattice.client.publish("jobs", "good".into()).await.unwrap();
    assert_eq!(next(&mut delivered).await.2.body, b"good");
    lattice.stop().await;
}

#[tokio::test]
async fn deleting_the_handler_link_unsubscribes() {
    let lattice = Lattice::start().await;
    let mut delivered = lattice
        .handler_component("echo", |_| WitResult::Ok(()))
        .await;
    let link = handler_link("echo", &[("subscriptions", "news")]);
    assert!(lattice.put_link(&link).await.success);
    lattice
        .client
        .publish("news", "first".into())
        .await
        .unwrap();
    assert_eq!(next(&mut delivered).await.2.body, b"first");

    let del = lattice.del_link(&link.link).await;
    assert!(del.success, "{}", del.message);
    lattice
        .client
        .publish("news", "second".into())
        .await
        .unwrap();
    lattice.client.flush().await.unwrap();
    let late = tokio::time::timeout(Duration::from_millis(300), delivered.recv()).await;
    assert!(
        late.is_err(),
        "delivered after the link was deleted: {late:?}"
    );
    lattice.stop().await;
}

#[tokio::test]
async fn a_bad_subject_fails_the_link_naming_it() {
    let lattice = Lattice::start().await;
    let put = lattice
        .put_link(&handler_link(
            "echo",
            &[("subscriptions", "orders, orders..new")],
        ))
        .await;
    assert!(!put.success);
    assert!(put.message.contains("`orders..new`"), "{}", put.message);
    let health = lattice.health().await;
    assert!(!health.healthy);
    assert!(
        health.message.unwrap_or_default().contains("orders..new"),
        "health does not name the subject"
    );

    let put = lattice.put_link(&handler_link("echo", &[])).await;
    assert!(!put.success);
    assert!(put.message.contains("`subscriptions`"), "{}", put.message);
    lattice.stop().await;
}

#[tokio::test]
async fn a_component_request_gets_the_reply_of_a_nats_responder() {
    let lattice = Lattice::start().await;
    assert!(
        lattice
            .put_link(&consumer_link("client", &[]))
            .await
            .success
    );
    let mut service = lattice.client.subscribe("svc.time").await.unwrap();
    lattice.client.flush().await.unwrap();
    let responder = lattice.client.clone();
    tokio::spawn(async move {
        while let Some(request) = service.next().await {
            let answer = format!("pong to {}", String::from_utf8_lossy(&request.payload));
            if let Some(reply) = request.reply {
                responder.publish(reply, answer.into()).await.unwrap();
            }
        }
    });

    let reply = lattice
        .consumer_call(
            "client",
            "request",
            &("svc.time", ByteBuf::from(b"ping".to_vec()), 2_000u32),
        )
        .await;
    let result: WitResult<BrokerMessage, String> = rpc::decode_reply(&reply).unwrap();
    let WitResult::Ok(msg) = result else {
        panic!("the request failed: {result:?}");
    };
    assert_eq!(msg.body, b"pong to ping");
    assert!(msg.subject.starts_with("_INBOX."), "{}", msg.subject);
    lattice.stop().await;
}

#[tokio::test]
async fn a_request_nobody_answers_is_an_error_for_the_component() {
    let lattice = Lattice::start().await;
    assert!(
        lattice
            .put_link(&consumer_link("client", &[]))
            .await
            .success
    );
    let reply = lattice
        .consumer_call("client", "request", &("svc.nobody", ByteBuf::new(), 500u32))
        .await;
    let result: WitResult<BrokerMessage, String> = rpc::decode_reply(&reply).unwrap();
    let WitResult::Err(message) = result else {
        panic!("a request without responders succeeded: {result:?}");
    };
    assert!(message.contains("no responders"), "{message}");
    assert!(message.contains("svc.nobody"), "{message}");
    lattice.stop().await;
}

#[tokio::test]
async fn a_component_publish_reaches_nats_subscribers() {
    let lattice = Lattice::start().await;
    assert!(
        lattice
            .put_link(&consumer_link("client", &[]))
            .await
            .success
    );
    let mut news = lattice.client.subscribe("news.today").await.unwrap();
    lattice.client.flush().await.unwrap();

    let msg = BrokerMessage {
        subject: "news.today".into(),
        body: b"sunny".to_vec(),
        reply_to: Some("news.replies".into()),
    };
    let reply = lattice.consumer_call("client", "publish", &(msg,)).await;
    let result: WitResult<(), String> = rpc::decode_reply(&reply).unwrap();
    assert_eq!(result, WitResult::Ok(()));
    let got = tokio::time::timeout(Duration::from_secs(5), news.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.payload.as_ref(), b"sunny");
    assert_eq!(
        got.reply.map(|r| r.to_string()).as_deref(),
        Some("news.replies")
    );

    let wildcard = BrokerMessage {
        subject: "news.*".into(),
        ..BrokerMessage::default()
    };
    let reply = lattice
        .consumer_call("client", "publish", &(wildcard,))
        .await;
    let result: WitResult<(), String> = rpc::decode_reply(&reply).unwrap();
    assert!(
        matches!(&result, WitResult::Err(e) if e.contains("news.*")),
        "{result:?}"
    );
    lattice.stop().await;
}

#[tokio::test]
async fn cluster_uris_send_a_component_publish_to_another_nats() {
    let lattice = Lattice::start().await;
    let other = NatsServer::start().unwrap();
    let put = lattice
        .put_link(&consumer_link("client", &[("cluster_uris", &other.url())]))
        .await;
    assert!(put.success, "{}", put.message);
    let other_client = async_nats::connect(other.url()).await.unwrap();
    let mut elsewhere = other_client.subscribe("far.away").await.unwrap();
    other_client.flush().await.unwrap();

    let msg = BrokerMessage {
        subject: "far.away".into(),
        body: b"hello".to_vec(),
        reply_to: None,
    };
    let reply = lattice.consumer_call("client", "publish", &(msg,)).await;
    assert_eq!(
        rpc::decode_reply::<WitResult<(), String>>(&reply).unwrap(),
        WitResult::Ok(())
    );
    let got = tokio::time::timeout(Duration::from_secs(5), elsewhere.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.payload.as_ref(), b"hello");
    assert!(lattice.health().await.healthy);
    lattice.stop().await;
}

#[tokio::test]
async fn an_unreachable_cluster_fails_the_link() {
    let lattice = Lattice::start().await;
    let port = trellis_test_support::free_port().unwrap();
    let put = lattice
        .put_link(&consumer_link(
            "client",
            &[("cluster_uris", &format!("nats://127.0.0.1:{port}"))],
        ))
        .await;
    assert!(!put.success);
    assert!(put.message.contains(&port.to_string()), "{}", put.message);
    lattice.stop().await;
}

#[tokio::test]
async fn a_call_without_a_link_is_refused_naming_the_link() {
    let lattice = Lattice::start().await;
    let msg = BrokerMessage {
        subject: "x".into(),
        ..BrokerMessage::default()
    };
    let reply = lattice.consumer_call("stranger", "publish", &(msg,)).await;
    let err = rpc::decode_reply::<WitResult<(), String>>(&reply).unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Refused);
    assert!(err.message.contains("`stranger`"), "{}", err.message);
    lattice.stop().await;
}

#[tokio::test]
async fn parameters_as_a_host_encodes_them_decode_even_with_an_empty_body() {
    use rmpv::Value;
    let lattice = Lattice::start().await;
    assert!(
        lattice
            .put_link(&consumer_link("client", &[]))
            .await
            .success
    );
    let mut news = lattice.client.subscribe("news.empty").await.unwrap();
    lattice.client.flush().await.unwrap();

    // A host encodes an empty `list<u8>` as an empty array, not as `bin`.
    let params = Value::Array(vec![Value::Map(vec![
        ("subject".into(), "news.empty".into()),
        ("body".into(), Value::Array(Vec::new())),
        ("reply-to".into(), Value::Nil),
    ])]);
    let reply = lattice.consumer_call("client", "publish", &params).await;
    assert_eq!(
        rpc::decode_reply::<WitResult<(), String>>(&reply).unwrap(),
        WitResult::Ok(())
    );
    let got = tokio::time::timeout(Duration::from_secs(5), news.next())
        .await
        .unwrap()
        .unwrap();
    assert!(got.payload.is_empty());

    let params = Value::Array(vec![
        "svc.none".into(),
        Value::Array(Vec::new()),
        200.into(),
    ]);
    let reply = lattice.consumer_call("client", "request", &params).await;
    let result = rpc::decode_reply::<WitResult<BrokerMessage, String>>(&reply).unwrap();
    assert!(matches!(result, WitResult::Err(_)), "{result:?}");
    lattice.stop().await;
}
