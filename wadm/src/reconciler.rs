//! The reconcile loop: observe the lattice, plan every app, send commands.
//!
//! Each pass builds an [`ObservedLattice`] (host inventories, links, the
//! config bucket), plans every stored app (deployed apps with [`plan`],
//! undeployed or deleted ones with [`plan_undeploy`], found through the
//! store and through ownership annotations in the lattice), sends the
//! commands in plan order and writes each deployed app's status. Passes
//! run every resync interval, soon after any lattice event that may
//! change the picture, and as soon as a host passes the host timeout.
//!
//! - Hosts: the last inventory of every host is kept with when the host was
//!   last heard from (an inventory reply, `host_started`, `host_heartbeat`,
//!   which carries the inventory; `host_stopped` marks it stopped).
//!   A host not heard from within the host timeout is planned as not alive,
//!   so its work is placed elsewhere; one slow reply does not do that.
//! - In flight: a command that was accepted is not sent again while it
//!   still appears in the plans (the host has not finished it) until the
//!   command timeout passes. A command that no longer appears is done; one
//!   that a host reports failed (`component_scale_failed`,
//!   `provider_start_failed`) becomes a failure.
//! - Failures: a refused command waits before it is retried, doubling up
//!   to [`MAX_BACKOFF`]; while it waits, its app is `failed` with the reason.
//! - Only the holder of the [`Lease`] runs passes; the others keep their
//!   host picture current and take over when the lease expires.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use futures::{FutureExt, StreamExt};
use thiserror::Error;
use trellis_lattice::client::{ClientError, CtlClient, Replicas};
use trellis_lattice::config::NamedConfig;
use trellis_lattice::ctl::{ComponentDescription, HostInventory, ProviderDescription};
use trellis_lattice::{CloudEvent, EventKind, LatticeEvent};

use crate::io::{LatticeIo, NatsIo};
use crate::lease::Lease;
use crate::observe::{LatticeReader, OBSERVE_TIMEOUT};
use crate::planner::{Command, DataHome, ObservedHost, ObservedLattice, Plan, plan, plan_undeploy};
use crate::store::{AppStatus, DeployStatus, ManifestStore, StoreError};

/// The longest wait before a failed command is tried again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the loop wakes to renew the lease and check for work.
const TICK: Duration = Duration::from_millis(500);

/// Why the loop stopped or a pass failed.
#[derive(Debug, Error)]
pub enum ReconcileError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The control interface failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The event subscription ended (the NATS connection closed).
    #[error("the lattice event subscription ended; the NATS connection is gone")]
    EventsEnded,
}

/// Timings of the loop.
#[derive(Clone, Debug)]
pub struct ReconcilerSettings {
    /// A host not heard from for this long is treated as gone.
    pub host_timeout: Duration,
    /// Passes run at least this often.
    pub resync: Duration,
    /// How long the lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How long an accepted command counts as in flight.
    pub command_timeout: Duration,
    /// Copies of wadm's buckets (manifests, status, lease) JetStream keeps.
    pub replicas: Replicas,
    /// The JetStream domain holding them, if not the server's own.
    pub js_domain: Option<String>,
    /// Where passes, commands and app status are counted.
    pub metrics: std::sync::Arc<crate::metrics::WadmMetrics>,
}

impl Default for ReconcilerSettings {
    fn default() -> Self {
        Self {
            host_timeout: Duration::from_secs(60),
            resync: Duration::from_secs(10),
            lease_ttl: Duration::from_secs(15),
            command_timeout: Duration::from_secs(30),
            replicas: Replicas::Auto,
            js_domain: None,
            metrics: std::sync::Arc::default(),
        }
    }
}

