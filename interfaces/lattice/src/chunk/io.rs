//! The two sides of a transfer over a live connection.

use async_nats::{Client, HeaderMap, Message, RequestErrorKind};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesOrdered;

use super::{
    CHUNK_ERROR_HEADER, CHUNK_HEADER, ChunkError, ChunkLimits, LAST_CHUNK_HEADER, Offer, Pull,
    Reassembler, StreamOffer, chunk_len_for,
};

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
}

fn nats_error(e: impl std::fmt::Display) -> ChunkError {
    ChunkError::Nats(e.to_string())
}

/// Whether a payload of `len` bytes can travel in one message on `nats`,
/// headers included.
pub fn fits(nats: &Client, len: usize) -> bool {
    len <= chunk_len_for(nats.server_info().max_payload)
}

/// Offers `payload` for pulling, and returns the offer to announce. A task
/// serves the pulls until the last chunk is taken, the receiver cancels, or
/// no pull comes for `limits.idle`.
pub async fn offer(
    nats: &Client,
    payload: Bytes,
    limits: &ChunkLimits,
) -> Result<Offer, ChunkError> {
    offer_to(nats, payload, limits, Receivers::One).await
}

/// Who pulls an offer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Receivers {
    /// One receiver (a call's callee, a reply's caller): the offer ends
    /// when it has taken the last chunk, or cancels.
    One,
    /// Any number (an event's subscribers): the offer ends only when
    /// nobody has pulled for the idle time, and a cancel ends nothing.
    Many,
}

async fn offer_to(
    nats: &Client,
    payload: Bytes,
    limits: &ChunkLimits,
    receivers: Receivers,
) -> Result<Offer, ChunkError> {
    let size = payload.len() as u64;
    if size > limits.max_body {
        return Err(ChunkError::TooLarge {
            size,
            limit: limits.max_body,
        });
    }
    if size == 0 {
        return Err(ChunkError::Malformed(
            "an empty payload is never offered".into(),
        ));
    }
    let chunk = chunk_len_for(nats.server_info().max_payload) as u64;
    let subject = format!("{}.body", nats.new_inbox());
    let mut pulls = nats.subscribe(subject.clone()).await.map_err(nats_error)?;
    let offer = Offer {
        subject,
        size,
        chunk,
    };
    let served = offer.clone();
    let nats = nats.clone();
    let idle = limits.idle;
    tokio::spawn(async move {
        let mut left = served.chunks();
        while receivers == Receivers::Many || left > 0 {
            let message = match tokio::time::timeout(idle, pulls.next()).await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(_) => {
                    tracing::debug!(subject = %served.subject, ?idle, "payload offer abandoned: no pull");
                    break;
                }
            };
            let pull = header(&message, CHUNK_HEADER).map(Pull::parse);
            if matches!(pull, Some(Ok(Pull::Cancel))) {
                if receivers == Receivers::One {
                    break;
                }
                continue;
            }
            let Some(reply) = message.reply.clone() else {
                continue;
            };
            let mut headers = HeaderMap::new();
            let body = match pull {
                Some(Ok(Pull::Chunk(seq))) => match served.chunk_len(seq) {
                    Some(len) => {
                        let start = usize::try_from(seq * served.chunk).unwrap_or(usize::MAX);
                        let end = start.saturating_add(usize::try_from(len).unwrap_or(0));
                        headers.insert(CHUNK_HEADER, seq.to_string().as_str());
                        left = left.saturating_sub(1);
                        payload.slice(start..end.min(payload.len()))
                    }
                    None => {
                        let why = format!("there is no chunk {seq}");
                        headers.insert(CHUNK_ERROR_HEADER, why.as_str());
                        Bytes::new()
                    }
                },
                _ => {
                    headers.insert(CHUNK_ERROR_HEADER, "the message is not a pull");
                    Bytes::new()
                }
            };
            if let Err(err) = nats.publish_with_headers(reply, headers, body).await {
                tracing::debug!(error = %err, "cannot send a chunk");
                break;
            }
        }
        if let Err(err) = pulls.unsubscribe().await {
            tracing::debug!(error = %err, "cannot end a payload offer");
        }
    });
    Ok(offer)
}

