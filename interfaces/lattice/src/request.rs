//! Sending one RPC call over NATS and waiting for its reply (feature `client`).
//!
//! The host (forwarding a component's import) and the provider SDK (a
//! provider calling a component) put calls on the wire the same way: the
//! [`CallHeaders`] as NATS headers, a request that carries its own timeout,
//! and the same [`RpcErrorKind`] for each way the request can go unanswered.
//! Keeping that in one place keeps the two sides from drifting apart. Only
//! the wording of the failures is the caller's, since each names the call
//! in its own terms.

use std::time::Duration;

use bytes::Bytes;

use crate::chunk::{self, ChunkLimits};
use crate::rpc::{CallHeaders, LATTICE_UNREACHABLE, RpcError, RpcErrorKind};

/// The ways a call can go unanswered that the caller words itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// Our own deadline passed before any reply (kind [`RpcErrorKind::Timeout`]).
    Elapsed,
    /// Nothing is subscribed to the subject (kind [`RpcErrorKind::NoTarget`]).
    NoResponders,
    /// The NATS client gave up waiting for the reply (kind
    /// [`RpcErrorKind::Timeout`]).
    TimedOut,
}

/// Sends `body` to `subject` with `headers`, waiting at most `timeout`, and
/// returns the reply message.
///
/// A call that goes unanswered fails with the kind [`Unanswered`] names and
/// the message `describe` gives for it; any other NATS request error fails
/// with [`RpcErrorKind::NoTarget`] and the error's own text.
pub async fn call(
    nats: &async_nats::Client,
    subject: String,
    headers: &CallHeaders,
    body: Bytes,
    timeout: Duration,
    limits: &ChunkLimits,
    describe: impl FnOnce(Unanswered) -> String,
) -> Result<async_nats::Message, RpcError> {
    call_with(nats, subject, headers, &[], body, timeout, limits, describe).await
}

/// [`call`] with `extra` headers besides the [`CallHeaders`] (a streamed
/// body's [`chunk::StreamOffer`], say).
#[allow(clippy::too_many_arguments)]
pub async fn call_with(
    nats: &async_nats::Client,
    subject: String,
    headers: &CallHeaders,
    extra: &[(&'static str, String)],
    body: Bytes,
    timeout: Duration,
    limits: &ChunkLimits,
    describe: impl FnOnce(Unanswered) -> String,
) -> Result<async_nats::Message, RpcError> {
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers.to_pairs().iter().chain(extra) {
        map.insert(*name, value.as_str());
    }
    // Parameters too large for one message are offered, and pulled by the
    // receiver; so is a reply too large for one.
    let body = if chunk::fits(nats, body.len()) {
        body
    } else {
        let offer = chunk::offer(nats, body, limits)
            .await
            .map_err(RpcError::from)?;
        for (name, value) in offer.to_pairs() {
            map.insert(name, value.as_str());
        }
        Bytes::new()
    };
    // The request carries `timeout` itself: the client's default (10 s)
    // would otherwise cut longer calls short.
    let request = nats.send_request(
        subject,
        async_nats::Request::new()
            .headers(map)
            .payload(body)
            .timeout(Some(timeout)),
    );
    let unanswered = match tokio::time::timeout(timeout, request).await {
        Ok(Ok(mut message)) => {
            message.payload = chunk::payload_of(nats, &message, limits)
                .await
                .map_err(RpcError::from)?;
            return Ok(message);
        }
        Err(_) => Unanswered::Elapsed,
        Ok(Err(err)) => match err.kind() {
            async_nats::RequestErrorKind::NoResponders => Unanswered::NoResponders,
            async_nats::RequestErrorKind::TimedOut => Unanswered::TimedOut,
            _ => return Err(RpcError::new(RpcErrorKind::NoTarget, err.to_string())),
        },
    };
    // With the connection down the call never left this process: saying
    // "nothing serves X" or "X did not answer" would send the reader to
    // the wrong place.
    if nats.connection_state() != async_nats::connection::State::Connected {
        return Err(RpcError::new(
            RpcErrorKind::NoTarget,
            format!(
                "{LATTICE_UNREACHABLE}: the connection to NATS is down, so the call was not \
                 delivered ({})",
                describe(unanswered)
            ),
        ));
    }
    let kind = match unanswered {
        Unanswered::NoResponders => RpcErrorKind::NoTarget,
        Unanswered::Elapsed | Unanswered::TimedOut => RpcErrorKind::Timeout,
    };
    Err(RpcError::new(kind, describe(unanswered)))
}

/// Sends the reply `bytes` (an encoded [`crate::rpc`] reply) to `reply_to`
/// with `headers`, offering it in chunks if it does not fit one message.
/// A reply over `limits.max_body` is replaced by an error reply that says
/// so, so the caller hears why instead of waiting out its timeout.
pub async fn reply(
    nats: &async_nats::Client,
    reply_to: async_nats::Subject,
    headers: async_nats::HeaderMap,
    bytes: Bytes,
    limits: &ChunkLimits,
) -> Result<(), chunk::ChunkError> {
    let sent = chunk::publish(nats, reply_to.clone(), headers.clone(), bytes, limits).await;
    let Err(chunk::ChunkError::TooLarge { size, limit }) = sent else {
        return sent;
    };
    let refusal = RpcError::new(
        RpcErrorKind::Application,
        format!(
            "the reply is {size} bytes, over the {limit}-byte limit (--max-body-mib on the \
             answering host)"
        ),
    );
    let bytes = crate::rpc::encode_reply::<()>(&Err(refusal)).unwrap_or_default();
    chunk::publish(nats, reply_to, headers, bytes.into(), limits).await
}
