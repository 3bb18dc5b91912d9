//! Lattice state kept in JetStream KV, so it outlives any one host: links
//! and labels and claims in `LATTICEDATA_{lattice}`, named config in
//! `CONFIGDATA_{lattice}`. Every host loads both buckets at start-up and then
//! watches them, so a link put through any host (or written by a host that
//! has since died) routes calls everywhere.
//!
//! Keys: `link.{source}.{name}.{namespace}.{package}`, `labels.{host}`,
//! `claims.{subject}`; config under its own name. Ids never contain dots
//! (the lattice crate refuses them), so keys cannot collide.
//!
//! Every reload of the link table is compared with the table it replaces,
//! and the differences go out as numbered [`LinkNotice`]s to whoever
//! subscribed (the provider supervisor, which forwards them to provider
//! processes). Diffing rather than reading watch entries means a change
//! made while the watch was down is still reported, and a deleted link is
//! reported with its full content. The numbers let a caller wait until a
//! subscriber has handled every change made so far.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::broadcast;
use trellis_lattice::Link;
use trellis_lattice::client::Replicas;
use trellis_lattice::config::{self, NamedConfig};
use trellis_lattice::ctl::{ClaimsEntry, DeleteInterfaceLinkDefinitionRequest};
use trellis_lattice::secret::{self, SecretRef, SecretRefs};
use trellis_lattice::subject::Subjects;

use crate::HostError;
use crate::imports::LinkTable;

const LINK_PREFIX: &str = "link.";
const LABELS_PREFIX: &str = "labels.";
const CLAIMS_PREFIX: &str = "claims.";
/// Link changes not yet taken by a slow subscriber before it misses some.
const LINK_CHANGE_BACKLOG: usize = 256;

/// The two buckets, plus the in-memory copy of the links that routes calls.
#[derive(Clone)]
pub struct LatticeState {
    data: kv::Store,
    config: kv::Store,
    links: LinkTable,
    link_changes: broadcast::Sender<LinkNotice>,
    /// How many link changes have been sent; only changed while the link
    /// table is locked for writing, so numbers follow the table's order.
    link_changes_sent: Arc<AtomicU64>,
}

/// A link change and its number: the first change is 1, and each one
/// after counts up by one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkNotice {
    /// The change's number.
    pub seq: u64,
    /// What changed.
    pub change: LinkChange,
}

/// A link that appeared, changed or went away in lattice state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkChange {
    /// The link is new, or replaced the one in its slot.
    Put(Link),
    /// The link is gone (deleted, or replaced by one with another target).
    Deleted(Link),
}

/// What changed from `old` to `new`, slot by slot. A slot whose target
/// changed reports the old link deleted before the new one put, so the old
/// target hears that it lost the link.
pub fn diff_links(old: &[Link], new: &[Link]) -> Vec<LinkChange> {
    let slot = |l: &Link| {
        (
            l.source_id.clone(),
            l.name.clone(),
            l.wit_namespace.clone(),
            l.wit_package.clone(),
        )
    };
    let old_by_slot: BTreeMap<_, &Link> = old.iter().map(|l| (slot(l), l)).collect();
    let new_by_slot: BTreeMap<_, &Link> = new.iter().map(|l| (slot(l), l)).collect();
    let mut changes = Vec::new();
    for (key, before) in &old_by_slot {
        match new_by_slot.get(key) {
            None => changes.push(LinkChange::Deleted((*before).clone())),
            Some(after) if after.target != before.target => {
                changes.push(LinkChange::Deleted((*before).clone()));
            }
            Some(_) => {}
        }
    }
    for (key, after) in &new_by_slot {
        if old_by_slot.get(key) != Some(after) {
            changes.push(LinkChange::Put((*after).clone()));
        }
    }
    changes
}

/// How long a write to lattice state is retried: when the server leading
/// a bucket's stream dies, the others elect a new leader within seconds,
/// and writes in between find no stream.
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the write `op` until it succeeds or [`WRITE_WAIT`] passes. Every
/// write here sets a key to a whole value (or deletes it), so doing one
/// twice is harmless.
async fn retrying<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    mut op: impl FnMut() -> F,
) -> Result<T, HostError> {
    let started = std::time::Instant::now();
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(err) if started.elapsed() < WRITE_WAIT => {
                tracing::debug!(error = %err, "a lattice state write failed; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Err(err) => return Err(HostError::state(err)),
        }
    }
}

