//! The http-server provider end to end: a private nats-server, the provider
//! served in-process as its binary would serve it, links delivered the way
//! a host delivers them, a NATS responder playing the component, and real
//! HTTP clients.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use trellis_http_server::HttpServerProvider;
use trellis_lattice::chunk::{self, ChunkLimits};
use trellis_lattice::http::{HttpRequest, HttpResponse};
use trellis_lattice::rpc::{self, RpcError};
use trellis_provider_sdk::ProviderLink;
use trellis_provider_sdk::testing::{self, ServedProvider, TestLattice};
use trellis_test_support::free_port;

const PROVIDER_ID: &str = "http-server";
const LATTICE: &str = "test";

/// The provider served on a private lattice.
async fn start() -> ServedProvider {
    start_with(async_nats::ConnectOptions::new()).await
}

/// Serves the provider on a connection made with `options`.
async fn start_with(options: async_nats::ConnectOptions) -> ServedProvider {
    let lattice = TestLattice::start(LATTICE).await;
    let handle = lattice.handle_with(options, PROVIDER_ID, "NTESTHOST").await;
    let provider = HttpServerProvider::new(handle.clone());
    lattice.serve(handle, provider).await
}

/// Plays component `id`: answers each HTTP call with `answer`, or not at
/// all when it returns `None`.
async fn component(
    lattice: &ServedProvider,
    id: &str,
    answer: impl Fn(HttpRequest) -> Option<HttpResponse> + Send + Sync + 'static,
) {
    slow_component(lattice, id, Duration::ZERO, answer).await;
}

/// Like [`component`], answering each call after `delay`.
async fn slow_component(
    lattice: &ServedProvider,
    id: &str,
    delay: Duration,
    answer: impl Fn(HttpRequest) -> Option<HttpResponse> + Send + Sync + 'static,
) {
    let mut calls = lattice
        .subscribe(&lattice.subjects().rpc_wildcard(id).unwrap())
        .await;
    let client = lattice.nats().clone();
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Some(call) = calls.next().await {
            let client = client.clone();
            let answer = std::sync::Arc::clone(&answer);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                // As a host does: bodies too large for one message are
                // pulled, and offered back.
                let limits = ChunkLimits::default();
                let payload = chunk::payload_of(&client, &call, &limits).await.unwrap();
                let mut request: HttpRequest = rpc::decode(&payload).unwrap();
                let streamed = chunk::StreamOffer::from_lookup(|name| {
                    call.headers
                        .as_ref()
                        .and_then(|h| h.get(name))
                        .map(|v| v.as_str().to_owned())
                });
                if let Some(offer) = streamed {
                    let chunks: Vec<_> = chunk::fetch_stream(&client, offer.unwrap(), &limits)
                        .collect()
                        .await;
                    request.body = chunks.into_iter().flat_map(|c| c.unwrap()).collect();
                }
                if let (Some(response), Some(reply)) = (answer(request), call.reply) {
                    let bytes = rpc::encode_reply::<HttpResponse>(&Ok(response)).unwrap();
                    chunk::publish(
                        &client,
                        reply,
                        async_nats::HeaderMap::new(),
                        bytes.into(),
                        &limits,
                    )
                    .await
                    .unwrap();
                }
            });
        }
    });
}

/// A link from the provider to `component`, listening on `address`.
fn http_link(component: &str, address: SocketAddr, extra: &[(&str, &str)]) -> ProviderLink {
    let link = testing::link(
        PROVIDER_ID,
        component,
        "wasi",
        "http",
        &["incoming-handler"],
    );
    let mut link = testing::provider_link(link, extra, &[]);
    link.source_config_values
        .insert("address".into(), address.to_string());
    link
}

/// Links the provider to `component` on a free address and returns it; the
/// provider must accept the link.
async fn link_on_free_address(
    lattice: &ServedProvider,
    component: &str,
    extra: &[(&str, &str)],
) -> SocketAddr {
    let address = free_address();
    let put = lattice
        .put_link(&http_link(component, address, extra))
        .await;
    assert!(put.success, "{}", put.message);
    address
}

fn free_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()))
}

/// An open HTTP/1.1 connection, kept alive across requests.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    address: SocketAddr,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Client {
    async fn connect(address: SocketAddr) -> Client {
        let stream = TcpStream::connect(address).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Client { sender, address }
    }

    async fn send(&mut self, method: &str, path: &str, body: &str) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.address.to_string())
            .header("x-test", "yes")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a [u8]> {
    request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

#[tokio::test]
async fn a_request_reaches_the_component_and_its_answer_reaches_the_client() {
    let lattice = start().await;
    component(&lattice, "hello", |request| {
        let summary = format!(
            "{} {} {} {} x-test={} body={}",
            request.method,
            request.path_with_query,
            request.scheme,
            request.authority,
            String::from_utf8_lossy(header(&request, "x-test").unwrap_or_default()),
            String::from_utf8_lossy(&request.body),
        );
        Some(HttpResponse {
            status: 201,
            headers: vec![
                ("content-type".into(), b"text/plain".to_vec()),
                ("x-component".into(), b"hello".to_vec()),
            ],
            body: summary.into_bytes(),
        })
    })
    .await;
    let address = link_on_free_address(&lattice, "hello", &[]).await;

    let mut client = Client::connect(address).await;
    let reply = client.send("POST", "/counter?x=1", "hi there").await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.headers["x-component"], "hello");
    assert_eq!(reply.headers["content-type"], "text/plain");
    assert_eq!(
        reply.body,
        format!("POST /counter?x=1 http {address} x-test=yes body=hi there")
    );
    // The same connection serves a second request (keep-alive).
    let again = client.send("GET", "/", "").await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert!(again.body.starts_with("GET / http"), "{}", again.body);

    assert!(lattice.health().await.healthy);
    lattice.stop().await;
}

