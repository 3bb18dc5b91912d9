//! `wasi:blobstore` (0.2.0-draft) across the lattice.
//!
//! A component holds `container`, `incoming-value`, `outgoing-value` and
//! `stream-object-names` resources; none can travel over NATS. The host
//! keeps them: a container is its name, a value being written is the bytes
//! written so far, a value read is the bytes the provider sent, and a name
//! stream is the list of names. Each method that touches the store becomes
//! one call to the linked provider, whose first parameter is the container
//! name. Object bodies travel whole in one call; the lattice splits any
//! payload over the server's limit into flow-controlled chunks
//! ([`crate::chunk`]), up to the host's `--max-body-mib`.
//!
//! # Wire contract
//!
//! Subject: `{lattice}.{provider}.rpc.wasi:blobstore/{interface}.{function}`.
//! Body: a MessagePack array of the parameters; reply: the function's WIT
//! result, `{"ok": x}` or `{"err": "why"}`, inside the RPC envelope
//! (`{"Ok": result}`, or `{"Err": rpc-error}` when the call itself failed):
//!
//! | function | parameters | result |
//! |---|---|---|
//! | `blobstore.create-container` | `[container]` | `result<_, error>` |
//! | `blobstore.get-container` | `[container]` | `result<_, error>`: whether it exists, as an error if not |
//! | `blobstore.delete-container` | `[container]` | `result<_, error>` |
//! | `blobstore.container-exists` | `[container]` | `result<bool, error>` |
//! | `blobstore.copy-object` | `[src-container, src-object, dest-container, dest-object]` | `result<_, error>` |
//! | `blobstore.move-object` | `[src-container, src-object, dest-container, dest-object]` | `result<_, error>` |
//! | `container.info` | `[container]` | `result<container-metadata, error>` |
//! | `container.get-data` | `[container, object, start, end]` | `result<list<u8>, error>` (offsets inclusive, cut at the object's end) |
//! | `container.write-data` | `[container, object, bytes]` | `result<_, error>` |
//! | `container.list-objects` | `[container]` | `result<list<string>, error>` |
//! | `container.delete-object` | `[container, object]` | `result<_, error>` |
//! | `container.delete-objects` | `[container, objects]` | `result<_, error>` |
//! | `container.has-object` | `[container, object]` | `result<bool, error>` |
//! | `container.object-info` | `[container, object]` | `result<object-metadata, error>` |
//! | `container.clear` | `[container]` | `result<_, error>` |
//!
//! Metadata records are MessagePack maps with the WIT field names in
//! snake case (`created_at`); timestamps are seconds since the Unix epoch.

use serde::{Deserialize, Serialize};

use crate::error::LatticeError;
use crate::rpc::{self, RpcError, RpcErrorKind, WitResult};
use crate::wit::{WitFunction, WitInterface};

/// The WIT namespace of the contract.
pub const NAMESPACE: &str = "wasi";
/// The WIT package of the contract.
pub const PACKAGE: &str = "blobstore";

/// `wasi:blobstore/types.container-metadata`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMetadata {
    /// The container's name.
    pub name: String,
    /// When it was created, in seconds since the Unix epoch.
    pub created_at: u64,
}

/// `wasi:blobstore/types.object-metadata`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMetadata {
    /// The object's name.
    pub name: String,
    /// Its container.
    pub container: String,
    /// When it was written, in seconds since the Unix epoch.
    pub created_at: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// One object, named with its container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectId {
    /// The container.
    pub container: String,
    /// The object's name in it.
    pub object: String,
}