/// Serves the API and runs the reconcile loop for `lattice` until either
/// stops; what the `wadm` binary and `wash up` run.
pub async fn run(
    nats: async_nats::Client,
    lattice: &str,
    settings: ReconcilerSettings,
) -> Result<(), ReconcileError> {
    let mut js = trellis_lattice::client::jetstream(nats.clone(), settings.js_domain.as_deref());
    // A read of the store that was in flight when wadm's NATS server died
    // is lost with the connection; give up on it soon and try again.
    js.set_timeout(OBSERVE_TIMEOUT);
    let store = ManifestStore::open(&js, lattice, settings.replicas).await?;
    // A Trellis host replies once the work is done (a component compiled,
    // a provider healthy or stopped), which takes longer than the client's
    // default request timeout on a loaded machine.
    let ctl = CtlClient::new(nats.clone(), lattice)
        .map_err(ClientError::from)?
        .with_timeout(settings.command_timeout);
    let holder = format!("wadm-{}", uuid::Uuid::new_v4());
    let reader = LatticeReader::open(&ctl, &js, store.clone(), settings.replicas).await?;
    let lease_bucket = crate::lease::open_bucket(&js, lattice, settings.replicas).await?;
    let io = NatsIo::new(ctl, reader.clone(), store.clone(), lease_bucket);
    let reconciler = Reconciler::new(io, settings, holder);
    let api_nats = nats.clone();
    let api_lattice = lattice.to_owned();
    let api =
        tokio::spawn(async move { crate::api::serve(api_nats, &api_lattice, store, reader).await });
    let result = reconciler.run().await;
    api.abort();
    result
}

/// A host as last heard from.
///
/// Times here are this process's. An event says the host ran when it was
/// received; what it says the host runs is taken as of the earliest it can
/// have been sent (for events that queued behind a turn, when the turn
/// began), so that it never overrides the effect of a command the host
/// answered during that turn. Either way a host is never planned as gone
/// while it may still run its work. Event times, on the host's clock, are
/// only compared with the same host's other events, to drop stale or
/// repeated ones: clocks of different machines need not agree.
struct SeenHost {
    inventory: HostInventory,
    /// When `inventory` was known true.
    inventory_at: Instant,
    last_seen: Instant,
    /// The newest event time heard from it, on its own clock.
    newest_event: Option<DateTime<Utc>>,
    /// When it was heard to stop, unless heard from since.
    stopped_at: Option<Instant>,
    /// Whether the last pass planned it as alive.
    planned_alive: bool,
}

impl SeenHost {
    fn new(inventory: HostInventory, at: Instant) -> Self {
        Self {
            inventory,
            inventory_at: at,
            last_seen: at,
            newest_event: None,
            stopped_at: None,
            planned_alive: false,
        }
    }

    /// Whether an event sent at `time` (its clock) is newer than every
    /// other heard from it; it becomes the newest.
    fn news(&mut self, time: Option<DateTime<Utc>>) -> bool {
        match (time, self.newest_event) {
            (Some(time), Some(newest)) if time <= newest => false,
            (Some(time), _) => {
                self.newest_event = Some(time);
                true
            }
            (None, _) => true,
        }
    }

    /// Takes `inventory`, true as of `at`, unless what is known is newer.
    fn heard(&mut self, inventory: HostInventory, at: Instant) {
        self.take(inventory, at);
        self.seen(at);
    }

    fn take(&mut self, inventory: HostInventory, at: Instant) {
        if at >= self.inventory_at {
            self.inventory = inventory;
            self.inventory_at = at;
        }
    }

    /// Notes that it was running at `at`.
    fn seen(&mut self, at: Instant) {
        if self.stopped_at.is_some_and(|stopped| at < stopped) {
            return;
        }
        self.stopped_at = None;
        if at > self.last_seen {
            self.last_seen = at;
        }
    }

    /// Whether it counts as running, `host_timeout` being how long it may
    /// stay silent. Silence counts only up to `listened_until`, when the
    /// events were last taken: a heartbeat still waiting to be read is
    /// not silence.
    fn alive(&self, host_timeout: Duration, listened_until: Instant) -> bool {
        self.stopped_at.is_none()
            && listened_until.saturating_duration_since(self.last_seen) < host_timeout
    }
}

/// A command a host accepted and has not finished.
struct InFlight {
    until: Instant,
    /// The host and component or provider id that failure events name.
    target: Option<(String, String)>,
}

/// A command that was refused, and when to try it again.
struct Failure {
    attempts: u32,
    retry_at: Instant,
    error: String,
}

