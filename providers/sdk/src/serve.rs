use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tracing::Instrument;
use trellis_lattice::Link;
use trellis_lattice::chunk::{self, ChunkLimits};
use trellis_lattice::ctl::CtlResponse;
use trellis_lattice::provider::{HealthCheckResponse, ProviderLink, ShutdownRequest};
use trellis_lattice::request;
use trellis_lattice::rpc::{self, CallHeaders, RpcError, RpcErrorKind};
use trellis_lattice::subject::ProviderOperation;
use trellis_telemetry::trace;

use crate::{IncomingCall, Provider, ProviderHandle, SdkError};

/// Links that could not be applied, by slot, with the reason: what health
/// checks report until the link is put again successfully or deleted.
type FailedLinks = Arc<Mutex<BTreeMap<String, String>>>;

/// Links to this provider that its host data lists but whose put (with
/// their config) has not arrived yet, by source and name. Right after a
/// start or a restart, calls on such a link wait for it a moment instead
/// of being told the link does not exist.
type PendingLinks = tokio::sync::watch::Sender<HashSet<(String, String)>>;

/// How often a link whose put failed (its store unreachable, say) is
/// applied again, until it succeeds or is deleted: a provider started
/// while its store was away recovers by itself once it is back.
const LINK_RETRY: Duration = Duration::from_secs(2);

/// How long a call waits for its link's first put after a start.
const PENDING_LINK_WAIT: Duration = Duration::from_secs(2);

/// Serves `provider` on `handle`'s lattice until `stop` resolves or a host
/// asks it to shut down; then calls [`Provider::shutdown`] and drains NATS
/// so replies already sent are delivered.
pub async fn serve<P: Provider>(
    handle: ProviderHandle,
    provider: P,
    stop: impl Future<Output = &'static str>,
) -> Result<(), SdkError> {
    let provider = Arc::new(provider);
    let failed: FailedLinks = Arc::default();
    let pending: Arc<PendingLinks> = Arc::new(tokio::sync::watch::Sender::new(
        handle
            .host_data()
            .link_definitions
            .iter()
            .filter(|link| link.target == handle.provider_id())
            .map(|link| (link.source_id.clone(), link.name.clone()))
            .collect(),
    ));
    let id = handle.provider_id().to_owned();
    let subjects = handle.subjects().clone();
    let nats = handle.nats().clone();

    let subscribe_error = |subject: &str, e: &dyn std::fmt::Display| SdkError::Subscribe {
        subject: subject.to_owned(),
        message: e.to_string(),
    };
    let rpc_subject = subjects.rpc_wildcard(&id)?;
    let calls = nats
        .queue_subscribe(rpc_subject.clone(), subjects.rpc_queue_group(&id)?)
        .await
        .map_err(|e| subscribe_error(&rpc_subject, &e))?;
    let mut ops = Vec::new();
    for op in ProviderOperation::ALL {
        let subject = subjects.provider(&id, op)?;
        let sub = nats
            .subscribe(subject.clone())
            .await
            .map_err(|e| subscribe_error(&subject, &e))?;
        ops.push(sub);
    }
    let [link_puts, link_dels, shutdowns, healths]: [async_nats::Subscriber; 4] = ops
        .try_into()
        .map_err(|_| SdkError::Build("provider operations changed".into()))?;
    // The host's first health check must find every subscription in place.
    nats.flush()
        .await
        .map_err(|e| subscribe_error(&rpc_subject, &e))?;
    tracing::info!(provider_id = %id, lattice = %subjects.lattice(), "provider serving");

    let mut tasks = vec![
        tokio::spawn(serve_calls(
            handle.clone(),
            Arc::clone(&provider),
            Arc::clone(&pending),
            Arc::clone(&failed),
            calls,
        )),
        tokio::spawn(serve_links(
            handle.clone(),
            Arc::clone(&provider),
            Arc::clone(&failed),
            pending,
            link_puts,
            link_dels,
        )),
        tokio::spawn(serve_health(
            nats.clone(),
            Arc::clone(&provider),
            Arc::clone(&failed),
            healths,
        )),
    ];
    if let Some(metrics) = serve_metrics(&handle).await {
        tasks.push(metrics);
    }
    let reason = tokio::select! {
        reason = stop => reason,
        reason = wait_for_shutdown(nats.clone(), handle.host_id().to_owned(), shutdowns) => reason,
    };
    tracing::info!(provider_id = %id, reason, "provider stopping");
    for task in &tasks {
        task.abort();
    }
    provider.shutdown().await;
    if let Err(err) = nats.drain().await {
        tracing::debug!(error = %err, "draining NATS on stop");
    }
    Ok(())
}