/// One call of the contract, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobRequest {
    /// `blobstore.create-container`.
    CreateContainer(String),
    /// `blobstore.get-container`.
    GetContainer(String),
    /// `blobstore.delete-container`.
    DeleteContainer(String),
    /// `blobstore.container-exists`.
    ContainerExists(String),
    /// `blobstore.copy-object`.
    CopyObject {
        /// What to copy.
        src: ObjectId,
        /// Where to.
        dest: ObjectId,
    },
    /// `blobstore.move-object`.
    MoveObject {
        /// What to move.
        src: ObjectId,
        /// Where to.
        dest: ObjectId,
    },
    /// `container.info`.
    Info(String),
    /// `container.get-data`.
    GetData {
        /// The container.
        container: String,
        /// The object.
        object: String,
        /// The first offset read.
        start: u64,
        /// The last offset read (inclusive).
        end: u64,
    },
    /// `container.write-data`.
    WriteData {
        /// The container.
        container: String,
        /// The object.
        object: String,
        /// Its new contents.
        data: Vec<u8>,
    },
    /// `container.list-objects`.
    ListObjects(String),
    /// `container.delete-object`.
    DeleteObject {
        /// The container.
        container: String,
        /// The object.
        object: String,
    },
    /// `container.delete-objects`.
    DeleteObjects {
        /// The container.
        container: String,
        /// The objects.
        objects: Vec<String>,
    },
    /// `container.has-object`.
    HasObject {
        /// The container.
        container: String,
        /// The object.
        object: String,
    },
    /// `container.object-info`.
    ObjectInfo {
        /// The container.
        container: String,
        /// The object.
        object: String,
    },
    /// `container.clear`.
    Clear(String),
}

/// What a provider answers to a [`BlobRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobResponse {
    /// For the functions whose result carries nothing.
    Done,
    /// For `container-exists` and `has-object`.
    Bool(bool),
    /// For `get-data`.
    Data(Vec<u8>),
    /// For `list-objects`.
    Names(Vec<String>),
    /// For `info`.
    Container(ContainerMetadata),
    /// For `object-info`.
    Object(ObjectMetadata),
}

/// The WIT result a function's answer has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Done,
    Bool,
    Data,
    Names,
    Container,
    Object,
}

impl BlobRequest {
    /// The interface and function this request calls.
    pub fn function(&self) -> WitFunction {
        let (interface, function) = self.name();
        WitFunction {
            interface: WitInterface {
                namespace: NAMESPACE.into(),
                package: PACKAGE.into(),
                interface: interface.into(),
            },
            function: function.into(),
        }
    }

    fn name(&self) -> (&'static str, &'static str) {
        match self {
            Self::CreateContainer(_) => ("blobstore", "create-container"),
            Self::GetContainer(_) => ("blobstore", "get-container"),
            Self::DeleteContainer(_) => ("blobstore", "delete-container"),
            Self::ContainerExists(_) => ("blobstore", "container-exists"),
            Self::CopyObject { .. } => ("blobstore", "copy-object"),
            Self::MoveObject { .. } => ("blobstore", "move-object"),
            Self::Info(_) => ("container", "info"),
            Self::GetData { .. } => ("container", "get-data"),
            Self::WriteData { .. } => ("container", "write-data"),
            Self::ListObjects(_) => ("container", "list-objects"),
            Self::DeleteObject { .. } => ("container", "delete-object"),
            Self::DeleteObjects { .. } => ("container", "delete-objects"),
            Self::HasObject { .. } => ("container", "has-object"),
            Self::ObjectInfo { .. } => ("container", "object-info"),
            Self::Clear(_) => ("container", "clear"),
        }
    }

    fn shape(&self) -> Shape {
        match self {
            Self::ContainerExists(_) | Self::HasObject { .. } => Shape::Bool,
            Self::GetData { .. } => Shape::Data,
            Self::ListObjects(_) => Shape::Names,
            Self::Info(_) => Shape::Container,
            Self::ObjectInfo { .. } => Shape::Object,
            _ => Shape::Done,
        }
    }