async fn pull(
    nats: Client,
    subject: String,
    seq: u64,
    limits: ChunkLimits,
) -> (u64, Result<Message, async_nats::RequestError>) {
    let mut headers = HeaderMap::new();
    headers.insert(CHUNK_HEADER, Pull::Chunk(seq).header().as_str());
    let request = async_nats::Request::new()
        .headers(headers)
        .timeout(Some(limits.idle));
    (seq, nats.send_request(subject, request).await)
}

/// Pulls the payload `offer` describes, keeping `limits.window` pulls in
/// flight, and refusing it if it is over `limits.max_body`.
pub async fn fetch(
    nats: &Client,
    offer: &Offer,
    limits: &ChunkLimits,
) -> Result<Bytes, ChunkError> {
    let result = fetch_all(nats, offer, limits).await;
    if result.is_err() {
        // Let the sender go at once rather than after its idle time.
        let mut headers = HeaderMap::new();
        headers.insert(CHUNK_HEADER, Pull::Cancel.header().as_str());
        if let Err(err) = nats
            .publish_with_headers(offer.subject.clone(), headers, Bytes::new())
            .await
        {
            tracing::debug!(error = %err, "cannot cancel a payload transfer");
        }
    }
    result
}

async fn fetch_all(
    nats: &Client,
    offer: &Offer,
    limits: &ChunkLimits,
) -> Result<Bytes, ChunkError> {
    let mut payload = Reassembler::new(offer.clone(), limits.max_body)?;
    let total = offer.chunks();
    let mut in_flight = FuturesOrdered::new();
    let mut asked = 0;
    while asked < total && in_flight.len() < limits.window.max(1) {
        in_flight.push_back(pull(nats.clone(), offer.subject.clone(), asked, *limits));
        asked += 1;
    }
    while let Some((seq, answer)) = in_flight.next().await {
        let interrupted = |why: String| ChunkError::Interrupted { seq, why };
        let message = answer.map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => {
                interrupted("it is gone (nothing answers on its subject)".into())
            }
            RequestErrorKind::TimedOut => {
                interrupted(format!("no chunk came within {:?}", limits.idle))
            }
            _ => nats_error(e),
        })?;
        if let Some(why) = header(&message, CHUNK_ERROR_HEADER) {
            return Err(interrupted(why.to_owned()));
        }
        if header(&message, CHUNK_HEADER) != Some(seq.to_string().as_str()) {
            return Err(ChunkError::BadChunk {
                seq,
                why: "the answer names another chunk".into(),
            });
        }
        payload.accept(seq, &message.payload)?;
        if asked < total {
            in_flight.push_back(pull(nats.clone(), offer.subject.clone(), asked, *limits));
            asked += 1;
        }
    }
    payload.finish().map(Bytes::from)
}

/// The whole payload of `message`: its own, or the one it offers, pulled.
pub async fn payload_of(
    nats: &Client,
    message: &Message,
    limits: &ChunkLimits,
) -> Result<Bytes, ChunkError> {
    let lookup = |name: &str| header(message, name).map(str::to_owned);
    match Offer::from_lookup(lookup) {
        None => Ok(message.payload.clone()),
        Some(offer) => fetch(nats, &offer?, limits).await,
    }
}

/// Publishes `payload` to `subject` with `headers`: in the message if it
/// fits, offered for pulling (by one receiver) if not.
pub async fn publish(
    nats: &Client,
    subject: impl async_nats::subject::ToSubject,
    headers: HeaderMap,
    payload: Bytes,
    limits: &ChunkLimits,
) -> Result<(), ChunkError> {
    publish_to(nats, subject, headers, payload, limits, Receivers::One).await
}

/// Like [`publish`], for a message any number of subscribers receive (an
/// event): an offer stays until none of them has pulled for `limits.idle`.
pub async fn broadcast(
    nats: &Client,
    subject: impl async_nats::subject::ToSubject,
    headers: HeaderMap,
    payload: Bytes,
    limits: &ChunkLimits,
) -> Result<(), ChunkError> {
    publish_to(nats, subject, headers, payload, limits, Receivers::Many).await
}

