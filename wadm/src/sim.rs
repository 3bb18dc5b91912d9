//! A deterministic simulation of the reconcile loop: the real
//! [`Reconciler`], two of them, against a simulated lattice, on a paused
//! tokio clock, with every choice drawn from one seeded generator.
//!
//! The world churns for a while: hosts join, die without a word, stop
//! politely and restart under their old id; a wadm process restarts;
//! commands are slow, fail, or time out after they took effect; reads of
//! the store fail or stall; events are dropped, duplicated and reordered;
//! pings miss hosts. The two wadms' wall clocks disagree by up to
//! [`MAX_SKEW`]. After every step the invariants are checked:
//!
//! - no app ever runs more instances (or provider processes) on live hosts
//!   than its scalers allow;
//! - never do both wadms hold the lease at once;
//! - no command touches what the manifest does not manage (the
//!   simulation keeps a hand-made component, provider, link and config);
//! - once the churn stops, the app is `deployed`, placed exactly as
//!   declared, within [`SETTLE_PASSES`] passes.
//!
//! The same seed makes the same run, so a failing seed replays. The
//! generator is a SplitMix64 of its own, so a seed means the same run
//! whatever version of a random-number crate is around.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use trellis_lattice::client::ClientError;
use trellis_lattice::config::NamedConfig;
use trellis_lattice::ctl::{ComponentDescription, HostInventory, ProviderDescription};
use trellis_lattice::event::{ComponentScaled, HostHeartbeat, HostStarted, HostStopped};
use trellis_lattice::{CloudEvent, LatticeEvent, Link};

use crate::io::{LatticeIo, LeaseEntry, LeaseIo};
use crate::manifest::{Component, ComponentKind, Manifest};
use crate::planner::{Command, DataHome};
use crate::reconciler::{ReconcileError, Reconciler, ReconcilerSettings};
use crate::store::{AppStatus, DeployStatus, StoreError, StoredApp, StoredVersion};

/// The most two wadms' wall clocks disagree by.
pub const MAX_SKEW: Duration = Duration::from_secs(40);
/// Steps of churn, each 100–600 ms of simulated time.
pub const CHURN_STEPS: u32 = 240;
/// Passes of the acting wadm, once the churn stopped, within which the
/// app must be deployed as declared.
pub const SETTLE_PASSES: u32 = 30;

/// The app the simulation deploys: six counter instances split 2:1 over
/// two zones, one provider, a link between them, and config.
const MANIFEST: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: sim
  annotations:
    version: v1
spec:
  components:
    - name: counter
      type: component
      properties:
        image: file:///sim/counter.wasm
        config:
          - name: counter-settings
            properties:
              step: "1"
      traits:
        - type: spreadscaler
          properties:
            instances: 6
            spread:
              - name: a
                weight: 2
                requirements:
                  zone: a
              - name: b
                weight: 1
                requirements:
                  zone: b
        - type: link
          properties:
            target: store
            namespace: wasi
            package: keyvalue
            interfaces: [store]
    - name: store
      type: capability
      properties:
        image: file:///sim/keyvalue
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"#;

/// The ids the simulation put in the lattice by hand; wadm must leave
/// them alone.
const HAND_MADE: &str = "hand-made";

/// The loop's timings in the simulation.
pub fn settings() -> ReconcilerSettings {
    ReconcilerSettings {
        host_timeout: Duration::from_secs(5),
        resync: Duration::from_secs(10),
        lease_ttl: Duration::from_secs(15),
        command_timeout: Duration::from_secs(30),
        ..ReconcilerSettings::default()
    }
}

/// SplitMix64: small, fast, and fixed forever.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A duration between `low` and `high` milliseconds.
    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high - low + 1))
    }
}

/// A simulated host.
struct SimHost {
    zone: &'static str,
    alive: bool,
    /// Which start of the host this is: work sent to one that died is
    /// lost with it, not done by the next.
    incarnation: u64,
    components: BTreeMap<String, ComponentDescription>,
    providers: BTreeMap<String, ProviderDescription>,
    next_beat: Instant,
}

