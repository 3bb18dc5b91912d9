//! Handler links: subscriptions whose messages go to a component's
//! `trellis:messaging/handler.handle-message`.
//!
//! Each link subscribes to its subjects, then one task takes messages from
//! all of them and delivers each as its own call, at most
//! [`MAX_IN_FLIGHT`] at a time, so a slow component holds messages back in
//! NATS rather than in this process. A failed delivery is logged and the
//! subscription goes on: the publisher has long moved on, and the handler's
//! error is not for it (see the WIT).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::SelectAll;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use trellis_lattice::WitFunction;
use trellis_lattice::messaging::{self, BrokerMessage};
use trellis_lattice::rpc::{self, RpcError};
use trellis_provider_sdk::{ProviderHandle, ProviderLink};

use crate::broker::Broker;
use crate::config::{self, HandlerConfig};

/// How many deliveries of one link may wait for the component at once.
const MAX_IN_FLIGHT: usize = 256;

/// The subscriptions of one handler link and the task delivering them.
pub(crate) struct HandlerLink {
    broker: Broker,
    subjects: Vec<String>,
    stop: watch::Sender<()>,
    task: JoinHandle<()>,
}

impl HandlerLink {
    /// Subscribes as `link`'s source config says and starts delivering to
    /// its target; the error names the subject or setting at fault.
    pub async fn start(handle: &ProviderHandle, link: &ProviderLink) -> Result<Self, String> {
        let source_config = &link.source_config_values;
        let config = HandlerConfig::from_source_config(source_config, handle.call_timeout())
            .map_err(|e| e.to_string())?;
        let servers = config::cluster_uris(source_config).map_err(|e| e.to_string())?;
        let broker = Broker::open(handle.nats(), servers, handle.provider_id()).await?;
        // A wasmcloud:messaging link delivers to the component's
        // wasmcloud:messaging handler.
        let function = WitFunction::parse(&messaging::handle_message(&link.link.wit_namespace))
            .map_err(|e| e.to_string())?;
        let mut subscribers = SelectAll::new();
        for subject in &config.subjects {
            let client = broker.client();
            let subscribed = match &config.queue_group {
                Some(group) => client.queue_subscribe(subject.clone(), group.clone()).await,
                None => client.subscribe(subject.clone()).await,
            };
            let subscriber = subscribed.map_err(|e| {
                format!("cannot subscribe to `{subject}` on {}: {e}", broker.name())
            })?;
            subscribers.push(subscriber);
        }
        // Once the server has the subscriptions, a message published after
        // the link put is answered is sure to be delivered.
        broker
            .client()
            .flush()
            .await
            .map_err(|e| format!("cannot subscribe on {}: {e}", broker.name()))?;
        tracing::info!(
            component = %link.link.target,
            subjects = ?config.subjects,
            queue_group = ?config.queue_group,
            broker = broker.name(),
            "subscribed"
        );
        let delivery = Delivery {
            handle: handle.clone(),
            function,
            component: link.link.target.clone(),
            link_name: link.link.name.clone(),
            timeout: config.timeout,
        };
        let (stop, stopped) = watch::channel(());
        let task = tokio::spawn(deliver_all(subscribers, Arc::new(delivery), stopped));
        Ok(HandlerLink {
            broker,
            subjects: config.subjects,
            stop,
            task,
        })
    }

    /// Whether the link subscribes on its own connection (`cluster_uris`).
    pub fn has_own_connection(&self) -> bool {
        self.broker.has_own_connection()
    }

    /// Whether the subscriptions' connection is up.
    pub fn is_connected(&self) -> bool {
        self.broker.is_connected()
    }

    /// The subscribed subjects and where, for health reports.
    pub fn describe(&self) -> String {
        format!("{} on {}", self.subjects.join(","), self.broker.name())
    }

    /// Unsubscribes; returns once the server has dropped the subscriptions.
    /// Deliveries already under way finish on their own.
    pub async fn stop(self) {
        drop(self.stop);
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "delivery task ended abnormally");
        }
        if let Err(err) = self.broker.client().flush().await {
            tracing::debug!(error = %err, "flushing unsubscriptions");
        }
    }
}

