//! The host itself: connects to NATS, opens lattice state, answers the
//! control interface, serves component calls, supervises providers, and
//! publishes events. The pieces live in their own modules; this one owns
//! their shared state and the lifecycle (start, heartbeat, graceful stop).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;
use trellis_claims::KeyKind;
use trellis_claims::invocation::InvocationSigner;
use trellis_lattice::config::NamedConfig;
use trellis_lattice::ctl::{ComponentDescription, Host as HostSummary, HostInventory};
use trellis_lattice::event::LatticeEvent;
use trellis_lattice::event::{
    ComponentClaims, ComponentScaleFailed, ComponentScaled, HostHeartbeat, HostStarted, HostStopped,
};
use trellis_lattice::secret::SecretRefs;
use trellis_lattice::subject::Subjects;

use crate::component::{ComponentSpec, RunningComponent};
use crate::config::{HostConfig, builtin_labels};
use crate::engine::Runtime;
use crate::events::EventPublisher;
use crate::imports::ImportRouter;
use crate::metrics::{ComponentVitals, HostMetrics};
use crate::policy::RunPolicy;
use crate::provider::ProviderSupervisor;
use crate::secrets::SecretsDesk;
use crate::state::LatticeState;
use crate::{HostError, ctl, rpc};
use trellis_oci::{ArtifactCache, Registry};

/// The version every host reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

struct ComponentSlot {
    current: Arc<RunningComponent>,
    server: JoinHandle<()>,
}

/// State shared by every task of one host.
pub struct HostInner {
    /// The host's public key (`N…`).
    pub id: String,
    /// The key this host signs invocations with (`C…`), reported as its issuer.
    pub issuer: String,
    pub(crate) config: HostConfig,
    pub(crate) nats: async_nats::Client,
    pub(crate) subjects: Subjects,
    pub(crate) runtime: Runtime,
    pub(crate) policy: RunPolicy,
    pub(crate) router: ImportRouter,
    pub(crate) state: LatticeState,
    pub(crate) events: EventPublisher,
    pub(crate) providers: ProviderSupervisor,
    pub(crate) artifacts: Arc<ArtifactCache>,
    pub(crate) metrics: Arc<HostMetrics>,
    started: Instant,
    labels: RwLock<BTreeMap<String, String>>,
    components: RwLock<HashMap<String, ComponentSlot>>,
    /// One lock per component id: scale and update of one component are
    /// applied one at a time, so two commands for it cannot interleave,
    /// while a slow fetch for one component holds up no other command.
    changes: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    stop_requested: Notify,
    /// Held while the host runs, so no second host takes its data dir.
    data_dir_lock: std::sync::Mutex<Option<std::fs::File>>,
}

/// A running host. Dropping it does not stop it; call [`Host::stop`].
pub struct Host {
    inner: Arc<HostInner>,
    tasks: Vec<JoinHandle<()>>,
}

