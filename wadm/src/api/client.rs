//! Calling the API: what `wash app` and the tests use.

use std::time::Duration;

use serde::de::DeserializeOwned;
use thiserror::Error;

use super::{
    ApiReply, ApiResult, AppSummary, Deployed, PutOutcome, StatusReport, StoredVersion,
    VersionRequest, VersionSummary, model_prefix,
};
use crate::planner::PlanReport;

/// Why an API call failed.
#[derive(Debug, Error)]
pub enum ApiError {
    /// wadm answered with an error.
    #[error("{0}")]
    Refused(String),
    /// Nobody answered.
    #[error(
        "no wadm answered on `{subject}` ({problem}); is wadm running for this lattice (`wash up` starts one)?"
    )]
    NoAnswer {
        /// The subject asked.
        subject: String,
        /// What NATS said.
        problem: String,
    },
    /// The reply was not an API reply.
    #[error("could not read wadm's reply on `{subject}`: {problem}")]
    Decode {
        /// The subject asked.
        subject: String,
        /// What was wrong.
        problem: String,
    },
}

/// A client of one lattice's wadm API.
#[derive(Clone, Debug)]
pub struct WadmClient {
    nats: async_nats::Client,
    prefix: String,
    timeout: Duration,
}

impl WadmClient {
    /// A client for `lattice` whose requests wait at most `timeout`.
    pub fn new(nats: async_nats::Client, lattice: &str, timeout: Duration) -> Self {
        Self {
            nats,
            prefix: model_prefix(lattice),
            timeout,
        }
    }

    /// Stores a new version of a manifest (its text, YAML or JSON).
    pub async fn put(&self, manifest: &str) -> Result<PutOutcome, ApiError> {
        self.request("put", manifest.as_bytes().to_vec()).await
    }

    /// A version of app `name` (`None`: the newest).
    pub async fn get(&self, name: &str, version: Option<&str>) -> Result<StoredVersion, ApiError> {
        self.request(&format!("get.{name}"), version_body(version))
            .await
    }

    /// Every stored app.
    pub async fn list(&self) -> Result<Vec<AppSummary>, ApiError> {
        self.request("list", Vec::new()).await
    }

    /// The versions of app `name`, oldest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionSummary>, ApiError> {
        self.request(&format!("versions.{name}"), Vec::new()).await
    }

    /// Undeploys and forgets app `name`.
    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        self.request::<Option<()>>(&format!("del.{name}"), Vec::new())
            .await
            .map(|_| ())
    }

    /// Deploys a version of app `name` (`None`: the newest).
    pub async fn deploy(&self, name: &str, version: Option<&str>) -> Result<Deployed, ApiError> {
        self.request(&format!("deploy.{name}"), version_body(version))
            .await
    }

    /// Deploys the version of app `name` deployed before the current one.
    pub async fn rollback(&self, name: &str) -> Result<Deployed, ApiError> {
        self.request(&format!("rollback.{name}"), Vec::new()).await
    }

    /// Undeploys app `name`.
    pub async fn undeploy(&self, name: &str) -> Result<(), ApiError> {
        self.request::<Option<()>>(&format!("undeploy.{name}"), Vec::new())
            .await
            .map(|_| ())
    }

    /// What deploying the manifest in `manifest` (its text) would do to
    /// the lattice now; stores and changes nothing.
    pub async fn plan(&self, manifest: &str) -> Result<PlanReport, ApiError> {
        self.request("plan.deploy", manifest.as_bytes().to_vec())
            .await
    }

    /// What undeploying app `name` would do to the lattice now; changes
    /// nothing.
    pub async fn plan_undeploy(&self, name: &str) -> Result<PlanReport, ApiError> {
        self.request(&format!("plan.undeploy.{name}"), Vec::new())
            .await
    }

    /// The status of app `name`.
    pub async fn status(&self, name: &str) -> Result<StatusReport, ApiError> {
        self.request(&format!("status.{name}"), Vec::new()).await
    }

    async fn request<T: DeserializeOwned>(
        &self,
        operation: &str,
        body: Vec<u8>,
    ) -> Result<T, ApiError> {
        let subject = format!("{}.{operation}", self.prefix);
        let request = self.nats.request(subject.clone(), body.into());
        let message = match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(message)) => message,
            Ok(Err(err)) => {
                return Err(ApiError::NoAnswer {
                    subject,
                    problem: err.to_string(),
                });
            }
            Err(_) => {
                return Err(ApiError::NoAnswer {
                    subject,
                    problem: format!("timed out after {} ms", self.timeout.as_millis()),
                });
            }
        };
        let limits = trellis_lattice::chunk::ChunkLimits::default();
        let payload = trellis_lattice::chunk::payload_of(&self.nats, &message, &limits)
            .await
            .map_err(|e| ApiError::NoAnswer {
                subject: subject.clone(),
                problem: e.to_string(),
            })?;
        let reply: ApiReply<T> =
            serde_json::from_slice(&payload).map_err(|e| ApiError::Decode {
                subject: subject.clone(),
                problem: e.to_string(),
            })?;
        match (reply.result, reply.response) {
            (ApiResult::Success, Some(response)) => Ok(response),
            (ApiResult::Success, None) => {
                // `null` responses decode only into an Option, which the
                // callers expecting nothing ask for.
                serde_json::from_value(serde_json::Value::Null).map_err(|e| ApiError::Decode {
                    subject,
                    problem: e.to_string(),
                })
            }
            (ApiResult::Error, _) => Err(ApiError::Refused(reply.message)),
        }
    }
}

fn version_body(version: Option<&str>) -> Vec<u8> {
    let request = VersionRequest {
        version: version.map(str::to_owned),
    };
    serde_json::to_vec(&request).unwrap_or_default()
}
