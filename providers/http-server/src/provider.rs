//! The provider: one [`Listener`] per link from this provider to a
//! component, keyed by link name (with the provider as source and the
//! package fixed, the name is what tells two such links apart).

use std::collections::HashMap;

use tokio::sync::Mutex;
use trellis_lattice::Link;
use trellis_lattice::rpc::{RpcError, RpcErrorKind};
use trellis_provider_sdk::{IncomingCall, Provider, ProviderHandle, ProviderLink};

use crate::config::ListenConfig;
use crate::forward::Route;
use crate::listener::Listener;

const WIT_NAMESPACE: &str = "wasi";
const WIT_PACKAGE: &str = "http";

/// Serves HTTP for every component linked from this provider; see the
/// crate documentation for the link config.
pub struct HttpServerProvider {
    handle: ProviderHandle,
    listeners: Mutex<HashMap<String, Listener>>,
}

impl HttpServerProvider {
    /// A provider with no listeners yet; they come with link puts.
    pub fn new(handle: ProviderHandle) -> Self {
        HttpServerProvider {
            handle,
            listeners: Mutex::default(),
        }
    }

    fn serves(&self, link: &Link) -> bool {
        link.source_id == self.handle.provider_id()
            && link.wit_namespace == WIT_NAMESPACE
            && link.wit_package == WIT_PACKAGE
    }
}

impl Provider for HttpServerProvider {
    async fn link_put(&self, link: &ProviderLink) -> Result<(), String> {
        if !self.serves(&link.link) {
            return Ok(());
        }
        let name = &link.link.name;
        let mut listeners = self.listeners.lock().await;
        let config = match ListenConfig::from_source_config(
            &link.source_config_values,
            self.handle.call_timeout(),
        ) {
            Ok(config) => config,
            Err(err) => {
                // The link no longer describes what the old listener serves.
                if let Some(old) = listeners.remove(name) {
                    old.stop().await;
                }
                return Err(err.to_string());
            }
        };
        let route = Route {
            component: link.link.target.clone(),
            link_name: name.clone(),
            timeout: config.timeout,
        };
        if let Some(current) = listeners.get(name)
            && current.address() == config.address
            && current.is_serving()
        {
            current.set_route(route);
            return Ok(());
        }
        // Free the old address first: the new one may be the same port.
        if let Some(old) = listeners.remove(name) {
            old.stop().await;
        }
        let listener = Listener::bind(&config.address, route, self.handle.clone()).await?;
        listeners.insert(name.clone(), listener);
        Ok(())
    }

    async fn link_del(&self, link: &Link) {
        if !self.serves(link) {
            return;
        }
        let removed = self.listeners.lock().await.remove(&link.name);
        if let Some(listener) = removed {
            listener.stop().await;
        }
    }

    async fn call(&self, call: IncomingCall) -> Result<Vec<u8>, RpcError> {
        Err(RpcError::new(
            RpcErrorKind::Refused,
            format!(
                "`{}` is an HTTP server: it calls components and serves no functions, \
                 so {} cannot be called on it",
                self.handle.provider_id(),
                call.function
            ),
        ))
    }

    async fn health(&self) -> Result<(), String> {
        let stopped: Vec<String> = self
            .listeners
            .lock()
            .await
            .iter()
            .filter(|(_, listener)| !listener.is_serving())
            .map(|(name, listener)| {
                format!(
                    "the listener of link `{name}` on {} stopped",
                    listener.address()
                )
            })
            .collect();
        if stopped.is_empty() {
            Ok(())
        } else {
            Err(stopped.join("; "))
        }
    }

    async fn shutdown(&self) {
        let listeners: Vec<Listener> = self
            .listeners
            .lock()
            .await
            .drain()
            .map(|(_, l)| l)
            .collect();
        for listener in listeners {
            listener.stop().await;
        }
    }
}
