//! Application manifests: wasmCloud's OAM format, parsed and validated
//! into a typed model the planner can trust.
//!
//! Reading goes in two steps, like a compiler's front end. The text is
//! parsed as YAML or JSON into a plain document; the `read` module then
//! walks it, checking each field's shape and meaning and the references
//! between components, and builds the normalized [`Manifest`]. Every problem found
//! is reported at once, each with the path of its field (see [`Problem`]).
//!
//! The model is normalized: a link's target is always a component name with
//! its config beside it, whichever of wasmCloud's spellings the file used
//! (`target: kv` + `target_config`, or `target: {name, config}`; likewise
//! `source_config` or `source: {config}`), and config references are
//! resolved to [`ConfigRef::Owned`] (the app puts it) or
//! [`ConfigRef::External`] (someone else does).
//!
//! Choices where wasmCloud leaves room:
//! - A manifest without a `version` annotation gets the version
//!   `unversioned-<12 hex digits>`, from a SHA-256 of the parsed document:
//!   putting the same manifest twice gives the same version, and any change
//!   gives a new one.
//! - A component without `properties.id` runs under the id `{app}-{name}`.
//! - A component or capability takes exactly one scaler (`spreadscaler`
//!   or `daemonscaler`). wasmCloud's wadm accepts one without, which then
//!   runs nowhere while the app reports deployed; here that is an error,
//!   and `instances: 0` declares a stopped one.
//! - App, component and defined-config names use ASCII letters, digits,
//!   `-` and `_`, since they become subject tokens and JetStream keys.
//! - A bare config reference (`- name: x`, no `properties`) names config
//!   that exists in the lattice, unless the same manifest defines `x` with
//!   properties, in which case it refers to that definition.
//! - Config and label values may be written as YAML numbers or booleans;
//!   they are used as text.

mod document;
mod error;
mod read;
mod validate;

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};
use trellis_lattice::config::NamedConfig;
use trellis_lattice::secret::SecretRef;

use crate::ownership::owned_config_name;

pub use error::{ManifestError, Problem};

/// The only `apiVersion` accepted.
pub const API_VERSION: &str = "core.oam.dev/v1beta1";
/// The only `kind` accepted.
pub const KIND: &str = "Application";
/// The metadata annotation holding the version.
pub const VERSION_ANNOTATION: &str = "version";
/// The metadata annotation holding the description.
pub const DESCRIPTION_ANNOTATION: &str = "description";
/// A spread's weight when none is given (wasmCloud's default).
pub const DEFAULT_SPREAD_WEIGHT: u32 = 100;
/// The start of the version given to manifests without one.
pub const UNVERSIONED_PREFIX: &str = "unversioned-";

/// A validated application manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// `metadata.name`: the app's name, unique in a lattice.
    pub name: String,
    /// The `version` annotation, or `unversioned-<hash>` when there is none.
    pub version: String,
    /// The `description` annotation.
    pub description: Option<String>,
    /// All of `metadata.annotations`, as written.
    pub annotations: BTreeMap<String, String>,
    /// `metadata.labels`, as written.
    pub labels: BTreeMap<String, String>,
    /// `spec.components`, in order.
    pub components: Vec<Component>,
}

/// One entry of `spec.components`: a Wasm component or a provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    /// Its name within the manifest, which links use as their target.
    pub name: String,
    /// Its lattice id: `properties.id`, or `{app}-{name}`.
    pub id: String,
    /// Wasm component or capability provider.
    pub kind: ComponentKind,
    /// Where to load it from (OCI reference or `file://` path).
    pub image: String,
    /// `properties.config`, in order (later entries win on merge).
    pub config: Vec<ConfigRef>,
    /// `properties.allowedHosts`: hosts a component may reach over outgoing
    /// HTTP (none when absent).
    pub allowed_hosts: Vec<String>,
    /// `properties.localData: movable`: a capability whose data lives on
    /// one host's disk may start on another host, without that data. By
    /// default (`pinned`) wadm keeps it on the host holding its data.
    pub data_movable: bool,
    /// How many run where.
    pub scaler: Scaler,
    /// Links whose source is this component.
    pub links: Vec<LinkTrait>,
}

/// `type: component` or `type: capability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentKind {
    /// A Wasm component, run by hosts (`type: component`, or the old `actor`).
    Component,
    /// A capability provider, a process per host (`type: capability`).
    Capability,
}

