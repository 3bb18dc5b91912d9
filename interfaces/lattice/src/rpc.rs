//! The RPC codec: how call bodies and replies travel between hosts and providers.
//!
//! A call is a NATS request on the subject from
//! [`crate::subject::Subjects::rpc`]. Its body is the function's parameters
//! encoded with [`encode`]; its headers carry the caller's id, the link name,
//! the host's signature over the call and W3C trace context
//! ([`CallHeaders`]). The reply is always an
//! [`encode_reply`] of `Result<T, RpcError>`, so the caller decodes it with
//! [`decode_reply`] and gets either the function's result (which may itself
//! be a WIT `result` carrying the function's own error) or an [`RpcError`]
//! that says the call did not complete, and why.
//!
//! There is one encoding: MessagePack via rmp-serde with structs as maps
//! (field names on the wire), so adding an optional field does not break
//! older peers and bodies are readable in a debugger.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::LatticeError;

/// Header naming the calling component or provider.
pub const SOURCE_ID_HEADER: &str = "trellis-source-id";
/// Header naming the link the call was routed by.
pub const LINK_NAME_HEADER: &str = "trellis-link-name";
/// Header carrying the host's proof of the call: a JWT signed with its
/// cluster key, or a token sealed for the receivers it has paired with, in
/// the formats of `trellis_claims::invocation`. Receivers act for the
/// calling component only when it verifies.
pub const INVOCATION_HEADER: &str = "trellis-invocation";
/// Reply header by which a receiver introduces its pairing key to a host
/// whose call it could not check with a seal (see
/// `trellis_claims::invocation::pairing`).
pub const INVOCATION_PEER_HEADER: &str = "trellis-invocation-peer";
/// W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// W3C trace state header.
pub const TRACESTATE_HEADER: &str = "tracestate";
/// How long a caller waits for a reply unless configured otherwise.
pub const DEFAULT_RPC_TIMEOUT_MS: u64 = 2_000;

/// Encodes a call body (usually a tuple of the function's parameters).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, LatticeError> {
    Ok(rmp_serde::to_vec_named(value)?)
}

/// Decodes a call body into the type the callee expects.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, LatticeError> {
    Ok(rmp_serde::from_slice(bytes)?)
}

/// Encodes the reply to a call: the function's result or why there is none.
pub fn encode_reply<T: Serialize>(reply: &Result<T, RpcError>) -> Result<Vec<u8>, LatticeError> {
    encode(reply)
}

/// Decodes a reply; a reply that does not decode is itself an [`RpcError`]
/// of kind [`RpcErrorKind::Codec`], so the caller handles one error type.
pub fn decode_reply<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
    match decode::<Result<T, RpcError>>(bytes) {
        Ok(reply) => reply,
        Err(e) => Err(RpcError::new(RpcErrorKind::Codec, e.to_string())),
    }
}

/// The error a reply carries, if it is an error reply; `None` for a
/// result (of any type) and for bytes that are no reply. Cheap on results:
/// only a reply that begins as the envelope's error half is decoded.
pub fn reply_error(bytes: &[u8]) -> Option<RpcError> {
    // rmp-serde writes `Err(e)` as a one-entry map keyed "Err".
    const ERR_TAG: &[u8] = b"\x81\xa3Err";
    if !bytes.starts_with(ERR_TAG) {
        return None;
    }
    decode::<Result<serde::de::IgnoredAny, RpcError>>(bytes)
        .ok()
        .and_then(Result::err)
}

/// Why a call produced no result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpcErrorKind {
    /// No link routes the call, so nothing ran: the caller's host has none
    /// for the import, or the target holds none from the caller (its put
    /// has not reached the target yet, or the link moved away from it).
    NoLink,
    /// No host or provider is serving the link's target.
    NoTarget,
    /// The target did not answer in time.
    Timeout,
    /// Parameters or result did not decode: caller and callee disagree on
    /// the function's types.
    Codec,
    /// The target refused the call (e.g. it is stopping, or the caller is
    /// not allowed).
    Refused,
    /// The target ran and failed: a trap, a panic, a provider-side error.
    Application,
}

