//! Chunked payloads against a real, private `nats-server` whose max payload
//! is 64 KiB, so that a few hundred KiB make many chunks.

#![cfg(feature = "client")]
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap, Message};
use bytes::Bytes;
use futures::StreamExt;
use trellis_lattice::chunk::{self, ChunkError, ChunkLimits, Offer};
use trellis_lattice::request::{self, Unanswered};
use trellis_lattice::rpc::{CallHeaders, RpcErrorKind};
use trellis_test_support::NatsServer;

const MAX_PAYLOAD: usize = 64 * 1024;

fn small_server() -> NatsServer {
    NatsServer::start_with_max_payload(MAX_PAYLOAD).unwrap()
}

async fn client(server: &NatsServer) -> Client {
    let client = async_nats::connect(server.url()).await.unwrap();
    assert_eq!(client.server_info().max_payload, MAX_PAYLOAD);
    client
}

/// Returns once the server has processed everything `nats` sent so far
/// (its subscriptions above all): a flush only empties the socket buffer,
/// while a message to itself comes back after whatever went before it.
async fn settle(nats: &Client) {
    let subject = nats.new_inbox();
    let mut echo = nats.subscribe(subject.clone()).await.unwrap();
    nats.publish(subject, Bytes::new()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), echo.next())
        .await
        .unwrap()
        .unwrap();
}

/// `len` bytes in which a lost, repeated or misplaced chunk shows.
fn numbered(len: usize) -> Bytes {
    let mut bytes = Vec::with_capacity(len + 8);
    let mut i: u64 = 0;
    while bytes.len() < len {
        bytes.extend_from_slice(&i.to_le_bytes());
        i += 1;
    }
    bytes.truncate(len);
    Bytes::from(bytes)
}

/// Every message on the server, with its size as NATS counts it.
async fn record(nats: &Client) -> tokio::sync::mpsc::UnboundedReceiver<Message> {
    let mut all = nats.subscribe(">").await.unwrap();
    settle(nats).await;
    // The settling message itself.
    all.next().await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = all.next().await {
            if tx.send(message).is_err() {
                break;
            }
        }
    });
    rx
}

fn offer_of(message: &Message) -> Option<Offer> {
    Offer::from_lookup(|name| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    })
    .map(Result::unwrap)
}

#[tokio::test]
async fn a_payload_many_times_the_max_payload_crosses_whole_and_no_message_is_oversized() {
    let server = small_server();
    let sender = client(&server).await;
    let receiver = client(&server).await;
    let watcher = client(&server).await;
    let mut seen = record(&watcher).await;
    let payload = numbered(10 * MAX_PAYLOAD + 123);

    chunk::publish(
        &sender,
        "big.one",
        HeaderMap::new(),
        payload.clone(),
        &ChunkLimits::default(),
    )
    .await
    .unwrap();
    let announce = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(announce.payload.is_empty());
    let offer = offer_of(&announce).expect("the message offers its payload");
    assert_eq!(offer.size, payload.len() as u64);
    assert_eq!(offer.chunk, chunk::chunk_len_for(MAX_PAYLOAD) as u64);
    let fetched = chunk::payload_of(&receiver, &announce, &ChunkLimits::default())
        .await
        .unwrap();
    assert!(fetched == payload, "the payload changed on the way");

    // Every message of the transfer fit: the announcement, the pulls and the
    // chunks, headers included.
    receiver.flush().await.unwrap();
    sender.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut messages = 1;
    while let Ok(message) = seen.try_recv() {
        assert!(message.length <= MAX_PAYLOAD, "{} bytes", message.length);
        messages += 1;
    }
    // One announcement, then a pull and a chunk for each of 14 chunks.
    assert_eq!(offer.chunks(), 14);
    assert_eq!(messages, 1 + 2 * 14);
}

