//! The control-interface server. Three kinds of subject arrive here:
//!
//! - questions every host answers (`host.ping`, the auctions): a plain
//!   subscription, one reply per host;
//! - commands for this host (`*.*.{host_id}`): a plain subscription on
//!   subjects that end in this host's id;
//! - lattice-wide changes (`link.*`, `config.*`, `claims.get`): a queue
//!   subscription shared by all hosts, so exactly one host applies each and
//!   the others learn of it through JetStream KV.
//!
//! Every reply is the `{"success", "message", "response"}` envelope.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use trellis_lattice::ctl::{
    self, ComponentAuctionAck, ComponentAuctionRequest, CtlResponse,
    DeleteInterfaceLinkDefinitionRequest, HostLabel, InputLimits, ProviderAuctionAck,
    ProviderAuctionRequest, StopProviderCommand, constraints_match,
};
use trellis_lattice::event::LatticeEvent;
use trellis_lattice::event::{ConfigChanged, LinkdefDeleted};
use trellis_lattice::subject::{CTL_PREFIX, CtlOperation};
use trellis_lattice::{Link, config};

use crate::HostError;
use crate::component::ComponentSpec;
use crate::host::HostInner;

/// Queue group of the lattice-wide control subjects.
const SHARED_GROUP: &str = "trellis-host-ctl";

/// Subscribes to the control interface and serves it until aborted.
pub async fn serve(inner: Arc<HostInner>) -> Result<JoinHandle<()>, HostError> {
    let prefix = format!("{CTL_PREFIX}.{}", inner.subjects.lattice());
    let nats = &inner.nats;
    let sub =
        |subject: String| async move { nats.subscribe(subject).await.map_err(HostError::nats) };
    let shared = |subject: String| async move {
        nats.queue_subscribe(subject, SHARED_GROUP.to_owned())
            .await
            .map_err(HostError::nats)
    };
    let subscriptions = vec![
        sub(format!("{prefix}.host.ping")).await?,
        sub(format!("{prefix}.component.auction")).await?,
        sub(format!("{prefix}.provider.auction")).await?,
        sub(format!("{prefix}.*.*.{}", inner.id)).await?,
        shared(format!("{prefix}.link.*")).await?,
        shared(format!("{prefix}.config.*.*")).await?,
        shared(format!("{prefix}.claims.get")).await?,
    ];
    confirm_subscriptions(&inner.nats).await?;
    let mut messages = futures::stream::select_all(subscriptions);
    Ok(tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let inner = Arc::clone(&inner);
            tokio::spawn(async move { answer(inner, message).await });
        }
    }))
}

/// Returns once the server has registered every subscription made so far
/// on `nats`. `flush` only empties the socket; a message sent to ourselves
/// and received back proves the server processed the earlier SUBs, since
/// it handles one connection's protocol in order. Without this, a client
/// that sees the host start could ask before the host can hear.
async fn confirm_subscriptions(nats: &async_nats::Client) -> Result<(), HostError> {
    let inbox = nats.new_inbox();
    let mut echo = nats
        .subscribe(inbox.clone())
        .await
        .map_err(HostError::nats)?;
    nats.publish(inbox, bytes::Bytes::new())
        .await
        .map_err(HostError::nats)?;
    match tokio::time::timeout(std::time::Duration::from_secs(10), echo.next()).await {
        Ok(Some(_)) => Ok(()),
        _ => Err(HostError::Nats(
            "the NATS server did not confirm the host's subscriptions within 10 s".into(),
        )),
    }
}

