//! `wasi:keyvalue` (0.2.0-draft `store`, `atomics`, `batch`) for
//! components, served by whichever provider the component is linked to.
//!
//! The generic import path in [`crate::imports`] cannot carry this package:
//! its functions take a `bucket` resource, and a resource handle means
//! nothing outside the instance that holds it. So the host keeps each bucket
//! in the instance's resource table as a [`RemoteBucket`], which remembers
//! only the identifier the component opened, and turns every method into a
//! call to the linked provider with that identifier as the first parameter
//! (the wire contract is [`trellis_lattice::keyvalue`]).
//!
//! `open` crosses no network: it only checks that the component has a
//! `wasi:keyvalue` link, so a component without one learns so at the first
//! thing it does. Transport failures (no link, nothing serving the target,
//! timeouts) reach the component as `error::other` with a message that names
//! the missing piece, rather than as a trap, so the component can report it
//! to its own caller.

use trellis_lattice::keyvalue::{self as contract, KvError, KvRequest, KvResponse};
use trellis_lattice::rpc::{RpcError, RpcErrorKind};
use trellis_lattice::wit::WitInterface;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::HostError;
use crate::engine::{Caller, InstanceState};
use crate::imports::ImportRouter;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wit",
        world: "wasi:keyvalue/imports",
        // Every method awaits a NATS reply; `trappable` lets a stale bucket
        // handle trap the guest instead of being answered.
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::RemoteBucket,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// The interfaces of `wasi:keyvalue` served here, without versions.
const SERVED: &[&str] = &[
    "wasi:keyvalue/store",
    "wasi:keyvalue/atomics",
    "wasi:keyvalue/batch",
];

/// A function's answer to the guest: a trap, or the WIT result.
type Answer<T> = wasmtime::Result<Result<T, store::Error>>;

/// A bucket a component opened: all the host needs to address it.
pub struct RemoteBucket {
    identifier: String,
}

/// Whether the import `name` is served by this module rather than by the
/// generic forwarding in [`crate::imports`].
pub fn serves(name: &str) -> bool {
    let unversioned = name.split('@').next().unwrap_or(name);
    SERVED.contains(&unversioned)
}

/// Defines `store`, `atomics` and `batch` in `linker`.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> Result<(), HostError> {
    bindings::Imports::add_to_linker::<InstanceState, Keyvalue>(linker, InstanceState::keyvalue)
        .map_err(HostError::engine)
}

/// Selects [`KeyvalueView`] as what the generated bindings call into.
struct Keyvalue;

impl HasData for Keyvalue {
    type Data<'a> = KeyvalueView<'a>;
}

/// The parts of an instance's state the keyvalue functions use.
pub struct KeyvalueView<'a> {
    table: &'a mut ResourceTable,
    router: &'a ImportRouter,
    caller: Caller<'a>,
}

impl<'a> KeyvalueView<'a> {
    /// A view over `table` for calls made by `caller`.
    pub fn new(table: &'a mut ResourceTable, router: &'a ImportRouter, caller: Caller<'a>) -> Self {
        KeyvalueView {
            table,
            router,
            caller,
        }
    }

    /// The identifier behind a bucket handle; a handle the table does not
    /// hold is a guest bug and traps.
    fn identifier(&self, bucket: &Resource<RemoteBucket>) -> wasmtime::Result<String> {
        Ok(self.table.get(bucket)?.identifier.clone())
    }
}

/// Sends `request` to the provider `caller`'s link names, and picks the
/// function's result out of the reply with `answer`.
///
/// Takes the router and caller rather than the view so the future does not
/// borrow the resource table, which is not `Sync`.
async fn forward<T>(
    router: &ImportRouter,
    caller: Caller<'_>,
    request: KvRequest,
    answer: fn(KvResponse) -> Result<T, KvResponse>,
) -> Result<T, store::Error> {
    let function = request.function();
    let reply = async {
        let body = request
            .encode()
            .map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))?;
        let link_name = caller.link_name(&function.interface);
        let bytes = router
            .send(caller.source, link_name, &function, body)
            .await?;
        contract::decode_reply(&request, &bytes)
    };
    match reply.await {
        Ok(Ok(response)) => answer(response).map_err(|other| {
            store::Error::Other(format!("the provider answered {function} with {other:?}"))
        }),
        Ok(Err(err)) => Err(err.into()),
        Err(err) => Err(store::Error::Other(err.message)),
    }
}

impl From<KvError> for store::Error {
    fn from(err: KvError) -> Self {
        match err {
            KvError::NoSuchStore => store::Error::NoSuchStore,
            KvError::AccessDenied => store::Error::AccessDenied,
            KvError::Other(message) => store::Error::Other(message),
        }
    }
}

/// The answer of the functions whose WIT result carries no value.
fn done(response: KvResponse) -> Result<(), KvResponse> {
    match response {
        KvResponse::Done => Ok(()),
        other => Err(other),
    }
}

