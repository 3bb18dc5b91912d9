//! `wasi:keyvalue` providers in two traits.
//!
//! Each link from a component to a keyvalue provider gets its own store,
//! opened from the link's target config (a Redis URL, a SQLite path): the
//! same provider process can serve a dev database to one component and a
//! shared one to another. [`KeyValueProvider`] keeps those stores, routes
//! each call by its caller and link name, and decodes and encodes the wire
//! contract of [`trellis_lattice::keyvalue`]; a backend only opens stores
//! ([`KvBackend`]) and answers requests ([`KvStore`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use trellis_lattice::Link;
use trellis_lattice::keyvalue::{self, KvError, KvRequest, KvResponse};
use trellis_lattice::rpc::{RpcError, RpcErrorKind};

use crate::serve::slot;
use crate::{IncomingCall, Provider, ProviderHandle, ProviderLink};

/// Opens one store per link.
pub trait KvBackend: Send + Sync + 'static {
    /// The store a link gets.
    type Store: KvStore;

    /// The backend's name in metrics (`sqlite`, `redis`).
    const NAME: &'static str;

    /// Opens the store for `link` (a link from a component to this
    /// provider), reading its settings from `link.target_config_values`.
    /// The error names the setting and what is wrong with it.
    fn open(&self, link: &ProviderLink)
    -> impl Future<Output = Result<Self::Store, String>> + Send;
}

/// One open store.
pub trait KvStore: Send + Sync + 'static {
    /// Serves one request. `atomics.increment` must be atomic in the store
    /// itself, since several provider processes may share it.
    fn handle(
        &self,
        request: KvRequest,
    ) -> impl Future<Output = Result<KvResponse, KvError>> + Send;

    /// Checks that the store still answers; `Err` says why not.
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }
}

type LinkKey = (String, String);

/// A [`Provider`] for `wasi:keyvalue` over any [`KvBackend`].
pub struct KeyValueProvider<B: KvBackend> {
    id: String,
    handle: ProviderHandle,
    backend: B,
    stores: RwLock<HashMap<LinkKey, Arc<B::Store>>>,
}

impl<B: KvBackend> KeyValueProvider<B> {
    /// A provider serving `backend` under `handle`'s provider id.
    pub fn new(handle: &ProviderHandle, backend: B) -> Self {
        KeyValueProvider {
            id: handle.provider_id().to_owned(),
            handle: handle.clone(),
            backend,
            stores: RwLock::default(),
        }
    }

    fn store_for(&self, source: &str, link_name: &str) -> Option<Arc<B::Store>> {
        self.stores
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(source.to_owned(), link_name.to_owned()))
            .cloned()
    }

    fn serves(&self, link: &Link) -> bool {
        link.target == self.id
            && link.wit_namespace == keyvalue::NAMESPACE
            && link.wit_package == keyvalue::PACKAGE
    }
}

impl<B: KvBackend> Provider for KeyValueProvider<B> {
    async fn link_put(&self, link: &ProviderLink) -> Result<(), String> {
        if !self.serves(&link.link) {
            return Ok(());
        }
        let key = (link.link.source_id.clone(), link.link.name.clone());
        // A put that fails drops the store the link had, so the link is
        // refused with the failure's reason rather than served by settings
        // its owner has replaced.
        let store = match self.backend.open(link).await {
            Ok(store) => store,
            Err(reason) => {
                self.stores
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                return Err(reason);
            }
        };
        self.stores
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Arc::new(store));
        Ok(())
    }

    async fn link_del(&self, link: &Link) {
        // Stores are keyed by source and name only; a link of another
        // package with the same two is a different link.
        if !self.serves(link) {
            return;
        }
        self.stores
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(link.source_id.clone(), link.name.clone()));
    }

    async fn call(&self, call: IncomingCall) -> Result<Vec<u8>, RpcError> {
        let interface = &call.function.interface;
        if interface.namespace != keyvalue::NAMESPACE || interface.package != keyvalue::PACKAGE {
            return Err(RpcError::new(
                RpcErrorKind::Refused,
                format!("`{}` serves wasi:keyvalue, not {}", self.id, call.function),
            ));
        }
        let request = KvRequest::decode(&interface.interface, &call.function.function, &call.body)?;
        let source = &call.headers.source_id;
        let link_name = &call.headers.link_name;
        // No link (yet, or any more): the caller's host sends the call
        // again once the link has reached this provider or moved away.
        let Some(store) = self.store_for(source, link_name) else {
            return Err(RpcError::new(
                RpcErrorKind::NoLink,
                format!(
                    "`{}` has no link named `{link_name}` from `{source}`; put one with \
                     `wash link put {source} {} wasi keyvalue --interface store`",
                    self.id, self.id
                ),
            ));
        };
        let result = store.handle(request.clone()).await;
        let operation = format!("{}.{}", interface.interface, call.function.function);
        self.handle
            .metrics()
            .keyvalue(B::NAME, &operation, result.is_ok());
        keyvalue::encode_reply(&request, result)
            .map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))
    }

    async fn health(&self) -> Result<(), String> {
        let stores: Vec<(LinkKey, Arc<B::Store>)> = self
            .stores
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        let mut problems = Vec::new();
        for ((source, name), store) in stores {
            if let Err(reason) = store.check().await {
                let link = Link {
                    source_id: source,
                    target: self.id.clone(),
                    name,
                    wit_namespace: keyvalue::NAMESPACE.into(),
                    wit_package: keyvalue::PACKAGE.into(),
                    ..Link::default()
                };
                problems.push(format!("link {}: {reason}", slot(&link)));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}
