//! wadm's request/reply API over NATS, which `wash app` drives.
//!
//! Subjects, after the prefix `wadm.api.{lattice}.model.` (wasmCloud wadm's
//! subject layout):
//!
//! | suffix | request body | `response` on success |
//! |---|---|---|
//! | `put` | the manifest text (YAML or JSON) | [`PutOutcome`] |
//! | `get.{name}` | empty, or `{"version": "v1"}` | [`StoredVersion`] |
//! | `list` | empty | `[`[`AppSummary`]`]` |
//! | `versions.{name}` | empty | `[`[`VersionSummary`]`]` |
//! | `del.{name}` | empty | `null` |
//! | `deploy.{name}` | empty, or `{"version": "v1"}` | [`Deployed`] |
//! | `rollback.{name}` | empty | [`Deployed`]: the version deployed before |
//! | `undeploy.{name}` | empty | `null` |
//! | `status.{name}` | empty | [`StatusReport`] |
//! | `plan.deploy` | the manifest text | [`PlanReport`] |
//! | `plan.undeploy.{name}` | empty | [`PlanReport`] |
//!
//! `plan.*` answer what deploying or undeploying would do to the lattice
//! as it is now (wasmCloud's wadm has no such call); they store nothing
//! and send no command.
//!
//! Every reply is a JSON [`ApiReply`]: `{"result": "success" | "error",
//! "message": "…", "response": …}`. Servers subscribe in the queue group
//! `wadm`, so any number of wadm processes can answer; the store they share
//! makes them interchangeable.

mod client;
mod server;

use serde::{Deserialize, Serialize};

pub use crate::planner::PlanReport;
pub use crate::store::{AppStatus, PutOutcome, StoredVersion};
pub use client::{ApiError, WadmClient};
pub use server::serve;

/// The queue group every wadm API server joins.
pub const QUEUE_GROUP: &str = "wadm";

/// The subject prefix of `lattice`'s API, ending in `model`.
pub fn model_prefix(lattice: &str) -> String {
    format!("wadm.api.{lattice}.model")
}

/// Whether a call succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiResult {
    /// It did.
    Success,
    /// It did not; `message` says why.
    Error,
}

/// Every API reply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiReply<T> {
    /// Whether the call succeeded.
    pub result: ApiResult,
    /// What happened, for people.
    #[serde(default)]
    pub message: String,
    /// The operation's answer (absent on error).
    pub response: Option<T>,
}

/// The body of `get` and `deploy`: which version (default: the newest).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VersionRequest {
    /// A version name, or `latest`.
    #[serde(default)]
    pub version: Option<String>,
}

/// One app in `list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSummary {
    /// The app's name.
    pub name: String,
    /// Its newest version.
    pub latest_version: String,
    /// The version deployed, if any.
    pub deployed_version: Option<String>,
    /// Its status, if any was written.
    pub status: Option<AppStatus>,
}

/// One version in `versions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSummary {
    /// The version name.
    pub version: String,
    /// When it was put.
    pub put_at: chrono::DateTime<chrono::Utc>,
    /// Whether it is the deployed one.
    pub deployed: bool,
}

/// The answer to `deploy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    /// The app's name.
    pub name: String,
    /// The version now deployed.
    pub version: String,
}

/// The answer to `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The app's name.
    pub name: String,
    /// The version deployed, if any.
    pub deployed_version: Option<String>,
    /// Its status (undeployed when none was written).
    pub status: AppStatus,
}