/// Who a link's messages go to.
struct Delivery {
    handle: ProviderHandle,
    function: WitFunction,
    component: String,
    link_name: String,
    timeout: Duration,
}

async fn deliver_all(
    mut subscribers: SelectAll<async_nats::Subscriber>,
    delivery: Arc<Delivery>,
    mut stopped: watch::Receiver<()>,
) {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let message = tokio::select! {
            // The sender is only ever dropped: any wake-up means stop.
            _ = stopped.changed() => break,
            message = subscribers.next() => message,
        };
        let Some(message) = message else { break };
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let delivery = Arc::clone(&delivery);
        tokio::spawn(async move {
            delivery.deliver(message).await;
            drop(permit);
        });
    }
    for subscriber in subscribers.iter_mut() {
        if let Err(err) = subscriber.unsubscribe().await {
            tracing::debug!(error = %err, "unsubscribing");
        }
    }
}

impl Delivery {
    async fn deliver(&self, message: async_nats::Message) {
        let subject = message.subject.to_string();
        let msg = BrokerMessage {
            subject: subject.clone(),
            body: message.payload.to_vec(),
            reply_to: message.reply.map(|r| r.to_string()),
        };
        let outcome = match rpc::encode(&(msg,)) {
            Ok(body) => self
                .handle
                .call(
                    &self.component,
                    &self.function,
                    &self.link_name,
                    body,
                    self.timeout,
                )
                .await
                .map_err(|e| e.to_string())
                .and_then(|reply| handler_outcome(rpc::decode_reply(&reply))),
            Err(err) => Err(format!("cannot encode the message: {err}")),
        };
        if let Err(error) = outcome {
            tracing::warn!(
                component = %self.component,
                link = %self.link_name,
                subject,
                error,
                "message not handled"
            );
        }
    }
}

/// Reads the reply to `handle-message`, a WIT `result<_, string>`. A host
/// answers an export call with the array of its results; a bare result is
/// accepted as well.
pub(crate) fn handler_outcome(reply: Result<rmpv::Value, RpcError>) -> Result<(), String> {
    let value = match reply.map_err(|e| e.to_string())? {
        rmpv::Value::Array(mut results) if results.len() <= 1 => {
            results.pop().unwrap_or(rmpv::Value::Nil)
        }
        other => other,
    };
    match &value {
        // A handler without a result has nothing to report.
        rmpv::Value::Nil => Ok(()),
        rmpv::Value::String(tag) if tag.as_str() == Some("ok") => Ok(()),
        rmpv::Value::Map(entries) if entries.len() == 1 => match &entries[0] {
            (tag, _) if tag.as_str() == Some("ok") => Ok(()),
            (tag, error) if tag.as_str() == Some("err") => Err(format!(
                "the handler returned an error: {}",
                error
                    .as_str()
                    .map_or_else(|| error.to_string(), str::to_owned)
            )),
            _ => Err(format!("the handler's reply is not a result: {value}")),
        },
        _ => Err(format!("the handler's reply is not a result: {value}")),
    }
}

#[cfg(test)]
mod tests {
    use rmpv::Value;
    use trellis_lattice::rpc::RpcErrorKind;

    use super::*;

    fn ok() -> Value {
        Value::Map(vec![("ok".into(), Value::Nil)])
    }

    fn err(message: &str) -> Value {
        Value::Map(vec![("err".into(), message.into())])
    }

    #[test]
    fn results_array_and_bare_result_both_read() {
        assert_eq!(handler_outcome(Ok(Value::Array(vec![ok()]))), Ok(()));
        assert_eq!(handler_outcome(Ok(ok())), Ok(()));
        let failed = handler_outcome(Ok(Value::Array(vec![err("full")]))).err();
        assert!(failed.is_some_and(|e| e.contains("full")));
        let failed = handler_outcome(Ok(err("full"))).err();
        assert!(failed.is_some_and(|e| e.contains("full")));
    }

    #[test]
    fn transport_errors_and_odd_replies_are_failures() {
        let call = handler_outcome(Err(RpcError::new(RpcErrorKind::Timeout, "slow")));
        assert!(call.is_err_and(|e| e.contains("slow")));
        assert!(handler_outcome(Ok(Value::from(7))).is_err());
    }
}