impl SimHost {
    fn inventory(&self, id: &str) -> HostInventory {
        HostInventory {
            components: self.components.values().cloned().collect(),
            providers: self.providers.values().cloned().collect(),
            host_id: id.to_owned(),
            friendly_name: id.to_lowercase(),
            labels: BTreeMap::from([("zone".to_owned(), self.zone.to_owned())]),
            version: "sim".to_owned(),
            ..HostInventory::default()
        }
    }
}

/// The simulated lattice and store, shared by both wadms.
struct World {
    rng: Rng,
    /// Whether faults happen (during the churn) or not (while settling).
    faults: bool,
    hosts: BTreeMap<String, SimHost>,
    links: Vec<Link>,
    configs: BTreeMap<String, NamedConfig>,
    apps: Vec<StoredApp>,
    statuses: BTreeMap<String, AppStatus>,
    data_homes: BTreeMap<String, DataHome>,
    lease: Option<LeaseEntry>,
    revisions: u64,
    /// Each wadm's undelivered events.
    inboxes: Vec<Vec<CloudEvent>>,
    violations: Vec<String>,
    epoch: DateTime<Utc>,
    started: Instant,
    events_made: u64,
    incarnations: u64,
}

impl World {
    fn now(&self) -> DateTime<Utc> {
        self.epoch + chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }

    /// Publishes `event` from `source` to every wadm, losing or doubling
    /// it now and then.
    fn publish(&mut self, source: &str, event: &LatticeEvent) {
        self.events_made += 1;
        let id = uuid::Uuid::from_u64_pair(0, self.events_made);
        let Ok(event) = event.to_cloud_event_at(source, id, self.now()) else {
            return;
        };
        for inbox in 0..self.inboxes.len() {
            if self.faults && self.rng.chance(10) {
                continue;
            }
            self.inboxes[inbox].push(event.clone());
            if self.faults && self.rng.chance(5) {
                self.inboxes[inbox].push(event.clone());
            }
        }
    }

    /// Takes a wadm's events, some swapped with their neighbours.
    fn deliver(&mut self, inbox: usize) -> Vec<CloudEvent> {
        let mut events = std::mem::take(&mut self.inboxes[inbox]);
        if self.faults {
            for i in 1..events.len() {
                if self.rng.chance(15) {
                    events.swap(i - 1, i);
                }
            }
        }
        events
    }

