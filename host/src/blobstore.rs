//! `wasi:blobstore` (0.2.0-draft `blobstore`, `container`, `types`) for
//! components, served by whichever provider the component is linked to.
//!
//! Like [`crate::keyvalue`], the package's resources stay in the instance:
//! a [`RemoteContainer`] is a container name; an [`OutgoingValue`] is the
//! bytes the guest has written into its stream; an [`IncomingValue`] is the
//! bytes a provider sent back; an [`ObjectNames`] is a listed page of names
//! read out a batch at a time. Every method that touches the store is one
//! call to the provider (the wire contract is [`trellis_lattice::blobstore`]),
//! and an object body crosses the lattice in chunks when it is larger than
//! the NATS server's payload limit.
//!
//! A value being written is held in memory up to the host's body limit
//! (`--max-body-mib`): past it the guest's stream reports closed and
//! `finish` says which limit was hit. `write-data` names where the value
//! goes and `finish` (which the guest calls once it has written the body)
//! writes it there: `finish` consumes the value, so `write-data` always
//! comes first, as in wasmCloud's own examples.
//! Transport failures reach the guest as the `error` string, naming what is
//! missing, never as a trap.

use bytes::Bytes;
use trellis_lattice::blobstore::{self as contract, BlobRequest, BlobResponse, ObjectId};
use trellis_lattice::rpc::{RpcError, RpcErrorKind};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

use crate::HostError;
use crate::engine::{Caller, InstanceState};
use crate::imports::ImportRouter;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wit",
        world: "wasi:blobstore/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:blobstore/container.container": super::RemoteContainer,
            "wasi:blobstore/container.stream-object-names": super::ObjectNames,
            "wasi:blobstore/types.incoming-value": super::IncomingValue,
            "wasi:blobstore/types.outgoing-value": super::OutgoingValue,
        },
    });
}

use bindings::wasi::blobstore::{blobstore, container, types};

/// The interfaces of `wasi:blobstore` served here, without versions.
const SERVED: &[&str] = &[
    "wasi:blobstore/blobstore",
    "wasi:blobstore/container",
    "wasi:blobstore/types",
];

/// A function's answer to the guest: a trap, or the WIT result.
type Answer<T> = wasmtime::Result<Result<T, String>>;

/// A container the component opened or created: its name.
pub struct RemoteContainer {
    name: String,
}

/// Object names from one `list-objects`, read out in batches.
pub struct ObjectNames {
    names: std::vec::IntoIter<String>,
}

/// A value read from a container.
pub struct IncomingValue {
    bytes: Bytes,
}

/// A value being written.
pub struct OutgoingValue {
    /// What the guest's stream writes into, up to the body limit.
    pipe: MemoryOutputPipe,
    limit: usize,
    /// Whether the stream was handed out (it is, at most once).
    stream_taken: bool,
    /// Where `write-data` asked for it to go (container, object), waiting
    /// for `finish`.
    targets: Vec<(String, String)>,
}

/// Whether the import `name` is served by this module.
pub fn serves(name: &str) -> bool {
    let unversioned = name.split('@').next().unwrap_or(name);
    SERVED.contains(&unversioned)
}

/// Whether import `name` is `wasi:blobstore/types`, whose functions (the
/// value resources) the host answers alone: only `blobstore` and
/// `container` need a link.
pub fn host_only(name: &str) -> bool {
    name.split('@').next() == Some("wasi:blobstore/types")
}

/// Defines `blobstore`, `container` and `types` in `linker`. The
/// `wasi:io` streams they hand out are wasmtime-wasi's, linked with the
/// rest of WASI.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> Result<(), HostError> {
    let view = InstanceState::blobstore;
    types::add_to_linker::<InstanceState, Blobstore>(linker, view).map_err(HostError::engine)?;
    container::add_to_linker::<InstanceState, Blobstore>(linker, view)
        .map_err(HostError::engine)?;
    blobstore::add_to_linker::<InstanceState, Blobstore>(linker, view).map_err(HostError::engine)
}

