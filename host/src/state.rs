//! Lattice state kept in JetStream KV, so it outlives any one host: links
//! and labels and claims in `LATTICEDATA_{lattice}`, named config in
//! `CONFIGDATA_{lattice}`. Every host loads both buckets at start-up and then
//! watches them, so a link put through any host (or written by a host that
//! has since died) routes calls everywhere.
//!
//! Keys: `link.{source}.{name}.{namespace}.{package}`, `labels.{host}`,
//! `claims.{subject}`; config under its own name. Ids never contain dots
//! (the lattice crate refuses them), so keys cannot collide.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::StreamExt;
use trellis_lattice::Link;
use trellis_lattice::config::NamedConfig;
use trellis_lattice::ctl::{ClaimsEntry, DeleteInterfaceLinkDefinitionRequest};
use trellis_lattice::subject::Subjects;

use crate::HostError;
use crate::imports::LinkTable;

const LINK_PREFIX: &str = "link.";
const LABELS_PREFIX: &str = "labels.";
const CLAIMS_PREFIX: &str = "claims.";

/// The two buckets, plus the in-memory copy of the links that routes calls.
#[derive(Clone)]
pub struct LatticeState {
    data: kv::Store,
    config: kv::Store,
    links: LinkTable,
}

fn link_key(source: &str, name: &str, namespace: &str, package: &str) -> String {
    format!("{LINK_PREFIX}{source}.{name}.{namespace}.{package}")
}

/// Opens a KV bucket, creating its backing stream when it is missing.
///
/// The stream is created by hand, with the settings a KV bucket has
/// (`KV_{bucket}` on `$KV.{bucket}.>`, one message per key, rollups,
/// direct get), rather than with `create_key_value`: that call first reads
/// the JetStream account info, whose reply from nats-server 2.9 (Debian's)
/// lacks fields async-nats 0.46 requires. Creating an identical stream
/// twice succeeds, so hosts racing here are fine.
async fn open_bucket(js: &jetstream::Context, bucket: String) -> Result<kv::Store, HostError> {
    if let Ok(store) = js.get_key_value(&bucket).await {
        return Ok(store);
    }
    let config = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        discard: jetstream::stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        storage: jetstream::stream::StorageType::File,
        num_replicas: 1,
        ..Default::default()
    };
    js.get_or_create_stream(config).await.map_err(|e| {
        HostError::State(format!(
            "creating bucket {bucket}: {e} (is JetStream enabled on the NATS server? start it with -js)"
        ))
    })?;
    js.get_key_value(&bucket)
        .await
        .map_err(|e| HostError::State(format!("opening bucket {bucket}: {e}")))
}

impl LatticeState {
    /// Opens (creating if needed) the lattice's buckets and loads the links.
    pub async fn open(js: &jetstream::Context, subjects: &Subjects) -> Result<Self, HostError> {
        let data = open_bucket(js, subjects.lattice_data_bucket()).await?;
        let config = open_bucket(js, subjects.config_data_bucket()).await?;
        let state = LatticeState {
            data,
            config,
            links: Arc::new(RwLock::new(Vec::new())),
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

    async fn reload_links(&self) -> Result<(), HostError> {
        let links = self.read_links().await?;
        *self.links.write().unwrap_or_else(|p| p.into_inner()) = links;
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
        self.data
            .put(key, value.into())
            .await
            .map_err(HostError::state)?;
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
            self.data.delete(&key).await.map_err(HostError::state)?;
        }
        self.reload_links().await?;
        Ok(existing)
    }

    /// Stores named config.
    pub async fn put_config(&self, name: &str, config: &NamedConfig) -> Result<(), HostError> {
        let value = serde_json::to_vec(config).map_err(HostError::state)?;
        self.config
            .put(name, value.into())
            .await
            .map_err(HostError::state)?;
        Ok(())
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

    /// Deletes named config; says whether it existed.
    pub async fn delete_config(&self, name: &str) -> Result<bool, HostError> {
        let existed = self
            .config
            .get(name)
            .await
            .map_err(HostError::state)?
            .is_some();
        if existed {
            self.config.delete(name).await.map_err(HostError::state)?;
        }
        Ok(existed)
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
        self.data
            .put(format!("{LABELS_PREFIX}{host_id}"), value.into())
            .await
            .map_err(HostError::state)?;
        Ok(())
    }

    /// Records the claims of something that runs on the lattice.
    pub async fn put_claims(&self, subject: &str, claims: &ClaimsEntry) -> Result<(), HostError> {
        let value = serde_json::to_vec(claims).map_err(HostError::state)?;
        self.data
            .put(format!("{CLAIMS_PREFIX}{subject}"), value.into())
            .await
            .map_err(HostError::state)?;
        Ok(())
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