    fn heartbeats(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, h)| h.alive && h.next_beat <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let Some(host) = self.hosts.get_mut(&id) else {
                continue;
            };
            // Hosts beat four times per host timeout.
            host.next_beat = now + settings().host_timeout / 4;
            let beat = HostHeartbeat::from_inventory(host.inventory(&id), "sim");
            self.publish(&id, &LatticeEvent::HostHeartbeat(beat));
        }
    }

    fn start_host(&mut self, id: &str, zone: &'static str) {
        tracing::debug!(host = %id, zone, "sim: started");
        self.incarnations += 1;
        let host = SimHost {
            zone,
            alive: true,
            incarnation: self.incarnations,
            components: BTreeMap::new(),
            providers: BTreeMap::new(),
            next_beat: Instant::now(),
        };
        self.hosts.insert(id.to_owned(), host);
        let started = HostStarted {
            host_id: id.to_owned(),
            labels: BTreeMap::from([("zone".to_owned(), zone.to_owned())]),
            ..HostStarted::default()
        };
        self.publish(id, &LatticeEvent::HostStarted(started));
    }

    /// The incarnation of the live host a command is for, if it is for one.
    fn receiver(&self, command: &Command) -> Option<u64> {
        self.hosts
            .get(command.host_id()?)
            .filter(|h| h.alive)
            .map(|h| h.incarnation)
    }

    /// Takes effect of a command on the lattice, when the host that
    /// received it (`receiver`) still runs.
    fn apply(&mut self, command: &Command, receiver: Option<u64>) -> Result<(), ClientError> {
        let refused = |what: &str| ClientError::NoResponders {
            subject: what.to_owned(),
            hint: "the simulated host is down".to_owned(),
        };
        match command {
            Command::PutConfig { name, values } => {
                self.configs.insert(name.clone(), values.clone());
            }
            Command::DeleteConfig { name } => {
                self.configs.remove(name);
            }
            Command::PutLink(link) => {
                self.links.retain(|l| !l.same_slot(link));
                self.links.push(link.clone());
            }
            Command::DeleteLink(request) => {
                self.links.retain(|l| !l.is_deleted_by(request));
            }
            Command::ScaleComponent(scale) => {
                let host = self
                    .hosts
                    .get_mut(&scale.host_id)
                    .filter(|h| h.alive && Some(h.incarnation) == receiver)
                    .ok_or_else(|| refused(&scale.host_id))?;
                if scale.max_instances == 0 {
                    host.components.remove(&scale.component_id);
                } else {
                    let description = ComponentDescription {
                        id: scale.component_id.clone(),
                        image_ref: scale.component_ref.clone(),
                        annotations: scale.annotations.clone(),
                        max_instances: scale.max_instances,
                        ..ComponentDescription::default()
                    };
                    host.components
                        .insert(scale.component_id.clone(), description);
                }
                let scaled = ComponentScaled {
                    host_id: scale.host_id.clone(),
                    component_id: scale.component_id.clone(),
                    image_ref: scale.component_ref.clone(),
                    max_instances: scale.max_instances,
                    ..ComponentScaled::default()
                };
                let source = scale.host_id.clone();
                self.publish(&source, &LatticeEvent::ComponentScaled(scaled));
            }
            Command::StartProvider(start) => {
                let host = self
                    .hosts
                    .get_mut(&start.host_id)
                    .filter(|h| h.alive && Some(h.incarnation) == receiver)
                    .ok_or_else(|| refused(&start.host_id))?;
                let description = ProviderDescription {
                    id: start.provider_id.clone(),
                    image_ref: Some(start.provider_ref.clone()),
                    annotations: start.annotations.clone(),
                    ..ProviderDescription::default()
                };
                host.providers
                    .insert(start.provider_id.clone(), description);
            }
            Command::StopProvider(stop) => {
                let host = self
                    .hosts
                    .get_mut(&stop.host_id)
                    .filter(|h| h.alive && Some(h.incarnation) == receiver)
                    .ok_or_else(|| refused(&stop.host_id))?;
                host.providers.remove(&stop.provider_id);
            }
        }
        Ok(())
    }
}

/// What a command would touch: the component, provider, link source or
/// config name.
fn touches(command: &Command) -> &str {
    match command {
        Command::PutConfig { name, .. } | Command::DeleteConfig { name } => name,
        Command::PutLink(link) => &link.source_id,
        Command::DeleteLink(request) => &request.source_id,
        Command::ScaleComponent(scale) => &scale.component_id,
        Command::StartProvider(start) => &start.provider_id,
        Command::StopProvider(stop) => &stop.provider_id,
    }
}

/// One wadm's view of the world: the shared state and its own wall clock.
#[derive(Clone)]
pub struct SimIo {
    world: Rc<RefCell<World>>,
    skew: chrono::Duration,
}

impl SimIo {
    /// How long a call takes: mostly a few milliseconds, now and then
    /// (with faults) long enough to run into the loop's read bounds.
    async fn latency(&self) {
        let wait = {
            let mut world = self.world.borrow_mut();
            if world.faults && world.rng.chance(4) {
                world.rng.millis(500, 3_000)
            } else {
                world.rng.millis(1, 20)
            }
        };
        tokio::time::sleep(wait).await;
    }

    /// Whether a read of the store fails this time.
    fn read_fails(&self) -> bool {
        let mut world = self.world.borrow_mut();
        world.faults && world.rng.chance(4)
    }

    /// A write to the store: it takes its time, then always lands.
    async fn write<T>(&self, write: impl FnOnce(&mut World) -> T) -> Result<T, StoreError> {
        self.latency().await;
        Ok(write(&mut self.world.borrow_mut()))
    }

    async fn read<T>(&self, what: &str, read: impl FnOnce(&World) -> T) -> Result<T, StoreError> {
        self.latency().await;
        if self.read_fails() {
            return Err(StoreError::Nats {
                action: what.to_owned(),
                message: "simulated failure".to_owned(),
            });
        }
        Ok(read(&self.world.borrow()))
    }
}