    /// Encodes the parameters as the call body.
    pub fn encode(&self) -> Result<Vec<u8>, LatticeError> {
        use serde_bytes::Bytes;
        match self {
            Self::CreateContainer(c)
            | Self::GetContainer(c)
            | Self::DeleteContainer(c)
            | Self::ContainerExists(c)
            | Self::Info(c)
            | Self::ListObjects(c)
            | Self::Clear(c) => rpc::encode(&(c,)),
            Self::CopyObject { src, dest } | Self::MoveObject { src, dest } => {
                rpc::encode(&(&src.container, &src.object, &dest.container, &dest.object))
            }
            Self::GetData {
                container,
                object,
                start,
                end,
            } => rpc::encode(&(container, object, start, end)),
            Self::WriteData {
                container,
                object,
                data,
            } => rpc::encode(&(container, object, Bytes::new(data))),
            Self::DeleteObject { container, object }
            | Self::HasObject { container, object }
            | Self::ObjectInfo { container, object } => rpc::encode(&(container, object)),
            Self::DeleteObjects { container, objects } => rpc::encode(&(container, objects)),
        }
    }

    /// The container the request addresses (the source's, for copy and move).
    pub fn container(&self) -> &str {
        match self {
            Self::CreateContainer(c)
            | Self::GetContainer(c)
            | Self::DeleteContainer(c)
            | Self::ContainerExists(c)
            | Self::Info(c)
            | Self::ListObjects(c)
            | Self::Clear(c) => c,
            Self::CopyObject { src, .. } | Self::MoveObject { src, .. } => &src.container,
            Self::GetData { container, .. }
            | Self::WriteData { container, .. }
            | Self::DeleteObject { container, .. }
            | Self::DeleteObjects { container, .. }
            | Self::HasObject { container, .. }
            | Self::ObjectInfo { container, .. } => container,
        }
    }

    /// Decodes the body of a call to `interface.function` (the part of the
    /// subject after `wasi:blobstore/`).
    pub fn decode(interface: &str, function: &str, body: &[u8]) -> Result<Self, RpcError> {
        let codec = |e: LatticeError| {
            RpcError::new(
                RpcErrorKind::Codec,
                format!("wasi:blobstore/{interface}.{function}: {e}"),
            )
        };
        let one = || -> Result<String, RpcError> {
            let (c,): (String,) = rpc::decode(body).map_err(codec)?;
            Ok(c)
        };
        let two = || -> Result<(String, String), RpcError> { rpc::decode(body).map_err(codec) };
        let ids = || -> Result<(ObjectId, ObjectId), RpcError> {
            let (sc, so, dc, d): (String, String, String, String) =
                rpc::decode(body).map_err(codec)?;
            Ok((
                ObjectId {
                    container: sc,
                    object: so,
                },
                ObjectId {
                    container: dc,
                    object: d,
                },
            ))
        };
        Ok(match (interface, function) {
            ("blobstore", "create-container") => Self::CreateContainer(one()?),
            ("blobstore", "get-container") => Self::GetContainer(one()?),
            ("blobstore", "delete-container") => Self::DeleteContainer(one()?),
            ("blobstore", "container-exists") => Self::ContainerExists(one()?),
            ("blobstore", "copy-object") => {
                let (src, dest) = ids()?;
                Self::CopyObject { src, dest }
            }
            ("blobstore", "move-object") => {
                let (src, dest) = ids()?;
                Self::MoveObject { src, dest }
            }
            ("container", "info") => Self::Info(one()?),
            ("container", "get-data") => {
                let (container, object, start, end) = rpc::decode(body).map_err(codec)?;
                Self::GetData {
                    container,
                    object,
                    start,
                    end,
                }
            }
            ("container", "write-data") => {
                let (container, object, data): (String, String, serde_bytes::ByteBuf) =
                    rpc::decode(body).map_err(codec)?;
                Self::WriteData {
                    container,
                    object,
                    data: data.into_vec(),
                }
            }
            ("container", "list-objects") => Self::ListObjects(one()?),
            ("container", "delete-object") => {
                let (container, object) = two()?;
                Self::DeleteObject { container, object }
            }
            ("container", "delete-objects") => {
                let (container, objects) = rpc::decode(body).map_err(codec)?;
                Self::DeleteObjects { container, objects }
            }
            ("container", "has-object") => {
                let (container, object) = two()?;
                Self::HasObject { container, object }
            }
            ("container", "object-info") => {
                let (container, object) = two()?;
                Self::ObjectInfo { container, object }
            }
            ("container", "clear") => Self::Clear(one()?),
            _ => {
                return Err(RpcError::new(
                    RpcErrorKind::Refused,
                    format!(
                        "wasi:blobstore has no function `{interface}.{function}`; this provider \
                         serves blobstore.create-container|get-container|delete-container|\
                         container-exists|copy-object|move-object and container.info|get-data|\
                         write-data|list-objects|delete-object|delete-objects|has-object|\
                         object-info|clear"
                    ),
                ));
            }
        })
    }
}