impl Host {
    /// Joins the lattice and starts serving. Returns once the host answers
    /// the control interface.
    pub async fn start(config: HostConfig) -> Result<Host, HostError> {
        let identity = crate::identity::load(&config.data_dir, config.host_seed.as_deref())?;
        let key = identity.key;
        let (config, cluster_key) = with_cluster_key(config)?;
        let subjects = Subjects::new(&config.lattice)?;
        // Checked before connecting: a host that would trust nobody, or
        // everybody by accident, should not join the lattice at all.
        let policy = RunPolicy::new(
            &config.allowed_issuers,
            config.allow_any_issuer,
            config.allow_unsigned,
        )?;
        let nats = connect(&config).await?;
        let js = trellis_lattice::client::jetstream(nats.clone(), config.js_domain.as_deref());
        let id = key.public_key();
        let (state, stored_labels) = open_state(&js, &subjects, &config, &id).await?;
        let mut runtime = Runtime::new(config.max_memory_bytes)?;
        if config.compile_cache_max_bytes > 0 {
            let secret = key
                .seed()
                .map_err(|e| HostError::Engine(format!("reading the host key: {e}")))?;
            runtime = runtime.with_disk_cache(
                &config.data_dir.join("compiled"),
                secret.as_bytes(),
                config.compile_cache_max_bytes,
            )?;
        }
        let issuer = cluster_key.public_key();
        let signer = if config.insecure_unsigned_invocations {
            tracing::warn!(
                "--insecure-unsigned-invocations: calls go out unsigned and this host's providers \
                 do not check them, so anyone on the lattice can act for any component"
            );
            None
        } else {
            let signer = InvocationSigner::new(cluster_key, id.clone())
                .map_err(|e| HostError::BadRequest(e.to_string()))?;
            Some(Arc::new(signer))
        };
        let events = EventPublisher::new(nats.clone(), subjects.clone(), id.clone());
        let router = ImportRouter::new(
            nats.clone(),
            subjects.clone(),
            state.link_table(),
            config.call_timeout,
            signer,
        )
        .with_max_body(config.max_body_bytes)
        .with_secrets(SecretsDesk::new(events.clone(), id.clone()));
        let mut labels = builtin_labels();
        for (key, value) in &config.labels {
            config
                .label_limits
                .check(key, value)
                .map_err(|e| HostError::BadRequest(format!("--label: {e}")))?;
        }
        labels.extend(config.labels.clone());
        // Labels an operator put before this start; ones past today's
        // limits (from an older version, say) are dropped, not trusted.
        for (key, value) in stored_labels {
            match config.label_limits.check(&key, &value) {
                Ok(()) => {
                    labels.insert(key, value);
                }
                Err(reason) => tracing::warn!(%reason, "a stored label is ignored"),
            }
        }
        config
            .label_limits
            .check_count(operator_label_count(&labels))
            .map_err(|e| HostError::BadRequest(format!("--label: {e}")))?;
        let artifacts = Arc::new(ArtifactCache::new(
            config.data_dir.join("oci"),
            Registry::new(config.registry.clone()),
        ));
        let providers = ProviderSupervisor::new(
            &id,
            &config,
            nats.clone(),
            subjects.clone(),
            events.clone(),
            state.clone(),
            policy.clone(),
            Arc::clone(&artifacts),
            router.clone(),
        );
        let inner = Arc::new(HostInner {
            // wasmCloud reports the key of the host's cluster as its issuer.
            issuer,
            events,
            providers,
            artifacts,
            id,
            config,
            nats,
            subjects,
            runtime,
            policy,
            router,
            state,
            metrics: Arc::new(HostMetrics::new()),
            started: Instant::now(),
            labels: RwLock::new(labels),
            components: RwLock::new(HashMap::new()),
            changes: std::sync::Mutex::default(),
            stop_requested: Notify::new(),
            data_dir_lock: std::sync::Mutex::new(Some(identity.lock)),
        });
        let mut tasks = vec![ctl::serve(Arc::clone(&inner)).await?];
        tasks.push(tokio::spawn(inner.state.clone().watch_links()));
        tasks.push(tokio::spawn(inner.providers.clone().forward_link_changes()));
        tasks.push(tokio::spawn(inner.providers.clone().check_health()));
        tasks.push(tokio::spawn(heartbeat(Arc::clone(&inner))));
        tasks.push(tokio::spawn(follow_config(Arc::clone(&inner))));
        inner
            .events
            .publish(LatticeEvent::HostStarted(HostStarted {
                host_id: inner.id.clone(),
                friendly_name: inner.friendly_name(),
                labels: inner.labels(),
                version: VERSION.to_owned(),
            }))
            .await;
        tracing::info!(host_id = %inner.id, lattice = %inner.subjects.lattice(), "host started");
        Ok(Host { inner, tasks })
    }

