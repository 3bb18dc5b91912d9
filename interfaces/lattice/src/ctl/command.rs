//! Commands sent to one host: scale, update, start, stop, and link deletion.
//!
//! These are the bodies wadm and `wash` send to change what runs where.
//! Names follow wasmCloud's control interface `types/ctl.rs` and
//! `types/rpc.rs`, including its one oddity: a scale command's instance
//! limit travels as `"count"` (we also accept `"max_instances"`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::link::default_link_name;

/// Body of `component.scale.{host}`: run a component with a concurrency limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleComponentCommand {
    /// Where to load the component from (OCI reference or `file://` path).
    #[serde(default)]
    pub component_ref: String,
    /// The lattice id the component runs under.
    pub component_id: String,
    /// Tags for the resulting instances, reported back in inventory and events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Maximum concurrent calls; 0 stops the component.
    #[serde(default, rename = "count", alias = "max_instances")]
    pub max_instances: u32,
    /// The host that should run it.
    #[serde(default)]
    pub host_id: String,
    /// Named configs merged (right-most wins) into the component's config.
    #[serde(default)]
    pub config: Vec<String>,
    /// Whether a different `component_ref` for a running id may replace it.
    #[serde(default)]
    pub allow_update: bool,
    /// Hosts the component may reach with `wasi:http/outgoing-handler`,
    /// as [`crate::grant`] entries; empty grants nothing. A Trellis
    /// extension (wasmCloud's manifests call it `allowedHosts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
}

/// Body of `component.update.{host}`: swap a running component's image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateComponentCommand {
    /// The running component's id.
    #[serde(default)]
    pub component_id: String,
    /// Only instances with these annotations are updated, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The host running it.
    #[serde(default)]
    pub host_id: String,
    /// The image to switch to.
    #[serde(default)]
    pub new_component_ref: String,
}

/// Body of `provider.start.{host}`: start a provider process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartProviderCommand {
    /// The lattice id the provider runs under.
    pub provider_id: String,
    /// Where to load it from (OCI reference or file path).
    #[serde(default)]
    pub provider_ref: String,
    /// The host that should run it.
    #[serde(default)]
    pub host_id: String,
    /// Named configs merged (right-most wins) into the provider's config.
    #[serde(default)]
    pub config: Vec<String>,
    /// Tags reported back in inventory and events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Body of `provider.stop.{host}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopProviderCommand {
    /// The host running it.
    #[serde(default)]
    pub host_id: String,
    /// The provider to stop (`provider_ref` in older clients).
    #[serde(default, alias = "provider_ref")]
    pub provider_id: String,
}

/// Body of `host.stop.{host}`: drain and stop the host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopHostCommand {
    /// The host to stop.
    #[serde(default)]
    pub host_id: String,
    /// How long to wait for in-flight calls, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// Body of `link.del`: remove the link in this slot (see [`crate::link`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeleteInterfaceLinkDefinitionRequest {
    /// The link's source.
    pub source_id: String,
    /// The link name.
    #[serde(default = "default_link_name")]
    pub name: String,
    /// `wasi` in `wasi:keyvalue/store`.
    pub wit_namespace: String,
    /// `keyvalue` in `wasi:keyvalue/store`.
    pub wit_package: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scale_limit_travels_as_count() {
        let cmd = ScaleComponentCommand {
            component_id: "echo".into(),
            max_instances: 5,
            ..Default::default()
        };
        let value = serde_json::to_value(&cmd).unwrap();
        assert_eq!(value["count"], 5);
        assert!(value.get("max_instances").is_none());
    }

    #[test]
    fn scale_limit_is_also_read_as_max_instances() {
        let cmd: ScaleComponentCommand =
            serde_json::from_value(json!({"component_id": "echo", "max_instances": 3})).unwrap();
        assert_eq!(cmd.max_instances, 3);
    }

    #[test]
    fn stop_provider_accepts_the_old_provider_ref() {
        let cmd: StopProviderCommand =
            serde_json::from_value(json!({"host_id": "N", "provider_ref": "kv"})).unwrap();
        assert_eq!(cmd.provider_id, "kv");
    }

    #[test]
    fn link_delete_defaults_the_name() {
        let req: DeleteInterfaceLinkDefinitionRequest = serde_json::from_value(json!({
            "source_id": "counter", "wit_namespace": "wasi", "wit_package": "keyvalue"
        }))
        .unwrap();
        assert_eq!(req.name, "default");
    }
}