async fn put(store: &kv::Store, key: String, value: Vec<u8>) -> Result<(), HostError> {
    let value = bytes::Bytes::from(value);
    retrying(|| store.put(key.as_str(), value.clone()))
        .await
        .map(drop)
}

fn link_key(source: &str, name: &str, namespace: &str, package: &str) -> String {
    format!("{LINK_PREFIX}{source}.{name}.{namespace}.{package}")
}

/// Opens a KV bucket through the lattice crate's shared helper, which
/// works around nats-server 2.9's JetStream account info.
async fn open_bucket(
    js: &jetstream::Context,
    bucket: String,
    replicas: Replicas,
) -> Result<kv::Store, HostError> {
    trellis_lattice::client::open_kv_bucket(js, &bucket, replicas)
        .await
        .map_err(|e| HostError::State(e.to_string()))
}

impl LatticeState {
    /// Opens (creating if needed, with `replicas`) the lattice's buckets
    /// and loads the links.
    pub async fn open(
        js: &jetstream::Context,
        subjects: &Subjects,
        replicas: Replicas,
    ) -> Result<Self, HostError> {
        let data = open_bucket(js, subjects.lattice_data_bucket(), replicas).await?;
        let config = open_bucket(js, subjects.config_data_bucket(), replicas).await?;
        let state = LatticeState {
            data,
            config,
            links: Arc::new(RwLock::new(Vec::new())),
            link_changes: broadcast::channel(LINK_CHANGE_BACKLOG).0,
            link_changes_sent: Arc::new(AtomicU64::new(0)),
        };
        state.reload_links().await?;
        Ok(state)
    }

    /// The shared link table that import routing reads.
    pub fn link_table(&self) -> LinkTable {
        Arc::clone(&self.links)
    }

    /// Every link in the bucket, read now.
    pub async fn read_links(&self) -> Result<Vec<Link>, HostError> {
        let mut links = Vec::new();
        for (_, value) in self.read_prefix(&self.data, LINK_PREFIX).await? {
            match serde_json::from_slice::<Link>(&value) {
                Ok(link) => links.push(link),
                Err(err) => {
                    tracing::warn!(error = %err, "skipping an unreadable link in lattice state")
                }
            }
        }
        links.sort_by(|a, b| {
            (&a.source_id, &a.name, &a.wit_namespace, &a.wit_package).cmp(&(
                &b.source_id,
                &b.name,
                &b.wit_namespace,
                &b.wit_package,
            ))
        });
        Ok(links)
    }

    /// Every link change from now on (see the module docs), and the number
    /// of the last change before them.
    pub fn subscribe_link_changes(&self) -> (broadcast::Receiver<LinkNotice>, u64) {
        // Under the table lock, so no change falls between the two.
        let _table = self.links.write().unwrap_or_else(|p| p.into_inner());
        (self.link_changes.subscribe(), self.link_changes_sent())
    }

    /// The number of the last link change sent.
    pub fn link_changes_sent(&self) -> u64 {
        self.link_changes_sent.load(Ordering::SeqCst)
    }

    /// The links whose source or target is `id`.
    pub fn links_involving(&self, id: &str) -> Vec<Link> {
        let links = self.links.read().unwrap_or_else(|p| p.into_inner());
        links
            .iter()
            .filter(|l| l.source_id == id || l.target == id)
            .cloned()
            .collect()
    }

    async fn reload_links(&self) -> Result<(), HostError> {
        let links = self.read_links().await?;
        let mut table = self.links.write().unwrap_or_else(|p| p.into_inner());
        for change in diff_links(&table, &links) {
            let seq = self.link_changes_sent.fetch_add(1, Ordering::SeqCst) + 1;
            // No subscriber is not an error: nothing needs to hear of it.
            let _ = self.link_changes.send(LinkNotice { seq, change });
        }
        *table = links;
        Ok(())
    }