/// The last successful read of each part of the picture.
#[derive(Default)]
struct LastRead {
    apps: Option<Vec<crate::store::StoredApp>>,
    links: Option<Vec<trellis_lattice::Link>>,
    configs: Option<BTreeMap<String, NamedConfig>>,
    data_homes: Option<BTreeMap<String, DataHome>>,
}

/// How long a read may take when an earlier one worked: planning from
/// that one beats waiting out a bucket whose stream leader died, which
/// costs every recovery the wait.
const REREAD_TIMEOUT: Duration = Duration::from_millis(750);

/// How long a read may take: [`REREAD_TIMEOUT`] when `last` holds an
/// earlier read to fall back on, else [`OBSERVE_TIMEOUT`].
fn read_limit<T>(last: &Option<T>) -> Duration {
    if last.is_some() {
        REREAD_TIMEOUT
    } else {
        OBSERVE_TIMEOUT
    }
}

/// `read`, given `limit`: a read of a bucket whose stream is electing a
/// leader can otherwise take many request timeouts in a row.
async fn bounded<T, E: Into<ReconcileError>>(
    what: &str,
    limit: Duration,
    read: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ReconcileError> {
    match tokio::time::timeout(limit, read).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(ReconcileError::Store(StoreError::Nats {
            action: format!("reading {what}"),
            message: format!("no answer within {limit:?}"),
        })),
    }
}

/// `read`, remembered in `last` when it worked; when it failed, what
/// `last` holds, if anything, and `stale` is set.
fn fall_back<T: Clone>(
    read: Result<T, ReconcileError>,
    last: &mut Option<T>,
    stale: &mut bool,
    what: &str,
) -> Result<T, ReconcileError> {
    match read {
        Ok(value) => {
            *last = Some(value.clone());
            Ok(value)
        }
        Err(err) => match last {
            Some(value) => {
                tracing::warn!(error = %err, "cannot read {what} now; planning with the last read");
                *stale = true;
                Ok(value.clone())
            }
            None => Err(err),
        },
    }
}

/// The loop's state, over the world `io` reaches.
pub struct Reconciler<Io> {
    last_read: LastRead,
    io: Io,
    lease: Lease,
    settings: ReconcilerSettings,
    hosts: BTreeMap<String, SeenHost>,
    in_flight: HashMap<String, InFlight>,
    failures: HashMap<String, Failure>,
    /// Whether something happened that may change a plan.
    dirty: bool,
    last_pass: Option<Instant>,
    /// When the events were last all taken, at the start of a turn.
    listened_until: Instant,
    /// Whether the last pass planned from an earlier read of some part.
    stale: bool,
    passes: u32,
}

impl Reconciler<NatsIo> {
    /// Runs until the NATS connection closes.
    pub async fn run(mut self) -> Result<(), ReconcileError> {
        let mut events = self.io.ctl().subscribe_events().await?;
        // A deploy, an undeploy or a new version plans at once. Should the
        // watch end, passes still run on events and every resync.
        let mut changes = match self.io.store().changes().await {
            Ok(changes) => Some(changes),
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch the manifests; deploys wait for the next pass");
                None
            }
        };
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tracing::info!(
            lattice = self.io.ctl().lattice(),
            holder = self.lease.holder(),
            "wadm started"
        );
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => self.note_event(&event, None),
                    None => return Err(ReconcileError::EventsEnded),
                },
                change = next_change(&mut changes) => match change {
                    Some(()) => self.changed(),
                    None => {
                        tracing::warn!("the manifest watch ended; deploys wait for the next pass");
                        changes = None;
                    }
                },
                _ = tick.tick() => {}
            }
            // Take every event already waiting before planning.
            while let Some(waiting) = events.next().now_or_never() {
                match waiting {
                    Some(event) => self.note_event(&event, None),
                    None => return Err(ReconcileError::EventsEnded),
                }
            }
            // A pass takes a second or more; what the events that queued
            // up behind it say may be older than what the pass learned.
            let began = Instant::now();
            self.turn().await;
            while let Some(waiting) = events.next().now_or_never() {
                match waiting {
                    Some(event) => self.note_event(&event, Some(began)),
                    None => return Err(ReconcileError::EventsEnded),
                }
            }
        }
    }
}

