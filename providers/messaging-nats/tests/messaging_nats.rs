//! The messaging-nats provider end to end: a private nats-server, the
//! provider served in-process as its binary would serve it, links
//! delivered the way a host delivers them, and NATS clients playing the
//! components and the outside world.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_bytes::ByteBuf;
use tokio::sync::mpsc;
use trellis_lattice::WitFunction;
use trellis_lattice::messaging::{BrokerMessage, HANDLE_MESSAGE};
use trellis_lattice::rpc::{self, RpcError, RpcErrorKind, WitResult};
use trellis_messaging_nats::MessagingProvider;
use trellis_provider_sdk::ProviderLink;
use trellis_provider_sdk::testing::{self, ServedProvider, TestLattice, call_headers};
use trellis_test_support::NatsServer;

const PROVIDER_ID: &str = "messaging";
const LATTICE: &str = "test";

/// The provider served on a private lattice.
async fn start() -> ServedProvider {
    let lattice = TestLattice::start(LATTICE).await;
    let handle = lattice.handle(PROVIDER_ID, "NTESTHOST").await;
    let provider = MessagingProvider::new(handle.clone());
    lattice.serve(handle, provider).await
}

/// Like [`start`], with component `client` linked to the provider's
/// consumer.
async fn start_with_client() -> ServedProvider {
    let lattice = start().await;
    assert!(
        lattice
            .put_link(&consumer_link("client", &[]))
            .await
            .success
    );
    lattice
}

/// Plays component `id`'s handler: passes each delivered message on, with
/// the call's subject and link name, and answers with `answer` wrapped in
/// the array of results a host sends.
async fn handler_component(
    lattice: &ServedProvider,
    id: &str,
    answer: impl Fn(&BrokerMessage) -> WitResult<(), String> + Send + 'static,
) -> mpsc::UnboundedReceiver<(String, String, BrokerMessage)> {
    let mut calls = lattice
        .subscribe(&lattice.subjects().rpc_wildcard(id).unwrap())
        .await;
    let (delivered, received) = mpsc::unbounded_channel();
    let client = lattice.nats().clone();
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
    lattice: &ServedProvider,
    source: &str,
    function: &str,
    params: &T,
) -> Bytes {
    let function = WitFunction::parse(&format!("trellis:messaging/consumer.{function}")).unwrap();
    let headers = call_headers(source, "default");
    lattice
        .call(&function, &headers, rpc::encode(params).unwrap())
        .await
}

/// A link from the provider to `component`'s handler.
fn handler_link(component: &str, source_config: &[(&str, &str)]) -> ProviderLink {
    let link = testing::link(PROVIDER_ID, component, "trellis", "messaging", &["handler"]);
    testing::provider_link(link, source_config, &[])
}

/// A link from `component` to the provider's consumer.
fn consumer_link(component: &str, target_config: &[(&str, &str)]) -> ProviderLink {
    let link = testing::link(
        component,
        PROVIDER_ID,
        "trellis",
        "messaging",
        &["consumer"],
    );
    testing::provider_link(link, &[], target_config)
}

async fn next<T>(received: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .expect("nothing arrived within 5 s")
        .unwrap()
}