    /// The host's id (its `N…` public key).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The host's Prometheus exposition, with its providers' merged in.
    pub async fn metrics(&self) -> String {
        self.inner.metrics().await
    }

    /// What `--metrics-addr` serves: [`Host::metrics`] at each scrape.
    pub fn metrics_render(&self) -> trellis_telemetry::metrics::Render {
        let inner = Arc::clone(&self.inner);
        Arc::new(move || {
            let inner = Arc::clone(&inner);
            Box::pin(async move { inner.metrics().await })
        })
    }

    /// Shared state, for in-crate tests and benchmarks.
    pub fn inner(&self) -> &Arc<HostInner> {
        &self.inner
    }

    /// How many components were compiled rather than taken from the cache.
    pub fn compile_count(&self) -> u64 {
        self.inner.runtime.compile_count()
    }

    /// How many components were loaded from the disk compile cache.
    pub fn compile_cache_hits(&self) -> u64 {
        self.inner.runtime.disk_hit_count()
    }

    /// Resolves when a `host.stop` command arrives.
    pub async fn stop_requested(&self) {
        self.inner.stop_requested.notified().await;
    }

    /// Graceful stop: stop taking calls and commands, let calls in flight
    /// finish (up to the drain timeout), stop the providers, publish
    /// `host_stopped`.
    pub async fn stop(self, reason: &str) {
        for task in &self.tasks {
            task.abort();
        }
        let slots: Vec<ComponentSlot> = {
            let mut components = self
                .inner
                .components
                .write()
                .unwrap_or_else(|p| p.into_inner());
            components.drain().map(|(_, slot)| slot).collect()
        };
        for slot in &slots {
            slot.server.abort();
        }
        // All drain at once, so the drain timeout bounds the whole stop
        // rather than each component in turn.
        let drain = self.inner.config.drain_timeout;
        let drains = slots.iter().map(|slot| async move {
            if !slot.current.drain(drain).await {
                tracing::warn!(component = %slot.current.id, "calls still running after the drain timeout");
            }
        });
        futures::future::join_all(drains).await;
        // After the components: calls draining above may still use them.
        self.inner.providers.stop_all().await;
        self.inner
            .events
            .publish(LatticeEvent::HostStopped(HostStopped {
                host_id: self.inner.id.clone(),
                labels: self.inner.labels(),
            }))
            .await;
        // Released here rather than when the last clone of the shared
        // state drops, so a host started next on this data dir (a restart
        // in the same process) is not refused.
        drop(
            self.inner
                .data_dir_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        tracing::info!(host_id = %self.inner.id, reason, "host stopped");
    }
}

/// How long a starting host keeps trying to read lattice state: a NATS
/// cluster that booted with it is still electing JetStream leaders.
const STATE_WAIT: Duration = Duration::from_secs(30);

/// Opens the lattice buckets and reads this host's stored labels, trying
/// again while JetStream is not ready.
async fn open_state(
    js: &async_nats::jetstream::Context,
    subjects: &Subjects,
    config: &HostConfig,
    id: &str,
) -> Result<(LatticeState, BTreeMap<String, String>), HostError> {
    let started = Instant::now();
    loop {
        let attempt = async {
            let state = LatticeState::open(js, subjects, config.js_replicas).await?;
            let labels = state.labels(id).await?;
            Ok::<_, HostError>((state, labels))
        };
        match attempt.await {
            Ok(opened) => return Ok(opened),
            Err(HostError::State(reason)) if started.elapsed() < STATE_WAIT => {
                tracing::info!(%reason, "lattice state not ready yet; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// How long a starting host waits for a NATS server to answer.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

async fn connect(config: &HostConfig) -> Result<async_nats::Client, HostError> {
    config
        .nats
        .connect(
            |options| {
                options
                    .name("trellis-host")
                    .connection_timeout(Duration::from_secs(5))
            },
            CONNECT_WAIT,
        )
        .await
        .map_err(|e| HostError::Nats(e.to_string()))
}

/// Keeps each component's config in step with lattice state until the
/// task is dropped: a config put or deleted through any host reaches the
/// components reading it, for their instances created from then on.
async fn follow_config(inner: Arc<HostInner>) {
    loop {
        let changes = match inner.state.config_changes().await {
            Ok(changes) => changes,
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch config; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Changes made while the watch was down are picked up here.
        inner.refresh_config(None).await;
        let mut changes = std::pin::pin!(changes);
        while let Some(name) = changes.next().await {
            inner.refresh_config(Some(&name)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn heartbeat(inner: Arc<HostInner>) {
    let mut ticks = tokio::time::interval(inner.config.heartbeat_interval);
    loop {
        ticks.tick().await;
        let beat = HostHeartbeat::from_inventory(inner.inventory(), inner.issuer.clone());
        inner
            .events
            .publish(LatticeEvent::HostHeartbeat(beat))
            .await;
    }
}

fn claims_of(component: &RunningComponent) -> Option<ComponentClaims> {
    let claims = component.claims.as_ref()?;
    let meta = claims.metadata.as_ref();
    Some(ComponentClaims {
        issuer: claims.iss.clone(),
        name: meta.and_then(|m| m.name.clone()),
        version: meta.and_then(|m| m.ver.clone()),
        revision: meta.and_then(|m| m.rev),
        tags: meta.and_then(|m| m.tags.clone()),
        call_alias: meta.and_then(|m| m.call_alias.clone()),
        expires_human: claims.exp.map_or_else(|| "never".to_owned(), human_time),
        not_before_human: claims
            .nbf
            .map_or_else(|| "immediately".to_owned(), human_time),
    })
}

pub(crate) fn human_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(|| secs.to_string(), |t| t.to_rfc3339())
}

fn human_uptime(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

impl HostInner {
    /// The host's Prometheus exposition, with its providers' merged in:
    /// what `--metrics-addr` serves.
    pub async fn metrics(&self) -> String {
        let inner = self;
        let components = {
            let slots = inner.components.read().unwrap_or_else(|p| p.into_inner());
            slots
                .values()
                .map(|slot| ComponentVitals {
                    id: slot.current.id.clone(),
                    active: slot.current.busy_instances(),
                    max: slot.current.max_instances(),
                })
                .collect()
        };
        inner
            .metrics
            .render(components, inner.providers.vitals(), &inner.nats)
            .await
    }

    /// The component running under `id`, if any.
    pub fn component(&self, id: &str) -> Option<Arc<RunningComponent>> {
        let components = self.components.read().unwrap_or_else(|p| p.into_inner());
        components.get(id).map(|slot| Arc::clone(&slot.current))
    }

    /// The current labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.labels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A short human name derived from the id.
    pub fn friendly_name(&self) -> String {
        format!(
            "host-{}",
            &self.id[self.id.len().saturating_sub(6)..].to_ascii_lowercase()
        )
    }

    /// The `host.ping` answer.
    pub fn summary(&self) -> HostSummary {
        HostSummary {
            id: self.id.clone(),
            friendly_name: self.friendly_name(),
            lattice: self.subjects.lattice().to_owned(),
            labels: self.labels(),
            version: Some(VERSION.to_owned()),
            uptime_seconds: self.started.elapsed().as_secs(),
            uptime_human: Some(human_uptime(self.started.elapsed())),
            rpc_host: Some(self.config.nats.urls.clone()),
            ctl_host: Some(self.config.nats.urls.clone()),
            js_domain: None,
        }
    }

    /// The `host.get` answer and the heartbeat's content.
    pub fn inventory(&self) -> HostInventory {
        let mut components: Vec<ComponentDescription> = {
            let slots = self.components.read().unwrap_or_else(|p| p.into_inner());
            slots
                .values()
                .map(|slot| {
                    let c = &slot.current;
                    ComponentDescription {
                        id: c.id.clone(),
                        image_ref: c.image_ref.clone(),
                        name: c.name(),
                        annotations: Some(c.annotations.clone()),
                        revision: c
                            .claims
                            .as_ref()
                            .and_then(|cl| cl.metadata.as_ref()?.rev)
                            .unwrap_or(0),
                        max_instances: c.max_instances(),
                    }
                })
                .collect()
        };
        components.sort_by(|a, b| a.id.cmp(&b.id));
        HostInventory {
            components,
            providers: self.providers.inventory(),
            host_id: self.id.clone(),
            friendly_name: self.friendly_name(),
            labels: self.labels(),
            version: VERSION.to_owned(),
            uptime_human: human_uptime(self.started.elapsed()),
            uptime_seconds: self.started.elapsed().as_secs(),
            local_data: if self.config.shared_provider_data {
                Vec::new()
            } else {
                self.providers.local_data()
            },
        }
    }

    pub(crate) fn request_stop(&self) {
        self.stop_requested.notify_waiters();
        self.stop_requested.notify_one();
    }

    pub(crate) async fn set_label(&self, key: &str, value: Option<&str>) -> Result<(), HostError> {
        if key.starts_with("hostcore.") {
            return Err(HostError::BadRequest(format!(
                "`{key}` is a built-in label and cannot be changed"
            )));
        }
        let limits = self.config.label_limits;
        if let Some(value) = value {
            limits.check(key, value).map_err(HostError::BadRequest)?;
        }
        let operator_labels = {
            let mut labels = self.labels.write().unwrap_or_else(|p| p.into_inner());
            match value {
                Some(value) => {
                    let count = operator_label_count(&labels);
                    if !labels.contains_key(key) {
                        limits
                            .check_count(count + 1)
                            .map_err(HostError::BadRequest)?;
                    }
                    labels.insert(key.to_owned(), value.to_owned())
                }
                None => labels.remove(key),
            };
            labels
                .iter()
                .filter(|(k, _)| !k.starts_with("hostcore."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        self.state.put_labels(&self.id, &operator_labels).await
    }

    /// Waits for the lock on changes to component `id`.
    async fn lock_component(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.changes.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(id.to_owned()).or_default())
        };
        lock.lock_owned().await
    }

    /// Resolves again the config of every component reading config `name`
    /// (of every component, for `None`), each under its component lock, so
    /// a scale changing its config names cannot be undone by a slower read.
    async fn refresh_config(&self, name: Option<&str>) {
        let ids: Vec<String> = {
            let slots = self.components.read().unwrap_or_else(|p| p.into_inner());
            slots.keys().cloned().collect()
        };
        for id in ids {
            let _guard = self.lock_component(&id).await;
            let Some(component) = self.component(&id) else {
                continue;
            };
            let names = component.config_names();
            if names.is_empty() || name.is_some_and(|n| !names.iter().any(|m| m == n)) {
                continue;
            }
            self.resolve_config_of(&component).await;
        }
    }

    /// Reads `component`'s named configs from lattice state and gives it
    /// their merge; on a failed read it keeps what it had.
    async fn resolve_config_of(&self, component: &RunningComponent) {
        let names = component.config_names();
        match self.resolve_component_config(&names).await {
            Ok(values) => component.set_config(names, values),
            Err(err) => {
                tracing::warn!(component = %component.id, error = %err, "cannot read config; keeping the last")
            }
        }
    }

    /// What a component's config names resolve to: its config, and the
    /// secrets the references among them grant.
    async fn resolve_component_config(
        &self,
        names: &[String],
    ) -> Result<(NamedConfig, SecretRefs), HostError> {
        let values = self.state.resolve_config(names).await?;
        let secrets = self.state.resolve_secrets(names).await?;
        Ok((values, secrets))
    }

    /// Applies a scale command: start, rescale, or (at 0) stop.
    pub(crate) async fn scale(
        self: &Arc<Self>,
        spec: ComponentSpec,
        allow_update: bool,
    ) -> Result<String, HostError> {
        let _guard = self.lock_component(&spec.id).await;
        let existing = self.component(&spec.id);
        if spec.max_instances == 0 {
            return Ok(self.remove(&spec).await);
        }
        if let Some(existing) = existing {
            // A changed grant takes a fresh instance set, like a new image.
            if existing.image_ref == spec.image_ref && existing.allowed_hosts == spec.allowed_hosts
            {
                if existing.config_names() != spec.config {
                    let values = self.resolve_component_config(&spec.config).await?;
                    existing.set_config(spec.config.clone(), values);
                }
                existing.set_max_instances(spec.max_instances);
                self.publish_scaled(&existing).await;
                return Ok(format!(
                    "component `{}` scaled to {}",
                    spec.id, spec.max_instances
                ));
            }
            if existing.image_ref != spec.image_ref && !allow_update {
                return Err(HostError::BadRequest(format!(
                    "component `{}` already runs `{}` here; use `component.update` (or allow_update) to change its image",
                    spec.id, existing.image_ref
                )));
            }
        }
        self.start_or_replace(spec).await
    }

    /// Swaps a running component's image; calls in flight finish on the old
    /// code, new calls go to the new one.
    pub(crate) async fn update(
        self: &Arc<Self>,
        id: &str,
        new_ref: &str,
        annotations: Option<BTreeMap<String, String>>,
    ) -> Result<String, HostError> {
        let _guard = self.lock_component(id).await;
        let Some(existing) = self.component(id) else {
            return Err(HostError::BadRequest(format!(
                "component `{id}` is not running on host {}",
                self.id
            )));
        };
        let spec = ComponentSpec {
            id: id.to_owned(),
            image_ref: new_ref.to_owned(),
            max_instances: existing.max_instances(),
            annotations: annotations.unwrap_or_else(|| existing.annotations.clone()),
            allowed_hosts: existing.allowed_hosts.clone(),
            config: existing.config_names(),
        };
        self.start_or_replace(spec).await
    }

    async fn start_or_replace(self: &Arc<Self>, spec: ComponentSpec) -> Result<String, HostError> {
        let prepared = RunningComponent::prepare(
            &self.runtime,
            &self.policy,
            &self.artifacts,
            &self.router,
            &spec,
            &self.config,
            &self.metrics,
        )
        .await;
        // Resolved after the image proved good, so a refused image costs
        // no state reads.
        let prepared = match prepared {
            Ok(component) => match self.resolve_component_config(&spec.config).await {
                Ok(values) => {
                    component.set_config(spec.config.clone(), values);
                    Ok(component)
                }
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        };
        let component = match prepared {
            Ok(component) => Arc::new(component),
            Err(err) => {
                self.events
                    .publish(LatticeEvent::ComponentScaleFailed(ComponentScaleFailed {
                        host_id: self.id.clone(),
                        component_id: spec.id.clone(),
                        image_ref: spec.image_ref.clone(),
                        max_instances: spec.max_instances,
                        annotations: spec.annotations.clone(),
                        claims: None,
                        error: err.to_string(),
                    }))
                    .await;
                return Err(err);
            }
        };
        if let Some(claims) = &component.claims {
            let entry = trellis_lattice::ctl::ClaimsSummary {
                subject: claims.sub.clone(),
                issuer: claims.iss.clone(),
                name: component.name().unwrap_or_default(),
                revision: claims
                    .metadata
                    .as_ref()
                    .and_then(|m| m.rev)
                    .unwrap_or(0)
                    .to_string(),
                version: claims
                    .metadata
                    .as_ref()
                    .and_then(|m| m.ver.clone())
                    .unwrap_or_default(),
                tags: claims
                    .metadata
                    .as_ref()
                    .and_then(|m| m.tags.clone())
                    .unwrap_or_default(),
                call_alias: claims.metadata.as_ref().and_then(|m| m.call_alias.clone()),
            };
            if let Err(err) = self.state.put_claims(&claims.sub, &entry.to_entry()).await {
                tracing::warn!(error = %err, "cannot record claims in lattice state");
            }
        }
        let replacing = self.component(&spec.id).is_some();
        if replacing {
            let mut components = self.components.write().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = components.get_mut(&spec.id) {
                slot.current = Arc::clone(&component);
            }
        } else {
            // Register before subscribing, so the first call finds it.
            let placeholder = tokio::spawn(async {});
            self.components
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    spec.id.clone(),
                    ComponentSlot {
                        current: Arc::clone(&component),
                        server: placeholder,
                    },
                );
            let server = match rpc::serve(Arc::clone(self), spec.id.clone()).await {
                Ok(server) => server,
                Err(err) => {
                    self.components
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&spec.id);
                    return Err(err);
                }
            };
            if let Some(slot) = self
                .components
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&spec.id)
            {
                slot.server = server;
            }
        }
        // A config put between the read above and the component joining
        // the table was missed by `follow_config`; read once more.
        if !spec.config.is_empty() {
            self.resolve_config_of(&component).await;
        }
        self.publish_scaled(&component).await;
        let verb = if replacing { "updated" } else { "started" };
        Ok(format!(
            "component `{}` {verb} with {} instances",
            spec.id, spec.max_instances
        ))
    }

    async fn remove(&self, spec: &ComponentSpec) -> String {
        let slot = self
            .components
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&spec.id);
        let Some(slot) = slot else {
            return format!("component `{}` was not running", spec.id);
        };
        slot.server.abort();
        let image_ref = slot.current.image_ref.clone();
        self.events
            .publish(LatticeEvent::ComponentScaled(ComponentScaled {
                host_id: self.id.clone(),
                component_id: spec.id.clone(),
                image_ref,
                max_instances: 0,
                annotations: slot.current.annotations.clone(),
                claims: claims_of(&slot.current),
            }))
            .await;
        format!("component `{}` stopped", spec.id)
    }

    async fn publish_scaled(&self, component: &RunningComponent) {
        self.events
            .publish(LatticeEvent::ComponentScaled(ComponentScaled {
                host_id: self.id.clone(),
                component_id: component.id.clone(),
                image_ref: component.image_ref.clone(),
                max_instances: component.max_instances(),
                annotations: component.annotations.clone(),
                claims: claims_of(component),
            }))
            .await;
    }
}

/// How many labels an operator set (the built-in `hostcore.*` ones aside).
fn operator_label_count(labels: &BTreeMap<String, String>) -> usize {
    labels
        .keys()
        .filter(|k| !k.starts_with("hostcore."))
        .count()
}

/// The host's cluster key, from its seed or fresh, and `config` with that
/// key's public half first among the cluster issuers, which are checked
/// here so that a typo fails the start rather than every call.
fn with_cluster_key(
    mut config: HostConfig,
) -> Result<(HostConfig, trellis_claims::KeyPair), HostError> {
    let bad = |e: trellis_claims::ClaimsError| HostError::BadRequest(e.to_string());
    let key = match &config.cluster_seed {
        Some(seed) => trellis_claims::key_pair_from_seed(KeyKind::Cluster, "cluster seed", seed)
            .map_err(bad)?,
        None => KeyKind::Cluster.generate(),
    };
    for issuer in &config.cluster_issuers {
        KeyKind::Cluster
            .check_public("a cluster issuer (--cluster-issuers)", issuer)
            .map_err(bad)?;
    }
    let own = key.public_key();
    config.cluster_issuers.retain(|issuer| *issuer != own);
    config.cluster_issuers.insert(0, own);
    Ok((config, key))
}
