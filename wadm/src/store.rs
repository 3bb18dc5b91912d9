//! Where wadm keeps applications: every version of every manifest, which
//! version is deployed, and each app's status, in JetStream KV, so that
//! any wadm process can serve the API or take over the reconcile loop.
//!
//! Two buckets per lattice:
//! - `wadm_manifests_{lattice}`: key = app name, value = [`StoredApp`]
//!   (JSON: every version's original manifest text, the deployed version).
//!   Every write is revision-checked (read, change, `update` expecting the
//!   revision read, retry on conflict), so two API calls racing on one app
//!   cannot lose either change.
//! - `wadm_status_{lattice}`: key = app name, value = [`AppStatus`]. Status
//!   is written by the acting reconciler often; keeping it apart means
//!   those writes never conflict with manifest writes. The same bucket
//!   keeps `data-home.{provider id}` = [`DataHome`]: which host holds a
//!   stateful provider's local data, so a restarted wadm still knows.
//!
//! A version is the manifest's `version` annotation or, without one, a
//! hash of its content, so putting the same text twice is a no-op.

use std::collections::BTreeMap;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use trellis_lattice::client::{ClientError, Replicas, open_kv_bucket};

use crate::manifest::{Manifest, ManifestError};
use crate::planner::DataHome;

/// The version name that means "the newest one".
pub const LATEST: &str = "latest";
/// How often a revision-checked write is retried after losing a race.
const WRITE_ATTEMPTS: usize = 10;

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The manifest does not parse or validate.
    #[error(transparent)]
    Invalid(#[from] ManifestError),
    /// No app of that name is stored.
    #[error("no application named `{0}`; `wash app list` shows the stored ones")]
    NoSuchApp(String),
    /// The app has no such version.
    #[error("application `{app}` has no version `{version}`; `wash app versions {app}` lists them")]
    NoSuchVersion {
        /// The app.
        app: String,
        /// The version asked for.
        version: String,
    },
    /// The version exists with different content.
    #[error(
        "application `{app}` already has a version `{version}` with different content; change \
         the `version` annotation"
    )]
    VersionExists {
        /// The app.
        app: String,
        /// The version.
        version: String,
    },
    /// `rollback` has no earlier version to go back to.
    #[error(
        "cannot roll `{app}` back: {why}; deploy a version by name with \
         `wash app deploy {app} --version VERSION` (`wash app versions {app}` lists them)"
    )]
    NothingToRollBack {
        /// The app.
        app: String,
        /// Why there is nothing.
        why: String,
    },
    /// Other writers kept winning the race for this key.
    #[error("application `{0}` is being changed by someone else; try again")]
    Contended(String),
    /// A stored value is not what this version of wadm writes.
    #[error("stored data for `{key}` is unreadable: {problem}")]
    Corrupt {
        /// The key.
        key: String,
        /// What was wrong.
        problem: String,
    },
    /// JetStream failed.
    #[error("JetStream failed while {action}: {message}")]
    Nats {
        /// What the store was doing.
        action: String,
        /// The error.
        message: String,
    },
}

impl StoreError {
    fn nats(action: impl Into<String>) -> impl FnOnce(String) -> Self {
        let action = action.into();
        move |message| Self::Nats { action, message }
    }
}

impl From<ClientError> for StoreError {
    fn from(err: ClientError) -> Self {
        Self::Nats {
            action: "opening a bucket".into(),
            message: err.to_string(),
        }
    }
}

/// One version of an app's manifest, as it was put.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVersion {
    /// The version name.
    pub version: String,
    /// The manifest text exactly as put (YAML or JSON).
    pub manifest: String,
    /// When it was put.
    pub put_at: DateTime<Utc>,
}

impl StoredVersion {
    /// The parsed manifest.
    pub fn parse(&self) -> Result<Manifest, ManifestError> {
        Manifest::parse(&self.manifest)
    }
}

/// Everything stored about one app except its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredApp {
    /// The app's name.
    pub name: String,
    /// Every version, oldest first.
    pub versions: Vec<StoredVersion>,
    /// The version the lattice should run, if deployed.
    pub deployed: Option<String>,
    /// The versions deployed before it, oldest first (at most
    /// [`DEPLOY_HISTORY`]); `rollback` goes back to the last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previously_deployed: Vec<String>,
}

/// How many earlier deployed versions an app remembers.
pub const DEPLOY_HISTORY: usize = 10;

impl StoredApp {
    /// The version named `version` (`latest` or `None`: the newest).
    pub fn version(&self, version: Option<&str>) -> Option<&StoredVersion> {
        match version {
            None | Some(LATEST) => self.versions.last(),
            Some(name) => self.versions.iter().find(|v| v.version == name),
        }
    }