impl LatticeIo for SimIo {
    async fn inventories(&self) -> Vec<HostInventory> {
        self.latency().await;
        let mut world = self.world.borrow_mut();
        let world = &mut *world;
        let mut answers = Vec::new();
        for (id, host) in world.hosts.iter().filter(|(_, h)| h.alive) {
            // A ping answer misses the window now and then.
            if world.faults && world.rng.chance(10) {
                continue;
            }
            answers.push(host.inventory(id));
        }
        answers
    }

    async fn links(&self) -> Result<Vec<Link>, ReconcileError> {
        Ok(self.read("reading links", |w| w.links.clone()).await?)
    }

    async fn configs(&self) -> Result<BTreeMap<String, NamedConfig>, ReconcileError> {
        Ok(self.read("reading config", |w| w.configs.clone()).await?)
    }

    async fn send(&self, command: &Command) -> Result<(), ClientError> {
        if touches(command).starts_with(HAND_MADE) {
            self.world.borrow_mut().violations.push(format!(
                "a command touched what no app manages: {command:?}"
            ));
        }
        // Delivered to the host running now; done by that one, or lost.
        let receiver = self.world.borrow().receiver(command);
        self.latency().await;
        let (fail, time_out) = {
            let mut world = self.world.borrow_mut();
            let faults = world.faults;
            (faults && world.rng.chance(5), faults && world.rng.chance(5))
        };
        if fail {
            return Err(ClientError::Refused {
                action: "run a simulated command".to_owned(),
                message: "simulated refusal".to_owned(),
            });
        }
        self.world.borrow_mut().apply(command, receiver)?;
        if time_out {
            // It took effect; the answer is lost.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Err(ClientError::Timeout {
                waiting_for: "a simulated reply".to_owned(),
                timeout: Duration::from_secs(2),
                hint: "simulated".to_owned(),
            });
        }
        Ok(())
    }

    async fn apps(&self) -> Result<Vec<StoredApp>, StoreError> {
        self.read("listing apps", |w| w.apps.clone()).await
    }

    async fn data_homes(&self) -> Result<BTreeMap<String, DataHome>, StoreError> {
        self.read("reading data homes", |w| w.data_homes.clone())
            .await
    }

    async fn put_data_home(&self, provider_id: &str, home: &DataHome) -> Result<(), StoreError> {
        self.write(|w| {
            w.data_homes.insert(provider_id.to_owned(), home.clone());
        })
        .await
    }

    async fn delete_data_home(&self, provider_id: &str) -> Result<(), StoreError> {
        self.write(|w| {
            w.data_homes.remove(provider_id);
        })
        .await
    }

    async fn status(&self, app: &str) -> Result<Option<AppStatus>, StoreError> {
        self.read("reading status", |w| w.statuses.get(app).cloned())
            .await
    }

    async fn put_status(&self, app: &str, status: &AppStatus) -> Result<(), StoreError> {
        self.write(|w| {
            w.statuses.insert(app.to_owned(), status.clone());
        })
        .await
    }
}

impl LeaseIo for SimIo {
    fn wall_clock(&self) -> DateTime<Utc> {
        self.world.borrow().now() + self.skew
    }

    async fn lease_entry(&self) -> Result<Option<LeaseEntry>, StoreError> {
        self.read("reading the lease", |w| w.lease.clone()).await
    }

    async fn lease_write(&self, value: Vec<u8>, expected: Option<u64>) -> Result<bool, StoreError> {
        self.write(|w| {
            if w.lease.as_ref().map(|entry| entry.revision) != expected {
                return false;
            }
            w.revisions += 1;
            w.lease = Some(LeaseEntry {
                value,
                revision: w.revisions,
            });
            true
        })
        .await
    }
}

/// What went wrong in a run.
#[derive(Debug)]
pub struct Failure {
    /// The seed that replays it.
    pub seed: u64,
    /// When: the step, or `settle` after the churn.
    pub at: String,
    /// What did not hold.
    pub violations: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} failed at {}: {}",
            self.seed,
            self.at,
            self.violations.join("; ")
        )
    }
}