/// A `spreadscaler` or `daemonscaler` trait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scaler {
    /// Which of the two.
    pub kind: ScalerKind,
    /// Total instances (spreadscaler) or instances per matching host (daemonscaler).
    pub instances: u32,
    /// Where; empty means every alive host.
    pub spread: Vec<Spread>,
    /// How many hosts swap a component to a new image at once
    /// (`maxUnavailable`); the rest keep the old one until those are done.
    pub max_unavailable: u32,
}

/// Hosts that swap to a new image at once when a manifest does not say.
pub const DEFAULT_MAX_UNAVAILABLE: u32 = 1;

/// The two scalers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalerKind {
    /// `spreadscaler`: a total spread over hosts by weight.
    Spread,
    /// `daemonscaler`: the same number on every matching host.
    Daemon,
}

/// One entry of a scaler's `spread`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spread {
    /// Its name, used in status messages.
    pub name: String,
    /// Host labels a host must have, all of them, to qualify.
    pub requirements: BTreeMap<String, String>,
    /// Its share relative to the other spreads (default 100).
    pub weight: u32,
}

/// A `link` trait: calls from its component to an interface go to `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkTrait {
    /// The link name (default `default`).
    pub name: String,
    /// The name (not id) of the target component in this manifest.
    pub target: String,
    /// `wasi` in `wasi:keyvalue/store`.
    pub namespace: String,
    /// `keyvalue` in `wasi:keyvalue/store`.
    pub package: String,
    /// The interfaces routed, e.g. `store`, `atomics`.
    pub interfaces: Vec<String>,
    /// Config given to the source for this link.
    pub source_config: Vec<ConfigRef>,
    /// Config given to the target for this link.
    pub target_config: Vec<ConfigRef>,
}

/// A reference to named config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigRef {
    /// Config this manifest defines; wadm puts it under
    /// [`owned_config_name`] and deletes it with the app.
    Owned {
        /// The name as written in the manifest.
        name: String,
        /// Its keys and values.
        values: NamedConfig,
    },
    /// Config managed outside the app, used under its own name.
    External {
        /// The lattice config name.
        name: String,
    },
    /// A secret the manifest grants: wadm puts its reference (never a
    /// value) under [`secret_config_name`] and deletes it with the app.
    Secret {
        /// The reference, with the backend its policy names.
        reference: SecretRef,
    },
}

impl ConfigRef {
    /// The name the config has in the lattice, for an app named `app`.
    pub fn lattice_name(&self, app: &str) -> String {
        match self {
            ConfigRef::Owned { name, .. } => owned_config_name(app, name),
            ConfigRef::External { name } => name.clone(),
            ConfigRef::Secret { reference } => secret_config_name(app, &reference.name),
        }
    }
}

/// The lattice name of the reference to secret `name` granted by the
/// manifest of `app`: a secret reference's prefix, then the app.
pub fn secret_config_name(app: &str, name: &str) -> String {
    format!(
        "{}{}",
        trellis_lattice::secret::SECRET_PREFIX,
        owned_config_name(app, name)
    )
}

impl Manifest {
    /// Parses and validates a manifest written in YAML or JSON (a document
    /// starting with `{` is read as JSON, for its clearer error messages).
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        if text.trim_start().starts_with('{') {
            Self::from_json(text)
        } else {
            Self::from_yaml(text)
        }
    }

    /// Parses and validates a YAML manifest.
    pub fn from_yaml(text: &str) -> Result<Manifest, ManifestError> {
        let document: Value = serde_norway::from_str(text).map_err(|e| ManifestError::Syntax {
            format: "YAML",
            message: e.to_string(),
        })?;
        Self::from_document(&document)
    }

    /// Parses and validates a JSON manifest.
    pub fn from_json(text: &str) -> Result<Manifest, ManifestError> {
        let document: Value = serde_json::from_str(text).map_err(|e| ManifestError::Syntax {
            format: "JSON",
            message: e.to_string(),
        })?;
        Self::from_document(&document)
    }

    fn from_document(document: &Value) -> Result<Manifest, ManifestError> {
        read::manifest(document, || unversioned(document))
            .map_err(|problems| ManifestError::Invalid { problems })
    }

    /// The component named `name`.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }
}

/// The version of a manifest that names none: a hash of its content.
fn unversioned(document: &Value) -> String {
    let bytes = serde_json::to_vec(document).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{UNVERSIONED_PREFIX}{hex}")
}