/// Encodes a provider's answer (or the store's own error) as a reply. An
/// answer of the wrong shape for the request is a provider bug, reported to
/// the caller as a codec error.
pub fn encode_reply(
    request: &BlobRequest,
    result: Result<BlobResponse, String>,
) -> Result<Vec<u8>, LatticeError> {
    fn reply<T: Serialize>(r: Result<T, String>) -> Result<Vec<u8>, LatticeError> {
        rpc::encode_reply::<WitResult<T, String>>(&Ok(r.into()))
    }
    let response = match result {
        Err(e) => return reply::<()>(Err(e)),
        Ok(response) => response,
    };
    match (request.shape(), response) {
        (Shape::Done, BlobResponse::Done) => reply(Ok(())),
        (Shape::Bool, BlobResponse::Bool(b)) => reply(Ok(b)),
        (Shape::Data, BlobResponse::Data(d)) => reply(Ok(serde_bytes::ByteBuf::from(d))),
        (Shape::Names, BlobResponse::Names(n)) => reply(Ok(n)),
        (Shape::Container, BlobResponse::Container(m)) => reply(Ok(m)),
        (Shape::Object, BlobResponse::Object(m)) => reply(Ok(m)),
        (_, found) => rpc::encode_reply::<()>(&Err(RpcError::new(
            RpcErrorKind::Codec,
            format!(
                "the provider answered {} with {found:?}",
                request.function()
            ),
        ))),
    }
}