/// What a run that held did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Passes after the churn until the app was deployed as declared.
    pub settle_passes: u32,
    /// Steps of churn run.
    pub steps: u32,
    /// Lease handovers seen.
    pub handovers: u32,
}

/// A wadm process in the simulation.
struct Wadm {
    reconciler: Reconciler<SimIo>,
    inbox: usize,
    /// When its last turn began: its events were published since.
    last_turn: Instant,
}

impl Wadm {
    fn start(world: &Rc<RefCell<World>>, inbox: usize, skew: chrono::Duration, name: &str) -> Self {
        let io = SimIo {
            world: world.clone(),
            skew,
        };
        Self {
            reconciler: Reconciler::new(io, settings(), name.to_owned()),
            inbox,
            last_turn: Instant::now(),
        }
    }

    async fn turn(&mut self) {
        let events = self.reconciler.io().world.borrow_mut().deliver(self.inbox);
        for event in &events {
            self.reconciler.note_event(event, Some(self.last_turn));
        }
        self.last_turn = Instant::now();
        self.reconciler.turn().await;
    }
}

/// Runs the simulation for `seed`.
pub fn run(seed: u64) -> Result<Outcome, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| Failure {
            seed,
            at: "start".to_owned(),
            violations: vec![format!("no runtime: {e}")],
        })?;
    runtime.block_on(simulate(seed))
}

fn stored_app() -> StoredApp {
    StoredApp {
        name: "sim".to_owned(),
        versions: vec![StoredVersion {
            version: "v1".to_owned(),
            manifest: MANIFEST.to_owned(),
            put_at: DateTime::<Utc>::UNIX_EPOCH,
        }],
        deployed: Some("v1".to_owned()),
        previously_deployed: Vec::new(),
    }
}

/// The lattice as a wadm would plan it: what runs on live hosts.
struct Census {
    components: BTreeMap<String, u32>,
    providers: BTreeMap<String, u32>,
}

impl Census {
    /// How many of `component` run: instances of a component, processes
    /// of a capability.
    fn running(&self, component: &Component) -> u32 {
        let counts = match component.kind {
            ComponentKind::Component => &self.components,
            ComponentKind::Capability => &self.providers,
        };
        counts.get(&component.id).copied().unwrap_or(0)
    }
}

fn census(world: &World) -> Census {
    let mut census = Census {
        components: BTreeMap::new(),
        providers: BTreeMap::new(),
    };
    for host in world.hosts.values().filter(|h| h.alive) {
        for component in host.components.values() {
            *census.components.entry(component.id.clone()).or_default() += component.max_instances;
        }
        for provider in host.providers.keys() {
            *census.providers.entry(provider.clone()).or_default() += 1;
        }
    }
    census
}

/// Over-placement and double leases, now.
fn check(world: &World, manifest: &Manifest, wadms: &[Wadm]) -> Vec<String> {
    let mut violations = world.violations.clone();
    let census = census(world);
    for component in &manifest.components {
        let kind = match component.kind {
            ComponentKind::Component => "instances",
            ComponentKind::Capability => "processes",
        };
        let running = census.running(component);
        if running > component.scaler.instances {
            violations.push(format!(
                "`{}` runs {running} {kind}; its scaler allows {}",
                component.id, component.scaler.instances
            ));
        }
    }
    let acting: Vec<&str> = wadms
        .iter()
        .filter(|w| w.reconciler.is_acting())
        .map(|w| w.reconciler.holder())
        .collect();
    if acting.len() > 1 {
        violations.push(format!("two wadms act at once: {acting:?}"));
    }
    violations
}

/// Whether the app is deployed and runs exactly as declared.
fn converged(world: &World, manifest: &Manifest) -> bool {
    let census = census(world);
    let placed = manifest
        .components
        .iter()
        .all(|component| census.running(component) == component.scaler.instances);
    let deployed = world
        .statuses
        .get("sim")
        .is_some_and(|s| s.status == DeployStatus::Deployed);
    placed && deployed && !world.links.is_empty()
}