impl<Io: LatticeIo> Reconciler<Io> {
    /// A reconciler over `io` that keeps its lease under the name `holder`.
    pub fn new(io: Io, settings: ReconcilerSettings, holder: String) -> Self {
        Self {
            last_read: LastRead::default(),
            io,
            lease: Lease::new(holder, settings.lease_ttl),
            settings,
            hosts: BTreeMap::new(),
            in_flight: HashMap::new(),
            failures: HashMap::new(),
            dirty: true,
            last_pass: None,
            listened_until: Instant::now(),
            stale: false,
            passes: 0,
        }
    }

    /// The name this wadm holds the lease under.
    pub fn holder(&self) -> &str {
        self.lease.holder()
    }

    /// How many passes this wadm has run.
    pub fn passes(&self) -> u32 {
        self.passes
    }

    /// The world this reconciler acts on.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// Whether this wadm holds the lease now, and so may act.
    pub fn is_acting(&self) -> bool {
        self.lease.is_held()
    }

    /// Notes that a manifest changed: the next turn plans.
    pub fn changed(&mut self) {
        self.dirty = true;
    }

    /// What the loop does each time it wakes (an event, a manifest change,
    /// a tick), once it has noted every event received so far: renew or
    /// take the lease, and, when it holds the lease and something may have
    /// changed, run a pass.
    pub async fn turn(&mut self) {
        self.listened_until = Instant::now();
        if self.lease.needs_renewal()
            && let Err(err) = self.lease.acquire(&self.io).await
        {
            tracing::warn!(error = %err, "could not take or renew the wadm lease");
        }
        if !self.is_acting() {
            return;
        }
        let due = self
            .last_pass
            .is_none_or(|at| at.elapsed() >= self.settings.resync);
        // A host killed outright sends no event: plan as soon as it
        // passes the host timeout, not at the next resync.
        if self.dirty || due || self.a_host_just_expired() {
            self.dirty = false;
            if let Err(err) = self.pass().await {
                tracing::warn!(error = %err, "reconcile pass failed; trying again");
                self.dirty = true;
            }
            // A pass from an earlier read is made again at the next turn,
            // with what the lattice holds by then.
            self.dirty |= self.stale;
            self.last_pass = Some(Instant::now());
        }
    }

    /// Whether a host that the last pass planned as alive has since gone
    /// past the host timeout.
    fn a_host_just_expired(&self) -> bool {
        self.hosts.values().any(|host| {
            host.planned_alive && !host.alive(self.settings.host_timeout, self.listened_until)
        })
    }

    /// Updates the host picture from a lattice event received now, and
    /// notes whether the event may change what the planner would do.
    /// `queued_since` is when the turn it waited behind began, if it did.
    pub fn note_event(&mut self, event: &CloudEvent, queued_since: Option<Instant>) {
        let received = Instant::now();
        let sent = queued_since.unwrap_or(received);
        let Ok(kind) = event.kind() else {
            return;
        };
        match kind {
            // Kept, as stopped, so that a heartbeat it sent before it
            // stopped and delivered after does not bring it back.
            EventKind::HostStopped => {
                if let Some(host) = self.hosts.get_mut(&event.source)
                    && host.news(event.time)
                {
                    host.stopped_at = Some(received);
                }
            }
            // A host that starts (again, under its id) runs nothing yet:
            // what it ran before died with its last process.
            EventKind::HostStarted => {
                if let Some(host) = self.hosts.get_mut(&event.source)
                    && host.news(event.time)
                {
                    host.stopped_at = None;
                    host.inventory.components.clear();
                    host.inventory.providers.clear();
                    host.inventory_at = host.inventory_at.max(sent);
                    host.seen(received);
                    // Nor is anything it accepted before still under way.
                    self.in_flight.retain(|_, flight| {
                        flight
                            .target
                            .as_ref()
                            .is_none_or(|(h, _)| *h != event.source)
                    });
                }
            }
            // Every wadm, acting or not, keeps every host's picture from
            // its heartbeats: one that takes over the lease then knows the
            // hosts whose ping answer misses its first pass, instead of
            // planning as if they were not there and placing their share
            // twice.
            EventKind::HostHeartbeat => {
                if let Ok(LatticeEvent::HostHeartbeat(beat)) = event.parse() {
                    let host = self
                        .hosts
                        .entry(beat.host_id.clone())
                        .or_insert_with(|| SeenHost::new(beat.to_inventory(), sent));
                    if host.news(event.time) {
                        host.stopped_at = None;
                        host.take(beat.to_inventory(), sent);
                        host.seen(received);
                    }
                }
            }
            EventKind::ComponentScaleFailed | EventKind::ProviderStartFailed => {
                self.note_failure(event);
            }
            _ => {}
        }
        self.dirty |= matches!(
            kind,
            EventKind::HostStarted
                | EventKind::HostStopped
                | EventKind::HostHeartbeat
                | EventKind::ComponentScaled
                | EventKind::ComponentScaleFailed
                | EventKind::ProviderStarted
                | EventKind::ProviderStartFailed
                | EventKind::ProviderStopped
                | EventKind::LinkdefSet
                | EventKind::LinkdefDeleted
        );
    }

