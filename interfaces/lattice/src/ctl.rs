//! The control interface: JSON request and reply bodies of `wasmbus.ctl.v1`.
//!
//! `wash`, wadm and hosts talk through these types; which body goes with
//! which subject is listed on [`crate::subject::CtlOperation`]. Field names
//! and serde attributes follow wasmCloud's `wasmcloud-control-interface`
//! 3.x crate so that its client can drive a Trellis host and JSON from a
//! wasmCloud host parses here. Where that crate is strict on input we are
//! lenient (more `#[serde(default)]`), never the other way round, and what
//! we write is what it reads.
//!
//! Every reply is wrapped in [`CtlResponse`].

mod auction;
mod claims;
mod command;
mod host;
mod limits;

use serde::{Deserialize, Serialize};

use crate::error::LatticeError;

pub use auction::{
    ComponentAuctionAck, ComponentAuctionRequest, ProviderAuctionAck, ProviderAuctionRequest,
    constraints_match,
};
pub use claims::{ClaimsEntry, ClaimsSummary};
pub use command::{
    DeleteInterfaceLinkDefinitionRequest, ScaleComponentCommand, StartProviderCommand,
    StopHostCommand, StopProviderCommand, UpdateComponentCommand,
};
pub use host::{
    ComponentDescription, Host, HostInventory, HostLabel, LabelLimits, LocalData,
    ProviderDescription,
};
pub use limits::InputLimits;

/// The envelope of every control-interface reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtlResponse<T> {
    /// Whether the request succeeded.
    pub success: bool,
    /// Why it failed, or extra context on success (often empty).
    #[serde(default)]
    pub message: String,
    /// The reply data, absent for acknowledgements and failures.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub response: Option<T>,
}

/// `Option<T>: Default` needs `T: Default`; this does not.
fn none<T>() -> Option<T> {
    None
}

impl<T> CtlResponse<T> {
    /// A successful reply carrying `response`.
    pub fn ok(response: T) -> Self {
        Self {
            success: true,
            message: String::new(),
            response: Some(response),
        }
    }

    /// A failed reply; `message` should say what went wrong and what to do.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            success: false,
            message: message.into(),
            response: None,
        }
    }

    /// The reply data on success, or [`LatticeError::CtlRefused`] with the
    /// host's message on failure.
    pub fn into_result(self) -> Result<Option<T>, LatticeError> {
        if self.success {
            Ok(self.response)
        } else {
            Err(LatticeError::CtlRefused {
                message: self.message,
            })
        }
    }
}

impl CtlResponse<()> {
    /// A successful acknowledgement without data, e.g. "component scaling".
    pub fn success(message: impl Into<String>) -> Self {
        Self {
            success: true,
            message: message.into(),
            response: None,
        }
    }
}

/// Serializes a control body or reply, naming `what` in the error.
pub fn to_json<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, LatticeError> {
    serde_json::to_vec(value).map_err(|source| LatticeError::json(what, source))
}

/// Parses a control body or reply, naming `what` in the error.
pub fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, LatticeError> {
    serde_json::from_slice(bytes).map_err(|source| LatticeError::json(what, source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ok_reply_carries_data_and_empty_message() {
        let reply = CtlResponse::ok(7u32);
        assert_eq!(
            serde_json::to_value(&reply).unwrap(),
            json!({"success": true, "message": "", "response": 7})
        );
    }

    #[test]
    fn error_reply_omits_response() {
        let reply = CtlResponse::<u32>::error("no such host");
        assert_eq!(
            serde_json::to_value(&reply).unwrap(),
            json!({"success": false, "message": "no such host"})
        );
        let err = reply.into_result().unwrap_err();
        assert_eq!(
            err.to_string(),
            "the host refused the request: no such host"
        );
    }

    #[test]
    fn acknowledgement_parses_with_or_without_null_response() {
        let a: CtlResponse<()> = from_json("ack", br#"{"success":true,"message":"ok"}"#).unwrap();
        assert_eq!(a, CtlResponse::success("ok"));
        let b: CtlResponse<()> =
            from_json("ack", br#"{"success":true,"message":"ok","response":null}"#).unwrap();
        assert_eq!(b.into_result().unwrap(), None);
    }

    #[test]
    fn bad_json_error_names_the_document() {
        let err = from_json::<CtlResponse<()>>("scale reply", b"{").unwrap_err();
        assert!(
            err.to_string().starts_with("scale reply is not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn to_json_round_trips() {
        let reply = CtlResponse::ok(vec!["a".to_string()]);
        let back: CtlResponse<Vec<String>> =
            from_json("reply", &to_json("reply", &reply).unwrap()).unwrap();
        assert_eq!(back, reply);
    }
}