    /// Deploys `version`, remembering the one it replaces.
    fn switch_to(&mut self, version: String) {
        if let Some(current) = self.deployed.replace(version) {
            self.previously_deployed.push(current);
            let over = self
                .previously_deployed
                .len()
                .saturating_sub(DEPLOY_HISTORY);
            self.previously_deployed.drain(..over);
        }
    }

    /// The deployed version's manifest, if deployed.
    pub fn deployed_version(&self) -> Option<&StoredVersion> {
        self.deployed.as_deref().and_then(|v| self.version(Some(v)))
    }
}

/// Where an app stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployStatus {
    /// Not deployed (its leftovers, if any, are being removed).
    Undeployed,
    /// Deployed; the lattice does not match it yet.
    Reconciling,
    /// Deployed and the lattice runs it as declared.
    Deployed,
    /// Deployed, but commands failed or the manifest cannot be satisfied.
    Failed,
}

impl DeployStatus {
    /// The lowercase name, as shown and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undeployed => "undeployed",
            Self::Reconciling => "reconciling",
            Self::Deployed => "deployed",
            Self::Failed => "failed",
        }
    }
}

/// An app's status, as the reconciler last wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    /// Where it stands.
    pub status: DeployStatus,
    /// The version this status is about, if deployed.
    pub version: Option<String>,
    /// Why it is failed or still reconciling.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// When it was written.
    pub updated_at: DateTime<Utc>,
}

impl AppStatus {
    /// A status written now.
    pub fn now(status: DeployStatus, version: Option<String>, reasons: Vec<String>) -> Self {
        Self {
            status,
            version,
            reasons,
            updated_at: Utc::now(),
        }
    }
}

/// What a put did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutOutcome {
    /// The app's name.
    pub name: String,
    /// The version stored (or already stored).
    pub version: String,
    /// False when the identical manifest was already stored.
    pub created: bool,
}

/// The two buckets of one lattice.
#[derive(Clone)]
pub struct ManifestStore {
    manifests: kv::Store,
    status: kv::Store,
}

/// The manifest bucket's name for `lattice`.
pub fn manifests_bucket(lattice: &str) -> String {
    format!("wadm_manifests_{lattice}")
}

/// Status-bucket keys recording where a provider's local data lives:
/// `data-home.{provider id}`, holding a [`DataHome`] as JSON. App names
/// have no dots, so these never collide with an app's status.
pub const DATA_HOME_PREFIX: &str = "data-home.";

/// The status bucket's name for `lattice`.
pub fn status_bucket(lattice: &str) -> String {
    format!("wadm_status_{lattice}")
}

