//! `wasi:keyvalue` (0.2.0-draft) across the lattice.
//!
//! A component holds a `bucket` resource, which cannot travel over NATS. The
//! host therefore keeps the resource itself (its only state is the bucket
//! identifier the component opened) and turns each method into a call to the
//! linked provider whose first parameter is that identifier. `open` is
//! answered by the host alone: it checks that a link exists, so a component
//! with no keyvalue link learns so when it opens the bucket.
//!
//! # Wire contract
//!
//! Subject: `{lattice}.{provider}.rpc.wasi:keyvalue/{interface}.{function}`.
//! Body: a MessagePack array of the parameters; reply: the function's WIT
//! result inside the RPC envelope ([`crate::rpc::encode_reply`]), encoded as
//! the host's value codec encodes WIT values (`result` as `{"ok": x}` /
//! `{"err": e}`, `list<u8>` as `bin`, `option` as nil or the value):
//!
//! | function | parameters | result |
//! |---|---|---|
//! | `store.get` | `[bucket, key]` | `result<option<list<u8>>, error>` |
//! | `store.set` | `[bucket, key, value]` | `result<_, error>` |
//! | `store.delete` | `[bucket, key]` | `result<_, error>` |
//! | `store.exists` | `[bucket, key]` | `result<bool, error>` |
//! | `store.list-keys` | `[bucket, cursor]` | `result<key-response, error>` |
//! | `atomics.increment` | `[bucket, key, delta]` | `result<u64, error>` |
//! | `batch.get-many` | `[bucket, keys]` | `result<list<option<tuple<string, list<u8>>>>, error>` |
//! | `batch.set-many` | `[bucket, key-values]` | `result<_, error>` |
//! | `batch.delete-many` | `[bucket, keys]` | `result<_, error>` |
//!
//! `atomics.increment` treats a value as an unsigned decimal number in ASCII
//! (what Redis `INCRBY` stores), a missing key as 0, and anything else as an
//! error, so the same bucket reads the same through every provider.

use serde::{Deserialize, Serialize};

use crate::error::LatticeError;
use crate::rpc::{self, RpcError, RpcErrorKind, WitResult};
use crate::wit::{WitFunction, WitInterface};

/// The WIT namespace of the contract.
pub const NAMESPACE: &str = "wasi";
/// The WIT package of the contract.
pub const PACKAGE: &str = "keyvalue";

/// `wasi:keyvalue/store.error`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "kebab-case")]
pub enum KvError {
    /// The bucket does not exist and cannot be created.
    #[error("no such store")]
    NoSuchStore,
    /// The caller may not use the bucket.
    #[error("access denied")]
    AccessDenied,
    /// Anything else, in the provider's words.
    #[error("{0}")]
    Other(String),
}

/// `wasi:keyvalue/store.key-response`: one page of `list-keys`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyResponse {
    /// The keys of this page.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub cursor: Option<u64>,
}

/// A key and its value, as `batch` passes them.
pub type KeyValue = (String, serde_bytes::ByteBuf);

/// One call of the contract, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvRequest {
    /// `store.get`.
    Get {
        /// The bucket identifier the component opened.
        bucket: String,
        /// The key.
        key: String,
    },
    /// `store.set`.
    Set {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
    },
    /// `store.delete`.
    Delete {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// `store.exists`.
    Exists {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// `store.list-keys`.
    ListKeys {
        /// The bucket.
        bucket: String,
        /// Where to continue, from an earlier page.
        cursor: Option<u64>,
    },
    /// `atomics.increment`.
    Increment {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// How much to add.
        delta: u64,
    },
    /// `batch.get-many`.
    GetMany {
        /// The bucket.
        bucket: String,
        /// The keys to read.
        keys: Vec<String>,
    },
    /// `batch.set-many`.
    SetMany {
        /// The bucket.
        bucket: String,
        /// The pairs to write.
        entries: Vec<(String, Vec<u8>)>,
    },
    /// `batch.delete-many`.
    DeleteMany {
        /// The bucket.
        bucket: String,
        /// The keys to delete.
        keys: Vec<String>,
    },
}

/// What a provider answers to a [`KvRequest`], one variant per function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvResponse {
    /// For `get`.
    Value(Option<Vec<u8>>),
    /// For `set`, `delete`, `set-many`, `delete-many`.
    Done,
    /// For `exists`.
    Exists(bool),
    /// For `list-keys`.
    Keys(KeyResponse),
    /// For `increment`: the new value.
    Counter(u64),
    /// For `get-many`: one entry per requested key, `None` where absent.
    Many(Vec<Option<(String, Vec<u8>)>>),
}

