//! What hosts and provider processes say to each other outside of calls, on
//! the subjects of [`crate::subject::ProviderOperation`]
//! (`wasmbus.rpc.{lattice}.{provider}.linkdefs.put|del`, `.shutdown`,
//! `.health`), all JSON request/reply.
//!
//! - `linkdefs.put` / `linkdefs.del`: the body is a [`ProviderLink`] (the
//!   link with its named config already resolved, so the provider needs no
//!   access to lattice state); the reply is a [`crate::ctl::CtlResponse`]
//!   whose `message` says why a link could not be applied (an unreachable
//!   Redis URL, a port already in use).
//! - `health`: empty body, reply [`HealthCheckResponse`].
//! - `shutdown`: body [`ShutdownRequest`]. Several hosts may run the same
//!   provider id; each process stops only when the request names its own
//!   host, and replies before it exits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::link::Link;
use crate::secret::{SealedSecret, SecretValue};

/// A link as a provider receives it, with config names resolved to values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderLink {
    /// The link as stored in lattice state.
    #[serde(flatten)]
    pub link: Link,
    /// The merged values of `link.source_config` (right-most name wins).
    #[serde(default)]
    pub source_config_values: BTreeMap<String, String>,
    /// The merged values of `link.target_config`.
    #[serde(default)]
    pub target_config_values: BTreeMap<String, String>,
    /// The secrets granted to the provider's side of the link (the secret
    /// references among that side's configs), by name, each sealed by its
    /// backend for the provider's key ([`crate::HostData`]'s
    /// `provider_xkey_seed`), which only the provider and the host that
    /// made the key hold. A Trellis extension.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SealedSecret>,
    /// The same secrets opened, filled in by the provider SDK before the
    /// provider sees the link; never sent.
    #[serde(skip)]
    pub secret_values: BTreeMap<String, SecretValue>,
}

/// A provider's answer to a health check (wasmCloud's field names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckResponse {
    /// Whether the provider can serve every link it has.
    #[serde(default)]
    pub healthy: bool,
    /// When unhealthy, what is wrong and with which link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Body of `shutdown`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownRequest {
    /// The host whose process should stop.
    #[serde(default)]
    pub host_id: String,
}