/// Decodes the reply to `request` on the calling side: the outer `Err` is a
/// transport failure, the inner one the store's own error.
pub fn decode_reply(
    request: &BlobRequest,
    bytes: &[u8],
) -> Result<Result<BlobResponse, String>, RpcError> {
    fn inner<T: serde::de::DeserializeOwned>(
        bytes: &[u8],
        wrap: impl FnOnce(T) -> BlobResponse,
    ) -> Result<Result<BlobResponse, String>, RpcError> {
        let r: WitResult<T, String> = rpc::decode_reply(bytes)?;
        Ok(Result::from(r).map(wrap))
    }
    match request.shape() {
        Shape::Done => inner(bytes, |()| BlobResponse::Done),
        Shape::Bool => inner(bytes, BlobResponse::Bool),
        Shape::Data => inner(bytes, |d: serde_bytes::ByteBuf| {
            BlobResponse::Data(d.into_vec())
        }),
        Shape::Names => inner(bytes, BlobResponse::Names),
        Shape::Container => inner(bytes, BlobResponse::Container),
        Shape::Object => inner(bytes, BlobResponse::Object),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(container: &str, object: &str) -> ObjectId {
        ObjectId {
            container: container.into(),
            object: object.into(),
        }
    }

    fn all() -> Vec<(BlobRequest, BlobResponse)> {
        let c = || "photos".to_string();
        let o = || "cat.jpg".to_string();
        vec![
            (BlobRequest::CreateContainer(c()), BlobResponse::Done),
            (BlobRequest::GetContainer(c()), BlobResponse::Done),
            (BlobRequest::DeleteContainer(c()), BlobResponse::Done),
            (BlobRequest::ContainerExists(c()), BlobResponse::Bool(true)),
            (
                BlobRequest::CopyObject {
                    src: id("photos", "a"),
                    dest: id("backup", "b"),
                },
                BlobResponse::Done,
            ),
            (
                BlobRequest::MoveObject {
                    src: id("photos", "a"),
                    dest: id("photos", "c"),
                },
                BlobResponse::Done,
            ),
            (
                BlobRequest::Info(c()),
                BlobResponse::Container(ContainerMetadata {
                    name: c(),
                    created_at: 1_700_000_000,
                }),
            ),
            (
                BlobRequest::GetData {
                    container: c(),
                    object: o(),
                    start: 0,
                    end: u64::MAX,
                },
                BlobResponse::Data(vec![0, 1, 255]),
            ),
            (
                BlobRequest::WriteData {
                    container: c(),
                    object: o(),
                    data: vec![9; 3],
                },
                BlobResponse::Done,
            ),
            (
                BlobRequest::ListObjects(c()),
                BlobResponse::Names(vec![o(), "dog.jpg".into()]),
            ),
            (
                BlobRequest::DeleteObject {
                    container: c(),
                    object: o(),
                },
                BlobResponse::Done,
            ),
            (
                BlobRequest::DeleteObjects {
                    container: c(),
                    objects: vec![o()],
                },
                BlobResponse::Done,
            ),
            (
                BlobRequest::HasObject {
                    container: c(),
                    object: o(),
                },
                BlobResponse::Bool(false),
            ),
            (
                BlobRequest::ObjectInfo {
                    container: c(),
                    object: o(),
                },
                BlobResponse::Object(ObjectMetadata {
                    name: o(),
                    container: c(),
                    created_at: 1_700_000_001,
                    size: 3,
                }),
            ),
            (BlobRequest::Clear(c()), BlobResponse::Done),
        ]
    }

    #[test]
    fn every_request_and_answer_round_trips() {
        for (request, response) in all() {
            let function = request.function();
            let body = request.encode().unwrap();
            let decoded =
                BlobRequest::decode(&function.interface.interface, &function.function, &body)
                    .unwrap();
            assert_eq!(decoded, request);
            let reply = encode_reply(&request, Ok(response.clone())).unwrap();
            assert_eq!(decode_reply(&request, &reply).unwrap(), Ok(response));
            let failed = encode_reply(&request, Err("disk full".into())).unwrap();
            assert_eq!(
                decode_reply(&request, &failed).unwrap(),
                Err("disk full".to_string())
            );
        }
    }

    /// The bytes on the wire, pinned: a change here breaks providers
    /// built against an earlier contract.
    #[test]
    fn the_wire_format_is_pinned() {
        let write = BlobRequest::WriteData {
            container: "c".into(),
            object: "o".into(),
            data: vec![1, 2],
        };
        assert_eq!(hex(&write.encode().unwrap()), "93a163a16fc4020102");
        let info = BlobRequest::ObjectInfo {
            container: "c".into(),
            object: "o".into(),
        };
        let reply = encode_reply(
            &info,
            Ok(BlobResponse::Object(ObjectMetadata {
                name: "o".into(),
                container: "c".into(),
                created_at: 1,
                size: 2,
            })),
        )
        .unwrap();
        assert_eq!(
            hex(&reply),
            "81a24f6b81a26f6b84a46e616d65a16fa9636f6e7461696e6572a163aa637265617465645f617401a473697a6502"
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_wrong_answer_or_an_unknown_function_is_refused_with_the_list() {
        let request = BlobRequest::ListObjects("c".into());
        let reply = encode_reply(&request, Ok(BlobResponse::Done)).unwrap();
        let err = decode_reply(&request, &reply).unwrap_err();
        assert_eq!(err.kind, RpcErrorKind::Codec);
        let err = BlobRequest::decode("container", "rename", b"").unwrap_err();
        assert_eq!(err.kind, RpcErrorKind::Refused);
        assert!(err.message.contains("get-data"), "{}", err.message);
    }
}