/// Serves the provider's metrics where the host data says, if it does; a
/// bind failure costs the metrics, not the provider.
async fn serve_metrics(handle: &ProviderHandle) -> Option<tokio::task::JoinHandle<()>> {
    let addr = handle.host_data().metrics_addr.clone()?;
    let listener = trellis_telemetry::metrics::bind(&addr)
        .await
        .inspect_err(|err| tracing::warn!(error = %err, "provider metrics are not served"))
        .ok()?;
    let handle = handle.clone();
    let render: trellis_telemetry::metrics::Render = Arc::new(move || {
        let handle = handle.clone();
        Box::pin(async move { handle.metrics().encode() })
    });
    Some(tokio::spawn(trellis_telemetry::metrics::serve(
        listener, render,
    )))
}

async fn serve_calls<P: Provider>(
    handle: ProviderHandle,
    provider: Arc<P>,
    pending: Arc<PendingLinks>,
    failed: FailedLinks,
    mut calls: async_nats::Subscriber,
) {
    while let Some(message) = calls.next().await {
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let provider = Arc::clone(&provider);
        let handle = handle.clone();
        let pending = Arc::clone(&pending);
        let failed = Arc::clone(&failed);
        tokio::spawn(async move {
            let started = Instant::now();
            let limits = handle.host_data().chunk_limits();
            let (call, introduction) = incoming(&handle, &message, &limits).await;
            let function = call
                .as_ref()
                .map(|c| c.function.to_string())
                .unwrap_or_default();
            let span = tracing::info_span!(
                target: trace::TARGET,
                "serve",
                otel.name = %function,
                otel.kind = "server",
                provider = %handle.provider_id(),
            );
            if let Ok(call) = &call {
                trace::adopt(
                    &span,
                    &trace::TraceHeaders {
                        traceparent: call.headers.traceparent.clone(),
                        tracestate: call.headers.tracestate.clone(),
                    },
                );
            }
            let result = async {
                let call = call?;
                wait_for_link(&handle, &pending, &call).await?;
                refuse_failed_link(&handle, &failed, &call)?;
                provider.call(call).await
            }
            .instrument(span)
            .await;
            // A refused or unreadable call (one that failed its signature
            // check, say) is counted as `other`, and the metrics cap the
            // names they label, so callers cannot mint label values.
            let known = !matches!(
                &result,
                Err(err) if matches!(err.kind, RpcErrorKind::Refused | RpcErrorKind::Codec)
            );
            handle.metrics().call(
                if known { &function } else { "other" },
                started.elapsed(),
                result.is_err(),
            );
            let bytes = match result {
                Ok(bytes) => bytes,
                Err(err) => rpc::encode_reply::<()>(&Err(err)).unwrap_or_default(),
            };
            let mut headers = async_nats::HeaderMap::new();
            if let Some(key) = introduction {
                headers.insert(rpc::INVOCATION_PEER_HEADER, key.as_str());
            }
            let sent = request::reply(handle.nats(), reply_to, headers, bytes.into(), &limits);
            if let Err(err) = sent.await {
                tracing::warn!(error = %err, "cannot send a call's reply");
            }
        });
    }
}

/// Reads one call off the wire (pulling parameters too large for one
/// message) and checks its proof, and returns it with the introduction its
/// reply must carry, if any. It runs on the call's own task: a signature
/// check costs tens of microseconds, which the receive loop should not
/// serialize.
async fn incoming(
    handle: &ProviderHandle,
    message: &async_nats::Message,
    limits: &ChunkLimits,
) -> (Result<IncomingCall, RpcError>, Option<String>) {
    let call = match handle.subjects().parse_rpc(&message.subject) {
        Ok(call) => call,
        Err(e) => return (Err(RpcError::new(RpcErrorKind::Codec, e.to_string())), None),
    };
    let payload = match chunk::payload_of(handle.nats(), message, limits).await {
        Ok(payload) => payload,
        Err(e) => return (Err(RpcError::from(e)), None),
    };
    let headers = CallHeaders::from_lookup(|name| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    });
    let (checked, introduction) = handle.check_invocation(&message.subject, &headers, &payload);
    let introduction = introduction.map(str::to_owned);
    let call = checked.map(|()| IncomingCall {
        function: call.function,
        headers,
        body: payload,
    });
    (call, introduction)
}