async fn answer(inner: Arc<HostInner>, message: async_nats::Message) {
    let Some(reply) = message.reply.clone() else {
        return;
    };
    let op = match inner.subjects.parse_ctl(&message.subject) {
        Ok(op) => op,
        Err(err) => {
            respond(&inner, reply, Err::<Option<()>, _>(HostError::from(err))).await;
            return;
        }
    };
    let stop_after = matches!(op, CtlOperation::HostStop { .. });
    let body = &message.payload;
    match op {
        CtlOperation::HostPing => respond(&inner, reply, Ok(Some(inner.summary()))).await,
        CtlOperation::HostGet { .. } => respond(&inner, reply, Ok(Some(inner.inventory()))).await,
        CtlOperation::HostStop { .. } => {
            respond(&inner, reply, Ok::<Option<()>, _>(None)).await;
        }
        CtlOperation::ComponentAuction => {
            let Ok(request) = parse::<ComponentAuctionRequest>(body) else {
                return;
            };
            if constraints_match(&request.constraints, &inner.labels()) {
                let ack = ComponentAuctionAck {
                    component_ref: request.component_ref,
                    component_id: request.component_id,
                    host_id: inner.id.clone(),
                    constraints: request.constraints,
                };
                respond(&inner, reply, Ok(Some(ack))).await;
            }
        }
        CtlOperation::ProviderAuction => {
            let Ok(request) = parse::<ProviderAuctionRequest>(body) else {
                return;
            };
            // A host running the provider already does not bid: one
            // process per provider id per host.
            if constraints_match(&request.constraints, &inner.labels())
                && !inner.providers.runs(&request.provider_id)
            {
                let ack = ProviderAuctionAck {
                    host_id: inner.id.clone(),
                    provider_ref: request.provider_ref,
                    provider_id: request.provider_id,
                    constraints: request.constraints,
                };
                respond(&inner, reply, Ok(Some(ack))).await;
            }
        }
        CtlOperation::ComponentScale { .. } => {
            let result = match parse(body).and_then(|c| within(&inner, c, InputLimits::check_scale))
            {
                Ok(cmd) => {
                    let allow_update = cmd.allow_update;
                    let spec = ComponentSpec {
                        id: cmd.component_id,
                        image_ref: cmd.component_ref,
                        max_instances: cmd.max_instances,
                        annotations: cmd.annotations.unwrap_or_default(),
                        allowed_hosts: cmd.allowed_hosts,
                        config: cmd.config,
                    };
                    inner.scale(spec, allow_update).await
                }
                Err(err) => Err(err),
            };
            respond_message(&inner, reply, result).await;
        }
        CtlOperation::ComponentUpdate { .. } => {
            let result =
                match parse(body).and_then(|c| within(&inner, c, InputLimits::check_update)) {
                    Ok(cmd) => {
                        inner
                            .update(&cmd.component_id, &cmd.new_component_ref, cmd.annotations)
                            .await
                    }
                    Err(err) => Err(err),
                };
            respond_message(&inner, reply, result).await;
        }
        CtlOperation::ProviderStart { .. } => {
            let result = match parse(body)
                .and_then(|c| within(&inner, c, InputLimits::check_provider_start))
            {
                Ok(cmd) => inner.providers.start(cmd).await,
                Err(err) => Err(err),
            };
            respond_message(&inner, reply, result).await;
        }
        CtlOperation::ProviderStop { .. } => {
            let result = match parse::<StopProviderCommand>(body) {
                Ok(cmd) => inner.providers.stop(&cmd.provider_id).await,
                Err(err) => Err(err),
            };
            respond_message(&inner, reply, result).await;
        }
        CtlOperation::LinkPut => {
            let result = match parse(body).and_then(|l| within(&inner, l, InputLimits::check_link))
            {
                Ok(link) => put_link(&inner, link).await,
                Err(err) => Err(err),
            };
            respond_message(&inner, reply, result).await;
        }
        CtlOperation::LinkDel => {
            let result = match parse::<DeleteInterfaceLinkDefinitionRequest>(body) {
                Ok(request) => delete_link(&inner, request).await,
                Err(err) => Err(err),
            };
            respond_message(&inner, reply, result).await;
        }
        CtlOperation::LinkGet => {
            respond(&inner, reply, inner.state.read_links().await.map(Some)).await
        }
        CtlOperation::ClaimsGet => {
            respond(&inner, reply, inner.state.all_claims().await.map(Some)).await
        }
        CtlOperation::LabelPut { .. } => {
            let result = match parse::<HostLabel>(body) {
                Ok(label) => inner
                    .set_label(&label.key, Some(&label.value))
                    .await
                    .map(|()| format!("label `{}` set", label.key)),
                Err(err) => Err(err),
            };
            respond_message(&inner, reply, result).await;
        }
        CtlOperation::LabelDel { .. } => {
            let result = match parse::<LabelKey>(body) {
                Ok(label) => inner
                    .set_label(&label.key, None)
                    .await
                    .map(|()| format!("label `{}` removed", label.key)),
                Err(err) => Err(err),
            };
            respond_message(&inner, reply, result).await;
        }
        CtlOperation::ConfigPut { name } => {
            let result = match parse::<config::NamedConfig>(body).and_then(|values| {
                inner
                    .config
                    .input_limits
                    .check_config(&name, &values)
                    .map_err(HostError::BadRequest)?;
                Ok(values)
            }) {
                Ok(values) => put_config(&inner, &name, values).await,
                Err(err) => Err(err),
            };
            respond_message(&inner, reply, result).await;
        }
        CtlOperation::ConfigGet { name } => {
            respond(&inner, reply, inner.state.get_config(&name).await).await
        }
        CtlOperation::ConfigDel { name } => {
            let result = delete_config(&inner, &name).await;
            respond_message(&inner, reply, result).await;
        }
    }
    if stop_after {
        inner.request_stop();
    }
}