async fn simulate(seed: u64) -> Result<Outcome, Failure> {
    let manifest = Manifest::parse(MANIFEST).map_err(|e| Failure {
        seed,
        at: "start".to_owned(),
        violations: vec![e.to_string()],
    })?;
    let mut rng = Rng::new(seed);
    let skew_ms = i64::try_from(rng.below(MAX_SKEW.as_millis() as u64 * 2)).unwrap_or(0)
        - i64::try_from(MAX_SKEW.as_millis()).unwrap_or(0);
    let world = Rc::new(RefCell::new(World {
        rng,
        faults: true,
        hosts: BTreeMap::new(),
        links: Vec::new(),
        configs: BTreeMap::new(),
        apps: vec![stored_app()],
        statuses: BTreeMap::new(),
        data_homes: BTreeMap::new(),
        lease: None,
        revisions: 0,
        inboxes: vec![Vec::new(), Vec::new()],
        violations: Vec::new(),
        epoch: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(20_000),
        started: Instant::now(),
        events_made: 0,
        incarnations: 0,
    }));
    {
        let mut w = world.borrow_mut();
        for (id, zone) in [("NA1", "a"), ("NA2", "a"), ("NB1", "b")] {
            w.start_host(id, zone);
        }
        // What a person started by hand, which no app manages.
        let hand = format!("{HAND_MADE}-echo");
        if let Some(host) = w.hosts.get_mut("NA1") {
            host.components.insert(
                hand.clone(),
                ComponentDescription {
                    id: hand.clone(),
                    image_ref: "file:///hand/echo.wasm".to_owned(),
                    max_instances: 1,
                    ..ComponentDescription::default()
                },
            );
            let provider = format!("{HAND_MADE}-kv");
            host.providers.insert(
                provider.clone(),
                ProviderDescription {
                    id: provider,
                    ..ProviderDescription::default()
                },
            );
        }
        w.links.push(Link {
            source_id: hand.clone(),
            target: format!("{HAND_MADE}-kv"),
            name: "default".to_owned(),
            wit_namespace: "wasi".to_owned(),
            wit_package: "keyvalue".to_owned(),
            interfaces: vec!["store".to_owned()],
            ..Link::default()
        });
        w.configs
            .insert(format!("{HAND_MADE}-config"), NamedConfig::default());
    }
    let skews = [
        chrono::Duration::zero(),
        chrono::Duration::milliseconds(skew_ms),
    ];
    let mut restarts = 0;
    let mut wadms = vec![
        Wadm::start(&world, 0, skews[0], "wadm-0"),
        Wadm::start(&world, 1, skews[1], "wadm-1"),
    ];
    let mut outcome = Outcome::default();
    let mut acting_before: Option<String> = None;
    let fail = |at: String, violations: Vec<String>| Failure {
        seed,
        at,
        violations,
    };

    for step in 0..CHURN_STEPS {
        churn(&world, &mut wadms, &skews, &mut restarts);
        step_all(&world, &mut wadms).await;
        outcome.steps += 1;
        let violations = check(&world.borrow(), &manifest, &wadms);
        if !violations.is_empty() {
            return Err(fail(format!("step {step}"), violations));
        }
        note_handover(&wadms, &mut acting_before, &mut outcome);
    }

    // The churn stops: no more faults, and each zone has a live host.
    {
        let mut w = world.borrow_mut();
        w.faults = false;
        for (id, zone) in [("NA1", "a"), ("NB1", "b")] {
            if !w.hosts.get(id).is_some_and(|h| h.alive) {
                w.start_host(id, zone);
            }
        }
    }
    let passes_before: u32 = wadms.iter().map(|w| w.reconciler.passes()).sum();
    loop {
        step_all(&world, &mut wadms).await;
        let violations = check(&world.borrow(), &manifest, &wadms);
        if !violations.is_empty() {
            return Err(fail("settle".to_owned(), violations));
        }
        note_handover(&wadms, &mut acting_before, &mut outcome);
        let passes: u32 = wadms.iter().map(|w| w.reconciler.passes()).sum::<u32>() - passes_before;
        if converged(&world.borrow(), &manifest) {
            outcome.settle_passes = passes;
            return Ok(outcome);
        }
        if passes > SETTLE_PASSES {
            let w = world.borrow();
            let census = census(&w);
            return Err(fail(
                "settle".to_owned(),
                vec![format!(
                    "not deployed as declared within {SETTLE_PASSES} passes after the churn: \
                     status {:?}, components {:?}, providers {:?}, links {}",
                    w.statuses.get("sim").map(|s| (s.status, s.reasons.clone())),
                    census.components,
                    census.providers,
                    w.links.len()
                )],
            ));
        }
    }
}