#[tokio::test]
async fn a_payload_that_fits_travels_in_the_message_itself() {
    let server = small_server();
    let nats = client(&server).await;
    let mut seen = record(&nats).await;
    let payload = numbered(chunk::chunk_len_for(MAX_PAYLOAD));
    assert!(chunk::fits(&nats, payload.len()));
    assert!(!chunk::fits(&nats, payload.len() + 1));
    chunk::publish(
        &nats,
        "small.one",
        HeaderMap::new(),
        payload.clone(),
        &ChunkLimits::default(),
    )
    .await
    .unwrap();
    let message = seen.recv().await.unwrap();
    assert!(offer_of(&message).is_none());
    assert_eq!(message.payload, payload);
}

#[tokio::test]
async fn a_receiver_refuses_an_offer_over_its_limit_before_pulling_anything() {
    let server = small_server();
    let nats = client(&server).await;
    let offer = chunk::offer(&nats, numbered(300_000), &ChunkLimits::default())
        .await
        .unwrap();
    let small = ChunkLimits {
        max_body: 100_000,
        ..ChunkLimits::default()
    };
    let err = chunk::fetch(&nats, &offer, &small).await.unwrap_err();
    assert_eq!(
        err,
        ChunkError::TooLarge {
            size: 300_000,
            limit: 100_000
        }
    );
    assert!(err.to_string().contains("--max-body-mib"), "{err}");
    // Refusing cancels the offer, so the sender lets the payload go.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = chunk::fetch(&nats, &offer, &ChunkLimits::default()).await;
    assert!(
        matches!(late, Err(ChunkError::Interrupted { seq: 0, .. })),
        "{:?}",
        late.map(|p| p.len())
    );
    // And a sender does not offer what is over its own limit.
    let err = chunk::offer(&nats, numbered(300_000), &small)
        .await
        .unwrap_err();
    assert!(matches!(err, ChunkError::TooLarge { .. }));
}

#[tokio::test]
async fn a_sender_that_dies_mid_stream_fails_the_receiver_at_once() {
    let server = small_server();
    let sender = client(&server).await;
    let receiver = client(&server).await;
    let offer = chunk::offer(&sender, numbered(20 * MAX_PAYLOAD), &ChunkLimits::default())
        .await
        .unwrap();
    // The sender's process goes away before anything is pulled.
    sender.drain().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let err = chunk::fetch(&receiver, &offer, &ChunkLimits::default())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, ChunkError::Interrupted { .. }), "{err:?}");
    assert!(err.to_string().contains("stopped mid-stream"), "{err}");
}