    /// Turns the in-flight command a failure event is about into a failure,
    /// so it is retried after a backoff rather than at the command timeout.
    fn note_failure(&mut self, event: &CloudEvent) {
        let (host, id, error) = match event.parse() {
            Ok(LatticeEvent::ComponentScaleFailed(f)) => (f.host_id, f.component_id, f.error),
            Ok(LatticeEvent::ProviderStartFailed(f)) => (f.host_id, f.provider_id, f.error),
            _ => return,
        };
        let target = Some((host, id));
        let failed: Vec<String> = self
            .in_flight
            .iter()
            .filter(|(_, flight)| flight.target == target)
            .map(|(key, _)| key.clone())
            .collect();
        for key in failed {
            self.in_flight.remove(&key);
            self.record_failure(key, error.clone());
        }
    }

    fn record_failure(&mut self, key: String, error: String) {
        let attempts = self.failures.get(&key).map_or(0, |f| f.attempts) + 1;
        let backoff = backoff(attempts);
        tracing::warn!(command = %key, error, ?backoff, "command failed");
        self.failures.insert(
            key,
            Failure {
                attempts,
                retry_at: Instant::now() + backoff,
                error,
            },
        );
    }

    /// One observe-plan-act round over every app.
    pub async fn pass(&mut self) -> Result<(), ReconcileError> {
        let began = Instant::now();
        let result = self.pass_once().await;
        self.settings.metrics.pass(began.elapsed());
        result
    }

    async fn pass_once(&mut self) -> Result<(), ReconcileError> {
        self.passes += 1;
        self.settings.metrics.forget_statuses();
        let (lattice, stored) = self.observe().await?;
        let mut planned: Vec<(String, Option<String>, Plan)> = Vec::new();
        let mut known: BTreeSet<String> = BTreeSet::new();
        for app in &stored {
            known.insert(app.name.clone());
            match app.deployed_version() {
                Some(version) => match version.parse() {
                    Ok(manifest) => planned.push((
                        app.name.clone(),
                        Some(version.version.clone()),
                        plan(&manifest, &lattice),
                    )),
                    Err(err) => {
                        let status = AppStatus::now(
                            DeployStatus::Failed,
                            Some(version.version.clone()),
                            vec![format!("the stored manifest no longer validates: {err}")],
                        );
                        self.write_status(&app.name, status).await;
                    }
                },
                None => planned.push((app.name.clone(), None, plan_undeploy(&app.name, &lattice))),
            }
        }
        for app in lattice.owning_apps() {
            if !known.contains(&app) {
                let plan = plan_undeploy(&app, &lattice);
                planned.push((app, None, plan));
            }
        }

        let mut planned_keys = BTreeSet::new();
        for (app, version, plan) in planned {
            let keys: Vec<String> = plan.commands.iter().map(command_key).collect();
            let reasons = self.execute(&app, &plan.commands).await?;
            planned_keys.extend(keys);
            let Some(version) = version else { continue };
            let mut reasons_all = plan.problems.clone();
            reasons_all.extend(reasons);
            let status = if !reasons_all.is_empty() {
                DeployStatus::Failed
            } else if plan.is_empty() && plan.waiting.is_empty() {
                DeployStatus::Deployed
            } else {
                reasons_all.clone_from(&plan.waiting);
                DeployStatus::Reconciling
            };
            self.write_status(&app, AppStatus::now(status, Some(version), reasons_all))
                .await;
        }
        // Commands that no longer appear in any plan are done (or moot).
        self.in_flight.retain(|key, _| planned_keys.contains(key));
        self.failures.retain(|key, _| planned_keys.contains(key));
        Ok(())
    }