#[tokio::test]
async fn no_running_component_is_a_503_that_names_it() {
    let lattice = start().await;
    let address = link_on_free_address(&lattice, "absent", &[]).await;

    let reply = Client::connect(address).await.send("GET", "/", "").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.body.contains("`absent`"), "{}", reply.body);
    assert!(reply.body.contains("no instance"), "{}", reply.body);
    lattice.stop().await;
}

#[tokio::test]
async fn a_component_that_never_answers_is_a_504_within_the_timeout() {
    let lattice = start().await;
    component(&lattice, "stuck", |_| None).await;
    let address = link_on_free_address(&lattice, "stuck", &[("timeout_ms", "300")]).await;

    let started = Instant::now();
    let reply = Client::connect(address).await.send("GET", "/", "").await;
    let waited = started.elapsed();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(reply.body.contains("`stuck`"), "{}", reply.body);
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    lattice.stop().await;
}

#[tokio::test]
async fn a_slow_component_within_the_link_timeout_is_waited_for() {
    // The link's timeout, not the NATS client's own request timeout, bounds
    // the wait.
    let options =
        async_nats::ConnectOptions::new().request_timeout(Some(Duration::from_millis(100)));
    let lattice = start_with(options).await;
    slow_component(&lattice, "slow", Duration::from_millis(400), |_| {
        Some(ok_response())
    })
    .await;
    let address = link_on_free_address(&lattice, "slow", &[("timeout_ms", "3000")]).await;

    let reply = Client::connect(address).await.send("GET", "/", "").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    lattice.stop().await;
}

#[tokio::test]
async fn a_port_in_use_fails_the_link_naming_the_address_and_health_reports_it() {
    let lattice = start().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();

    let put = lattice.put_link(&http_link("hello", address, &[])).await;
    assert!(!put.success);
    assert!(
        put.message.contains(&address.to_string()),
        "{}",
        put.message
    );
    assert!(put.message.contains("already in use"), "{}", put.message);
    assert!(put.message.contains("`address`"), "{}", put.message);

    let health = lattice.health().await;
    assert!(!health.healthy);
    let message = health.message.unwrap_or_default();
    assert!(message.contains(&address.to_string()), "{message}");

    // Putting the link again on a free address heals it.
    let put = lattice
        .put_link(&http_link("hello", free_address(), &[]))
        .await;
    assert!(put.success, "{}", put.message);
    assert!(lattice.health().await.healthy);
    lattice.stop().await;
}

#[tokio::test]
async fn deleting_the_link_frees_the_port() {
    let lattice = start().await;
    component(&lattice, "hello", |_| Some(ok_response())).await;
    let address = free_address();
    let link = http_link("hello", address, &[]);
    assert!(lattice.put_link(&link).await.success);
    let reply = Client::connect(address).await.send("GET", "/", "").await;
    assert_eq!(reply.status, StatusCode::OK);

    let del = lattice.del_link(&link.link).await;
    assert!(del.success, "{}", del.message);
    assert!(TcpStream::connect(address).await.is_err());
    let rebound = std::net::TcpListener::bind(address);
    assert!(rebound.is_ok(), "{rebound:?}");
    lattice.stop().await;
}

#[tokio::test]
async fn putting_the_link_with_a_new_address_moves_the_listener() {
    let lattice = start().await;
    component(&lattice, "hello", |_| Some(ok_response())).await;
    let first = free_address();
    let second = loop {
        let candidate = free_address();
        if candidate != first {
            break candidate;
        }
    };
    assert!(
        lattice
            .put_link(&http_link("hello", first, &[]))
            .await
            .success
    );
    assert!(
        lattice
            .put_link(&http_link("hello", second, &[]))
            .await
            .success
    );

    let reply = Client::connect(second).await.send("GET", "/", "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(std::net::TcpListener::bind(first).is_ok());
    lattice.stop().await;
}

/// `lines` numbered lines: a body in which a lost, repeated or misplaced
/// chunk shows.
fn numbered(lines: usize) -> String {
    (0..lines).map(|i| format!("{i:015}\n")).collect()
}

#[tokio::test]
async fn bodies_larger_than_a_nats_message_cross_whole_both_ways() {
    let lattice = start().await;
    component(&lattice, "echo", |request| {
        Some(HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: request.body,
        })
    })
    .await;
    let address = link_on_free_address(&lattice, "echo", &[]).await;
    // 5 MiB, five times the test server's max payload.
    let body = numbered(5 * 1024 * 1024 / 16);
    let reply = Client::connect(address)
        .await
        .send("POST", "/", &body)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), body.len());
    assert!(reply.body == body, "the echoed body differs");
    lattice.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let lattice = start().await;
    component(&lattice, "hello", |_| Some(ok_response())).await;
    let address = link_on_free_address(&lattice, "hello", &[]).await;

    // Declaring the size is enough: the server answers before the body.
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nhost: {address}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        chunk::DEFAULT_MAX_BODY_BYTES + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    lattice.stop().await;
}

#[tokio::test]
async fn the_provider_serves_no_functions_of_its_own() {
    let lattice = start().await;
    let function =
        trellis_lattice::WitFunction::parse("wasi:http/outgoing-handler.handle").unwrap();
    let subject = lattice.subjects().rpc(PROVIDER_ID, &function).unwrap();
    let reply = lattice.nats().request(subject, Bytes::new()).await.unwrap();
    let err: RpcError = rpc::decode_reply::<()>(&reply.payload).unwrap_err();
    assert_eq!(err.kind, rpc::RpcErrorKind::Refused);
    lattice.stop().await;
}

fn ok_response() -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: Vec::new(),
        body: b"ok".to_vec(),
    }
}