#[tokio::test]
async fn a_sender_whose_receiver_never_pulls_lets_the_payload_go_after_its_idle_time() {
    let server = small_server();
    let sender = client(&server).await;
    let idle = ChunkLimits {
        idle: Duration::from_millis(300),
        ..ChunkLimits::default()
    };
    let offer = chunk::offer(&sender, numbered(3 * MAX_PAYLOAD), &idle)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let err = chunk::fetch(&sender, &offer, &ChunkLimits::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChunkError::Interrupted { seq: 0, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_call_with_large_parameters_gets_its_large_reply() {
    let server = small_server();
    let caller = client(&server).await;
    let callee = client(&server).await;
    let mut calls = callee.subscribe("svc.echo").await.unwrap();
    settle(&callee).await;
    tokio::spawn(async move {
        while let Some(call) = calls.next().await {
            let limits = ChunkLimits::default();
            let params = chunk::payload_of(&callee, &call, &limits).await.unwrap();
            let mut reply = params.to_vec();
            reply.reverse();
            chunk::publish(
                &callee,
                call.reply.unwrap(),
                HeaderMap::new(),
                reply.into(),
                &limits,
            )
            .await
            .unwrap();
        }
    });
    let params = numbered(7 * MAX_PAYLOAD + 5);
    let reply = request::call(
        &caller,
        "svc.echo".into(),
        &CallHeaders::default(),
        params.clone(),
        Duration::from_secs(10),
        &ChunkLimits::default(),
        |why: Unanswered| format!("{why:?}"),
    )
    .await
    .unwrap();
    let mut expected = params.to_vec();
    expected.reverse();
    assert!(reply.payload == expected, "the reply changed on the way");

    // Parameters over the caller's limit never leave it.
    let small = ChunkLimits {
        max_body: 1000,
        ..ChunkLimits::default()
    };
    let err = request::call(
        &caller,
        "svc.echo".into(),
        &CallHeaders::default(),
        params,
        Duration::from_secs(10),
        &small,
        |_: Unanswered| "no answer".into(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Refused);
    assert!(err.message.contains("over the 1000-byte limit"), "{err}");
}

/// Pins the protocol as it crosses the wire: the messages of a three-chunk
/// transfer, in order, with their headers (inbox subjects normalized) and
/// payload lengths. Re-bless with `TRELLIS_BLESS=1` after a deliberate
/// change, and review the diff.
#[tokio::test]
async fn a_transfer_on_the_wire_is_pinned() {
    let server = small_server();
    let sender = client(&server).await;
    let receiver = client(&server).await;
    let watcher = client(&server).await;
    let mut seen = record(&watcher).await;
    let chunk_len = chunk::chunk_len_for(MAX_PAYLOAD);
    let limits = ChunkLimits {
        window: 1,
        ..ChunkLimits::default()
    };
    chunk::publish(
        &sender,
        "lattice.target.rpc.pkg.ns.iface.fn",
        HeaderMap::new(),
        numbered(2 * chunk_len + 1000),
        &limits,
    )
    .await
    .unwrap();
    let announce = seen.recv().await.unwrap();
    chunk::payload_of(&receiver, &announce, &limits)
        .await
        .unwrap();
    receiver.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut messages = vec![announce];
    while let Ok(message) = seen.try_recv() {
        messages.push(message);
    }
    pin_transcript("chunk_transfer.txt", &messages);
}

/// Renders `messages` with their headers (inbox subjects normalized) and
/// payload lengths, and compares them with golden file `name`; re-bless
/// with `TRELLIS_BLESS=1` after a deliberate change, and review the diff.
fn pin_transcript(name: &str, messages: &[Message]) {
    let inbox = |subject: &str| {
        if subject.starts_with("_INBOX.") {
            let suffix = [".body", ".stream"]
                .into_iter()
                .find(|s| subject.ends_with(s))
                .unwrap_or("");
            format!("_INBOX.<id>{suffix}")
        } else {
            subject.to_owned()
        }
    };
    let mut transcript = String::new();
    for message in messages {
        let mut headers: Vec<(String, String)> = message
            .headers
            .iter()
            .flat_map(|h| h.iter())
            .flat_map(|(name, values)| {
                values
                    .iter()
                    .map(move |v| (name.to_string(), v.as_str().to_owned()))
            })
            .map(|(name, value)| (name, inbox(&value)))
            .collect();
        headers.sort();
        transcript.push_str(&format!(
            "{} reply={} payload={}\n",
            inbox(&message.subject),
            message.reply.as_deref().map_or("-".to_owned(), inbox),
            message.payload.len()
        ));
        for (name, value) in headers {
            transcript.push_str(&format!("  {name}: {value}\n"));
        }
    }
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("TRELLIS_BLESS").is_some() {
        std::fs::write(&path, &transcript).unwrap();
    }
    assert_eq!(transcript, std::fs::read_to_string(&path).unwrap());
}

/// Pins a streamed body on the wire: a call announcing the stream, then
/// pulls answered by chunks as the source produces them, the last marked.
#[tokio::test]
async fn a_streamed_body_on_the_wire_is_pinned() {
    let server = small_server();
    let sender = client(&server).await;
    let receiver = client(&server).await;
    let watcher = client(&server).await;
    let mut seen = record(&watcher).await;
    let limits = ChunkLimits {
        window: 1,
        ..ChunkLimits::default()
    };
    let len = chunk::chunk_len_for(MAX_PAYLOAD) + 1000;
    let source = futures::stream::iter(vec![Ok(numbered(len))]);
    let offer = chunk::offer_stream(&sender, source, &limits).await.unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in offer.to_pairs() {
        headers.insert(name, value.as_str());
    }
    sender
        .publish_with_headers(
            "lattice.target.rpc.wasi.http.incoming-handler.handle",
            headers,
            Bytes::new(),
        )
        .await
        .unwrap();
    let announce = seen.recv().await.unwrap();
    let body: Vec<_> = chunk::fetch_stream(&receiver, offer, &limits)
        .collect()
        .await;
    assert_eq!(body.len(), 2);
    receiver.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut messages = vec![announce];
    while let Ok(message) = seen.try_recv() {
        messages.push(message);
    }
    pin_transcript("chunk_stream.txt", &messages);
}

#[tokio::test]
async fn a_streamed_body_of_unknown_length_arrives_in_order_and_within_the_limit() {
    use futures::StreamExt;
    let server = small_server();
    let sender = client(&server).await;
    let receiver = client(&server).await;
    let payload = numbered(9 * MAX_PAYLOAD + 77);
    // Produced in uneven pieces, as a socket would.
    let pieces: Vec<Result<Bytes, String>> = payload
        .chunks(7001)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    let limits = ChunkLimits::default();
    let offer = chunk::offer_stream(&sender, futures::stream::iter(pieces), &limits)
        .await
        .unwrap();
    // In a lattice the offer reaches the receiver in a message sent after
    // the subscription; here the test hands it over directly.
    settle(&sender).await;
    let chunks: Vec<Bytes> = chunk::fetch_stream(&receiver, offer, &limits)
        .map(Result::unwrap)
        .collect()
        .await;
    assert!(
        chunks
            .iter()
            .all(|c| c.len() <= chunk::chunk_len_for(MAX_PAYLOAD))
    );
    assert!(chunks.concat() == payload, "the body changed on the way");

    // Past the limit, the receiver hears so and the stream ends.
    let endless = futures::stream::repeat_with(|| Ok(Bytes::from(vec![0u8; 10_000])));
    let small = ChunkLimits {
        max_body: 200_000,
        ..ChunkLimits::default()
    };
    let offer = chunk::offer_stream(&sender, endless, &small).await.unwrap();
    settle(&sender).await;
    let results: Vec<_> = chunk::fetch_stream(&receiver, offer, &ChunkLimits::default())
        .collect()
        .await;
    let err = results.last().unwrap().as_ref().unwrap_err();
    assert!(
        err.to_string().contains("over the 200000-byte limit"),
        "{err}"
    );
    let taken: usize = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(Bytes::len)
        .sum();
    assert!(taken <= 200_000);

    // A source that fails mid-way fails the receiver with its reason.
    let failing = futures::stream::iter(vec![
        Ok(Bytes::from(vec![1u8; 60_000])),
        Err("the client hung up".to_owned()),
    ]);
    let offer = chunk::offer_stream(&sender, failing, &limits)
        .await
        .unwrap();
    settle(&sender).await;
    let results: Vec<_> = chunk::fetch_stream(&receiver, offer, &limits)
        .collect()
        .await;
    let err = results.last().unwrap().as_ref().unwrap_err();
    assert!(err.to_string().contains("the client hung up"), "{err}");
}

#[tokio::test]
async fn a_receiver_that_stops_reading_a_stream_cancels_it() {
    use futures::StreamExt;
    let server = small_server();
    let sender = client(&server).await;
    let receiver = client(&server).await;
    let endless = futures::stream::repeat_with(|| Ok(Bytes::from(vec![0u8; 10_000])));
    let limits = ChunkLimits::default();
    let offer = chunk::offer_stream(&sender, endless, &limits)
        .await
        .unwrap();
    settle(&sender).await;
    let mut body = Box::pin(chunk::fetch_stream(&receiver, offer.clone(), &limits));
    body.next().await.unwrap().unwrap();
    drop(body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The sender is gone: nothing answers on the stream's subject.
    let mut late = Box::pin(chunk::fetch_stream(&receiver, offer, &limits));
    let err = late.next().await.unwrap().unwrap_err();
    assert!(matches!(err, ChunkError::Interrupted { .. }), "{err:?}");
}
