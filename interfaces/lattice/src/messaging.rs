//! `trellis:messaging@0.2.0` across the lattice, and wasmCloud's
//! `wasmcloud:messaging@0.2.0`, which has the same types and functions
//! under another namespace: a provider serves both, and answers each
//! component in the namespace its link names.
//!
//! Components publish and request through `consumer`, served by the
//! messaging provider; the provider delivers subscribed messages to a
//! component's `handler`. Neither interface uses resources, so the generic
//! value codec carries them; these types are the same encoding for Rust
//! peers (providers, tests), pinned by the tests below.
//!
//! | function | parameters | result |
//! |---|---|---|
//! | `consumer.request` | `[subject, body, timeout-ms]` | `result<broker-message, string>` |
//! | `consumer.publish` | `[msg]` | `result<_, string>` |
//! | `handler.handle-message` | `[msg]` | `result<_, string>` |

use serde::{Deserialize, Serialize};

/// The WIT namespace of the contract.
pub const NAMESPACE: &str = "trellis";
/// The namespace of wasmCloud's identical contract.
pub const WASMCLOUD_NAMESPACE: &str = "wasmcloud";
/// Every namespace the contract is served under.
pub const NAMESPACES: [&str; 2] = [NAMESPACE, WASMCLOUD_NAMESPACE];
/// The WIT package of the contract.
pub const PACKAGE: &str = "messaging";
/// The function a provider calls on a component for each message.
pub const HANDLE_MESSAGE: &str = "trellis:messaging/handler.handle-message";

/// [`HANDLE_MESSAGE`] in `namespace` (one of [`NAMESPACES`]).
pub fn handle_message(namespace: &str) -> String {
    format!("{namespace}:{PACKAGE}/handler.handle-message")
}

/// `trellis:messaging/types.broker-message`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BrokerMessage {
    /// The subject it was (or is to be) published on.
    pub subject: String,
    /// The payload.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Where a reply should go, if the sender waits for one.
    #[serde(default)]
    pub reply_to: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{self, WitResult};

    #[test]
    fn broker_message_is_a_kebab_case_map_with_a_bin_body() {
        let msg = BrokerMessage {
            subject: "trellis.echo".into(),
            body: b"hi".to_vec(),
            reply_to: Some("_INBOX.1".into()),
        };
        let bytes = rpc::encode(&(msg.clone(),)).unwrap();
        let value: rmpv::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            rmpv::Value::Array(vec![rmpv::Value::Map(vec![
                ("subject".into(), "trellis.echo".into()),
                ("body".into(), rmpv::Value::Binary(b"hi".to_vec())),
                ("reply-to".into(), "_INBOX.1".into()),
            ])])
        );
        let (back,): (BrokerMessage,) = rpc::decode(&bytes).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn unit_results_are_ok_nil() {
        let bytes = rpc::encode(&WitResult::<(), String>::Ok(())).unwrap();
        let value: rmpv::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(value.to_string(), r#"{"ok": nil}"#);
    }
}
