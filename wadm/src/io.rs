//! Everything the reconcile loop reads from and writes to the world, as
//! one trait: [`NatsIo`] is the lattice over NATS that the `wadm` binary
//! runs against, and [`crate::sim`] a simulated one that the simulation
//! drives the same loop against, on a simulated clock.
//!
//! The loop's own clock is `tokio::time::Instant`, so a paused tokio
//! runtime simulates it; the wall clock (event times, the lease record)
//! comes from here, so each simulated wadm can have its own.

use std::collections::BTreeMap;
use std::future::Future;

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use trellis_lattice::Link;
use trellis_lattice::client::{ClientError, CtlClient};
use trellis_lattice::config::NamedConfig;
use trellis_lattice::ctl::HostInventory;

use crate::observe::LatticeReader;
use crate::planner::{Command, DataHome};
use crate::reconciler::ReconcileError;
use crate::store::{AppStatus, ManifestStore, StoreError, StoredApp};

/// The lease key's value and revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseEntry {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// Its revision, which a conditional write names.
    pub revision: u64,
}

/// Where the wadm lease lives: the lease bucket, over NATS.
pub trait LeaseIo {
    /// The wall clock the lease record's expiry (for people) is on.
    fn wall_clock(&self) -> DateTime<Utc>;
    /// The lease key, if it holds a value.
    fn lease_entry(&self) -> impl Future<Output = Result<Option<LeaseEntry>, StoreError>>;
    /// Writes the lease key if its revision is still `expected` (`None`:
    /// if it holds no value); whether the write happened.
    fn lease_write(
        &self,
        value: Vec<u8>,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<bool, StoreError>>;
}

/// What the reconcile loop does to the world, the lease included.
pub trait LatticeIo: LeaseIo {
    /// The inventory of every host that answers a ping now.
    fn inventories(&self) -> impl Future<Output = Vec<HostInventory>>;
    /// Every link in the lattice.
    fn links(&self) -> impl Future<Output = Result<Vec<Link>, ReconcileError>>;
    /// Every named config, with its values.
    fn configs(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, NamedConfig>, ReconcileError>>;
    /// Sends one command; `Ok` once a host (or the lattice) accepted it.
    fn send(&self, command: &Command) -> impl Future<Output = Result<(), ClientError>>;
    /// Every stored app.
    fn apps(&self) -> impl Future<Output = Result<Vec<StoredApp>, StoreError>>;
    /// The recorded homes of providers' local data.
    fn data_homes(&self) -> impl Future<Output = Result<BTreeMap<String, DataHome>, StoreError>>;
    /// Records where a provider's local data lives.
    fn put_data_home(
        &self,
        provider_id: &str,
        home: &DataHome,
    ) -> impl Future<Output = Result<(), StoreError>>;
    /// Forgets where a provider's local data lived.
    fn delete_data_home(&self, provider_id: &str) -> impl Future<Output = Result<(), StoreError>>;
    /// An app's stored status.
    fn status(&self, app: &str) -> impl Future<Output = Result<Option<AppStatus>, StoreError>>;
    /// Writes an app's status.
    fn put_status(
        &self,
        app: &str,
        status: &AppStatus,
    ) -> impl Future<Output = Result<(), StoreError>>;
}

/// The lattice over NATS.
#[derive(Clone)]
pub struct NatsIo {
    ctl: CtlClient,
    reader: LatticeReader,
    store: ManifestStore,
    lease_bucket: kv::Store,
}

impl NatsIo {
    /// Commands go out through `ctl`, reads through `reader` and `store`,
    /// the lease lives in `lease_bucket`.
    pub fn new(
        ctl: CtlClient,
        reader: LatticeReader,
        store: ManifestStore,
        lease_bucket: kv::Store,
    ) -> Self {
        Self {
            ctl,
            reader,
            store,
            lease_bucket,
        }
    }

    /// The control client commands go out through.
    pub fn ctl(&self) -> &CtlClient {
        &self.ctl
    }

    /// The reader the API plans against.
    pub fn reader(&self) -> &LatticeReader {
        &self.reader
    }

    /// wadm's store.
    pub fn store(&self) -> &ManifestStore {
        &self.store
    }
}

const LEASE_KEY: &str = "lease";

fn lease_error(action: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Nats {
        action: action.to_owned(),
        message: err.to_string(),
    }
}

impl LeaseIo for kv::Store {
    fn wall_clock(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn lease_entry(&self) -> Result<Option<LeaseEntry>, StoreError> {
        let entry = self
            .entry(LEASE_KEY)
            .await
            .map_err(|e| lease_error("reading the lease", e))?;
        Ok(entry
            .filter(|entry| entry.operation == kv::Operation::Put)
            .map(|entry| LeaseEntry {
                value: entry.value.to_vec(),
                revision: entry.revision,
            }))
    }

    async fn lease_write(&self, value: Vec<u8>, expected: Option<u64>) -> Result<bool, StoreError> {
        // A refused write (the revision moved on, or the key appeared) and
        // one whose answer was lost both leave this process without the
        // lease; the next acquire reads what happened.
        let written = match expected {
            Some(revision) => self.update(LEASE_KEY, value.into(), revision).await.is_ok(),
            None => self.create(LEASE_KEY, value.into()).await.is_ok(),
        };
        Ok(written)
    }
}

impl LeaseIo for NatsIo {
    fn wall_clock(&self) -> DateTime<Utc> {
        self.lease_bucket.wall_clock()
    }

    async fn lease_entry(&self) -> Result<Option<LeaseEntry>, StoreError> {
        self.lease_bucket.lease_entry().await
    }

    async fn lease_write(&self, value: Vec<u8>, expected: Option<u64>) -> Result<bool, StoreError> {
        self.lease_bucket.lease_write(value, expected).await
    }
}

impl LatticeIo for NatsIo {
    async fn inventories(&self) -> Vec<HostInventory> {
        self.reader.inventories().await
    }

    async fn links(&self) -> Result<Vec<Link>, ReconcileError> {
        self.reader.links().await
    }

    async fn configs(&self) -> Result<BTreeMap<String, NamedConfig>, ReconcileError> {
        self.reader.configs().await
    }

    async fn send(&self, command: &Command) -> Result<(), ClientError> {
        match command {
            Command::PutConfig { name, values } => self.ctl.put_config(name, values).await,
            Command::PutLink(link) => self.ctl.put_link(link).await,
            Command::ScaleComponent(scale) => self.ctl.scale_component(scale).await,
            Command::StartProvider(start) => self.ctl.start_provider(start).await,
            Command::StopProvider(stop) => self.ctl.stop_provider(stop).await,
            Command::DeleteLink(request) => self.ctl.delete_link(request).await,
            Command::DeleteConfig { name } => self.ctl.delete_config(name).await,
        }
    }

    async fn apps(&self) -> Result<Vec<StoredApp>, StoreError> {
        self.store.list().await
    }

    async fn data_homes(&self) -> Result<BTreeMap<String, DataHome>, StoreError> {
        self.store.data_homes().await
    }

    async fn put_data_home(&self, provider_id: &str, home: &DataHome) -> Result<(), StoreError> {
        self.store.put_data_home(provider_id, home).await
    }

    async fn delete_data_home(&self, provider_id: &str) -> Result<(), StoreError> {
        self.store.delete_data_home(provider_id).await
    }

    async fn status(&self, app: &str) -> Result<Option<AppStatus>, StoreError> {
        self.store.status(app).await
    }

    async fn put_status(&self, app: &str, status: &AppStatus) -> Result<(), StoreError> {
        self.store.put_status(app, status).await
    }
}
