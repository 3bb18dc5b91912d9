//! The provider supervisor: capability providers are separate executables
//! that this host starts, keeps alive and stops.
//!
//! - [`artifact`] loads an executable and applies the host's claims policy;
//! - [`process`] spawns one process, hands it its host data on stdin and
//!   watches it;
//! - [`control`] is the host's side of the NATS protocol every provider
//!   speaks (health, `linkdefs.put|del`, shutdown);
//! - [`supervise`] is one provider's life: launch, crash, restart, stop;
//! - this module is the registry that the control interface, the
//!   inventory and the host's stop use, plus the two lattice-wide loops:
//!   forwarding link changes to the providers they involve, and the
//!   periodic health check.

mod artifact;
mod control;
mod host_data;
mod process;
mod supervise;

use crate::files::FileLimits;
use crate::imports::RestartingProviders;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use trellis_lattice::ctl::{ClaimsSummary, LocalData, ProviderDescription, StartProviderCommand};
use trellis_lattice::subject::{Subjects, validate_token};

use crate::HostError;
use crate::config::HostConfig;
use crate::events::EventPublisher;
use crate::policy::RunPolicy;
use crate::state::{LatticeState, LinkChange, LinkNotice};
use control::ProviderControl;
use host_data::HostDataTemplate;
use supervise::{Phase, SupervisedProvider};
use trellis_oci::ArtifactCache;

/// What every supervised provider shares: the host's connections and settings.
pub(crate) struct SupervisorContext {
    /// Which providers are between a lost process and the next one.
    restarting: RestartingProviders,
    host_id: String,
    nats: async_nats::Client,
    subjects: Subjects,
    events: EventPublisher,
    state: LatticeState,
    policy: RunPolicy,
    artifacts: Arc<ArtifactCache>,
    host_data: HostDataTemplate,
    data_dir: PathBuf,
    file_limits: FileLimits,
    start_timeout: Duration,
    stop_grace: Duration,
    health_interval: Duration,
    /// Whether each provider serves metrics for the host to merge.
    provider_metrics: bool,
    /// Fetches the secrets of providers' links from their backends.
    router: crate::imports::ImportRouter,
}

impl SupervisorContext {
    /// `{data_dir}/providers/{lattice}/{provider}`: the provider's own
    /// directory, stable across restarts of the provider and of the host.
    fn provider_data_dir(&self, provider_id: &str) -> PathBuf {
        self.data_dir
            .join("providers")
            .join(self.subjects.lattice())
            .join(provider_id)
    }

    /// Providers with files in their data directory on this host, running
    /// or not: the data wadm must not move them away from.
    fn local_data(&self) -> Vec<LocalData> {
        let root = self
            .data_dir
            .join("providers")
            .join(self.subjects.lattice());
        let Ok(entries) = std::fs::read_dir(&root) else {
            return Vec::new();
        };
        let mut found: Vec<LocalData> = entries
            .flatten()
            .filter(|entry| {
                std::fs::read_dir(entry.path()).is_ok_and(|mut files| files.next().is_some())
            })
            .filter_map(|entry| {
                Some(LocalData {
                    provider_id: entry.file_name().into_string().ok()?,
                    path: entry.path().display().to_string(),
                })
            })
            .collect();
        found.sort();
        found
    }

    /// Where verified executables are staged.
    fn bin_dir(&self) -> PathBuf {
        self.data_dir.join("bin")
    }
}

/// How long a link change waits for the providers here to have heard of
/// it: long enough for a few provider answers (each up to 5 s).
const LINK_FORWARD_WAIT: Duration = Duration::from_secs(15);

/// The providers this host runs. Cheap to clone; clones share the registry.
#[derive(Clone)]
pub(crate) struct ProviderSupervisor {
    ctx: Arc<SupervisorContext>,
    providers: Arc<RwLock<HashMap<String, Arc<SupervisedProvider>>>>,
    /// The number of the last link change handed to the providers here.
    forwarded: Arc<watch::Sender<u64>>,
}