impl RpcErrorKind {
    /// The snake_case name used on the wire and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoLink => "no_link",
            Self::NoTarget => "no_target",
            Self::Timeout => "timeout",
            Self::Codec => "codec",
            Self::Refused => "refused",
            Self::Application => "application",
        }
    }

    /// Whether the call failed in transport, before the target's code ran
    /// to completion: everything except [`RpcErrorKind::Application`].
    pub fn is_transport(self) -> bool {
        self != Self::Application
    }
}

impl fmt::Display for RpcErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error half of every reply, and what callers see when a call fails.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[error("call failed ({kind}): {message}")]
pub struct RpcError {
    /// What kind of failure.
    pub kind: RpcErrorKind,
    /// What happened and what to do, e.g. "component `counter` has no link
    /// named `default` for wasi:keyvalue/store; put one with `wash link put`".
    pub message: String,
}

/// How the message of a call that never left begins: the caller's own
/// NATS connection is down (see [`RpcError::lattice_unreachable`]).
pub const LATTICE_UNREACHABLE: &str = "the lattice is unreachable";

impl RpcError {
    /// Whether the call failed because the caller's NATS connection is
    /// down, rather than because nothing serves the target. Both travel as
    /// [`RpcErrorKind::NoTarget`], so older peers read them alike.
    pub fn lattice_unreachable(&self) -> bool {
        self.kind == RpcErrorKind::NoTarget && self.message.starts_with(LATTICE_UNREACHABLE)
    }