    async fn read_prefix(
        &self,
        store: &kv::Store,
        prefix: &str,
    ) -> Result<Vec<(String, Bytes)>, HostError> {
        let mut keys = match store.keys().await {
            Ok(keys) => keys.boxed(),
            Err(err) => return Err(HostError::state(err)),
        };
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(HostError::state)?;
            if !key.starts_with(prefix) {
                continue;
            }
            if let Some(value) = store.get(&key).await.map_err(HostError::state)? {
                out.push((key, value));
            }
        }
        Ok(out)
    }

    /// Stores a link, replacing any with the same source, name and package.
    pub async fn put_link(&self, link: &Link) -> Result<(), HostError> {
        link.validate()?;
        let key = link_key(
            &link.source_id,
            &link.name,
            &link.wit_namespace,
            &link.wit_package,
        );
        let value = serde_json::to_vec(link).map_err(HostError::state)?;
        put(&self.data, key, value).await?;
        self.reload_links().await
    }

    /// Deletes a link; returns it if it existed.
    pub async fn delete_link(
        &self,
        request: &DeleteInterfaceLinkDefinitionRequest,
    ) -> Result<Option<Link>, HostError> {
        let key = link_key(
            &request.source_id,
            &request.name,
            &request.wit_namespace,
            &request.wit_package,
        );
        let existing = self.data.get(&key).await.map_err(HostError::state)?;
        let existing = existing.and_then(|v| serde_json::from_slice::<Link>(&v).ok());
        if existing.is_some() {
            retrying(|| self.data.delete(&key)).await?;
        }
        self.reload_links().await?;
        Ok(existing)
    }

    /// Stores named config.
    pub async fn put_config(&self, name: &str, config: &NamedConfig) -> Result<(), HostError> {
        let value = serde_json::to_vec(config).map_err(HostError::state)?;
        put(&self.config, name.to_owned(), value).await
    }

    /// Reads named config.
    pub async fn get_config(&self, name: &str) -> Result<Option<NamedConfig>, HostError> {
        let Some(value) = self.config.get(name).await.map_err(HostError::state)? else {
            return Ok(None);
        };
        serde_json::from_slice(&value)
            .map(Some)
            .map_err(HostError::state)
    }

    /// The named configs `names` merged, right-most winning. A name with no
    /// config contributes nothing: config may be put after the thing that
    /// reads it, and the reader then runs with what exists. Secret
    /// references among them are left out: they are read by
    /// [`LatticeState::resolve_secrets`], never as config.
    pub async fn resolve_config(&self, names: &[String]) -> Result<NamedConfig, HostError> {
        let mut found = Vec::with_capacity(names.len());
        for name in names.iter().filter(|n| !secret::is_reference(n)) {
            match self.get_config(name).await? {
                Some(values) => found.push(values),
                None => tracing::warn!(config = %name, "named config does not exist; using none"),
            }
        }
        Ok(config::merge(&found))
    }

    /// The secret references among `names`, by the name they grant. One
    /// that does not exist or does not parse grants nothing, and says so
    /// in the log.
    pub async fn resolve_secrets(&self, names: &[String]) -> Result<SecretRefs, HostError> {
        let mut refs = SecretRefs::new();
        for name in names.iter().filter(|n| secret::is_reference(n)) {
            let Some(config) = self.get_config(name).await? else {
                tracing::warn!(reference = %name, "secret reference does not exist; granting nothing by it");
                continue;
            };
            match SecretRef::from_config(name, &config) {
                Ok(reference) => {
                    refs.insert(reference.name.clone(), reference);
                }
                Err(err) => tracing::warn!(error = %err, "secret reference is ignored"),
            }
        }
        Ok(refs)
    }

    /// Deletes named config; says whether it existed.
    pub async fn delete_config(&self, name: &str) -> Result<bool, HostError> {
        let existed = self
            .config
            .get(name)
            .await
            .map_err(HostError::state)?
            .is_some();
        if existed {
            retrying(|| self.config.delete(name)).await?;
        }
        Ok(existed)
    }

    /// The names of configs put or deleted from now on, through any host,
    /// until the watch breaks (the stream then ends).
    pub async fn config_changes(
        &self,
    ) -> Result<impl futures::Stream<Item = String> + use<>, HostError> {
        let watch = self.config.watch(">").await.map_err(HostError::state)?;
        Ok(watch
            .take_while(|entry| std::future::ready(entry.is_ok()))
            .filter_map(|entry| std::future::ready(entry.ok().map(|entry| entry.key))))
    }

    /// The labels stored for `host_id` (set by `label.put` before a restart).
    pub async fn labels(&self, host_id: &str) -> Result<BTreeMap<String, String>, HostError> {
        let key = format!("{LABELS_PREFIX}{host_id}");
        match self.data.get(&key).await.map_err(HostError::state)? {
            Some(value) => serde_json::from_slice(&value).map_err(HostError::state),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Stores the operator-set labels of `host_id`.
    pub async fn put_labels(
        &self,
        host_id: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), HostError> {
        let value = serde_json::to_vec(labels).map_err(HostError::state)?;
        put(&self.data, format!("{LABELS_PREFIX}{host_id}"), value).await
    }

    /// Records the claims of something that runs on the lattice.
    pub async fn put_claims(&self, subject: &str, claims: &ClaimsEntry) -> Result<(), HostError> {
        let value = serde_json::to_vec(claims).map_err(HostError::state)?;
        put(&self.data, format!("{CLAIMS_PREFIX}{subject}"), value).await
    }

    /// Every claims record on the lattice.
    pub async fn all_claims(&self) -> Result<Vec<ClaimsEntry>, HostError> {
        let mut out = Vec::new();
        for (_, value) in self.read_prefix(&self.data, CLAIMS_PREFIX).await? {
            if let Ok(entry) = serde_json::from_slice(&value) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Keeps the link table in step with the bucket until the task is
    /// dropped: any host's `link.put` reaches every host.
    pub async fn watch_links(self) {
        loop {
            let mut watch = match self.data.watch(format!("{LINK_PREFIX}>")).await {
                Ok(watch) => watch,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot watch links; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Changes made while the watch was down are picked up here.
            if let Err(err) = self.reload_links().await {
                tracing::warn!(error = %err, "reloading links failed");
            }
            while let Some(entry) = watch.next().await {
                if entry.is_err() {
                    break;
                }
                if let Err(err) = self.reload_links().await {
                    tracing::warn!(error = %err, "reloading links failed");
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(source: &str, target: &str, config: &[&str]) -> Link {
        Link {
            source_id: source.into(),
            target: target.into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: vec!["store".into()],
            target_config: config.iter().map(|c| (*c).to_owned()).collect(),
            ..Link::default()
        }
    }

    #[test]
    fn an_unchanged_table_reports_nothing() {
        let links = [link("counter", "kv", &[])];
        assert!(diff_links(&links, &links).is_empty());
    }

    #[test]
    fn new_and_removed_links_are_reported() {
        let old = [link("counter", "kv", &[])];
        let new = [link("echo", "kv", &[])];
        assert_eq!(
            diff_links(&old, &new),
            [
                LinkChange::Deleted(link("counter", "kv", &[])),
                LinkChange::Put(link("echo", "kv", &[])),
            ]
        );
    }

    #[test]
    fn a_changed_config_is_a_put_only() {
        let old = [link("counter", "kv", &["a"])];
        let new = [link("counter", "kv", &["b"])];
        assert_eq!(
            diff_links(&old, &new),
            [LinkChange::Put(link("counter", "kv", &["b"]))]
        );
    }

    #[test]
    fn a_new_target_deletes_the_link_from_the_old_one_first() {
        let old = [link("counter", "kv-sqlite", &[])];
        let new = [link("counter", "kv-redis", &[])];
        assert_eq!(
            diff_links(&old, &new),
            [
                LinkChange::Deleted(link("counter", "kv-sqlite", &[])),
                LinkChange::Put(link("counter", "kv-redis", &[])),
            ]
        );
    }
}
