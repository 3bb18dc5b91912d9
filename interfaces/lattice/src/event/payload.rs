//! The `data` of each lattice event.
//!
//! Field names follow what wasmCloud hosts publish and what wadm reads
//! (`host_id`, `component_id`, `provider_id`, `annotations`, `claims`, …).
//! Every struct defaults missing fields on input, because events are read by
//! observers that must not stop on a producer that left something out; the
//! host id missing from `data` is filled in from the CloudEvent `source`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ctl::{ComponentDescription, HostInventory, ProviderDescription};

/// `host_started`: a host joined the lattice.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostStarted {
    /// The host's id.
    #[serde(alias = "id")]
    pub host_id: String,
    /// The host's friendly name.
    pub friendly_name: String,
    /// The host's labels.
    pub labels: BTreeMap<String, String>,
    /// The host software version.
    pub version: String,
}

/// `host_stopped`: a host left the lattice gracefully.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostStopped {
    /// The host's id.
    #[serde(alias = "id")]
    pub host_id: String,
    /// The host's labels when it stopped.
    pub labels: BTreeMap<String, String>,
}

/// `host_heartbeat`: a host's periodic inventory summary; hosts that stop
/// sending it are treated as gone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostHeartbeat {
    /// Components running on the host.
    #[serde(alias = "actors")]
    pub components: Vec<ComponentDescription>,
    /// Providers running on the host.
    pub providers: Vec<ProviderDescription>,
    /// The host's id.
    #[serde(alias = "id")]
    pub host_id: String,
    /// The account key the host trusts as issuer (its cluster issuer).
    pub issuer: String,
    /// The host's friendly name.
    pub friendly_name: String,
    /// The host's labels.
    pub labels: BTreeMap<String, String>,
    /// The host software version.
    pub version: String,
    /// The uptime for people.
    pub uptime_human: String,
    /// Seconds since the host started.
    pub uptime_seconds: u64,
    /// As in [`HostInventory::local_data`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_data: Vec<crate::ctl::LocalData>,
}

impl HostHeartbeat {
    /// The heartbeat for an inventory, so hosts build both from one place.
    pub fn from_inventory(inventory: HostInventory, issuer: impl Into<String>) -> Self {
        Self {
            components: inventory.components,
            providers: inventory.providers,
            host_id: inventory.host_id,
            issuer: issuer.into(),
            friendly_name: inventory.friendly_name,
            labels: inventory.labels,
            version: inventory.version,
            uptime_human: inventory.uptime_human,
            uptime_seconds: inventory.uptime_seconds,
            local_data: inventory.local_data,
        }
    }

    /// The inventory this heartbeat summarises, as `host.get` would answer.
    pub fn to_inventory(&self) -> HostInventory {
        HostInventory {
            components: self.components.clone(),
            providers: self.providers.clone(),
            host_id: self.host_id.clone(),
            friendly_name: self.friendly_name.clone(),
            labels: self.labels.clone(),
            version: self.version.clone(),
            uptime_human: self.uptime_human.clone(),
            uptime_seconds: self.uptime_seconds,
            local_data: self.local_data.clone(),
        }
    }
}

/// Claims of a component as events report them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComponentClaims {
    /// The signing account.
    pub issuer: String,
    /// The component's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The component's human version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The component's revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i32>,
    /// The component's tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// The component's call alias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_alias: Option<String>,
    /// When the claims stop being valid, for people, or `never`.
    pub expires_human: String,
    /// When the claims start being valid, for people, or `never`.
    pub not_before_human: String,
}

/// Claims of a provider as events report them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderClaims {
    /// The signing account.
    pub issuer: String,
    /// The provider's name.
    pub name: String,
    /// The provider's human version.
    pub version: String,
    /// The provider's tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// When the claims stop being valid, for people, or `never`.
    pub expires_human: String,
    /// When the claims start being valid, for people, or `never`.
    pub not_before_human: String,
}

/// `component_scaled`: a component now runs with this instance limit (0: stopped).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComponentScaled {
    /// The host it runs on.
    pub host_id: String,
    /// Its lattice id.
    pub component_id: String,
    /// Where it was loaded from.
    pub image_ref: String,
    /// The new concurrency limit.
    pub max_instances: u32,
    /// Annotations of the scale command.
    pub annotations: BTreeMap<String, String>,
    /// Its claims, if signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<ComponentClaims>,
}

/// `component_scale_failed`: a scale command could not be carried out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComponentScaleFailed {
    /// The host that tried.
    pub host_id: String,
    /// The component's lattice id.
    pub component_id: String,
    /// Where it was to be loaded from.
    pub image_ref: String,
    /// The limit that was asked for.
    pub max_instances: u32,
    /// Annotations of the scale command.
    pub annotations: BTreeMap<String, String>,
    /// Its claims, if they could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<ComponentClaims>,
    /// What went wrong (e.g. which policy refused it).
    pub error: String,
}

/// `provider_started`: a provider process is up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderStarted {
    /// The host supervising it.
    pub host_id: String,
    /// Its lattice id.
    pub provider_id: String,
    /// Where it was loaded from.
    pub image_ref: String,
    /// Annotations of the start command.
    pub annotations: BTreeMap<String, String>,
    /// Its claims, if signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<ProviderClaims>,
}

/// `provider_start_failed`: a provider could not be started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderStartFailed {
    /// The host that tried.
    pub host_id: String,
    /// The provider's lattice id.
    pub provider_id: String,
    /// Where it was to be loaded from.
    pub provider_ref: String,
    /// What went wrong.
    pub error: String,
}

/// `provider_stopped`: a provider process ended (asked to, or crashed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderStopped {
    /// The host that supervised it.
    pub host_id: String,
    /// Its lattice id.
    pub provider_id: String,
    /// Annotations of the start command.
    pub annotations: BTreeMap<String, String>,
    /// Why it stopped, e.g. `stop` or `exited with status 1`.
    pub reason: String,
}

/// `health_check_passed` / `health_check_failed`: a provider's health changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderHealthCheck {
    /// The host that checked.
    pub host_id: String,
    /// The provider checked.
    pub provider_id: String,
    /// The provider's own words, if it gave any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `linkdef_deleted`: the link in this slot was removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkdefDeleted {
    /// The link's source.
    pub source_id: String,
    /// The link name.
    pub name: String,
    /// `wasi` in `wasi:keyvalue/store`.
    pub wit_namespace: String,
    /// `keyvalue` in `wasi:keyvalue/store`.
    pub wit_package: String,
    /// The removed link's target, when it existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The removed link's interfaces, when it existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<String>>,
}

/// `config_set` / `config_deleted`: a named config changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigChanged {
    /// The config's name.
    pub config_name: String,
}
