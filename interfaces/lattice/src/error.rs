//! The one error type of this crate.
//!
//! Everything here is a pure conversion between Rust values and bytes on the
//! wire, so every failure is about input: a name that cannot be put in a NATS
//! subject, a subject or document that does not have the agreed shape, a
//! body that does not decode. Each message names the offending value and
//! says what the sender should do instead, so a host can put it straight into
//! a control-interface reply or a log line.

use thiserror::Error;

/// Why a value was refused by one of this crate's validators or decoders.
#[derive(Debug, Error)]
pub enum LatticeError {
    /// A name or id that must become a NATS subject token (or a JetStream
    /// bucket name) contains something that would change the subject.
    #[error("invalid {what} {value:?}: {problem}")]
    InvalidName {
        /// What the value is, e.g. "lattice name" or "host id".
        what: &'static str,
        /// The refused value, verbatim.
        value: String,
        /// What is wrong with it and what is allowed.
        problem: String,
    },

    /// A subject did not have the shape this crate builds.
    #[error("malformed subject {subject:?}: {problem}; expected {expected}")]
    MalformedSubject {
        /// The subject as received.
        subject: String,
        /// What is wrong with it.
        problem: String,
        /// The shape that was expected, written as a template.
        expected: &'static str,
    },

    /// A WIT interface or function name could not be parsed.
    #[error("invalid WIT name {value:?}: {problem}; expected `namespace:package/interface`")]
    InvalidWitName {
        /// The refused text.
        value: String,
        /// What is wrong with it.
        problem: String,
    },

    /// An entry of a component's outbound grant does not parse.
    #[error(
        "`{entry}` is not a valid allowed host: {reason}; write [scheme://]host[:port], e.g. https://api.example.com or *.example.com:443"
    )]
    InvalidGrant {
        /// The entry as given.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A link definition is incomplete or would not route anything.
    #[error("invalid link from {source_id:?}: {problem}")]
    InvalidLink {
        /// The link's `source_id` (may be empty when that is the problem).
        source_id: String,
        /// What is missing or wrong, naming the field.
        problem: String,
    },

    /// A control-interface request was answered with `success: false`.
    #[error("the host refused the request: {message}")]
    CtlRefused {
        /// The `message` of the reply.
        message: String,
    },

    /// A JSON document (control body, event, host data) did not parse or serialize.
    #[error("{what} is not valid JSON for its type: {source}")]
    Json {
        /// What document was being read.
        what: &'static str,
        /// The underlying parser error, with line and column.
        #[source]
        source: serde_json::Error,
    },

    /// The provider host data on stdin was not base64.
    #[error(
        "provider host data is not valid base64 ({source}); the host must write one line of \
         base64-encoded JSON to the provider's stdin"
    )]
    HostDataBase64 {
        /// The underlying decoder error.
        #[source]
        source: base64::DecodeError,
    },

    /// A CloudEvent carried a type this crate does not know.
    #[error(
        "unknown lattice event type {ty:?}; expected `com.wasmcloud.lattice.<kind>` with a kind \
         from EventKind::ALL"
    )]
    UnknownEvent {
        /// The `type` attribute as received.
        ty: String,
    },

    /// A CloudEvent's `data` did not match the payload for its type.
    #[error("event {ty:?} has data that does not match its payload type: {source}")]
    EventData {
        /// The `type` attribute as received.
        ty: String,
        /// The underlying parser error.
        #[source]
        source: serde_json::Error,
    },

    /// Opened secret bytes are not a [`crate::secret::SecretValue`]. The
    /// message never quotes them: they may be the value itself.
    #[error(
        "an opened secret is not a string or bytes value: it was sealed by something other than \
         a Trellis secrets backend or wash"
    )]
    SecretValueMalformed,

    /// A value could not be encoded as an RPC body.
    #[error("could not encode RPC body: {0}")]
    RpcEncode(#[from] rmp_serde::encode::Error),

    /// An RPC body was not the MessagePack the receiver expected.
    #[error(
        "could not decode RPC body: {0}; caller and callee must agree on the function's \
         parameter and result types"
    )]
    RpcDecode(#[from] rmp_serde::decode::Error),
}

impl LatticeError {
    /// Shorthand used by the validators.
    pub(crate) fn invalid_name(
        what: &'static str,
        value: &str,
        problem: impl Into<String>,
    ) -> Self {
        Self::InvalidName {
            what,
            value: value.to_owned(),
            problem: problem.into(),
        }
    }

    /// Shorthand for a JSON failure while reading `what`.
    pub(crate) fn json(what: &'static str, source: serde_json::Error) -> Self {
        Self::Json { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_name_message_names_the_value_and_the_problem() {
        let err = LatticeError::invalid_name("host id", "a.b", "contains '.'");
        assert_eq!(err.to_string(), r#"invalid host id "a.b": contains '.'"#);
    }
}