/// The next message on `subscriber`, which must come within 5 s.
async fn next_message(subscriber: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(5), subscriber.next())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_message_on_a_subscribed_subject_reaches_the_component() {
    let lattice = start().await;
    let mut delivered = handler_component(&lattice, "echo", |_| WitResult::Ok(())).await;
    let put = lattice
        .put_link(&handler_link(
            "echo",
            &[("subscriptions", "orders.*, audit")],
        ))
        .await;
    assert!(put.success, "{}", put.message);

    lattice
        .nats()
        .publish_with_reply("orders.new", "replies.1", Bytes::from_static(b"one pizza"))
        .await
        .unwrap();
    let (subject, link_name, msg) = next(&mut delivered).await;
    assert_eq!(
        subject,
        lattice
            .subjects()
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

    lattice.nats().publish("audit", Bytes::new()).await.unwrap();
    let (_, _, msg) = next(&mut delivered).await;
    assert_eq!(msg.subject, "audit");
    assert!(msg.body.is_empty());
    assert_eq!(msg.reply_to, None);
    assert!(lattice.health().await.healthy);
    lattice.stop().await;
}

#[tokio::test]
async fn a_handler_error_does_not_stop_the_subscription() {
    let lattice = start().await;
    let mut delivered = handler_component(&lattice, "picky", |msg| {
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

    lattice.nats().publish("jobs", "bad".into()).await.unwrap();
    assert_eq!(next(&mut delivered).await.2.body, b"bad");
    lattice.nats().publish("jobs", "good".into()).await.unwrap();
    assert_eq!(next(&mut delivered).await.2.body, b"good");
    lattice.stop().await;
}

#[tokio::test]
async fn deleting_the_handler_link_unsubscribes() {
    let lattice = start().await;
    let mut delivered = handler_component(&lattice, "echo", |_| WitResult::Ok(())).await;
    let link = handler_link("echo", &[("subscriptions", "news")]);
    assert!(lattice.put_link(&link).await.success);
    lattice
        .nats()
        .publish("news", "first".into())
        .await
        .unwrap();
    assert_eq!(next(&mut delivered).await.2.body, b"first");

    let del = lattice.del_link(&link.link).await;
    assert!(del.success, "{}", del.message);
    lattice
        .nats()
        .publish("news", "second".into())
        .await
        .unwrap();
    lattice.nats().flush().await.unwrap();
    let late = tokio::time::timeout(Duration::from_millis(300), delivered.recv()).await;
    assert!(
        late.is_err(),
        "delivered after the link was deleted: {late:?}"
    );
    lattice.stop().await;
}

#[tokio::test]
async fn a_bad_subject_fails_the_link_naming_it() {
    let lattice = start().await;
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
    let lattice = start_with_client().await;
    let mut service = lattice.subscribe("svc.time").await;
    let responder = lattice.nats().clone();
    tokio::spawn(async move {
        while let Some(request) = service.next().await {
            let answer = format!("pong to {}", String::from_utf8_lossy(&request.payload));
            if let Some(reply) = request.reply {
                responder.publish(reply, answer.into()).await.unwrap();
            }
        }
    });

    let reply = consumer_call(
        &lattice,
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
    let lattice = start_with_client().await;
    let reply = consumer_call(
        &lattice,
        "client",
        "request",
        &("svc.nobody", ByteBuf::new(), 500u32),
    )
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
    let lattice = start_with_client().await;
    let mut news = lattice.subscribe("news.today").await;

    let msg = BrokerMessage {
        subject: "news.today".into(),
        body: b"sunny".to_vec(),
        reply_to: Some("news.replies".into()),
    };
    let reply = consumer_call(&lattice, "client", "publish", &(msg,)).await;
    let result: WitResult<(), String> = rpc::decode_reply(&reply).unwrap();
    assert_eq!(result, WitResult::Ok(()));
    let got = next_message(&mut news).await;
    assert_eq!(got.payload.as_ref(), b"sunny");
    assert_eq!(
        got.reply.map(|r| r.to_string()).as_deref(),
        Some("news.replies")
    );

    let wildcard = BrokerMessage {
        subject: "news.*".into(),
        ..BrokerMessage::default()
    };
    let reply = consumer_call(&lattice, "client", "publish", &(wildcard,)).await;
    let result: WitResult<(), String> = rpc::decode_reply(&reply).unwrap();
    assert!(
        matches!(&result, WitResult::Err(e) if e.contains("news.*")),
        "{result:?}"
    );
    lattice.stop().await;
}

#[tokio::test]
async fn cluster_uris_send_a_component_publish_to_another_nats() {
    let lattice = start().await;
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
    let reply = consumer_call(&lattice, "client", "publish", &(msg,)).await;
    assert_eq!(
        rpc::decode_reply::<WitResult<(), String>>(&reply).unwrap(),
        WitResult::Ok(())
    );
    let got = next_message(&mut elsewhere).await;
    assert_eq!(got.payload.as_ref(), b"hello");
    assert!(lattice.health().await.healthy);
    lattice.stop().await;
}

#[tokio::test]
async fn an_unreachable_cluster_fails_the_link() {
    let lattice = start().await;
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
    let lattice = start().await;
    let msg = BrokerMessage {
        subject: "x".into(),
        ..BrokerMessage::default()
    };
    let reply = consumer_call(&lattice, "stranger", "publish", &(msg,)).await;
    let err = rpc::decode_reply::<WitResult<(), String>>(&reply).unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::NoLink);
    assert!(err.message.contains("`stranger`"), "{}", err.message);
    lattice.stop().await;
}

#[tokio::test]
async fn parameters_as_a_host_encodes_them_decode_even_with_an_empty_body() {
    use rmpv::Value;
    let lattice = start_with_client().await;
    let mut news = lattice.subscribe("news.empty").await;

    // A host encodes an empty `list<u8>` as an empty array, not as `bin`.
    let params = Value::Array(vec![Value::Map(vec![
        ("subject".into(), "news.empty".into()),
        ("body".into(), Value::Array(Vec::new())),
        ("reply-to".into(), Value::Nil),
    ])]);
    let reply = consumer_call(&lattice, "client", "publish", &params).await;
    assert_eq!(
        rpc::decode_reply::<WitResult<(), String>>(&reply).unwrap(),
        WitResult::Ok(())
    );
    let got = next_message(&mut news).await;
    assert!(got.payload.is_empty());

    let params = Value::Array(vec![
        "svc.none".into(),
        Value::Array(Vec::new()),
        200.into(),
    ]);
    let reply = consumer_call(&lattice, "client", "request", &params).await;
    let result = rpc::decode_reply::<WitResult<BrokerMessage, String>>(&reply).unwrap();
    assert!(matches!(result, WitResult::Err(_)), "{result:?}");
    lattice.stop().await;
}