impl KvRequest {
    /// The interface and function this request calls, e.g. `store.get`.
    pub fn function(&self) -> WitFunction {
        let (interface, function) = match self {
            Self::Get { .. } => ("store", "get"),
            Self::Set { .. } => ("store", "set"),
            Self::Delete { .. } => ("store", "delete"),
            Self::Exists { .. } => ("store", "exists"),
            Self::ListKeys { .. } => ("store", "list-keys"),
            Self::Increment { .. } => ("atomics", "increment"),
            Self::GetMany { .. } => ("batch", "get-many"),
            Self::SetMany { .. } => ("batch", "set-many"),
            Self::DeleteMany { .. } => ("batch", "delete-many"),
        };
        WitFunction {
            interface: WitInterface {
                namespace: NAMESPACE.into(),
                package: PACKAGE.into(),
                interface: interface.into(),
            },
            function: function.into(),
        }
    }

    /// The bucket the request addresses.
    pub fn bucket(&self) -> &str {
        match self {
            Self::Get { bucket, .. }
            | Self::Set { bucket, .. }
            | Self::Delete { bucket, .. }
            | Self::Exists { bucket, .. }
            | Self::ListKeys { bucket, .. }
            | Self::Increment { bucket, .. }
            | Self::GetMany { bucket, .. }
            | Self::SetMany { bucket, .. }
            | Self::DeleteMany { bucket, .. } => bucket,
        }
    }

    /// Encodes the parameters as the call body.
    pub fn encode(&self) -> Result<Vec<u8>, LatticeError> {
        use serde_bytes::Bytes;
        match self {
            Self::Get { bucket, key }
            | Self::Delete { bucket, key }
            | Self::Exists { bucket, key } => rpc::encode(&(bucket, key)),
            Self::Set { bucket, key, value } => rpc::encode(&(bucket, key, Bytes::new(value))),
            Self::ListKeys { bucket, cursor } => rpc::encode(&(bucket, cursor)),
            Self::Increment { bucket, key, delta } => rpc::encode(&(bucket, key, delta)),
            Self::GetMany { bucket, keys } | Self::DeleteMany { bucket, keys } => {
                rpc::encode(&(bucket, keys))
            }
            Self::SetMany { bucket, entries } => {
                let entries: Vec<(&str, &Bytes)> = entries
                    .iter()
                    .map(|(k, v)| (k.as_str(), Bytes::new(v)))
                    .collect();
                rpc::encode(&(bucket, entries))
            }
        }
    }

    /// Decodes the body of a call to `function` (`store.get`, `atomics.increment`, ...:
    /// the part of the subject after `wasi:keyvalue/`).
    pub fn decode(interface: &str, function: &str, body: &[u8]) -> Result<Self, RpcError> {
        let codec = |e: LatticeError| {
            RpcError::new(
                RpcErrorKind::Codec,
                format!("wasi:keyvalue/{interface}.{function}: {e}"),
            )
        };
        Ok(match (interface, function) {
            ("store", "get") => {
                let (bucket, key) = rpc::decode(body).map_err(codec)?;
                Self::Get { bucket, key }
            }
            ("store", "set") => {
                let (bucket, key, value): (String, String, serde_bytes::ByteBuf) =
                    rpc::decode(body).map_err(codec)?;
                Self::Set {
                    bucket,
                    key,
                    value: value.into_vec(),
                }
            }
            ("store", "delete") => {
                let (bucket, key) = rpc::decode(body).map_err(codec)?;
                Self::Delete { bucket, key }
            }
            ("store", "exists") => {
                let (bucket, key) = rpc::decode(body).map_err(codec)?;
                Self::Exists { bucket, key }
            }
            ("store", "list-keys") => {
                let (bucket, cursor) = rpc::decode(body).map_err(codec)?;
                Self::ListKeys { bucket, cursor }
            }
            ("atomics", "increment") => {
                let (bucket, key, delta) = rpc::decode(body).map_err(codec)?;
                Self::Increment { bucket, key, delta }
            }
            ("batch", "get-many") => {
                let (bucket, keys) = rpc::decode(body).map_err(codec)?;
                Self::GetMany { bucket, keys }
            }
            ("batch", "set-many") => {
                let (bucket, entries): (String, Vec<KeyValue>) =
                    rpc::decode(body).map_err(codec)?;
                Self::SetMany {
                    bucket,
                    entries: entries
                        .into_iter()
                        .map(|(k, v)| (k, v.into_vec()))
                        .collect(),
                }
            }
            ("batch", "delete-many") => {
                let (bucket, keys) = rpc::decode(body).map_err(codec)?;
                Self::DeleteMany { bucket, keys }
            }
            _ => {
                return Err(RpcError::new(
                    RpcErrorKind::Refused,
                    format!(
                        "wasi:keyvalue has no function `{interface}.{function}`; \
                         this provider serves store.get|set|delete|exists|list-keys, \
                         atomics.increment and batch.get-many|set-many|delete-many"
                    ),
                ));
            }
        })
    }
}

