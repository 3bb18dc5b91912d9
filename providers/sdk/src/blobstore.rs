//! `wasi:blobstore` providers in two traits, as [`crate::keyvalue`] does it
//! for key-value stores.
//!
//! Each link from a component to a blobstore provider gets its own store,
//! opened from the link's target config (a directory, an object-store
//! bucket). [`BlobstoreProvider`] keeps those stores, routes each call by
//! its caller and link name, and decodes and encodes the wire contract of
//! [`trellis_lattice::blobstore`]; a backend only opens stores
//! ([`BlobBackend`]) and answers requests ([`BlobStore`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use trellis_lattice::Link;
use trellis_lattice::blobstore::{self, BlobRequest, BlobResponse};
use trellis_lattice::rpc::{RpcError, RpcErrorKind};

use crate::{IncomingCall, Provider, ProviderHandle, ProviderLink};

/// Opens one store per link.
pub trait BlobBackend: Send + Sync + 'static {
    /// The store a link gets.
    type Store: BlobStore;

    /// Opens the store for `link`, reading its settings from
    /// `link.target_config_values`; the error names the setting at fault.
    fn open(&self, link: &ProviderLink)
    -> impl Future<Output = Result<Self::Store, String>> + Send;
}

/// One open store.
pub trait BlobStore: Send + Sync + 'static {
    /// Serves one request; the error is the `error` string the component
    /// receives.
    fn handle(
        &self,
        request: BlobRequest,
    ) -> impl Future<Output = Result<BlobResponse, String>> + Send;
}

type LinkKey = (String, String);

/// A [`Provider`] for `wasi:blobstore` over any [`BlobBackend`].
pub struct BlobstoreProvider<B: BlobBackend> {
    id: String,
    backend: B,
    stores: RwLock<HashMap<LinkKey, Arc<B::Store>>>,
}

impl<B: BlobBackend> BlobstoreProvider<B> {
    /// A provider serving `backend` under `handle`'s provider id.
    pub fn new(handle: &ProviderHandle, backend: B) -> Self {
        BlobstoreProvider {
            id: handle.provider_id().to_owned(),
            backend,
            stores: RwLock::default(),
        }
    }

    fn serves(&self, link: &Link) -> bool {
        link.target == self.id
            && link.wit_namespace == blobstore::NAMESPACE
            && link.wit_package == blobstore::PACKAGE
    }
}

impl<B: BlobBackend> Provider for BlobstoreProvider<B> {
    async fn link_put(&self, link: &ProviderLink) -> Result<(), String> {
        if !self.serves(&link.link) {
            return Ok(());
        }
        let key = (link.link.source_id.clone(), link.link.name.clone());
        let opened = self.backend.open(link).await;
        let mut stores = self.stores.write().unwrap_or_else(|p| p.into_inner());
        match opened {
            Ok(store) => {
                stores.insert(key, Arc::new(store));
                Ok(())
            }
            Err(reason) => {
                // The link is refused with the reason, not served by the
                // settings its owner replaced.
                stores.remove(&key);
                Err(reason)
            }
        }
    }

    async fn link_del(&self, link: &Link) {
        if self.serves(link) {
            self.stores
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(link.source_id.clone(), link.name.clone()));
        }
    }

    async fn call(&self, call: IncomingCall) -> Result<Vec<u8>, RpcError> {
        let interface = &call.function.interface;
        if interface.namespace != blobstore::NAMESPACE || interface.package != blobstore::PACKAGE {
            return Err(RpcError::new(
                RpcErrorKind::Refused,
                format!("`{}` serves wasi:blobstore, not {}", self.id, call.function),
            ));
        }
        let request =
            BlobRequest::decode(&interface.interface, &call.function.function, &call.body)?;
        let source = &call.headers.source_id;
        let link_name = &call.headers.link_name;
        let store = self
            .stores
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(source.clone(), link_name.clone()))
            .cloned();
        // No link (yet, or any more): the caller's host sends the call
        // again once the link has reached this provider.
        let Some(store) = store else {
            return Err(RpcError::new(
                RpcErrorKind::NoLink,
                format!(
                    "`{}` has no link named `{link_name}` from `{source}`; put one with \
                     `wash link put {source} {} wasi blobstore --interface blobstore --interface container`",
                    self.id, self.id
                ),
            ));
        };
        let result = store.handle(request.clone()).await;
        blobstore::encode_reply(&request, result)
            .map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))
    }
}