/// Selects [`BlobstoreView`] as what the generated bindings call into.
struct Blobstore;

impl HasData for Blobstore {
    type Data<'a> = BlobstoreView<'a>;
}

/// The parts of an instance's state the blobstore functions use.
pub struct BlobstoreView<'a> {
    table: &'a mut ResourceTable,
    router: &'a ImportRouter,
    caller: Caller<'a>,
    max_body_bytes: usize,
}

impl<'a> BlobstoreView<'a> {
    /// A view over `table` for calls made by `caller`; values written are
    /// held up to `max_body_bytes`.
    pub fn new(
        table: &'a mut ResourceTable,
        router: &'a ImportRouter,
        caller: Caller<'a>,
        max_body_bytes: usize,
    ) -> Self {
        BlobstoreView {
            table,
            router,
            caller,
            max_body_bytes,
        }
    }

    fn name_of(&self, container: &Resource<RemoteContainer>) -> wasmtime::Result<String> {
        Ok(self.table.get(container)?.name.clone())
    }
}

/// Sends `request` by `caller`'s link and returns the provider's answer.
async fn forward(
    router: &ImportRouter,
    caller: Caller<'_>,
    request: BlobRequest,
) -> Result<BlobResponse, String> {
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
        Ok(result) => result,
        Err(err) => Err(err.message),
    }
}

/// An answer of the wrong kind is the provider's bug; the guest is told.
fn unexpected<T>(function: &str, found: BlobResponse) -> Result<T, String> {
    Err(format!("the provider answered {function} with {found:?}"))
}

fn done(function: &str, response: Result<BlobResponse, String>) -> Result<(), String> {
    match response? {
        BlobResponse::Done => Ok(()),
        other => unexpected(function, other),
    }
}

fn flag(function: &str, response: Result<BlobResponse, String>) -> Result<bool, String> {
    match response? {
        BlobResponse::Bool(b) => Ok(b),
        other => unexpected(function, other),
    }
}

impl blobstore::Host for BlobstoreView<'_> {
    async fn create_container(&mut self, name: String) -> Answer<Resource<RemoteContainer>> {
        let request = BlobRequest::CreateContainer(name.clone());
        let answer = forward(self.router, self.caller, request).await;
        match done("create-container", answer) {
            Ok(()) => Ok(Ok(self.table.push(RemoteContainer { name })?)),
            Err(err) => Ok(Err(err)),
        }
    }

    async fn get_container(&mut self, name: String) -> Answer<Resource<RemoteContainer>> {
        let answer = forward(
            self.router,
            self.caller,
            BlobRequest::GetContainer(name.clone()),
        )
        .await;
        match done("get-container", answer) {
            Ok(()) => Ok(Ok(self.table.push(RemoteContainer { name })?)),
            Err(err) => Ok(Err(err)),
        }
    }

    async fn delete_container(&mut self, name: String) -> Answer<()> {
        let answer = forward(self.router, self.caller, BlobRequest::DeleteContainer(name)).await;
        Ok(done("delete-container", answer))
    }

    async fn container_exists(&mut self, name: String) -> Answer<bool> {
        let answer = forward(self.router, self.caller, BlobRequest::ContainerExists(name)).await;
        Ok(flag("container-exists", answer))
    }

    async fn copy_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> Answer<()> {
        let request = BlobRequest::CopyObject {
            src: object_id(src),
            dest: object_id(dest),
        };
        Ok(done(
            "copy-object",
            forward(self.router, self.caller, request).await,
        ))
    }

    async fn move_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> Answer<()> {
        let request = BlobRequest::MoveObject {
            src: object_id(src),
            dest: object_id(dest),
        };
        Ok(done(
            "move-object",
            forward(self.router, self.caller, request).await,
        ))
    }
}

fn object_id(id: types::ObjectId) -> ObjectId {
    ObjectId {
        container: id.container,
        object: id.object,
    }
}

impl container::Host for BlobstoreView<'_> {}