    /// Sends the commands not in flight and not waiting after a failure;
    /// returns the reasons the app is failing.
    async fn execute(
        &mut self,
        app: &str,
        commands: &[Command],
    ) -> Result<Vec<String>, ReconcileError> {
        let mut reasons = Vec::new();
        for command in commands {
            let key = command_key(command);
            let now = Instant::now();
            if self.in_flight.get(&key).is_some_and(|f| f.until > now) {
                continue;
            }
            if let Some(failure) = self.failures.get(&key)
                && failure.retry_at > now
            {
                reasons.push(failure_reason(app, command, &failure.error));
                continue;
            }
            if self.lease.needs_renewal() && !self.lease.acquire(&self.io).await? {
                tracing::warn!(app, "lost the wadm lease during a pass; stopping it");
                return Ok(reasons);
            }
            tracing::info!(app, command = %key, "sending");
            let sent = self.io.send(command).await;
            self.settings.metrics.command(command.kind(), sent.is_ok());
            self.expect(command, &sent);
            match sent {
                Ok(()) => {
                    self.failures.remove(&key);
                    let flight = InFlight {
                        until: now + self.settings.command_timeout,
                        target: target_of(command),
                    };
                    self.in_flight.insert(key, flight);
                }
                Err(err) => {
                    reasons.push(failure_reason(app, command, &err.to_string()));
                    self.record_failure(key, err.to_string());
                }
            }
        }
        Ok(reasons)
    }

    /// Brings the host picture up to date with a command just sent. A
    /// host answers once the work is done, so an accepted command is what
    /// it runs now: a pass whose ping misses that host then plans with
    /// this, not with an inventory from before the command (which would
    /// place the same work a second time). A command whose answer was lost
    /// may or may not have happened: it is taken as the larger of the two,
    /// so nothing is placed twice while the truth is unknown.
    fn expect(&mut self, command: &Command, sent: &Result<(), ClientError>) {
        let answer_lost = match sent {
            Ok(()) => false,
            Err(ClientError::Timeout { .. }) => true,
            Err(_) => return,
        };
        let Some(host) = command.host_id().and_then(|id| self.hosts.get_mut(id)) else {
            return;
        };
        let inventory = &mut host.inventory;
        match command {
            Command::ScaleComponent(scale) => {
                let running = inventory
                    .components
                    .iter()
                    .position(|c| c.id == scale.component_id);
                let before = running.map_or(0, |i| inventory.components[i].max_instances);
                let after = if answer_lost {
                    before.max(scale.max_instances)
                } else {
                    scale.max_instances
                };
                match (running, after) {
                    (Some(i), 0) => {
                        inventory.components.remove(i);
                    }
                    (Some(i), count) => {
                        let component = &mut inventory.components[i];
                        component.max_instances = count;
                        if !answer_lost {
                            component.image_ref.clone_from(&scale.component_ref);
                        }
                    }
                    (None, 0) => {}
                    (None, count) => inventory.components.push(ComponentDescription {
                        id: scale.component_id.clone(),
                        image_ref: scale.component_ref.clone(),
                        annotations: scale.annotations.clone(),
                        max_instances: count,
                        ..ComponentDescription::default()
                    }),
                }
            }
            Command::StartProvider(start) => {
                if !inventory
                    .providers
                    .iter()
                    .any(|p| p.id == start.provider_id)
                {
                    inventory.providers.push(ProviderDescription {
                        id: start.provider_id.clone(),
                        image_ref: Some(start.provider_ref.clone()),
                        annotations: start.annotations.clone(),
                        ..ProviderDescription::default()
                    });
                }
            }
            Command::StopProvider(stop) if !answer_lost => {
                inventory.providers.retain(|p| p.id != stop.provider_id);
            }
            _ => return,
        }
        host.inventory_at = host.inventory_at.max(Instant::now());
    }

