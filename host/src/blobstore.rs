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
//! The values an instance holds (written and not yet finished, or read
//! and not yet consumed) share one budget, the host's body limit
//! (`--max-body-mib`), so no number of open values makes the host hold
//! more: a write past it fails, naming the limit, and so does a read whose
//! bytes would not fit. Bytes return to the budget when their value (or
//! the stream reading it) is dropped. `write-data` names where the value
//! goes and `finish` (which the guest calls once it has written the body)
//! writes it there: `finish` consumes the value, so `write-data` always
//! comes first, as in wasmCloud's own examples.
//! Transport failures reach the guest as the `error` string, naming what is
//! missing, never as a trap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use trellis_lattice::blobstore::{self as contract, BlobRequest, BlobResponse, ObjectId};
use trellis_lattice::rpc::{RpcError, RpcErrorKind};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, InputStream, OutputStream, Pollable, StreamError,
};

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

/// What is left of an instance's budget for blob values, in bytes.
pub type BlobBudget = Arc<AtomicUsize>;

/// Takes `n` bytes from `budget`, if it has them.
fn take(budget: &AtomicUsize, n: usize) -> bool {
    budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(n)
        })
        .is_ok()
}

/// Bytes counted against a budget, given back when dropped.
struct Charge {
    bytes: usize,
    budget: BlobBudget,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.fetch_add(self.bytes, Ordering::SeqCst);
    }
}

/// A value read from a container.
pub struct IncomingValue {
    bytes: Bytes,
    charge: Charge,
}

/// The bytes of a value being written, shared by the value and its stream.
struct Written {
    bytes: BytesMut,
    charge: Charge,
    /// Whether a write found the budget spent.
    over: bool,
}

/// The guest's stream into an [`OutgoingValue`].
#[derive(Clone)]
struct ValueWriter(Arc<Mutex<Written>>);

impl ValueWriter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Written> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The most one `check-write` permits, so a guest writes in pieces.
const WRITE_PIECE: usize = 1 << 20;

impl OutputStream for ValueWriter {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        let mut written = self.lock();
        if !take(&written.charge.budget, bytes.len()) {
            written.over = true;
            return Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                "the blob values of this instance reached the host's limit (--max-body-mib)"
            )));
        }
        written.charge.bytes += bytes.len();
        written.bytes.extend_from_slice(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        let mut written = self.lock();
        match written.charge.budget.load(Ordering::SeqCst) {
            0 => {
                written.over = true;
                Err(StreamError::Closed)
            }
            left => Ok(left.min(WRITE_PIECE)),
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ValueWriter {
    async fn ready(&mut self) {}
}

/// The guest's stream out of an [`IncomingValue`]: its bytes stay counted
/// until the stream is dropped.
struct ValueReader {
    pipe: MemoryInputPipe,
    _charge: Charge,
}

impl InputStream for ValueReader {
    fn read(&mut self, size: usize) -> Result<Bytes, StreamError> {
        self.pipe.read(size)
    }

    fn skip(&mut self, size: usize) -> Result<usize, StreamError> {
        self.pipe.skip(size)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ValueReader {
    async fn ready(&mut self) {
        self.pipe.ready().await;
    }
}

/// A value being written.
pub struct OutgoingValue {
    writer: ValueWriter,
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
    budget: &'a BlobBudget,
}

impl<'a> BlobstoreView<'a> {
    /// A view over `table` for calls made by `caller`, holding values
    /// within `budget`.
    pub fn new(
        table: &'a mut ResourceTable,
        router: &'a ImportRouter,
        caller: Caller<'a>,
        budget: &'a BlobBudget,
    ) -> Self {
        BlobstoreView {
            table,
            router,
            caller,
            budget,
        }
    }

    /// Charges `bytes` read from the store to the budget, or refuses them.
    fn charge(&self, bytes: usize) -> Result<Charge, String> {
        if take(self.budget, bytes) {
            Ok(Charge {
                bytes,
                budget: Arc::clone(self.budget),
            })
        } else {
            Err(format!(
                "holding {bytes} more bytes would take this instance's blob values past the host's limit (--max-body-mib); read a smaller range, or consume and drop the values it holds"
            ))
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
            Ok(BlobResponse::Data(bytes)) => match self.charge(bytes.len()) {
                Ok(charge) => Ok(self.table.push(IncomingValue {
                    bytes: Bytes::from(bytes),
                    charge,
                })?),
                Err(err) => Err(err),
            },
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
        let written = Written {
            bytes: BytesMut::new(),
            charge: Charge {
                bytes: 0,
                budget: Arc::clone(self.budget),
            },
            over: false,
        };
        Ok(self.table.push(OutgoingValue {
            writer: ValueWriter(Arc::new(Mutex::new(written))),
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
        let stream: DynOutputStream = Box::new(value.writer.clone());
        Ok(Ok(self.table.push(stream)?))
    }

    async fn finish(&mut self, value: Resource<OutgoingValue>) -> Answer<()> {
        let value = self.table.delete(value)?;
        let (bytes, over) = {
            let written = value.writer.lock();
            (written.bytes.clone().freeze(), written.over)
        };
        if over {
            return Ok(Err(
                "the value was not written: this instance's blob values reached the host's limit (--max-body-mib)"
                    .to_owned(),
            ));
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
        let stream: DynInputStream = Box::new(ValueReader {
            pipe: MemoryInputPipe::new(value.bytes),
            _charge: value.charge,
        });
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn writer(budget: &BlobBudget) -> ValueWriter {
        ValueWriter(Arc::new(Mutex::new(Written {
            bytes: BytesMut::new(),
            charge: Charge {
                bytes: 0,
                budget: Arc::clone(budget),
            },
            over: false,
        })))
    }

    #[test]
    fn every_value_an_instance_holds_shares_one_budget_given_back_on_drop() {
        let budget: BlobBudget = Arc::new(AtomicUsize::new(10));
        let mut first = writer(&budget);
        first.write(Bytes::from_static(b"123456")).unwrap();
        assert_eq!(first.check_write().unwrap(), 4);
        // A second value cannot take what the first holds.
        let mut second = writer(&budget);
        assert!(second.write(Bytes::from_static(b"123456")).is_err());
        assert!(second.lock().over);
        second.write(Bytes::from_static(b"1234")).unwrap();
        assert!(matches!(second.check_write(), Err(StreamError::Closed)));
        // Dropping the first (value and stream) frees its six bytes.
        drop(first);
        assert_eq!(budget.load(Ordering::SeqCst), 6);
        drop(second);
        assert_eq!(budget.load(Ordering::SeqCst), 10);
        // A value read is charged until its stream is dropped.
        assert!(take(&budget, 7));
        let reader = ValueReader {
            pipe: MemoryInputPipe::new(Bytes::from_static(b"x")),
            _charge: Charge {
                bytes: 7,
                budget: Arc::clone(&budget),
            },
        };
        assert!(!take(&budget, 4));
        drop(reader);
        assert!(take(&budget, 4));
    }
}
