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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