async fn publish_to(
    nats: &Client,
    subject: impl async_nats::subject::ToSubject,
    mut headers: HeaderMap,
    payload: Bytes,
    limits: &ChunkLimits,
    receivers: Receivers,
) -> Result<(), ChunkError> {
    if fits(nats, payload.len()) {
        let sent = if headers.is_empty() {
            nats.publish(subject, payload).await
        } else {
            nats.publish_with_headers(subject, headers, payload).await
        };
        return sent.map_err(nats_error);
    }
    let subject = subject.to_subject();
    let offer = offer_to(nats, payload, limits, receivers).await?;
    for (name, value) in offer.to_pairs() {
        headers.insert(name, value.as_str());
    }
    nats.publish_with_headers(subject, headers, Bytes::new())
        .await
        .map_err(nats_error)
}

/// Offers the body `source` produces, as it produces it, and returns the
/// offer to announce. A task reads the source only as far as the pulls ask
/// (at most one chunk ahead of the receiver's window), and ends after the
/// last chunk, on a cancel, when the source fails or passes
/// `limits.max_body` (the receiver hears why), or after `limits.idle`
/// without a pull.
pub async fn offer_stream<S>(
    nats: &Client,
    mut source: S,
    limits: &ChunkLimits,
) -> Result<StreamOffer, ChunkError>
where
    S: futures::Stream<Item = Result<Bytes, String>> + Send + Unpin + 'static,
{
    let chunk = chunk_len_for(nats.server_info().max_payload);
    let subject = format!("{}.stream", nats.new_inbox());
    let mut pulls = nats.subscribe(subject.clone()).await.map_err(nats_error)?;
    let offer = StreamOffer {
        subject,
        chunk: chunk as u64,
    };
    let nats = nats.clone();
    let limits = *limits;
    tokio::spawn(async move {
        let mut buffered = bytes::BytesMut::new();
        let mut ended = false;
        let mut sent: u64 = 0;
        let mut next: u64 = 0;
        loop {
            let message = match tokio::time::timeout(limits.idle, pulls.next()).await {
                Ok(Some(message)) => message,
                Ok(None) | Err(_) => break,
            };
            let pull = header(&message, CHUNK_HEADER).map(Pull::parse);
            let seq = match pull {
                Some(Ok(Pull::Chunk(seq))) => seq,
                _ => break,
            };
            let Some(reply) = message.reply.clone() else {
                continue;
            };
            let mut headers = HeaderMap::new();
            let mut failed = None;
            if seq != next {
                failed = Some(format!("chunk {seq} was asked for, chunk {next} is next"));
            }
            while failed.is_none() && !ended && buffered.len() < chunk {
                match source.next().await {
                    Some(Ok(bytes)) => buffered.extend_from_slice(&bytes),
                    Some(Err(why)) => failed = Some(why),
                    None => ended = true,
                }
            }
            let take = buffered.len().min(chunk);
            if failed.is_none() && sent + take as u64 > limits.max_body {
                failed = Some(
                    ChunkError::TooLarge {
                        size: sent + take as u64,
                        limit: limits.max_body,
                    }
                    .to_string(),
                );
            }
            let (body, last) = match &failed {
                Some(why) => {
                    headers.insert(CHUNK_ERROR_HEADER, why.as_str());
                    (Bytes::new(), true)
                }
                None => {
                    let body = buffered.split_to(take).freeze();
                    sent += body.len() as u64;
                    headers.insert(CHUNK_HEADER, seq.to_string().as_str());
                    let last = ended && buffered.is_empty();
                    if last {
                        headers.insert(LAST_CHUNK_HEADER, "true");
                    }
                    (body, last)
                }
            };
            next += 1;
            if let Err(err) = nats.publish_with_headers(reply, headers, body).await {
                tracing::debug!(error = %err, "cannot send a chunk");
                break;
            }
            if last {
                break;
            }
        }
        if let Err(err) = pulls.unsubscribe().await {
            tracing::debug!(error = %err, "cannot end a stream offer");
        }
    });
    Ok(offer)
}