/// Waits, for at most [`PENDING_LINK_WAIT`], until the host has put the
/// link `call` came by, if that link is still pending after a start.
async fn wait_for_link(
    handle: &ProviderHandle,
    pending: &PendingLinks,
    call: &IncomingCall,
) -> Result<(), RpcError> {
    let key = (
        call.headers.source_id.clone(),
        call.headers.link_name.clone(),
    );
    let mut watch = pending.subscribe();
    let arrived =
        tokio::time::timeout(PENDING_LINK_WAIT, watch.wait_for(|set| !set.contains(&key)));
    match arrived.await {
        Ok(_) => Ok(()),
        Err(_) => Err(RpcError::new(
            RpcErrorKind::Refused,
            format!(
                "provider `{}` is starting and has not received its link from `{}` yet; try \
                 again in a moment",
                handle.provider_id(),
                key.0
            ),
        )),
    }
}

/// Refuses a call on a link whose put this provider could not apply, with
/// the reason: the caller hears why (a bad URL, an unreachable store)
/// instead of "no link", and its host does not wait for a link to arrive.
fn refuse_failed_link(
    handle: &ProviderHandle,
    failed: &FailedLinks,
    call: &IncomingCall,
) -> Result<(), RpcError> {
    let link = Link {
        source_id: call.headers.source_id.clone(),
        target: handle.provider_id().to_owned(),
        name: call.headers.link_name.clone(),
        wit_namespace: call.function.interface.namespace.clone(),
        wit_package: call.function.interface.package.clone(),
        ..Link::default()
    };
    let slot = slot(&link);
    match failed.lock().unwrap_or_else(|p| p.into_inner()).get(&slot) {
        None => Ok(()),
        Some(reason) => Err(RpcError::new(
            RpcErrorKind::Refused,
            format!("link {slot} cannot be served: {reason}"),
        )),
    }
}

/// Applies link puts and deletes one at a time, in arrival order, and
/// applies a failed put again every [`LINK_RETRY`] in the same order-keeping
/// loop, so the provider still sees one link change at a time.
async fn serve_links<P: Provider>(
    handle: ProviderHandle,
    provider: Arc<P>,
    failed: FailedLinks,
    pending: Arc<PendingLinks>,
    mut puts: async_nats::Subscriber,
    mut dels: async_nats::Subscriber,
) {
    let nats = handle.nats().clone();
    // The failed puts, as received (secrets opened), to apply again.
    let mut retry: BTreeMap<String, ProviderLink> = BTreeMap::new();
    let mut tick = tokio::time::interval(LINK_RETRY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (message, is_put) = tokio::select! {
            m = puts.next() => match m {
                Some(m) => (m, true),
                None => return,
            },
            m = dels.next() => match m {
                Some(m) => (m, false),
                None => return,
            },
            _ = tick.tick(), if !retry.is_empty() => {
                retry_failed(&*provider, &failed, &mut retry).await;
                continue;
            }
        };
        // A link put too large for one message (much config) is pulled.
        let limits = trellis_lattice::chunk::ChunkLimits::default();
        let payload = match chunk::payload_of(&nats, &message, &limits).await {
            Ok(payload) => payload,
            Err(e) => {
                let response = CtlResponse::<()>::error(format!("cannot read the link: {e}"));
                respond_json(&nats, &message, &response).await;
                continue;
            }
        };
        let outcome = if is_put {
            match serde_json::from_slice::<ProviderLink>(&payload) {
                Err(e) => Err(format!("the link put is not valid JSON: {e}")),
                Ok(mut link) => {
                    let slot = slot(&link.link);
                    let result = match handle.open_secrets(&mut link) {
                        Ok(()) => provider.link_put(&link).await,
                        Err(reason) => Err(reason),
                    };
                    settle(&pending, &link.link);
                    let mut failed = failed.lock().unwrap_or_else(|p| p.into_inner());
                    match &result {
                        Ok(()) => {
                            tracing::info!(link = %slot, "link applied");
                            failed.remove(&slot);
                            retry.remove(&slot);
                        }
                        Err(reason) => {
                            tracing::warn!(link = %slot, reason, "link cannot be served");
                            failed.insert(slot.clone(), reason.clone());
                            retry.insert(slot.clone(), link);
                        }
                    }
                    result.map_err(|reason| format!("link {slot}: {reason}"))
                }
            }
        } else {
            match serde_json::from_slice::<Link>(&payload) {
                Err(e) => Err(format!("the link delete is not valid JSON: {e}")),
                Ok(link) => {
                    provider.link_del(&link).await;
                    settle(&pending, &link);
                    failed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&slot(&link));
                    retry.remove(&slot(&link));
                    Ok(())
                }
            }
        };
        let response = match outcome {
            Ok(()) => CtlResponse::<()>::success(""),
            Err(message) => CtlResponse::<()>::error(message),
        };
        respond_json(&nats, &message, &response).await;
    }
}