    /// Records a ping answer, true as of `at`.
    fn heard(&mut self, inventory: HostInventory, at: Instant) {
        match self.hosts.get_mut(&inventory.host_id) {
            Some(host) => host.heard(inventory, at),
            None => {
                let id = inventory.host_id.clone();
                self.hosts.insert(id, SeenHost::new(inventory, at));
            }
        }
    }

    /// Asks every host for its inventory and builds the planner's picture,
    /// with the stored apps.
    async fn observe(
        &mut self,
    ) -> Result<(ObservedLattice, Vec<crate::store::StoredApp>), ReconcileError> {
        let asked = Instant::now();
        for inventory in self.io.inventories().await {
            self.heard(inventory, asked);
        }
        // A host gone for long is forgotten; until then it is kept, not
        // alive, so the planner knows its work is lost.
        let forget_after = self.settings.host_timeout * 10;
        self.hosts
            .retain(|_, host| host.last_seen.elapsed() < forget_after);
        let host_timeout = self.settings.host_timeout;
        let listened_until = self.listened_until;
        let hosts = self
            .hosts
            .iter_mut()
            .map(|(id, seen)| {
                let mut host = ObservedHost::from(seen.inventory.clone());
                host.alive = seen.alive(host_timeout, listened_until);
                seen.planned_alive = host.alive;
                tracing::trace!(
                    host = %id,
                    alive = host.alive,
                    silent = ?seen.last_seen.elapsed(),
                    stopped = seen.stopped_at.is_some(),
                    components = ?host.components.iter().map(|c| (&c.id, c.max_instances)).collect::<Vec<_>>(),
                    "planning with"
                );
                (id.clone(), host)
            })
            .collect::<BTreeMap<_, _>>();
        tracing::debug!(
            holder = self.lease.holder(),
            alive = ?hosts.values().filter(|h| h.alive).map(|h| &h.id).collect::<Vec<_>>(),
            "planning"
        );
        // While JetStream elects a new leader for a bucket (its server
        // died), reads fail for a few seconds; planning goes on from the
        // last good read rather than stopping, and plans again soon. The
        // reads go together, so a pass waits for the slowest, not the sum.
        let last = &self.last_read;
        let (data_homes, links, configs, apps) = tokio::join!(
            bounded(
                "the data homes",
                read_limit(&last.data_homes),
                self.record_data_homes(&hosts)
            ),
            bounded("the links", read_limit(&last.links), self.io.links()),
            bounded(
                "the named config",
                read_limit(&last.configs),
                self.io.configs()
            ),
            bounded("the stored apps", read_limit(&last.apps), self.io.apps()),
        );
        let mut stale = false;
        let last = &mut self.last_read;
        let data_homes = fall_back(
            data_homes,
            &mut last.data_homes,
            &mut stale,
            "the data homes",
        );
        let links = fall_back(links, &mut last.links, &mut stale, "the links");
        let configs = fall_back(configs, &mut last.configs, &mut stale, "the named config");
        let apps = fall_back(apps, &mut last.apps, &mut stale, "the stored apps");
        self.stale = stale;
        let mut lattice = ObservedLattice {
            hosts,
            links: links?,
            configs: configs?,
            data_homes: data_homes?,
            retiring: BTreeSet::new(),
        };
        let apps = apps?;
        lattice.retiring = retiring(&lattice, &apps);
        Ok((lattice, apps))
    }