    /// An error of `kind` with an explanation.
    pub fn new(kind: RpcErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A WIT `result<T, E>` as the value codec puts it on the wire:
/// `{"ok": x}` or `{"err": e}`. (Rust's own `Result` would serialize as
/// `{"Ok": x}`, which is what the RPC envelope around it uses.)
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WitResult<T, E> {
    /// `ok(x)`.
    Ok(T),
    /// `err(e)`.
    Err(E),
}

impl<T, E> From<Result<T, E>> for WitResult<T, E> {
    fn from(r: Result<T, E>) -> Self {
        match r {
            Ok(v) => Self::Ok(v),
            Err(e) => Self::Err(e),
        }
    }
}

impl<T, E> From<WitResult<T, E>> for Result<T, E> {
    fn from(r: WitResult<T, E>) -> Self {
        match r {
            WitResult::Ok(v) => Ok(v),
            WitResult::Err(e) => Err(e),
        }
    }
}

/// The headers of one call, so hosts and providers read and write them alike.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallHeaders {
    /// The calling component or provider.
    pub source_id: String,
    /// The link the call was routed by.
    pub link_name: String,
    /// The host's signed invocation token, on calls a host makes for a
    /// component.
    pub invocation: Option<String>,
    /// W3C `traceparent`, if the call is traced.
    pub traceparent: Option<String>,
    /// W3C `tracestate`, if any.
    pub tracestate: Option<String>,
}

impl CallHeaders {
    /// The headers as name/value pairs, ready for a NATS header map.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            (SOURCE_ID_HEADER, self.source_id.clone()),
            (LINK_NAME_HEADER, self.link_name.clone()),
        ];
        if let Some(token) = &self.invocation {
            pairs.push((INVOCATION_HEADER, token.clone()));
        }
        if let Some(tp) = &self.traceparent {
            pairs.push((TRACEPARENT_HEADER, tp.clone()));
        }
        if let Some(ts) = &self.tracestate {
            pairs.push((TRACESTATE_HEADER, ts.clone()));
        }
        pairs
    }

    /// Reads the headers through `get` (a lookup in the received header map);
    /// a missing link name means the default link.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            source_id: get(SOURCE_ID_HEADER).unwrap_or_default(),
            link_name: get(LINK_NAME_HEADER)
                .unwrap_or_else(|| crate::link::DEFAULT_LINK_NAME.to_owned()),
            invocation: get(INVOCATION_HEADER),
            traceparent: get(TRACEPARENT_HEADER),
            tracestate: get(TRACESTATE_HEADER),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Request {
        bucket: String,
        key: String,
        value: Option<Vec<u8>>,
    }

    #[test]
    fn call_bodies_round_trip() {
        let body = Request {
            bucket: "counts".into(),
            key: "hits".into(),
            value: Some(vec![1, 2, 3]),
        };
        let bytes = encode(&body).unwrap();
        assert_eq!(decode::<Request>(&bytes).unwrap(), body);

        let params = ("counts".to_string(), 5u64, vec!["a".to_string()]);
        let bytes = encode(&params).unwrap();
        assert_eq!(
            decode::<(String, u64, Vec<String>)>(&bytes).unwrap(),
            params
        );
    }

    #[test]
    fn structs_travel_as_maps_with_field_names() {
        let bytes = encode(&Request {
            bucket: "b".into(),
            key: "k".into(),
            value: None,
        })
        .unwrap();
        // fixmap of 3 entries, first key "bucket".
        assert_eq!(bytes[0], 0x83);
        assert!(bytes.windows(6).any(|w| w == b"bucket"));
        // A peer reads it as a plain map without knowing the struct.
        let map: BTreeMap<String, Option<String>> = decode(&bytes).unwrap();
        assert_eq!(map["bucket"].as_deref(), Some("b"));
        assert_eq!(map["value"], None);
    }

    #[test]
    fn successful_reply_decodes_to_the_value() {
        let bytes = encode_reply::<Option<String>>(&Ok(Some("v".into()))).unwrap();
        assert_eq!(decode_reply::<Option<String>>(&bytes), Ok(Some("v".into())));
    }

    #[test]
    fn application_result_error_is_not_a_transport_error() {
        // A WIT `result<u64, string>` whose error is the function's own.
        let own: Result<Result<u64, String>, RpcError> = Ok(Err("no such key".into()));
        let bytes = encode_reply(&own).unwrap();
        assert_eq!(
            decode_reply::<Result<u64, String>>(&bytes),
            Ok(Err("no such key".to_string()))
        );
    }

    #[test]
    fn error_reply_decodes_to_a_typed_error() {
        for kind in [
            RpcErrorKind::NoLink,
            RpcErrorKind::NoTarget,
            RpcErrorKind::Timeout,
            RpcErrorKind::Codec,
            RpcErrorKind::Refused,
            RpcErrorKind::Application,
        ] {
            let reply: Result<u64, RpcError> = Err(RpcError::new(kind, "why"));
            let bytes = encode_reply(&reply).unwrap();
            let err = decode_reply::<u64>(&bytes).unwrap_err();
            assert_eq!(err.kind, kind);
            assert_eq!(err.message, "why");
            assert_eq!(err.kind.is_transport(), kind != RpcErrorKind::Application);
        }
    }

    #[test]
    fn reply_error_finds_the_error_half_and_nothing_else() {
        let err = RpcError::new(RpcErrorKind::NoLink, "moved");
        let bytes = encode_reply::<u64>(&Err(err.clone())).unwrap();
        assert_eq!(reply_error(&bytes), Some(err));
        // A function whose own result is an error still answered.
        let own: Result<Result<u64, String>, RpcError> = Ok(Err("Err".into()));
        assert_eq!(reply_error(&encode_reply(&own).unwrap()), None);
        assert_eq!(
            reply_error(&encode_reply::<String>(&Ok("Err".into())).unwrap()),
            None
        );
        assert_eq!(reply_error(b"\x81\xa3Err\xc1"), None);
        assert_eq!(reply_error(b""), None);
    }

    #[test]
    fn reply_of_the_wrong_type_is_a_codec_error() {
        let bytes = encode_reply::<String>(&Ok("text".into())).unwrap();
        let err = decode_reply::<u64>(&bytes).unwrap_err();
        assert_eq!(err.kind, RpcErrorKind::Codec);
        let err = decode_reply::<u64>(b"\xc1garbage").unwrap_err();
        assert_eq!(err.kind, RpcErrorKind::Codec);
    }

    #[test]
    fn rpc_error_message_names_the_kind() {
        let err = RpcError::new(RpcErrorKind::NoLink, "no link named `default`");
        assert_eq!(
            err.to_string(),
            "call failed (no_link): no link named `default`"
        );
    }

    #[test]
    fn headers_round_trip_and_default_the_link_name() {
        let headers = CallHeaders {
            source_id: "counter".into(),
            link_name: "cache".into(),
            invocation: Some("header.claims.signature".into()),
            traceparent: Some("00-abc-def-01".into()),
            tracestate: None,
        };
        let pairs = headers.to_pairs();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(CallHeaders::from_lookup(get), headers);
        let empty = CallHeaders::from_lookup(|_| None);
        assert_eq!(empty.link_name, "default");
    }
}