/// Encodes a provider's answer (or the function's own error) as a reply.
///
/// A response of the wrong shape for the request is a provider bug; it is
/// reported to the caller as a codec error rather than sent on.
pub fn encode_reply(
    request: &KvRequest,
    result: Result<KvResponse, KvError>,
) -> Result<Vec<u8>, LatticeError> {
    fn reply<T: Serialize>(r: Result<T, KvError>) -> Result<Vec<u8>, LatticeError> {
        rpc::encode_reply::<WitResult<T, KvError>>(&Ok(r.into()))
    }
    let mismatch = |found: &KvResponse| {
        rpc::encode_reply::<()>(&Err(RpcError::new(
            RpcErrorKind::Codec,
            format!(
                "the provider answered {} with {found:?}",
                request.function()
            ),
        )))
    };
    let response = match result {
        Err(e) => return reply::<()>(Err(e)),
        Ok(response) => response,
    };
    match (request, response) {
        (KvRequest::Get { .. }, KvResponse::Value(v)) => {
            reply(Ok(v.map(serde_bytes::ByteBuf::from)))
        }
        (
            KvRequest::Set { .. }
            | KvRequest::Delete { .. }
            | KvRequest::SetMany { .. }
            | KvRequest::DeleteMany { .. },
            KvResponse::Done,
        ) => reply(Ok(())),
        (KvRequest::Exists { .. }, KvResponse::Exists(b)) => reply(Ok(b)),
        (KvRequest::ListKeys { .. }, KvResponse::Keys(k)) => reply(Ok(k)),
        (KvRequest::Increment { .. }, KvResponse::Counter(n)) => reply(Ok(n)),
        (KvRequest::GetMany { .. }, KvResponse::Many(entries)) => reply(Ok(entries
            .into_iter()
            .map(|e| e.map(|(k, v)| (k, serde_bytes::ByteBuf::from(v))))
            .collect::<Vec<_>>())),
        (_, other) => mismatch(&other),
    }
}

/// Decodes the reply to `request` on the calling side: the outer `Err` is a
/// transport failure, the inner one the store's own error.
pub fn decode_reply(
    request: &KvRequest,
    bytes: &[u8],
) -> Result<Result<KvResponse, KvError>, RpcError> {
    fn inner<T: serde::de::DeserializeOwned>(
        bytes: &[u8],
        wrap: impl FnOnce(T) -> KvResponse,
    ) -> Result<Result<KvResponse, KvError>, RpcError> {
        let r: WitResult<T, KvError> = rpc::decode_reply(bytes)?;
        Ok(Result::from(r).map(wrap))
    }
    match request {
        KvRequest::Get { .. } => inner(bytes, |v: Option<serde_bytes::ByteBuf>| {
            KvResponse::Value(v.map(serde_bytes::ByteBuf::into_vec))
        }),
        KvRequest::Set { .. }
        | KvRequest::Delete { .. }
        | KvRequest::SetMany { .. }
        | KvRequest::DeleteMany { .. } => inner(bytes, |()| KvResponse::Done),
        KvRequest::Exists { .. } => inner(bytes, KvResponse::Exists),
        KvRequest::ListKeys { .. } => inner(bytes, KvResponse::Keys),
        KvRequest::Increment { .. } => inner(bytes, KvResponse::Counter),
        KvRequest::GetMany { .. } => inner(bytes, |v: Vec<Option<KeyValue>>| {
            KvResponse::Many(
                v.into_iter()
                    .map(|e| e.map(|(k, v)| (k, v.into_vec())))
                    .collect(),
            )
        }),
    }
}

