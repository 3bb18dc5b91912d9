//! The provider: a [`Broker`] per consumer link (component → provider) and
//! a [`HandlerLink`] per handler link (provider → component).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use serde_bytes::ByteBuf;
use tokio::sync::Mutex;
use trellis_lattice::Link;
use trellis_lattice::messaging::{BrokerMessage, NAMESPACES, PACKAGE};
use trellis_lattice::rpc::{self, RpcError, RpcErrorKind, WitResult};
use trellis_provider_sdk::{IncomingCall, Provider, ProviderHandle, ProviderLink, reply};

use crate::broker::{self, Broker};
use crate::config;
use crate::handler::HandlerLink;

/// The interface components import to send messages.
const CONSUMER: &str = "consumer";

/// A consumer link's slot from this provider's side: the namespace
/// (trellis or wasmcloud), the calling component and the link name.
type ConsumerKey = (String, String, String);

/// Serves `trellis:messaging` on NATS; see the crate documentation for the
/// link config.
pub struct MessagingProvider {
    handle: ProviderHandle,
    consumers: RwLock<HashMap<ConsumerKey, Broker>>,
    /// Keyed by namespace (trellis or wasmcloud) and link name: the source
    /// (this provider) and the package are the same for every handler link.
    handlers: Mutex<HashMap<(String, String), HandlerLink>>,
}

impl MessagingProvider {
    /// A provider with no links yet.
    pub fn new(handle: ProviderHandle) -> Self {
        MessagingProvider {
            handle,
            consumers: RwLock::default(),
            handlers: Mutex::default(),
        }
    }

    fn is_messaging(link: &Link) -> bool {
        NAMESPACES.contains(&link.wit_namespace.as_str()) && link.wit_package == PACKAGE
    }

    fn broker_for(&self, namespace: &str, source: &str, link_name: &str) -> Option<Broker> {
        self.consumers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(
                namespace.to_owned(),
                source.to_owned(),
                link_name.to_owned(),
            ))
            .cloned()
    }

    async fn put_handler(&self, link: &ProviderLink) -> Result<(), String> {
        let mut handlers = self.handlers.lock().await;
        // The old subscriptions go first, so a changed link never delivers
        // a message twice.
        let key = (link.link.wit_namespace.clone(), link.link.name.clone());
        if let Some(old) = handlers.remove(&key) {
            old.stop().await;
        }
        let handler = HandlerLink::start(&self.handle, link).await?;
        handlers.insert(key, handler);
        Ok(())
    }

    async fn put_consumer(&self, link: &ProviderLink) -> Result<(), String> {
        let key = (
            link.link.wit_namespace.clone(),
            link.link.source_id.clone(),
            link.link.name.clone(),
        );
        let servers = match config::cluster_uris(&link.target_config_values) {
            Ok(servers) => servers,
            Err(err) => {
                self.remove_consumer(&key);
                return Err(err.to_string());
            }
        };
        match Broker::open(self.handle.nats(), servers, self.handle.provider_id()).await {
            Ok(broker) => {
                self.consumers
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, broker);
                Ok(())
            }
            Err(err) => {
                // Calls must not silently go to the lattice's NATS instead.
                self.remove_consumer(&key);
                Err(err)
            }
        }
    }

    fn remove_consumer(&self, key: &ConsumerKey) {
        self.consumers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// The default for a `request` whose caller passed a timeout of 0.
    fn default_request_timeout(&self) -> Duration {
        self.handle.call_timeout()
    }
}

impl Provider for MessagingProvider {
    async fn link_put(&self, link: &ProviderLink) -> Result<(), String> {
        if !Self::is_messaging(&link.link) {
            return Ok(());
        }
        let id = self.handle.provider_id();
        if link.link.source_id == id {
            self.put_handler(link).await
        } else if link.link.target == id {
            self.put_consumer(link).await
        } else {
            Ok(())
        }
    }

    async fn link_del(&self, link: &Link) {
        if !Self::is_messaging(link) {
            return;
        }
        if link.source_id == self.handle.provider_id() {
            let key = (link.wit_namespace.clone(), link.name.clone());
            let removed = self.handlers.lock().await.remove(&key);
            if let Some(handler) = removed {
                handler.stop().await;
            }
        } else {
            self.remove_consumer(&(
                link.wit_namespace.clone(),
                link.source_id.clone(),
                link.name.clone(),
            ));
        }
    }

    async fn call(&self, call: IncomingCall) -> Result<Vec<u8>, RpcError> {
        let id = self.handle.provider_id();
        let interface = &call.function.interface;
        if !NAMESPACES.contains(&interface.namespace.as_str())
            || interface.package != PACKAGE
            || interface.interface != CONSUMER
        {
            return Err(RpcError::new(
                RpcErrorKind::Refused,
                format!(
                    "`{id}` serves trellis:messaging/consumer and wasmcloud:messaging/consumer, not {}",
                    call.function
                ),
            ));
        }
        let source = &call.headers.source_id;
        let link_name = &call.headers.link_name;
        let Some(broker) = self.broker_for(&interface.namespace, source, link_name) else {
            return Err(RpcError::new(
                RpcErrorKind::NoLink,
                format!(
                    "`{id}` has no link named `{link_name}` from `{source}`; put one with \
                     `wash link put {source} {id} {} messaging --interface consumer`",
                    interface.namespace
                ),
            ));
        };
        let codec = |e: trellis_lattice::LatticeError| {
            RpcError::new(
                RpcErrorKind::Codec,
                format!("the parameters of {} do not decode: {e}", call.function),
            )
        };
        match call.function.function.as_str() {
            "publish" => {
                let (msg,): (BrokerMessage,) = rpc::decode(&call.body).map_err(codec)?;
                reply(&WitResult::from(broker.publish(msg).await))
            }
            "request" => {
                let (subject, body, timeout_ms): (String, ByteBuf, u32) =
                    rpc::decode(&call.body).map_err(codec)?;
                let timeout = match timeout_ms {
                    0 => self.default_request_timeout(),
                    ms => Duration::from_millis(u64::from(ms)),
                };
                let result = broker.request(subject, body.into_vec(), timeout).await;
                reply(&WitResult::from(result))
            }
            other => Err(RpcError::new(
                RpcErrorKind::Refused,
                format!("trellis:messaging/consumer has no function `{other}`"),
            )),
        }
    }

    async fn health(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if !broker::is_connected(self.handle.nats()) {
            problems.push("the lattice's NATS connection is down".to_owned());
        }
        let consumers: Vec<(ConsumerKey, Broker)> = self
            .consumers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, b)| b.has_own_connection())
            .map(|(k, b)| (k.clone(), b.clone()))
            .collect();
        for ((namespace, source, name), broker) in consumers {
            if !broker.is_connected() {
                problems.push(format!(
                    "{namespace}:messaging link `{name}` from `{source}`: not connected to {}",
                    broker.name()
                ));
            }
        }
        for ((namespace, name), handler) in self.handlers.lock().await.iter() {
            if handler.has_own_connection() && !handler.is_connected() {
                problems.push(format!(
                    "{namespace}:messaging link `{name}`: subscriptions {} are not connected",
                    handler.describe()
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    async fn shutdown(&self) {
        let handlers: Vec<HandlerLink> =
            self.handlers.lock().await.drain().map(|(_, h)| h).collect();
        for handler in handlers {
            handler.stop().await;
        }
    }
}
