//! What a host says about itself: the ping answer, its inventory and labels.
//!
//! [`Host`] answers `host.ping`, [`HostInventory`] answers `host.get.{host}`
//! and its summary also rides in the heartbeat event. Field names are those
//! of wasmCloud's control interface (`types/host.rs`, `component.rs`,
//! `provider.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A host's answer to `host.ping`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// The host's id (an `N…` nkey public key).
    #[serde(default)]
    pub id: String,
    /// A human-friendly name, e.g. `quiet-river-1234`.
    #[serde(default)]
    pub friendly_name: String,
    /// The lattice the host belongs to.
    #[serde(default)]
    pub lattice: String,
    /// The host's labels, used by auctions and spread scalers.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The host software version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Seconds since the host started.
    #[serde(default)]
    pub uptime_seconds: u64,
    /// The uptime for people, e.g. `1h 2m 3s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_human: Option<String>,
    /// NATS server used for RPC, if the host says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_host: Option<String>,
    /// NATS server used for the control interface, if the host says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctl_host: Option<String>,
    /// JetStream domain in use, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js_domain: Option<String>,
}

/// Everything running on one host: the answer to `host.get.{host}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInventory {
    /// Components running on the host (`actors` in older wasmCloud hosts).
    #[serde(default, alias = "actors")]
    pub components: Vec<ComponentDescription>,
    /// Providers running on the host.
    #[serde(default)]
    pub providers: Vec<ProviderDescription>,
    /// The host's id.
    #[serde(default)]
    pub host_id: String,
    /// The host's friendly name.
    #[serde(default)]
    pub friendly_name: String,
    /// The host's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The host software version.
    #[serde(default)]
    pub version: String,
    /// The uptime for people.
    #[serde(default)]
    pub uptime_human: String,
    /// Seconds since the host started.
    #[serde(default)]
    pub uptime_seconds: u64,
    /// Providers whose data lives on this host's own disk, running or not
    /// (a Trellis extension; absent when there is none, and on hosts whose
    /// provider data is on shared storage). wadm keeps such a provider on
    /// the host that holds its data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_data: Vec<LocalData>,
}

/// A provider's data on one host's disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LocalData {
    /// The provider's lattice id.
    pub provider_id: String,
    /// Where the data is on that host.
    pub path: String,
}

/// One component in a host inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentDescription {
    /// The component's lattice id.
    #[serde(default)]
    pub id: String,
    /// Where the component was loaded from (OCI reference or `file://` path).
    #[serde(default)]
    pub image_ref: String,
    /// The name from the component's claims, if signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Annotations of the scale command that started it (wadm uses these
    /// to recognise its own work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The revision from the component's claims.
    #[serde(default)]
    pub revision: i32,
    /// How many calls may run at once; 0 means stopped.
    #[serde(default)]
    pub max_instances: u32,
}

/// One provider in a host inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderDescription {
    /// The provider's lattice id.
    #[serde(default)]
    pub id: String,
    /// Where the provider was loaded from, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<String>,
    /// The name from the provider's claims, if signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The revision from the provider's claims.
    #[serde(default)]
    pub revision: i32,
    /// Annotations of the start command that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A host label, the body of `label.put.{host}` and `label.del.{host}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostLabel {
    /// `arch` in `arch=amd64`.
    pub key: String,
    /// `amd64` in `arch=amd64`; ignored by `label.del`.
    #[serde(default)]
    pub value: String,
}

/// How many labels a host carries and how long each may be. Labels travel
/// in every heartbeat and ping reply, so unbounded ones would push those
/// past the server's max payload and make the host vanish from view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelLimits {
    /// The most labels set by operators (the built-in `hostcore.*` ones
    /// do not count).
    pub max_labels: usize,
    /// The longest key, in bytes.
    pub max_key_bytes: usize,
    /// The longest value, in bytes.
    pub max_value_bytes: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits {
            max_labels: 64,
            max_key_bytes: 128,
            max_value_bytes: 1024,
        }
    }
}

impl LabelLimits {
    /// Checks one label; the error names the label and the limit.
    pub fn check(&self, key: &str, value: &str) -> Result<(), String> {
        let shown: String = key.chars().take(40).collect();
        if key.trim().is_empty() {
            return Err("a label key must not be empty".into());
        }
        if key.len() > self.max_key_bytes {
            return Err(format!(
                "label key `{shown}…` is {} bytes long; keys are at most {} bytes",
                key.len(),
                self.max_key_bytes
            ));
        }
        if key
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '=')
        {
            return Err(format!(
                "label key `{shown}` may not contain spaces, control characters or `=`"
            ));
        }
        if value.len() > self.max_value_bytes {
            return Err(format!(
                "the value of label `{shown}` is {} bytes long; values are at most {} bytes",
                value.len(),
                self.max_value_bytes
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(format!(
                "the value of label `{shown}` may not contain control characters"
            ));
        }
        Ok(())
    }

    /// Checks that a host may hold `count` operator labels.
    pub fn check_count(&self, count: usize) -> Result<(), String> {
        if count > self.max_labels {
            return Err(format!(
                "a host carries at most {} labels; delete one before adding another",
                self.max_labels
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_bounded_and_need_a_key() {
        let limits = LabelLimits::default();
        assert!(limits.check("zone", "eu-west-1").is_ok());
        assert!(limits.check("", "x").unwrap_err().contains("empty"));
        assert!(limits.check("  ", "x").unwrap_err().contains("empty"));
        let long_key = "k".repeat(129);
        assert!(
            limits
                .check(&long_key, "x")
                .unwrap_err()
                .contains("128 bytes")
        );
        let bomb = "v".repeat(600 * 1024);
        let err = limits.check("big", &bomb).unwrap_err();
        assert!(err.contains("at most 1024 bytes"), "{err}");
        assert!(limits.check("a b", "x").is_err());
        assert!(limits.check("a=b", "x").is_err());
        assert!(limits.check("k", "line\nbreak").is_err());
        assert!(limits.check_count(64).is_ok());
        assert!(limits.check_count(65).unwrap_err().contains("at most 64"));
    }

    #[test]
    fn ping_answer_omits_unknown_optionals() {
        let host = Host {
            id: "NHOST".into(),
            friendly_name: "quiet-river".into(),
            lattice: "default".into(),
            ..Host::default()
        };
        assert_eq!(
            serde_json::to_value(&host).unwrap(),
            json!({"id": "NHOST", "friendly_name": "quiet-river", "lattice": "default",
                   "labels": {}, "uptime_seconds": 0})
        );
    }

    #[test]
    fn inventory_accepts_the_old_actors_field() {
        let inv: HostInventory = serde_json::from_value(json!({
            "actors": [{"id": "echo", "image_ref": "file:///echo.wasm", "max_instances": 1}],
            "providers": [],
            "host_id": "NHOST"
        }))
        .unwrap();
        assert_eq!(inv.components[0].id, "echo");
    }

    #[test]
    fn label_del_body_may_omit_the_value() {
        let label: HostLabel = serde_json::from_value(json!({"key": "zone"})).unwrap();
        assert_eq!(label.value, "");
    }
}
