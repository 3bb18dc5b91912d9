//! Serving calls to the components on this host. Each component id has one
//! queue-group subscription on `{lattice}.{id}.rpc.>`, so calls spread over
//! every host that runs it; each message is handled on its own task, and
//! the component is looked up per call so an update swaps code between
//! calls without dropping any.

use std::sync::Arc;

use async_nats::HeaderMap;
use futures::StreamExt;
use trellis_lattice::chunk::{self, ChunkLimits, StreamOffer};
use trellis_lattice::http::{HttpRequest, INCOMING_HANDLER};
use trellis_lattice::request;
use trellis_lattice::rpc::{self, RpcError, RpcErrorKind};

use crate::component::BodyStream;
use crate::host::HostInner;

/// Subscribes to `component_id`'s calls and serves them until the returned
/// task is aborted.
pub async fn serve(
    inner: Arc<HostInner>,
    component_id: String,
) -> Result<tokio::task::JoinHandle<()>, crate::HostError> {
    let subject = inner.subjects.rpc_wildcard(&component_id)?;
    let group = inner.subjects.rpc_queue_group(&component_id)?;
    let mut calls = inner
        .nats
        .queue_subscribe(subject, group)
        .await
        .map_err(crate::HostError::nats)?;
    Ok(tokio::spawn(async move {
        while let Some(message) = calls.next().await {
            let inner = Arc::clone(&inner);
            let id = component_id.clone();
            tokio::spawn(async move { answer(inner, id, message).await });
        }
    }))
}

async fn answer(inner: Arc<HostInner>, component_id: String, message: async_nats::Message) {
    let Some(reply) = message.reply.clone() else {
        tracing::debug!(subject = %message.subject, "call without a reply subject ignored");
        return;
    };
    let limits = inner.config.chunk_limits();
    // Parameters too large for one message are pulled in chunks first, and
    // so a reply too large for one is offered.
    let result = match chunk::payload_of(&inner.nats, &message, &limits).await {
        Ok(payload) => dispatch(&inner, &component_id, &message, &payload, &limits).await,
        Err(err) => Err(RpcError::from(err)),
    };
    let mut headers = HeaderMap::new();
    let bytes = match result {
        Ok((bytes, streamed)) => {
            if let Some(offer) = streamed {
                for (name, value) in offer.to_pairs() {
                    headers.insert(name, value.as_str());
                }
            }
            bytes
        }
        Err(err) => rpc::encode_reply::<()>(&Err(err)).unwrap_or_default(),
    };
    let sent = request::reply(&inner.nats, reply, headers, bytes.into(), &limits).await;
    if let Err(err) = sent {
        tracing::warn!(component = %component_id, error = %err, "cannot send a call's reply");
    }
}

/// Runs one call and encodes its reply; `Err` only for failures that
/// happen before there is a typed reply to encode.
async fn dispatch(
    inner: &HostInner,
    component_id: &str,
    message: &async_nats::Message,
    payload: &[u8],
    limits: &ChunkLimits,
) -> Result<(Vec<u8>, Option<StreamOffer>), RpcError> {
    let subject = message.subject.as_str();
    let codec = |e: &dyn std::fmt::Display| RpcError::new(RpcErrorKind::Codec, e.to_string());
    let call = inner.subjects.parse_rpc(subject).map_err(|e| codec(&e))?;
    let Some(component) = inner.component(component_id) else {
        return Err(RpcError::new(
            RpcErrorKind::NoTarget,
            format!(
                "component `{component_id}` is not running on host {}",
                inner.id
            ),
        ));
    };
    if call.function.to_string() == INCOMING_HANDLER {
        let request: HttpRequest = rpc::decode(payload).map_err(|e| codec(&e))?;
        // A large body streams beside the call, pulled as the guest reads.
        let streamed = StreamOffer::from_lookup(|name| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        })
        .transpose()
        .map_err(RpcError::from)?
        .map(|offer| -> BodyStream { Box::pin(chunk::fetch_stream(&inner.nats, offer, limits)) });
        let (result, rest) = match component.handle_http_streaming(request, streamed).await {
            Ok(answer) => (Ok(answer.response), answer.rest),
            Err(err) => (Err(err), None),
        };
        // A large response body streams beside the reply.
        let offer = match rest {
            Some(rest) => Some(
                chunk::offer_stream(&inner.nats, rest, limits)
                    .await
                    .map_err(RpcError::from)?,
            ),
            None => None,
        };
        let bytes = rpc::encode_reply(&result).map_err(|e| codec(&e))?;
        return Ok((bytes, offer));
    }
    let args: rmpv::Value = if payload.is_empty() {
        rmpv::Value::Array(Vec::new())
    } else {
        rpc::decode(payload).map_err(|e| codec(&e))?
    };
    let result = component.call(&call.function, &args).await;
    rpc::encode_reply(&result)
        .map(|bytes| (bytes, None))
        .map_err(|e| codec(&e))
}