impl store::Host for KeyvalueView<'_> {
    async fn open(&mut self, identifier: String) -> Answer<Resource<RemoteBucket>> {
        let interface = WitInterface {
            namespace: contract::NAMESPACE.into(),
            package: contract::PACKAGE.into(),
            interface: "store".into(),
        };
        let link_name = self.caller.link_name(&interface);
        if let Err(err) = self
            .router
            .target(self.caller.source, link_name, &interface)
        {
            return Ok(Err(store::Error::Other(err.message)));
        }
        Ok(Ok(self.table.push(RemoteBucket { identifier })?))
    }
}

impl store::HostBucket for KeyvalueView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<RemoteBucket>,
        key: String,
    ) -> Answer<Option<Vec<u8>>> {
        let request = KvRequest::Get {
            bucket: self.identifier(&bucket)?,
            key,
        };
        Ok(forward(self.router, self.caller, request, |r| match r {
            KvResponse::Value(value) => Ok(value),
            other => Err(other),
        })
        .await)
    }

    async fn set(
        &mut self,
        bucket: Resource<RemoteBucket>,
        key: String,
        value: Vec<u8>,
    ) -> Answer<()> {
        let request = KvRequest::Set {
            bucket: self.identifier(&bucket)?,
            key,
            value,
        };
        Ok(forward(self.router, self.caller, request, done).await)
    }

    async fn delete(&mut self, bucket: Resource<RemoteBucket>, key: String) -> Answer<()> {
        let request = KvRequest::Delete {
            bucket: self.identifier(&bucket)?,
            key,
        };
        Ok(forward(self.router, self.caller, request, done).await)
    }

    async fn exists(&mut self, bucket: Resource<RemoteBucket>, key: String) -> Answer<bool> {
        let request = KvRequest::Exists {
            bucket: self.identifier(&bucket)?,
            key,
        };
        Ok(forward(self.router, self.caller, request, |r| match r {
            KvResponse::Exists(exists) => Ok(exists),
            other => Err(other),
        })
        .await)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<RemoteBucket>,
        cursor: Option<u64>,
    ) -> Answer<store::KeyResponse> {
        let request = KvRequest::ListKeys {
            bucket: self.identifier(&bucket)?,
            cursor,
        };
        Ok(forward(self.router, self.caller, request, |r| match r {
            KvResponse::Keys(page) => Ok(store::KeyResponse {
                keys: page.keys,
                cursor: page.cursor,
            }),
            other => Err(other),
        })
        .await)
    }

    async fn drop(&mut self, bucket: Resource<RemoteBucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyvalueView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<RemoteBucket>,
        key: String,
        delta: u64,
    ) -> Answer<u64> {
        let request = KvRequest::Increment {
            bucket: self.identifier(&bucket)?,
            key,
            delta,
        };
        Ok(forward(self.router, self.caller, request, |r| match r {
            KvResponse::Counter(value) => Ok(value),
            other => Err(other),
        })
        .await)
    }
}

impl batch::Host for KeyvalueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<RemoteBucket>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<(String, Vec<u8>)>>> {
        let request = KvRequest::GetMany {
            bucket: self.identifier(&bucket)?,
            keys,
        };
        Ok(forward(self.router, self.caller, request, |r| match r {
            KvResponse::Many(entries) => Ok(entries),
            other => Err(other),
        })
        .await)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<RemoteBucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Answer<()> {
        let request = KvRequest::SetMany {
            bucket: self.identifier(&bucket)?,
            entries: key_values,
        };
        Ok(forward(self.router, self.caller, request, done).await)
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<RemoteBucket>,
        keys: Vec<String>,
    ) -> Answer<()> {
        let request = KvRequest::DeleteMany {
            bucket: self.identifier(&bucket)?,
            keys,
        };
        Ok(forward(self.router, self.caller, request, done).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_interfaces_with_a_contract_are_served_here() {
        assert!(serves("wasi:keyvalue/store@0.2.0-draft"));
        assert!(serves("wasi:keyvalue/atomics@0.2.0-draft"));
        assert!(serves("wasi:keyvalue/batch@0.2.0-draft"));
        assert!(!serves("wasi:keyvalue/watcher@0.2.0-draft"));
        assert!(!serves("wasi:keyvalue/storage@0.2.0-draft"));
        assert!(!serves("trellis:messaging/consumer@0.2.0"));
    }

    #[test]
    fn store_errors_keep_their_kind_and_message() {
        assert!(matches!(
            store::Error::from(KvError::NoSuchStore),
            store::Error::NoSuchStore
        ));
        assert!(matches!(
            store::Error::from(KvError::AccessDenied),
            store::Error::AccessDenied
        ));
        assert!(matches!(
            store::Error::from(KvError::Other("disk full".into())),
            store::Error::Other(m) if m == "disk full"
        ));
    }
}
