//! Which wadm acts: a lease in JetStream KV, so that several wadm processes
//! can serve one lattice and exactly one sends commands at a time.
//!
//! The lease is one key (`lease`) in the bucket `wadm_lease_{lattice}`,
//! holding the holder's id and when, by its clock, the lease runs out.
//! Taking it and renewing it are revision-checked writes (`create` when
//! absent, `update` expecting the revision just read), so when two
//! processes race, one write fails and that process stays passive.
//!
//! No decision compares wall clocks, which may disagree. A holder acts
//! for one lease time from when it sent its last successful write, on its
//! own monotonic clock, and renews at a third of it. Another process takes
//! the lease only after it has seen the same revision, unrenewed, for a
//! whole lease time on its own monotonic clock: it first saw that revision
//! after it was written, so the holder's time has run out by then. The
//! price is that a process that starts while a dead holder's record is
//! still there waits one lease time before acting.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use trellis_lattice::client::{Replicas, open_kv_bucket};

use crate::io::LeaseIo;
use crate::store::StoreError;

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
    holder: String,
    ttl: Duration,
    /// Until when this process may act, on its own monotonic clock.
    held_until: Option<Instant>,
    /// Another holder's revision, and since when this process has seen it
    /// unchanged.
    watching: Option<(u64, Instant)>,
}

/// Opens (or makes) the lease bucket of `lattice`, with `replicas` copies.
pub async fn open_bucket(
    js: &jetstream::Context,
    lattice: &str,
    replicas: Replicas,
) -> Result<kv::Store, StoreError> {
    Ok(open_kv_bucket(js, &lease_bucket(lattice), replicas).await?)
}

impl Lease {
    /// A lease for the process named `holder`, lasting `ttl` without
    /// renewal.
    pub fn new(holder: String, ttl: Duration) -> Self {
        Self {
            holder,
            ttl,
            held_until: None,
            watching: None,
        }
    }

    /// This process's id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this process's last write of the lease worked, and a lease
    /// time has not passed since it was sent.
    pub fn is_held(&self) -> bool {
        self.held_until.is_some_and(|until| until > Instant::now())
    }

    /// Whether the lease is held with less than two thirds of its time
    /// left, which is when a holder renews it.
    pub fn needs_renewal(&self) -> bool {
        self.held_until
            .is_none_or(|until| until < Instant::now() + self.ttl * 2 / 3)
    }

    /// Takes the lease if it is free or its holder has not renewed it for
    /// a lease time, or renews it if held; returns whether this process
    /// holds it now.
    pub async fn acquire(&mut self, io: &impl LeaseIo) -> Result<bool, StoreError> {
        // Counted from before the write: the holder's time runs out no
        // later than anyone else's wait for it does.
        let sent = Instant::now();
        let record = LeaseRecord {
            holder: self.holder.clone(),
            expires_at: io.wall_clock() + chrono::Duration::from_std(self.ttl).unwrap_or_default(),
        };
        let value = serde_json::to_vec(&record).map_err(|e| StoreError::Nats {
            action: "encoding the lease".into(),
            message: e.to_string(),
        })?;
        let written = match io.lease_entry().await? {
            None => io.lease_write(value, None).await?,
            Some(entry) => {
                let current: Option<LeaseRecord> = serde_json::from_slice(&entry.value).ok();
                let mine = current.as_ref().is_some_and(|c| c.holder == self.holder);
                if !mine && !self.unchanged_for_a_lease_time(entry.revision) {
                    self.held_until = None;
                    return Ok(false);
                }
                io.lease_write(value, Some(entry.revision)).await?
            }
        };
        let was_held = self.is_held();
        if written {
            if !was_held {
                tracing::info!(holder = %self.holder, "took the wadm lease; this wadm acts now");
            }
            self.held_until = Some(sent + self.ttl);
            self.watching = None;
        } else {
            if was_held {
                tracing::warn!(holder = %self.holder, "lost the wadm lease");
            }
            self.held_until = None;
        }
        Ok(written)
    }

    /// Whether another holder's lease, at `revision`, has been seen
    /// unchanged for a whole lease time on this process's clock. Wall
    /// clocks are not compared: a wadm whose clock runs ahead would
    /// otherwise take a lease that is still held.
    fn unchanged_for_a_lease_time(&mut self, revision: u64) -> bool {
        match self.watching {
            Some((seen, since)) if seen == revision => since.elapsed() >= self.ttl,
            _ => {
                self.watching = Some((revision, Instant::now()));
                false
            }
        }
    }
}