/// One step of simulated time: a pause, then every wadm's turn, run
/// together, while the hosts keep beating.
async fn step_all(world: &Rc<RefCell<World>>, wadms: &mut [Wadm]) {
    let wait = world.borrow_mut().rng.millis(100, 600);
    let beating = async {
        loop {
            world.borrow_mut().heartbeats();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let step = async {
        tokio::time::sleep(wait).await;
        futures::future::join_all(wadms.iter_mut().map(Wadm::turn)).await;
    };
    tokio::select! {
        biased;
        () = step => {}
        () = beating => {}
    }
}

fn note_handover(wadms: &[Wadm], before: &mut Option<String>, outcome: &mut Outcome) {
    let acting = wadms
        .iter()
        .find(|w| w.reconciler.is_acting())
        .map(|w| w.reconciler.holder().to_owned());
    if acting.is_some() && acting != *before {
        if before.is_some() {
            outcome.handovers += 1;
        }
        before.clone_from(&acting);
    }
}

/// Hosts die, stop, come back and join; a wadm restarts.
fn churn(
    world: &Rc<RefCell<World>>,
    wadms: &mut [Wadm],
    skews: &[chrono::Duration],
    restarts: &mut u32,
) {
    let mut w = world.borrow_mut();
    let roll = w.rng.below(100);
    let pick = |w: &mut World, alive: bool| -> Option<String> {
        let ids: Vec<String> = w
            .hosts
            .iter()
            .filter(|(_, h)| h.alive == alive)
            .map(|(id, _)| id.clone())
            .collect();
        if ids.is_empty() {
            return None;
        }
        let index = usize::try_from(w.rng.below(ids.len() as u64)).unwrap_or(0);
        ids.get(index).cloned()
    };
    match roll {
        // Killed: no word, its work is gone.
        0..=2 => {
            if let Some(id) = pick(&mut w, true)
                && let Some(host) = w.hosts.get_mut(&id)
            {
                tracing::debug!(host = %id, "sim: killed");
                host.alive = false;
                host.components.clear();
                host.providers.clear();
            }
        }
        // Stopped politely.
        3..=4 => {
            if let Some(id) = pick(&mut w, true)
                && let Some(host) = w.hosts.get_mut(&id)
            {
                tracing::debug!(host = %id, "sim: stopped");
                host.alive = false;
                host.components.clear();
                host.providers.clear();
                let stopped = HostStopped {
                    host_id: id.clone(),
                    ..HostStopped::default()
                };
                w.publish(&id, &LatticeEvent::HostStopped(stopped));
            }
        }
        // Back under its old id, empty.
        5..=9 => {
            if let Some(id) = pick(&mut w, false) {
                let zone = w.hosts.get(&id).map_or("a", |h| h.zone);
                w.start_host(&id, zone);
            }
        }
        // A new host joins.
        10 if w.hosts.len() < 6 => {
            let id = format!("NX{}", w.hosts.len());
            let zone = if w.rng.chance(50) { "a" } else { "b" };
            w.start_host(&id, zone);
        }
        // A wadm process restarts, forgetting everything.
        11 => {
            let index = usize::try_from(w.rng.below(wadms.len() as u64)).unwrap_or(0);
            drop(w);
            *restarts += 1;
            tracing::debug!(wadm = index, "sim: wadm restarted");
            let name = format!("wadm-{index}-r{restarts}");
            let skew = skews.get(index).copied().unwrap_or_default();
            if let Some(wadm) = wadms.get_mut(index) {
                *wadm = Wadm::start(world, index, skew, &name);
            }
        }
        _ => {}
    }
}