impl container::HostContainer for BlobstoreView<'_> {
    async fn name(&mut self, container: Resource<RemoteContainer>) -> Answer<String> {
        Ok(Ok(self.name_of(&container)?))
    }

    async fn info(
        &mut self,
        container: Resource<RemoteContainer>,
    ) -> Answer<types::ContainerMetadata> {
        let answer = forward(
            self.router,
            self.caller,
            BlobRequest::Info(self.name_of(&container)?),
        )
        .await;
        Ok(match answer {
            Ok(BlobResponse::Container(m)) => Ok(types::ContainerMetadata {
                name: m.name,
                created_at: m.created_at,
            }),
            Ok(other) => unexpected("info", other),
            Err(err) => Err(err),
        })
    }

    async fn get_data(
        &mut self,
        container: Resource<RemoteContainer>,
        name: String,
        start: u64,
        end: u64,
    ) -> Answer<Resource<IncomingValue>> {
        if end < start {
            return Ok(Err(format!(
                "get-data of `{name}`: end ({end}) is before start ({start}); offsets are inclusive"
            )));
        }
        let request = BlobRequest::GetData {
            container: self.name_of(&container)?,
            object: name,
            start,
            end,
        };
        Ok(match forward(self.router, self.caller, request).await {
            Ok(BlobResponse::Data(bytes)) => Ok(self.table.push(IncomingValue {
                bytes: Bytes::from(bytes),
            })?),
            Ok(other) => unexpected("get-data", other),
            Err(err) => Err(err),
        })
    }

    async fn write_data(
        &mut self,
        container: Resource<RemoteContainer>,
        name: String,
        data: Resource<OutgoingValue>,
    ) -> Answer<()> {
        let container = self.name_of(&container)?;
        // Written when the guest finishes the value: `finish` consumes it,
        // so a value `write-data` can still see is never finished.
        self.table.get_mut(&data)?.targets.push((container, name));
        Ok(Ok(()))
    }

    async fn list_objects(
        &mut self,
        container: Resource<RemoteContainer>,
    ) -> Answer<Resource<ObjectNames>> {
        let request = BlobRequest::ListObjects(self.name_of(&container)?);
        Ok(match forward(self.router, self.caller, request).await {
            Ok(BlobResponse::Names(names)) => Ok(self.table.push(ObjectNames {
                names: names.into_iter(),
            })?),
            Ok(other) => unexpected("list-objects", other),
            Err(err) => Err(err),
        })
    }

    async fn delete_object(
        &mut self,
        container: Resource<RemoteContainer>,
        name: String,
    ) -> Answer<()> {
        let request = BlobRequest::DeleteObject {
            container: self.name_of(&container)?,
            object: name,
        };
        Ok(done(
            "delete-object",
            forward(self.router, self.caller, request).await,
        ))
    }

    async fn delete_objects(
        &mut self,
        container: Resource<RemoteContainer>,
        names: Vec<String>,
    ) -> Answer<()> {
        let request = BlobRequest::DeleteObjects {
            container: self.name_of(&container)?,
            objects: names,
        };
        Ok(done(
            "delete-objects",
            forward(self.router, self.caller, request).await,
        ))
    }

    async fn has_object(
        &mut self,
        container: Resource<RemoteContainer>,
        name: String,
    ) -> Answer<bool> {
        let request = BlobRequest::HasObject {
            container: self.name_of(&container)?,
            object: name,
        };
        Ok(flag(
            "has-object",
            forward(self.router, self.caller, request).await,
        ))
    }

    async fn object_info(
        &mut self,
        container: Resource<RemoteContainer>,
        name: String,
    ) -> Answer<types::ObjectMetadata> {
        let request = BlobRequest::ObjectInfo {
            container: self.name_of(&container)?,
            object: name,
        };
        Ok(match forward(self.router, self.caller, request).await {
            Ok(BlobResponse::Object(m)) => Ok(types::ObjectMetadata {
                name: m.name,
                container: m.container,
                created_at: m.created_at,
                size: m.size,
            }),
            Ok(other) => unexpected("object-info", other),
            Err(err) => Err(err),
        })
    }

    async fn clear(&mut self, container: Resource<RemoteContainer>) -> Answer<()> {
        let request = BlobRequest::Clear(self.name_of(&container)?);
        Ok(done(
            "clear",
            forward(self.router, self.caller, request).await,
        ))
    }

    async fn drop(&mut self, container: Resource<RemoteContainer>) -> wasmtime::Result<()> {
        self.table.delete(container)?;
        Ok(())
    }
}