    /// Reads the recorded homes of providers' local data and brings them
    /// up to date with what alive hosts report: a provider whose data
    /// appeared on a host gets that host as its home; a home that is up
    /// and no longer has the data is forgotten. A home that is down keeps
    /// its record: that is the data wadm must not move away from.
    async fn record_data_homes(
        &self,
        hosts: &BTreeMap<String, ObservedHost>,
    ) -> Result<BTreeMap<String, DataHome>, ReconcileError> {
        let mut homes = self.io.data_homes().await?;
        let has_data = |host: &ObservedHost, id: &str| host.local_data.contains_key(id);
        let emptied: Vec<String> = homes
            .iter()
            .filter(|(id, home)| {
                hosts
                    .get(&home.host_id)
                    .is_some_and(|h| h.alive && !has_data(h, id))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in emptied {
            tracing::info!(provider = %id, "the provider's local data is gone from its home host");
            self.io.delete_data_home(&id).await?;
            homes.remove(&id);
        }
        for host in hosts.values().filter(|h| h.alive) {
            for (id, path) in &host.local_data {
                if homes.contains_key(id) {
                    continue;
                }
                let home = DataHome {
                    host_id: host.id.clone(),
                    path: path.clone(),
                };
                tracing::info!(provider = %id, host = %host.id, path, "recorded where the provider's local data lives");
                self.io.put_data_home(id, &home).await?;
                homes.insert(id.clone(), home);
            }
        }
        Ok(homes)
    }

    /// Writes a status unless it says what the stored one says. A status
    /// that cannot be written now is written at a later pass; the
    /// commands of this one still go out.
    async fn write_status(&self, app: &str, status: AppStatus) {
        self.settings.metrics.status(app, status.status);
        let written = async {
            let current = self.io.status(app).await?;
            let same = current.is_some_and(|c| {
                (c.status, &c.version, &c.reasons)
                    == (status.status, &status.version, &status.reasons)
            });
            if !same {
                tracing::info!(app, status = status.status.as_str(), reasons = ?status.reasons, "status");
                self.io.put_status(app, &status).await?;
            }
            Ok::<(), StoreError>(())
        };
        if let Err(err) = bounded("the app's status", OBSERVE_TIMEOUT, written).await {
            tracing::warn!(app, error = %err, "cannot write the app's status now");
        }
    }
}

/// The next manifest change, or never when there is no watch.
async fn next_change(changes: &mut Option<impl futures::Stream<Item = ()> + Unpin>) -> Option<()> {
    match changes {
        Some(changes) => changes.next().await,
        None => std::future::pending().await,
    }
}

/// Why `app` is failing when `command` failed with `error`: for a new
/// image a host refused, that the rollout halted there and the old image
/// still serves.
fn failure_reason(app: &str, command: &Command, error: &str) -> String {
    match command {
        Command::ScaleComponent(scale) if scale.allow_update => format!(
            "rollout halted: host {} refused {} for `{}`: {error}; the hosts not yet rolled \
             keep serving the old image; `wash app rollback {app}` returns to the version \
             before",
            scale.host_id, scale.component_ref, scale.component_id
        ),
        _ => error.to_owned(),
    }
}

/// Identifies a command: two commands with the same key are the same
/// command.
fn command_key(command: &Command) -> String {
    format!("{command:?}")
}

/// The host and id a failure event about `command` would name.
fn target_of(command: &Command) -> Option<(String, String)> {
    match command {
        Command::ScaleComponent(scale) => Some((scale.host_id.clone(), scale.component_id.clone())),
        Command::StartProvider(start) => Some((start.host_id.clone(), start.provider_id.clone())),
        _ => None,
    }
}

/// How long to wait after the `attempts`th failure: 1 s, 2 s, 4 s, … up to
/// [`MAX_BACKOFF`].
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(5)).min(MAX_BACKOFF)
}

/// The apps that own something in the lattice but are not deployed: what
/// this pass removes.
pub fn retiring(lattice: &ObservedLattice, stored: &[crate::store::StoredApp]) -> BTreeSet<String> {
    let deployed: BTreeSet<&str> = stored
        .iter()
        .filter(|app| app.deployed.is_some())
        .map(|app| app.name.as_str())
        .collect();
    lattice
        .owning_apps()
        .into_iter()
        .filter(|app| !deployed.contains(app.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
