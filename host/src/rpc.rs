//! Serving calls to the components on this host. Each component id has one
//! queue-group subscription on `{lattice}.{id}.rpc.>`, so calls spread over
//! every host that runs it; each message is handled on its own task, and
//! the component is looked up per call so an update swaps code between
//! calls without dropping any.

use std::sync::Arc;
use std::time::Instant;

use async_nats::HeaderMap;
use futures::StreamExt;
use tracing::Instrument;
use trellis_lattice::chunk::{self, ChunkLimits, StreamOffer};
use trellis_lattice::http::{HttpRequest, INCOMING_HANDLER};
use trellis_lattice::request;
use trellis_lattice::rpc::{self, RpcError, RpcErrorKind};
use trellis_lattice::subject::RpcSubject;
use trellis_telemetry::trace;

use crate::component::{BodyStream, RunningComponent};
use crate::host::HostInner;
use crate::metrics::CallLabels;

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
    let started = Instant::now();
    let limits = inner.config.chunk_limits();
    // Parsed and looked up once: the span, the call and its metrics all
    // need them.
    let call = inner.subjects.parse_rpc(&message.subject);
    let function = call
        .as_ref()
        .map(|call| call.function.to_string())
        .unwrap_or_default();
    let component = inner.component(&component_id);
    let span = tracing::info_span!(
        target: trace::TARGET,
        "invoke",
        otel.name = %function,
        otel.kind = "server",
        component = %component_id,
        host = %inner.id,
    );
    trace::adopt(&span, &trace_headers(&message));
    // Parameters too large for one message are pulled in chunks first, and
    // so a reply too large for one is offered.
    let mut received = 0;
    let result = async {
        let payload = chunk::payload_of(&inner.nats, &message, &limits).await?;
        received = payload.len();
        let call = call.map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))?;
        let Some(component) = &component else {
            return Err(RpcError::new(
                RpcErrorKind::NoTarget,
                format!(
                    "component `{component_id}` is not running on host {}",
                    inner.id
                ),
            ));
        };
        let incoming = (&message, payload.as_ref());
        dispatch(&inner, component, (&call, &function), incoming, &limits).await
    }
    .instrument(span)
    .await;
    // A name the component does not export is counted under `other`:
    // callers must not be able to mint label values without bound.
    let failed = result.is_err();
    let known = component
        .as_ref()
        .is_some_and(|c| c.exports_function(&function));
    let labels = CallLabels {
        component: component_id.clone(),
        function: if known { function } else { "other".to_owned() },
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
    inner
        .metrics
        .call(&labels, started.elapsed(), failed, received, bytes.len());
    let sent = request::reply(&inner.nats, reply, headers, bytes.into(), &limits).await;
    if let Err(err) = sent {
        tracing::warn!(component = %component_id, error = %err, "cannot send a call's reply");
    }
}

/// The W3C trace context a call arrived with.
fn trace_headers(message: &async_nats::Message) -> trace::TraceHeaders {
    let get = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    trace::TraceHeaders {
        traceparent: get(rpc::TRACEPARENT_HEADER),
        tracestate: get(rpc::TRACESTATE_HEADER),
    }
}

/// Runs one call and encodes its successful reply; a failed call is `Err`,
/// encoded by the caller.
async fn dispatch(
    inner: &HostInner,
    component: &RunningComponent,
    (call, function): (&RpcSubject, &str),
    (message, payload): (&async_nats::Message, &[u8]),
    limits: &ChunkLimits,
) -> Result<(Vec<u8>, Option<StreamOffer>), RpcError> {
    let codec = |e: &dyn std::fmt::Display| RpcError::new(RpcErrorKind::Codec, e.to_string());
    if function == INCOMING_HANDLER {
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
        let answer = component.handle_http_streaming(request, streamed).await?;
        let (response, rest) = (answer.response, answer.rest);
        // A large response body streams beside the reply.
        let offer = match rest {
            Some(rest) => Some(
                chunk::offer_stream(&inner.nats, rest, limits)
                    .await
                    .map_err(RpcError::from)?,
            ),
            None => None,
        };
        let bytes = rpc::encode_reply(&Ok::<_, RpcError>(response)).map_err(|e| codec(&e))?;
        return Ok((bytes, offer));
    }
    let args: rmpv::Value = if payload.is_empty() {
        rmpv::Value::Array(Vec::new())
    } else {
        rpc::decode(payload).map_err(|e| codec(&e))?
    };
    let result = component.call(&call.function, &args).await?;
    rpc::encode_reply(&Ok::<_, RpcError>(result))
        .map(|bytes| (bytes, None))
        .map_err(|e| codec(&e))
}