/// The body of `label.del`: just the key.
#[derive(serde::Deserialize)]
struct LabelKey {
    key: String,
}

async fn put_link(inner: &HostInner, link: Link) -> Result<String, HostError> {
    inner.state.put_link(&link).await?;
    inner.providers.links_forwarded().await;
    let message = format!(
        "link `{}` from `{}` to `{}` for {}:{}/{{{}}} stored",
        link.name,
        link.source_id,
        link.target,
        link.wit_namespace,
        link.wit_package,
        link.interfaces.join(",")
    );
    inner.events.publish(LatticeEvent::LinkdefSet(link)).await;
    Ok(message)
}

async fn delete_link(
    inner: &HostInner,
    request: DeleteInterfaceLinkDefinitionRequest,
) -> Result<String, HostError> {
    let removed = inner.state.delete_link(&request).await?;
    inner.providers.links_forwarded().await;
    let Some(link) = removed else {
        return Ok(format!(
            "no link `{}` from `{}` for {}:{}; nothing to delete",
            request.name, request.source_id, request.wit_namespace, request.wit_package
        ));
    };
    inner
        .events
        .publish(LatticeEvent::LinkdefDeleted(LinkdefDeleted {
            source_id: link.source_id.clone(),
            name: link.name.clone(),
            wit_namespace: link.wit_namespace.clone(),
            wit_package: link.wit_package.clone(),
            target: Some(link.target.clone()),
            interfaces: Some(link.interfaces.clone()),
        }))
        .await;
    Ok(format!(
        "link `{}` from `{}` deleted",
        link.name, link.source_id
    ))
}

async fn put_config(
    inner: &HostInner,
    name: &str,
    values: BTreeMap<String, String>,
) -> Result<String, HostError> {
    config::validate_config_name(name)?;
    inner.state.put_config(name, &values).await?;
    inner
        .events
        .publish(LatticeEvent::ConfigSet(ConfigChanged {
            config_name: name.to_owned(),
        }))
        .await;
    Ok(format!("config `{name}` stored ({} keys)", values.len()))
}

async fn delete_config(inner: &HostInner, name: &str) -> Result<String, HostError> {
    if !inner.state.delete_config(name).await? {
        return Ok(format!("config `{name}` did not exist"));
    }
    inner
        .events
        .publish(LatticeEvent::ConfigDeleted(ConfigChanged {
            config_name: name.to_owned(),
        }))
        .await;
    Ok(format!("config `{name}` deleted"))
}

/// `value` if it is within the host's input limits by `check`.
fn within<T>(
    inner: &HostInner,
    value: T,
    check: fn(&InputLimits, &T) -> Result<(), String>,
) -> Result<T, HostError> {
    check(&inner.config.input_limits, &value).map_err(HostError::BadRequest)?;
    Ok(value)
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, HostError> {
    ctl::from_json(
        std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("request"),
        body,
    )
    .map_err(|e| HostError::BadRequest(e.to_string()))
}

async fn respond<T: Serialize>(
    inner: &HostInner,
    reply: async_nats::Subject,
    result: Result<Option<T>, HostError>,
) {
    let envelope = match result {
        Ok(Some(value)) => CtlResponse::ok(value),
        Ok(None) => CtlResponse {
            success: true,
            message: String::new(),
            response: None,
        },
        Err(err) => CtlResponse::error(err.to_string()),
    };
    send(inner, reply, &envelope).await;
}

async fn respond_message(
    inner: &HostInner,
    reply: async_nats::Subject,
    result: Result<String, HostError>,
) {
    let envelope: CtlResponse<()> = match result {
        Ok(message) => CtlResponse::success(message),
        Err(err) => CtlResponse::error(err.to_string()),
    };
    send(inner, reply, &envelope).await;
}

async fn send<T: Serialize>(
    inner: &HostInner,
    reply: async_nats::Subject,
    envelope: &CtlResponse<T>,
) {
    let bytes = match ctl::to_json("control reply", envelope) {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::error!(error = %err, "cannot encode a control reply");
            return;
        }
    };
    // A reply too large for one message (an inventory of very many
    // components, a ping answer with long labels on a server with a small
    // max payload) is offered in chunks.
    let limits = inner.config.chunk_limits();
    let sent = trellis_lattice::chunk::publish(
        &inner.nats,
        reply,
        async_nats::HeaderMap::new(),
        bytes.into(),
        &limits,
    )
    .await;
    if let Err(err) = sent {
        tracing::warn!(error = %err, "cannot send a control reply");
    }
}