/// A pull in flight: the chunk's number, and its answer.
type PendingPull = std::pin::Pin<
    Box<dyn std::future::Future<Output = (u64, Result<Message, async_nats::RequestError>)> + Send>,
>;

/// Cancels a stream whose receiver stops reading before the end.
struct CancelOnDrop {
    nats: Client,
    subject: String,
    done: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let nats = self.nats.clone();
        let subject = std::mem::take(&mut self.subject);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut headers = HeaderMap::new();
                headers.insert(CHUNK_HEADER, Pull::Cancel.header().as_str());
                let _ = nats
                    .publish_with_headers(subject, headers, Bytes::new())
                    .await;
            });
        }
    }
}

/// The body `offer` describes, as a stream of its chunks, pulled with
/// `limits.window` pulls in flight; it fails once more than
/// `limits.max_body` bytes have come, and cancels the offer if dropped
/// before the end.
pub fn fetch_stream(
    nats: &Client,
    offer: StreamOffer,
    limits: &ChunkLimits,
) -> impl futures::Stream<Item = Result<Bytes, ChunkError>> + Send + 'static {
    struct State {
        nats: Client,
        offer: StreamOffer,
        limits: ChunkLimits,
        in_flight: FuturesOrdered<PendingPull>,
        asked: u64,
        received: u64,
        guard: CancelOnDrop,
    }
    impl State {
        fn ask(&mut self) {
            let future = pull(
                self.nats.clone(),
                self.offer.subject.clone(),
                self.asked,
                self.limits,
            );
            self.in_flight.push_back(Box::pin(future));
            self.asked += 1;
        }
    }
    let mut state = State {
        nats: nats.clone(),
        guard: CancelOnDrop {
            nats: nats.clone(),
            subject: offer.subject.clone(),
            done: false,
        },
        offer,
        limits: *limits,
        in_flight: FuturesOrdered::new(),
        asked: 0,
        received: 0,
    };
    for _ in 0..limits.window.max(1) {
        state.ask();
    }
    futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        let (seq, answer) = state.in_flight.next().await?;
        let interrupted = |why: String| ChunkError::Interrupted { seq, why };
        let result = match answer {
            Err(e) if e.kind() == RequestErrorKind::NoResponders => Err(interrupted(
                "it is gone (nothing answers on its subject)".into(),
            )),
            Err(e) if e.kind() == RequestErrorKind::TimedOut => Err(interrupted(format!(
                "no chunk came within {:?}",
                state.limits.idle
            ))),
            Err(e) => Err(nats_error(e)),
            Ok(message) => {
                if let Some(why) = header(&message, CHUNK_ERROR_HEADER) {
                    Err(interrupted(why.to_owned()))
                } else if header(&message, CHUNK_HEADER) != Some(seq.to_string().as_str())
                    || message.payload.len() as u64 > state.offer.chunk
                {
                    Err(ChunkError::BadChunk {
                        seq,
                        why: "the answer names another chunk, or is longer than a chunk".into(),
                    })
                } else {
                    state.received += message.payload.len() as u64;
                    if state.received > state.limits.max_body {
                        Err(ChunkError::TooLarge {
                            size: state.received,
                            limit: state.limits.max_body,
                        })
                    } else {
                        let last = header(&message, LAST_CHUNK_HEADER).is_some();
                        Ok((message.payload, last))
                    }
                }
            }
        };
        match result {
            Ok((data, true)) => {
                state.guard.done = true;
                Some((Ok(data), None))
            }
            Ok((data, false)) => {
                state.ask();
                Some((Ok(data), Some(state)))
            }
            Err(err) => {
                // The sender has already stopped on its own error, not on ours.
                state.guard.done = !matches!(
                    err,
                    ChunkError::TooLarge { .. } | ChunkError::BadChunk { .. }
                );
                Some((Err(err), None))
            }
        }
    })
}