/// Applies each failed put in `retry` again; one that succeeds is served
/// from then on, one that fails keeps its latest reason.
async fn retry_failed<P: Provider>(
    provider: &P,
    failed: &FailedLinks,
    retry: &mut BTreeMap<String, ProviderLink>,
) {
    let slots: Vec<String> = retry.keys().cloned().collect();
    for slot in slots {
        let Some(link) = retry.get(&slot) else {
            continue;
        };
        let result = provider.link_put(link).await;
        let mut failed = failed.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                tracing::info!(link = %slot, "link applied on a retry");
                failed.remove(&slot);
                retry.remove(&slot);
            }
            Err(reason) => {
                tracing::debug!(link = %slot, reason, "link still cannot be served");
                failed.insert(slot, reason);
            }
        }
    }
}

async fn serve_health<P: Provider>(
    nats: async_nats::Client,
    provider: Arc<P>,
    failed: FailedLinks,
    mut checks: async_nats::Subscriber,
) {
    while let Some(message) = checks.next().await {
        let mut problems: Vec<String> = failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(slot, reason)| format!("link {slot}: {reason}"))
            .collect();
        if let Err(reason) = provider.health().await {
            problems.push(reason);
        }
        let response = HealthCheckResponse {
            healthy: problems.is_empty(),
            message: (!problems.is_empty()).then(|| problems.join("; ")),
        };
        respond_json(&nats, &message, &response).await;
    }
}

/// Resolves when a host asks this process to stop: a request naming this
/// process's host, or naming no host at all.
async fn wait_for_shutdown(
    nats: async_nats::Client,
    host_id: String,
    mut requests: async_nats::Subscriber,
) -> &'static str {
    while let Some(message) = requests.next().await {
        let request: ShutdownRequest = serde_json::from_slice(&message.payload).unwrap_or_default();
        if !request.host_id.is_empty() && request.host_id != host_id {
            continue;
        }
        respond_json(&nats, &message, &CtlResponse::<()>::success("stopping")).await;
        return "shutdown requested by the host";
    }
    std::future::pending().await
}

async fn respond_json<T: serde::Serialize>(
    nats: &async_nats::Client,
    message: &async_nats::Message,
    body: &T,
) {
    let Some(reply) = message.reply.clone() else {
        return;
    };
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            if let Err(err) = nats.publish(reply, bytes.into()).await {
                tracing::warn!(error = %err, "cannot answer the host");
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot encode an answer to the host"),
    }
}

/// Calls on `link` need wait no longer: it was put or deleted.
fn settle(pending: &PendingLinks, link: &Link) {
    pending.send_if_modified(|set| set.remove(&(link.source_id.clone(), link.name.clone())));
}

/// A link's slot, as people read it: `source → target (ns:pkg, name)`.
pub(crate) fn slot(link: &Link) -> String {
    format!(
        "{} → {} ({}:{}, link `{}`)",
        link.source_id, link.target, link.wit_namespace, link.wit_package, link.name
    )
}
