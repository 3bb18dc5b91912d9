//! What the planner knows about the lattice: hosts with their inventories,
//! links and config.
//!
//! The reconcile loop builds an [`ObservedLattice`] from host inventories
//! (`host.get`), heartbeats and events, the link list and the config
//! bucket; tests build one by hand. A host that missed its heartbeats stays
//! in the picture with `alive: false`: its work counts as gone and is
//! placed elsewhere, and no command is addressed to it.

use std::collections::{BTreeMap, BTreeSet};

use trellis_lattice::Link;
use trellis_lattice::config::NamedConfig;
use trellis_lattice::ctl::{ComponentDescription, HostInventory, ProviderDescription};

use crate::ownership::{is_owned_by, owner_app};

/// One host as last seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedHost {
    /// The host's id.
    pub id: String,
    /// Its labels, matched against spread requirements.
    pub labels: BTreeMap<String, String>,
    /// Whether it is considered up (heartbeats arriving).
    pub alive: bool,
    /// Components running on it.
    pub components: Vec<ComponentDescription>,
    /// Providers running on it.
    pub providers: Vec<ProviderDescription>,
    /// The providers whose data is on its disk: id to path.
    pub local_data: BTreeMap<String, String>,
}

impl From<HostInventory> for ObservedHost {
    /// An inventory that was just received: the host is alive.
    fn from(inventory: HostInventory) -> Self {
        Self {
            id: inventory.host_id,
            labels: inventory.labels,
            alive: true,
            components: inventory.components,
            providers: inventory.providers,
            local_data: inventory
                .local_data
                .into_iter()
                .map(|d| (d.provider_id, d.path))
                .collect(),
        }
    }
}

impl ObservedHost {
    /// Whether the host has every label in `requirements` with that value.
    pub fn satisfies(&self, requirements: &BTreeMap<String, String>) -> bool {
        requirements
            .iter()
            .all(|(key, value)| self.labels.get(key) == Some(value))
    }

    /// The component `id` running here, whoever started it.
    pub fn component(&self, id: &str) -> Option<&ComponentDescription> {
        self.components.iter().find(|c| c.id == id)
    }

    /// The provider `id` running here, whoever started it.
    pub fn provider(&self, id: &str) -> Option<&ProviderDescription> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// How many components and providers of `app` run here.
    pub fn app_load(&self, app: &str) -> usize {
        let components = self
            .components
            .iter()
            .filter(|c| is_owned_by(c.annotations.as_ref(), app))
            .count();
        let providers = self
            .providers
            .iter()
            .filter(|p| is_owned_by(p.annotations.as_ref(), app))
            .count();
        components + providers
    }
}

/// The lattice as the planner sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedLattice {
    /// Every known host, by id.
    pub hosts: BTreeMap<String, ObservedHost>,
    /// Every link in the lattice.
    pub links: Vec<Link>,
    /// Every named config in the lattice, with its values: values decide
    /// whether an app's config must be put again, names whether a config
    /// the app refers to exists.
    pub configs: BTreeMap<String, NamedConfig>,
    /// Where each stateful provider's data lives, as wadm recorded it
    /// (the host may be gone): provider id to home.
    pub data_homes: BTreeMap<String, DataHome>,
    /// Apps being removed (undeployed or deleted) whose things still run.
    /// Another app that needs an id one of them holds waits for it to go
    /// (`reconciling`) rather than failing.
    pub retiring: BTreeSet<String>,
}

/// The host holding a provider's local data.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataHome {
    /// The host's id.
    pub host_id: String,
    /// Where the data is on it.
    pub path: String,
}

impl ObservedLattice {
    /// A lattice of these hosts, all alive, with no links or config.
    pub fn from_inventories(inventories: impl IntoIterator<Item = HostInventory>) -> Self {
        let hosts = inventories
            .into_iter()
            .map(ObservedHost::from)
            .map(|host| (host.id.clone(), host))
            .collect();
        Self {
            hosts,
            ..Self::default()
        }
    }

    /// The hosts that are up, in id order.
    pub fn alive_hosts(&self) -> impl Iterator<Item = &ObservedHost> {
        self.hosts.values().filter(|h| h.alive)
    }

    /// Names of the apps that own something running in the lattice.
    pub fn owning_apps(&self) -> BTreeSet<String> {
        self.hosts
            .values()
            .flat_map(|host| {
                let components = host
                    .components
                    .iter()
                    .map(|c| owner_app(c.annotations.as_ref()));
                let providers = host
                    .providers
                    .iter()
                    .map(|p| owner_app(p.annotations.as_ref()));
                components.chain(providers).flatten().map(str::to_owned)
            })
            .collect()
    }

    /// Ids of `app`'s components and providers on any host, alive or not.
    pub fn owned_ids(&self, app: &str) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .hosts
            .values()
            .flat_map(|host| {
                let components = host
                    .components
                    .iter()
                    .filter(|c| is_owned_by(c.annotations.as_ref(), app))
                    .map(|c| c.id.as_str());
                let providers = host
                    .providers
                    .iter()
                    .filter(|p| is_owned_by(p.annotations.as_ref(), app))
                    .map(|p| p.id.as_str());
                components.chain(providers)
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}