impl ManifestStore {
    /// Opens (creating if needed) the lattice's buckets, with `replicas`.
    pub async fn open(
        js: &jetstream::Context,
        lattice: &str,
        replicas: Replicas,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            manifests: open_kv_bucket(js, &manifests_bucket(lattice), replicas).await?,
            status: open_kv_bucket(js, &status_bucket(lattice), replicas).await?,
        })
    }

    /// A stream that yields whenever any app's manifests or deployed
    /// version change, from whichever wadm wrote them: what lets the
    /// acting reconciler plan a deploy at once rather than at its next
    /// pass. Status writes are in the other bucket and do not show here.
    pub async fn changes(
        &self,
    ) -> Result<impl futures::Stream<Item = ()> + Send + Unpin + 'static, StoreError> {
        let watch = self
            .manifests
            .watch_all()
            .await
            .map_err(|e| StoreError::nats("watching the manifests")(e.to_string()))?;
        Ok(futures::StreamExt::map(watch, |_| ()))
    }

    /// Stores a new version of the manifest in `text`. Putting text that is
    /// already stored under its version returns that version unchanged.
    pub async fn put(&self, text: &str) -> Result<PutOutcome, StoreError> {
        let manifest = Manifest::parse(text)?;
        let name = manifest.name.clone();
        let version = manifest.version.clone();
        self.modify(&name, |app| {
            let mut app = app.unwrap_or_else(|| StoredApp {
                name: name.clone(),
                versions: Vec::new(),
                deployed: None,
                previously_deployed: Vec::new(),
            });
            if let Some(existing) = app.versions.iter().find(|v| v.version == version) {
                if existing.manifest == text {
                    return Ok((None, false));
                }
                return Err(StoreError::VersionExists {
                    app: name.clone(),
                    version: version.clone(),
                });
            }
            app.versions.push(StoredVersion {
                version: version.clone(),
                manifest: text.to_owned(),
                put_at: Utc::now(),
            });
            Ok((Some(Some(app)), true))
        })
        .await
        .map(|created| PutOutcome {
            name: name.clone(),
            version: version.clone(),
            created,
        })
    }

    /// The app `name`, if stored.
    pub async fn app(&self, name: &str) -> Result<Option<StoredApp>, StoreError> {
        Ok(self.read_app(name).await?.map(|(app, _)| app))
    }

    /// Version `version` (`None` or `latest`: the newest) of app `name`.
    pub async fn get(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<StoredVersion, StoreError> {
        let app = self
            .app(name)
            .await?
            .ok_or_else(|| StoreError::NoSuchApp(name.to_owned()))?;
        app.version(version)
            .cloned()
            .ok_or_else(|| StoreError::NoSuchVersion {
                app: name.to_owned(),
                version: version.unwrap_or(LATEST).to_owned(),
            })
    }

    /// Every stored app, by name.
    pub async fn list(&self) -> Result<Vec<StoredApp>, StoreError> {
        let mut names: Vec<String> = match self.manifests.keys().await {
            Ok(keys) => keys
                .try_collect()
                .await
                .map_err(|e| StoreError::nats("listing apps")(e.to_string()))?,
            Err(e) => return Err(StoreError::nats("listing apps")(e.to_string())),
        };
        names.sort();
        let mut apps = Vec::with_capacity(names.len());
        for name in names {
            if let Some(app) = self.app(&name).await? {
                apps.push(app);
            }
        }
        Ok(apps)
    }

    /// The versions of app `name`, oldest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<StoredVersion>, StoreError> {
        self.app(name)
            .await?
            .map(|app| app.versions)
            .ok_or_else(|| StoreError::NoSuchApp(name.to_owned()))
    }

    /// Marks version `version` (`None` or `latest`: the newest) of app
    /// `name` as the one to run; returns the version deployed.
    pub async fn deploy(&self, name: &str, version: Option<&str>) -> Result<String, StoreError> {
        let deployed = self
            .modify(name, |app| {
                let mut app = app.ok_or_else(|| StoreError::NoSuchApp(name.to_owned()))?;
                let chosen = app
                    .version(version)
                    .ok_or_else(|| StoreError::NoSuchVersion {
                        app: name.to_owned(),
                        version: version.unwrap_or(LATEST).to_owned(),
                    })?
                    .version
                    .clone();
                if app.deployed.as_ref() == Some(&chosen) {
                    return Ok((None, chosen));
                }
                app.switch_to(chosen.clone());
                Ok((Some(Some(app)), chosen))
            })
            .await?;
        self.deploying(name, &deployed).await?;
        Ok(deployed)
    }

    /// Deploys the version of app `name` that was deployed before the
    /// current one; returns it. Rolling back twice returns to where it
    /// started, as `kubectl rollout undo` does.
    pub async fn rollback(&self, name: &str) -> Result<String, StoreError> {
        let deployed = self
            .modify(name, |app| {
                let mut app = app.ok_or_else(|| StoreError::NoSuchApp(name.to_owned()))?;
                if app.deployed.is_none() {
                    return Err(StoreError::NothingToRollBack {
                        app: name.to_owned(),
                        why: "it is not deployed".to_owned(),
                    });
                }
                let Some(previous) = app.previously_deployed.pop() else {
                    return Err(StoreError::NothingToRollBack {
                        app: name.to_owned(),
                        why: "no other version of it was deployed before".to_owned(),
                    });
                };
                app.switch_to(previous.clone());
                Ok((Some(Some(app)), previous))
            })
            .await?;
        self.deploying(name, &deployed).await?;
        Ok(deployed)
    }

    /// Marks a newly chosen version of app `name` as reconciling.
    async fn deploying(&self, name: &str, version: &str) -> Result<(), StoreError> {
        self.put_status(
            name,
            &AppStatus::now(
                DeployStatus::Reconciling,
                Some(version.to_owned()),
                Vec::new(),
            ),
        )
        .await
    }

    /// Marks app `name` as not to run; the reconciler removes what it owns.
    pub async fn undeploy(&self, name: &str) -> Result<(), StoreError> {
        self.modify(name, |app| {
            let mut app = app.ok_or_else(|| StoreError::NoSuchApp(name.to_owned()))?;
            if app.deployed.is_none() {
                return Ok((None, ()));
            }
            app.deployed = None;
            Ok((Some(Some(app)), ()))
        })
        .await?;
        self.put_status(
            name,
            &AppStatus::now(DeployStatus::Undeployed, None, Vec::new()),
        )
        .await
    }

    /// Undeploys app `name` and forgets it; the reconciler still removes
    /// what it owns, found by the ownership annotations.
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.modify(name, |app| match app {
            None => Err(StoreError::NoSuchApp(name.to_owned())),
            Some(_) => Ok((Some(None), ())),
        })
        .await?;
        self.status.delete(name).await.map_err(|e| {
            StoreError::nats(format!("deleting the status of `{name}`"))(e.to_string())
        })
    }

    /// App `name`'s status; a stored app with none written yet is
    /// undeployed.
    pub async fn status(&self, name: &str) -> Result<Option<AppStatus>, StoreError> {
        let bytes = self.status.get(name).await.map_err(|e| {
            StoreError::nats(format!("reading the status of `{name}`"))(e.to_string())
        })?;
        match bytes {
            Some(bytes) => decode(name, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Writes app `name`'s status (last writer wins: only the acting
    /// reconciler and deploy/undeploy write it).
    pub async fn put_status(&self, name: &str, status: &AppStatus) -> Result<(), StoreError> {
        self.status
            .put(name, encode(status)?)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::nats(format!("writing the status of `{name}`"))(e.to_string()))
    }

    /// Where each stateful provider's data lives, as recorded.
    pub async fn data_homes(&self) -> Result<BTreeMap<String, DataHome>, StoreError> {
        let failed = |e: &dyn std::fmt::Display| {
            StoreError::nats("listing the data homes of providers")(e.to_string())
        };
        let keys: Vec<String> = match self.status.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(|e| failed(&e))?,
            Err(e) => return Err(failed(&e)),
        };
        let mut homes = BTreeMap::new();
        for key in keys {
            let Some(provider_id) = key.strip_prefix(DATA_HOME_PREFIX) else {
                continue;
            };
            let bytes = self.status.get(&key).await.map_err(|e| failed(&e))?;
            if let Some(bytes) = bytes {
                homes.insert(provider_id.to_owned(), decode(&key, &bytes)?);
            }
        }
        Ok(homes)
    }

    /// Records that `provider_id`'s data lives at `home`.
    pub async fn put_data_home(
        &self,
        provider_id: &str,
        home: &DataHome,
    ) -> Result<(), StoreError> {
        let key = format!("{DATA_HOME_PREFIX}{provider_id}");
        self.status
            .put(&key, encode(home)?)
            .await
            .map(|_| ())
            .map_err(|e| {
                StoreError::nats(format!("recording the data home of `{provider_id}`"))(
                    e.to_string(),
                )
            })
    }

    /// Forgets where `provider_id`'s data lives (it has none any more).
    pub async fn delete_data_home(&self, provider_id: &str) -> Result<(), StoreError> {
        let key = format!("{DATA_HOME_PREFIX}{provider_id}");
        self.status.delete(&key).await.map_err(|e| {
            StoreError::nats(format!("forgetting the data home of `{provider_id}`"))(e.to_string())
        })
    }

    async fn read_app(&self, name: &str) -> Result<Option<(StoredApp, u64)>, StoreError> {
        let entry = self
            .manifests
            .entry(name)
            .await
            .map_err(|e| StoreError::nats(format!("reading app `{name}`"))(e.to_string()))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                Ok(Some((decode(name, &entry.value)?, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Applies `change` to app `name` with a revision check, retrying when
    /// another writer got there first. `change` returns what to write
    /// (`None`: nothing; `Some(None)`: delete) and a result.
    async fn modify<T>(
        &self,
        name: &str,
        change: impl Fn(Option<StoredApp>) -> Result<(Option<Option<StoredApp>>, T), StoreError>,
    ) -> Result<T, StoreError> {
        for _ in 0..WRITE_ATTEMPTS {
            let current = self.read_app(name).await?;
            let revision = current.as_ref().map(|(_, revision)| *revision);
            let (write, result) = change(current.map(|(app, _)| app))?;
            let action = || format!("writing app `{name}`");
            let lost_race = match (write, revision) {
                (None, _) | (Some(None), None) => return Ok(result),
                (Some(Some(app)), Some(revision)) => {
                    match self.manifests.update(name, encode(&app)?, revision).await {
                        Ok(_) => false,
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => true,
                        Err(e) => return Err(StoreError::nats(action())(e.to_string())),
                    }
                }
                (Some(Some(app)), None) => match self.manifests.create(name, encode(&app)?).await {
                    Ok(_) => false,
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => true,
                    Err(e) => return Err(StoreError::nats(action())(e.to_string())),
                },
                (Some(None), Some(revision)) => {
                    match self
                        .manifests
                        .delete_expect_revision(name, Some(revision))
                        .await
                    {
                        Ok(()) => false,
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => true,
                        Err(e) => return Err(StoreError::nats(action())(e.to_string())),
                    }
                }
            };
            if !lost_race {
                return Ok(result);
            }
            tracing::debug!(app = name, "lost a write race; retrying");
        }
        Err(StoreError::Contended(name.to_owned()))
    }
}

fn encode(value: &impl Serialize) -> Result<Bytes, StoreError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| StoreError::nats("encoding a record")(e.to_string()))
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        problem: e.to_string(),
    })
}