/// Parses a stored counter for `atomics.increment`: ASCII decimal, as
/// Redis keeps it; an absent value is 0.
pub fn parse_counter(key: &str, value: Option<&[u8]>) -> Result<u64, KvError> {
    let Some(value) = value else { return Ok(0) };
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            KvError::Other(format!(
                "cannot increment `{key}`: its value is not an unsigned decimal number"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_requests() -> Vec<(KvRequest, KvResponse)> {
        let b = || "default".to_string();
        vec![
            (
                KvRequest::Get {
                    bucket: b(),
                    key: "k".into(),
                },
                KvResponse::Value(Some(b"v".to_vec())),
            ),
            (
                KvRequest::Set {
                    bucket: b(),
                    key: "k".into(),
                    value: vec![0, 255],
                },
                KvResponse::Done,
            ),
            (
                KvRequest::Delete {
                    bucket: b(),
                    key: "k".into(),
                },
                KvResponse::Done,
            ),
            (
                KvRequest::Exists {
                    bucket: b(),
                    key: "k".into(),
                },
                KvResponse::Exists(true),
            ),
            (
                KvRequest::ListKeys {
                    bucket: b(),
                    cursor: Some(3),
                },
                KvResponse::Keys(KeyResponse {
                    keys: vec!["a".into()],
                    cursor: None,
                }),
            ),
            (
                KvRequest::Increment {
                    bucket: b(),
                    key: "n".into(),
                    delta: 7,
                },
                KvResponse::Counter(8),
            ),
            (
                KvRequest::GetMany {
                    bucket: b(),
                    keys: vec!["a".into(), "z".into()],
                },
                KvResponse::Many(vec![Some(("a".into(), b"1".to_vec())), None]),
            ),
            (
                KvRequest::SetMany {
                    bucket: b(),
                    entries: vec![("a".into(), b"1".to_vec())],
                },
                KvResponse::Done,
            ),
            (
                KvRequest::DeleteMany {
                    bucket: b(),
                    keys: vec!["a".into()],
                },
                KvResponse::Done,
            ),
        ]
    }

    #[test]
    fn every_request_and_reply_round_trips() {
        for (request, response) in all_requests() {
            let f = request.function();
            let body = request.encode().unwrap();
            let back = KvRequest::decode(&f.interface.interface, &f.function, &body).unwrap();
            assert_eq!(back, request);
            assert_eq!(back.bucket(), "default");
            let bytes = encode_reply(&request, Ok(response.clone())).unwrap();
            assert_eq!(decode_reply(&request, &bytes).unwrap(), Ok(response));
            let bytes = encode_reply(&request, Err(KvError::Other("down".into()))).unwrap();
            assert_eq!(
                decode_reply(&request, &bytes).unwrap(),
                Err(KvError::Other("down".into()))
            );
        }
    }

    #[test]
    fn wire_shape_matches_the_value_codec() {
        // Parameters are a plain array; bytes are `bin`.
        let body = KvRequest::Set {
            bucket: "b".into(),
            key: "k".into(),
            value: vec![1],
        }
        .encode()
        .unwrap();
        assert_eq!(body, [0x93, 0xa1, b'b', 0xa1, b'k', 0xc4, 0x01, 0x01]);
        // The WIT result is `{"ok": 5}` inside the RPC envelope `{"Ok": ...}`.
        let request = KvRequest::Increment {
            bucket: "b".into(),
            key: "k".into(),
            delta: 1,
        };
        let bytes = encode_reply(&request, Ok(KvResponse::Counter(5))).unwrap();
        let value: rmpv::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(value.to_string(), r#"{"Ok": {"ok": 5}}"#);
        // Errors are variants: a bare string, or a one-entry map with a payload.
        let bytes = encode_reply(&request, Err(KvError::NoSuchStore)).unwrap();
        let value: rmpv::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(value.to_string(), r#"{"Ok": {"err": "no-such-store"}}"#);
        let bytes = encode_reply(&request, Err(KvError::Other("x".into()))).unwrap();
        let value: rmpv::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(value.to_string(), r#"{"Ok": {"err": {"other": "x"}}}"#);
    }

    #[test]
    fn a_response_of_the_wrong_shape_is_a_codec_error_for_the_caller() {
        let request = KvRequest::Get {
            bucket: "b".into(),
            key: "k".into(),
        };
        let bytes = encode_reply(&request, Ok(KvResponse::Counter(1))).unwrap();
        let err = decode_reply(&request, &bytes).unwrap_err();
        assert_eq!(err.kind, RpcErrorKind::Codec);
        assert!(
            err.message.contains("wasi:keyvalue/store.get"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unknown_function_is_refused_with_the_list_of_known_ones() {
        let err = KvRequest::decode("store", "frobnicate", &[0x90]).unwrap_err();
        assert_eq!(err.kind, RpcErrorKind::Refused);
        assert!(err.message.contains("atomics.increment"), "{}", err.message);
    }

    #[test]
    fn counters_are_ascii_decimal() {
        assert_eq!(parse_counter("k", None), Ok(0));
        assert_eq!(parse_counter("k", Some(b"41")), Ok(41));
        let err = parse_counter("k", Some(b"\x00\x01")).unwrap_err();
        assert!(err.to_string().contains("not an unsigned decimal"), "{err}");
    }
}