impl container::HostStreamObjectNames for BlobstoreView<'_> {
    async fn read_stream_object_names(
        &mut self,
        names: Resource<ObjectNames>,
        len: u64,
    ) -> Answer<(Vec<String>, bool)> {
        let stream = self.table.get_mut(&names)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let batch: Vec<String> = stream.names.by_ref().take(len).collect();
        let end = stream.names.len() == 0;
        Ok(Ok((batch, end)))
    }

    async fn skip_stream_object_names(
        &mut self,
        names: Resource<ObjectNames>,
        num: u64,
    ) -> Answer<(u64, bool)> {
        let stream = self.table.get_mut(&names)?;
        let num = usize::try_from(num).unwrap_or(usize::MAX);
        let skipped = stream.names.by_ref().take(num).count();
        let end = stream.names.len() == 0;
        Ok(Ok((skipped as u64, end)))
    }

    async fn drop(&mut self, names: Resource<ObjectNames>) -> wasmtime::Result<()> {
        self.table.delete(names)?;
        Ok(())
    }
}

impl types::Host for BlobstoreView<'_> {}

impl types::HostOutgoingValue for BlobstoreView<'_> {
    async fn new_outgoing_value(&mut self) -> wasmtime::Result<Resource<OutgoingValue>> {
        Ok(self.table.push(OutgoingValue {
            pipe: MemoryOutputPipe::new(self.max_body_bytes),
            limit: self.max_body_bytes,
            stream_taken: false,
            targets: Vec::new(),
        })?)
    }

    async fn outgoing_value_write_body(
        &mut self,
        value: Resource<OutgoingValue>,
    ) -> Answer<Resource<DynOutputStream>> {
        let value = self.table.get_mut(&value)?;
        if value.stream_taken {
            return Ok(Err(
                "the body stream of this outgoing-value was already taken".into(),
            ));
        }
        value.stream_taken = true;
        let stream: DynOutputStream = Box::new(value.pipe.clone());
        Ok(Ok(self.table.push(stream)?))
    }

    async fn finish(&mut self, value: Resource<OutgoingValue>) -> Answer<()> {
        let value = self.table.delete(value)?;
        let bytes = value.pipe.contents();
        if bytes.len() >= value.limit {
            return Ok(Err(format!(
                "the value reached the host's limit of {} bytes (--max-body-mib) and was not written",
                value.limit
            )));
        }
        for (container, object) in value.targets {
            let request = BlobRequest::WriteData {
                container,
                object,
                data: bytes.to_vec(),
            };
            if let Err(err) = done(
                "write-data",
                forward(self.router, self.caller, request).await,
            ) {
                return Ok(Err(err));
            }
        }
        Ok(Ok(()))
    }

    async fn drop(&mut self, value: Resource<OutgoingValue>) -> wasmtime::Result<()> {
        self.table.delete(value)?;
        Ok(())
    }
}

impl types::HostIncomingValue for BlobstoreView<'_> {
    async fn incoming_value_consume_sync(
        &mut self,
        value: Resource<IncomingValue>,
    ) -> Answer<Vec<u8>> {
        let value = self.table.delete(value)?;
        Ok(Ok(value.bytes.to_vec()))
    }

    async fn incoming_value_consume_async(
        &mut self,
        value: Resource<IncomingValue>,
    ) -> Answer<Resource<DynInputStream>> {
        let value = self.table.delete(value)?;
        let stream: DynInputStream = Box::new(MemoryInputPipe::new(value.bytes));
        Ok(Ok(self.table.push(stream)?))
    }

    async fn size(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&value)?.bytes.len() as u64)
    }

    async fn drop(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<()> {
        self.table.delete(value)?;
        Ok(())
    }
}
