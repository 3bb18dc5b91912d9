//! Which wadm acts: a lease in JetStream KV, so that several wadm processes
//! can serve one lattice and exactly one sends commands at a time.
//!
//! The lease is one key (`lease`) in the bucket `wadm_lease_{lattice}`,
//! holding the holder's id and when the lease runs out. Taking it and
//! renewing it are revision-checked writes (`create` when absent, `update`
//! expecting the revision just read), so when two processes race, one
//! write fails and that process stays passive. A holder renews well before
//! expiry; when it dies, another process takes the lease once it has
//! expired. Expiry compares wall clocks, so the processes' clocks must
//! roughly agree (they do on one machine, and NTP keeps hosts within far
//! less than a lease).

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use trellis_lattice::client::{Replicas, open_kv_bucket};

use crate::store::StoreError;

const LEASE_KEY: &str = "lease";

/// The lease bucket's name for `lattice`.
pub fn lease_bucket(lattice: &str) -> String {
    format!("wadm_lease_{lattice}")
}

/// The stored lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Who holds it.
    pub holder: String,
    /// When it runs out unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// One process's handle on the lattice's lease.
pub struct Lease {
    bucket: kv::Store,
    holder: String,
    ttl: Duration,
    held_until: Option<DateTime<Utc>>,
}

impl Lease {
    /// Opens the lease bucket; `holder` names this process, `ttl` is how
    /// long a lease lasts without renewal, `replicas` how many copies the
    /// bucket keeps.
    pub async fn open(
        js: &jetstream::Context,
        lattice: &str,
        holder: String,
        ttl: Duration,
        replicas: Replicas,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            bucket: open_kv_bucket(js, &lease_bucket(lattice), replicas).await?,
            holder,
            ttl,
            held_until: None,
        })
    }

    /// This process's id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this process held the lease at its last acquire, and it has
    /// not run out since.
    pub fn is_held(&self) -> bool {
        self.held_until.is_some_and(|until| until > Utc::now())
    }

    /// Whether the lease is held with less than two thirds of its time
    /// left, which is when a holder renews it.
    pub fn needs_renewal(&self) -> bool {
        let margin = chrono::Duration::from_std(self.ttl * 2 / 3).unwrap_or_default();
        self.held_until
            .is_none_or(|until| until - margin < Utc::now())
    }

    /// Takes the lease if it is free or expired, or renews it if held;
    /// returns whether this process holds it now.
    pub async fn acquire(&mut self) -> Result<bool, StoreError> {
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(self.ttl).unwrap_or_default();
        let record = LeaseRecord {
            holder: self.holder.clone(),
            expires_at,
        };
        let value = serde_json::to_vec(&record)
            .map_err(|e| nats_error("encoding the lease", e))?
            .into();
        let entry = self
            .bucket
            .entry(LEASE_KEY)
            .await
            .map_err(|e| nats_error("reading the lease", e))?;
        let written = match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let current: Option<LeaseRecord> = serde_json::from_slice(&entry.value).ok();
                let free = current
                    .as_ref()
                    .is_none_or(|c| c.holder == self.holder || c.expires_at < now);
                if !free {
                    self.held_until = None;
                    return Ok(false);
                }
                self.bucket
                    .update(LEASE_KEY, value, entry.revision)
                    .await
                    .is_ok()
            }
            _ => self.bucket.create(LEASE_KEY, value).await.is_ok(),
        };
        if written {
            if !self.is_held() {
                tracing::info!(holder = %self.holder, "took the wadm lease; this wadm acts now");
            }
            self.held_until = Some(expires_at);
        } else {
            if self.is_held() {
                tracing::warn!(holder = %self.holder, "lost the wadm lease");
            }
            self.held_until = None;
        }
        Ok(written)
    }
}

fn nats_error(action: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Nats {
        action: action.to_owned(),
        message: err.to_string(),
    }
}
