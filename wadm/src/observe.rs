//! Reading the lattice for the planner: host inventories, links, named
//! config and recorded data homes. The reconcile loop reads through it on
//! every pass (and adds its memory of hosts that stopped answering); the
//! API reads a one-off snapshot through it to answer `plan`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::TryStreamExt;
use trellis_lattice::client::{ClientError, CtlClient, Replicas, open_kv_bucket};
use trellis_lattice::config::NamedConfig;
use trellis_lattice::ctl::HostInventory;
use trellis_lattice::{Link, Subjects};

use crate::planner::{ObservedHost, ObservedLattice};
use crate::reconciler::ReconcileError;
use crate::store::{ManifestStore, StoreError};

/// How long one read of the lattice (an inventory, the links, the store)
/// may take. Commands wait longer: hosts reply when their work is done.
pub const OBSERVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a read collects ping answers. It is on the path of every
/// recovery, twice (the pass that replaces a dead host's work, and the one
/// that sees it done). A host slower than this keeps its last inventory
/// and stays alive until the host timeout, so missing one pass is harmless.
const PING_WINDOW: Duration = Duration::from_millis(250);

/// Reads the lattice's state.
#[derive(Clone)]
pub struct LatticeReader {
    ctl: CtlClient,
    config_bucket: kv::Store,
    store: ManifestStore,
}

impl LatticeReader {
    /// A reader over `ctl`'s lattice, its config bucket (opened, with
    /// `replicas` if it must be made) and wadm's `store`.
    pub async fn open(
        ctl: &CtlClient,
        js: &jetstream::Context,
        store: ManifestStore,
        replicas: Replicas,
    ) -> Result<Self, ReconcileError> {
        let subjects = Subjects::new(ctl.lattice()).map_err(ClientError::from)?;
        let config_bucket = open_kv_bucket(js, &subjects.config_data_bucket(), replicas).await?;
        Ok(Self {
            ctl: ctl
                .clone()
                .with_timeout(OBSERVE_TIMEOUT)
                .with_gather_window(PING_WINDOW),
            config_bucket,
            store,
        })
    }

    /// The inventory of every host that answers a ping now.
    pub async fn inventories(&self) -> Vec<HostInventory> {
        let answering = match self.ctl.ping_hosts().await {
            Ok(hosts) => hosts,
            Err(err) => {
                tracing::debug!(error = %err, "no host answered the ping");
                Vec::new()
            }
        };
        let mut inventories = Vec::new();
        for host in answering {
            match self.ctl.get_inventory(&host.id).await {
                Ok(inventory) => inventories.push(inventory),
                Err(err) => tracing::debug!(host = %host.id, error = %err, "no inventory"),
            }
        }
        inventories
    }

    /// Every link in the lattice.
    pub async fn links(&self) -> Result<Vec<Link>, ReconcileError> {
        Ok(self.ctl.get_links().await?)
    }

    /// Every named config, with its values.
    pub async fn configs(&self) -> Result<BTreeMap<String, NamedConfig>, ReconcileError> {
        let failed = |e: &dyn std::fmt::Display| StoreError::Nats {
            action: "reading lattice config".into(),
            message: e.to_string(),
        };
        let names: Vec<String> = match self.config_bucket.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(|e| failed(&e))?,
            Err(e) => return Err(failed(&e).into()),
        };
        let mut configs = BTreeMap::new();
        for name in names {
            let Some(bytes) = self
                .config_bucket
                .get(&name)
                .await
                .map_err(|e| failed(&e))?
            else {
                continue;
            };
            match serde_json::from_slice::<NamedConfig>(&bytes) {
                Ok(values) => {
                    configs.insert(name, values);
                }
                Err(err) => tracing::warn!(config = %name, error = %err, "unreadable config"),
            }
        }
        Ok(configs)
    }

    /// The lattice as it is now: the hosts that answer (all alive), the
    /// links, the config and the data homes wadm recorded. What a plan
    /// shown to a user is made against; unlike the loop's picture, it does
    /// not remember hosts that stopped answering.
    pub async fn snapshot(&self) -> Result<ObservedLattice, ReconcileError> {
        let hosts = self
            .inventories()
            .await
            .into_iter()
            .map(ObservedHost::from)
            .map(|host| (host.id.clone(), host))
            .collect();
        let mut lattice = ObservedLattice {
            hosts,
            links: self.links().await?,
            configs: self.configs().await?,
            data_homes: self.store.data_homes().await?,
            retiring: Default::default(),
        };
        lattice.retiring = crate::reconciler::retiring(&lattice, &self.store.list().await?);
        Ok(lattice)
    }
}