impl ProviderSupervisor {
    /// A supervisor with no providers yet.
    // Each argument is a distinct handle the host already holds; a struct
    // to carry them would only be unpacked again here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        host_id: &str,
        config: &HostConfig,
        nats: async_nats::Client,
        subjects: Subjects,
        events: EventPublisher,
        state: LatticeState,
        policy: RunPolicy,
        artifacts: Arc<ArtifactCache>,
        router: crate::imports::ImportRouter,
    ) -> Self {
        let ctx = SupervisorContext {
            restarting: router.restarting(),
            router,
            host_id: host_id.to_owned(),
            nats,
            subjects,
            events,
            state,
            policy,
            artifacts,
            host_data: HostDataTemplate::new(host_id, config),
            data_dir: config.data_dir.clone(),
            file_limits: config.file_limits,
            start_timeout: config.provider_start_timeout,
            stop_grace: config.provider_stop_grace,
            health_interval: config.provider_health_interval,
            provider_metrics: config.metrics,
        };
        // Changes made before now have no provider here to tell.
        let forwarded = Arc::new(watch::Sender::new(ctx.state.link_changes_sent()));
        ProviderSupervisor {
            ctx: Arc::new(ctx),
            providers: Arc::new(RwLock::new(HashMap::new())),
            forwarded,
        }
    }

    fn get(&self, provider_id: &str) -> Option<Arc<SupervisedProvider>> {
        let providers = self.providers.read().unwrap_or_else(|p| p.into_inner());
        providers.get(provider_id).cloned()
    }

    /// Whether this host runs (or is starting) `provider_id`.
    pub(crate) fn runs(&self, provider_id: &str) -> bool {
        self.get(provider_id).is_some()
    }

    fn already(&self, provider_id: &str) -> Option<String> {
        let phase = self.get(provider_id)?.phase();
        Some(match phase {
            Phase::Starting => format!("provider `{provider_id}` is already starting on this host"),
            Phase::Up | Phase::Restarting => {
                format!("provider `{provider_id}` is already running on this host")
            }
        })
    }

    /// Starts a provider and returns once it answers a health check and
    /// has its links; starting one that runs already succeeds and changes
    /// nothing. Failures are also published as `provider_start_failed`.
    pub(crate) async fn start(&self, command: StartProviderCommand) -> Result<String, HostError> {
        let id = command.provider_id.clone();
        validate_token("provider id", &id)?;
        if let Some(message) = self.already(&id) {
            return Ok(message);
        }
        let result = self.launch_new(command.clone()).await;
        if let Err(err) = &result {
            tracing::warn!(provider_id = %id, error = %err, "provider start failed");
            supervise::publish_start_failed(&self.ctx, &id, &command.provider_ref, err).await;
        }
        result
    }

    async fn launch_new(&self, command: StartProviderCommand) -> Result<String, HostError> {
        let ctx = &self.ctx;
        let control =
            ProviderControl::new(ctx.nats.clone(), ctx.subjects.clone(), &command.provider_id)?;
        let artifact = artifact::load(
            &command.provider_ref,
            &ctx.policy,
            &ctx.artifacts,
            &ctx.bin_dir(),
            ctx.file_limits,
        )
        .await?;
        let id = command.provider_id;
        let provider = Arc::new(SupervisedProvider::new(
            id.clone(),
            command.provider_ref,
            command.annotations.unwrap_or_default(),
            command.config,
            artifact,
            control,
            Arc::clone(&ctx.restarting),
        ));
        {
            // Registered while starting, so the link watcher can find it
            // the moment it is up; a concurrent start of the same id lost.
            let mut providers = self.providers.write().unwrap_or_else(|p| p.into_inner());
            if providers.contains_key(&id) {
                drop(providers);
                return Ok(self.already(&id).unwrap_or_default());
            }
            providers.insert(id.clone(), Arc::clone(&provider));
        }
        let process = match supervise::launch(ctx, &provider).await {
            Ok(process) => process,
            Err(err) => {
                self.forget(&provider);
                return Err(err);
            }
        };
        provider.supervise(ctx, process);
        self.record_claims(&provider).await;
        tracing::info!(provider_id = %id, image_ref = %provider.image_ref, "provider started");
        Ok(format!(
            "provider `{id}` started from `{}`",
            provider.image_ref
        ))
    }

    /// Removes `provider` from the registry, unless another took its place.
    fn forget(&self, provider: &Arc<SupervisedProvider>) {
        provider.no_longer_restarting();
        let mut providers = self.providers.write().unwrap_or_else(|p| p.into_inner());
        if providers
            .get(&provider.id)
            .is_some_and(|p| Arc::ptr_eq(p, provider))
        {
            providers.remove(&provider.id);
        }
    }

    async fn record_claims(&self, provider: &SupervisedProvider) {
        let Some(token) = &provider.claims else {
            return;
        };
        let meta = token.claims.metadata.as_ref();
        let summary = ClaimsSummary {
            subject: token.claims.sub.clone(),
            issuer: token.claims.iss.clone(),
            name: provider.name().unwrap_or_default(),
            revision: provider.revision().to_string(),
            version: meta.and_then(|m| m.ver.clone()).unwrap_or_default(),
            tags: Vec::new(),
            call_alias: None,
        };
        if let Err(err) = self
            .ctx
            .state
            .put_claims(&token.claims.sub, &summary.to_entry())
            .await
        {
            tracing::warn!(error = %err, "cannot record provider claims in lattice state");
        }
    }

    /// Shuts a provider down (shutdown request, then a kill after the
    /// grace period) and returns once its process is gone.
    pub(crate) async fn stop(&self, provider_id: &str) -> Result<String, HostError> {
        let Some(provider) = self.get(provider_id) else {
            return Ok(format!(
                "provider `{provider_id}` was not running on this host"
            ));
        };
        if provider.phase() == Phase::Starting {
            return Err(HostError::BadRequest(format!(
                "provider `{provider_id}` is still starting; stop it once it has started"
            )));
        }
        provider.stop().await;
        self.forget(&provider);
        Ok(format!("provider `{provider_id}` stopped"))
    }

    /// Stops every provider, all at once; for the host's own stop.
    pub(crate) async fn stop_all(&self) {
        let ids: Vec<String> = {
            let providers = self.providers.read().unwrap_or_else(|p| p.into_inner());
            providers.keys().cloned().collect()
        };
        let stops = ids.iter().map(|id| self.stop(id));
        for result in futures::future::join_all(stops).await {
            if let Err(err) = result {
                tracing::warn!(error = %err, "provider not stopped with the host");
            }
        }
    }

    /// What [`SupervisorContext::local_data`] finds, for the inventory.
    pub(crate) fn local_data(&self) -> Vec<LocalData> {
        self.ctx.local_data()
    }

    /// The providers to list in the host inventory, sorted by id.
    pub(crate) fn inventory(&self) -> Vec<ProviderDescription> {
        let providers = self.providers.read().unwrap_or_else(|p| p.into_inner());
        let mut listed: Vec<ProviderDescription> = providers
            .values()
            .filter(|p| p.phase() != Phase::Starting)
            .map(|p| ProviderDescription {
                id: p.id.clone(),
                image_ref: Some(p.image_ref.clone()),
                name: p.name(),
                revision: p.revision(),
                annotations: Some(p.annotations.clone()),
            })
            .collect();
        listed.sort_by(|a, b| a.id.cmp(&b.id));
        listed
    }

    /// Each provider's restarts, health and metrics address, for the
    /// host's metrics.
    pub(crate) fn vitals(&self) -> Vec<crate::metrics::ProviderVitals> {
        let providers = self.providers.read().unwrap_or_else(|p| p.into_inner());
        providers
            .values()
            .map(|p| crate::metrics::ProviderVitals {
                id: p.id.clone(),
                restarts: p.restarts.load(std::sync::atomic::Ordering::Relaxed),
                healthy: p.healthy(),
                metrics_addr: *p.metrics_addr.lock().unwrap_or_else(|e| e.into_inner()),
            })
            .collect()
    }

    fn up(&self) -> Vec<Arc<SupervisedProvider>> {
        let providers = self.providers.read().unwrap_or_else(|p| p.into_inner());
        providers
            .values()
            .filter(|p| p.phase() == Phase::Up)
            .cloned()
            .collect()
    }

    /// Sends each link change in lattice state to the running providers it
    /// involves, until the task is dropped. A provider that refuses a link
    /// is reported unhealthy with its reason.
    pub(crate) async fn forward_link_changes(self) {
        let (mut changes, seen) = self.ctx.state.subscribe_link_changes();
        self.forwarded.send_if_modified(|forwarded| {
            let newer = seen > *forwarded;
            *forwarded = (*forwarded).max(seen);
            newer
        });
        loop {
            match changes.recv().await {
                Ok(LinkNotice { seq, change }) => {
                    self.forward(change).await;
                    self.forwarded.send_replace(seq);
                }
                Err(RecvError::Lagged(missed)) => tracing::warn!(
                    missed,
                    "link changes arrived faster than providers took them; some providers may \
                     hold stale links until restarted"
                ),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Returns once every link change made so far has been handed to the
    /// providers on this host that it involves (or after a bound), so that
    /// a `link.put` answered by this host is in effect when the answer
    /// arrives: a call right after a relink reaches a provider that knows
    /// the link.
    pub(crate) async fn links_forwarded(&self) {
        let target = self.ctx.state.link_changes_sent();
        let mut forwarded = self.forwarded.subscribe();
        let done = forwarded.wait_for(|seen| *seen >= target);
        if tokio::time::timeout(LINK_FORWARD_WAIT, done).await.is_err() {
            tracing::warn!(
                "providers on this host had not heard of every link change within {}",
                control::seconds(LINK_FORWARD_WAIT)
            );
        }
    }

    async fn forward(&self, change: LinkChange) {
        let link = match &change {
            LinkChange::Put(link) | LinkChange::Deleted(link) => link,
        };
        let mut involved = vec![&link.source_id];
        if link.target != link.source_id {
            involved.push(&link.target);
        }
        for id in involved {
            let Some(provider) = self.get(id).filter(|p| p.phase() == Phase::Up) else {
                continue;
            };
            match &change {
                LinkChange::Put(link) => {
                    if let Some(problem) = supervise::send_link(&self.ctx, &provider, link).await {
                        let failed = supervise::Health::Failed(problem);
                        supervise::report_health(&self.ctx, &provider, failed).await;
                    }
                }
                LinkChange::Deleted(link) => supervise::send_link_deleted(&provider, link).await,
            }
        }
    }

    /// Asks every running provider for its health each interval, until
    /// the task is dropped; changes are published as events.
    pub(crate) async fn check_health(self) {
        let mut ticks = tokio::time::interval(self.ctx.health_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; a launch reports the first health.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let providers = self.up();
            let checks = providers
                .iter()
                .map(|p| supervise::check_health(&self.ctx, p));
            futures::future::join_all(checks).await;
        }
    }
}
