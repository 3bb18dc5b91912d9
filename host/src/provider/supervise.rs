//! The life of one supervised provider.
//!
//! [`launch`] brings a process up: it resolves the provider's named
//! config, spawns the executable with its host data, waits for the first
//! health answer, sends every link that involves the provider, and
//! publishes `provider_started` (and the first health state). [`run`] then
//! watches the process: an exit nobody asked for is published as
//! `provider_stopped` and followed by a relaunch after an exponential
//! backoff, forever; a stop request shuts it down and ends the task.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use trellis_claims::{ProviderMetadata, Token};
use trellis_lattice::Link;
use trellis_lattice::event::{
    LatticeEvent, ProviderClaims, ProviderHealthCheck, ProviderStartFailed, ProviderStarted,
    ProviderStopped,
};
use trellis_lattice::provider::{HealthCheckResponse, ProviderLink};
use trellis_lattice::secret::{APP_ANNOTATION, SealedSecret};

use super::SupervisorContext;
use super::control::{ProviderControl, ProviderRequestError, REQUEST_TIMEOUT, seconds};
use super::process::ProviderProcess;
use crate::HostError;
use crate::host::human_time;
use crate::imports::RestartingProviders;
use crate::secrets::SecretGrant;

/// The first wait before restarting a provider that exited.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that ran this long before exiting restarts without delay
/// history: it was healthy, and this is a new failure.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);

/// Where a supervised provider is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The first launch is under way; not yet in the inventory.
    Starting,
    /// The process answered and has its links.
    Up,
    /// The process exited and a relaunch is pending or under way.
    Restarting,
}

/// A provider's last reported health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    /// Healthy, with the provider's remark if it made one.
    Passed(Option<String>),
    /// Unhealthy, and why.
    Failed(String),
}

impl Health {
    fn from_response(response: HealthCheckResponse) -> Self {
        if response.healthy {
            Health::Passed(response.message)
        } else {
            Health::Failed(
                response
                    .message
                    .unwrap_or_else(|| "reported itself unhealthy without saying why".into()),
            )
        }
    }

    /// Whether going from `self` to `next` is news: passing and failing
    /// flip, or the reason for failing changed.
    fn differs_from(&self, next: &Health) -> bool {
        match (self, next) {
            (Health::Passed(_), Health::Passed(_)) => false,
            (Health::Failed(a), Health::Failed(b)) => a != b,
            _ => true,
        }
    }
}

/// One provider this host supervises, shared by the registry, the link
/// forwarder, the health checker and its own supervision task.
pub(crate) struct SupervisedProvider {
    pub(crate) id: String,
    pub(crate) image_ref: String,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) claims: Option<Token<ProviderMetadata>>,
    pub(crate) control: ProviderControl,
    config_names: Vec<String>,
    executable: PathBuf,
    /// What the executable hashed to when it was verified.
    sha256: String,
    phase: Mutex<Phase>,
    health: Mutex<Option<Health>>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// The host's set of restarting providers, which this one joins while
    /// its process is being replaced.
    restarting: RestartingProviders,
    /// Processes started after the first one.
    pub(crate) restarts: std::sync::atomic::AtomicU64,
    /// Where the current process serves its metrics, when the host asked.
    pub(crate) metrics_addr: Mutex<Option<std::net::SocketAddr>>,
    /// The key its links' secrets are sealed for; its seed goes to each of
    /// its processes in their host data.
    xkey: trellis_claims::XKey,
}

impl SupervisedProvider {
    /// A provider about to be launched for the first time.
    pub(crate) fn new(
        id: String,
        image_ref: String,
        annotations: BTreeMap<String, String>,
        config_names: Vec<String>,
        artifact: super::artifact::ProviderArtifact,
        control: ProviderControl,
        restarting: RestartingProviders,
    ) -> Self {
        SupervisedProvider {
            id,
            image_ref,
            annotations,
            claims: artifact.claims,
            control,
            config_names,
            executable: artifact.executable,
            sha256: artifact.sha256,
            phase: Mutex::new(Phase::Starting),
            health: Mutex::new(None),
            stop: Mutex::new(None),
            task: Mutex::new(None),
            restarting,
            restarts: std::sync::atomic::AtomicU64::new(0),
            metrics_addr: Mutex::new(None),
            xkey: trellis_claims::XKey::new(),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leaves the host's restarting set: the provider was stopped for good.
    pub(crate) fn no_longer_restarting(&self) {
        self.restarting
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }

    fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
        let mut restarting = self.restarting.write().unwrap_or_else(|p| p.into_inner());
        if phase == Phase::Restarting {
            restarting.insert(self.id.clone());
        } else {
            restarting.remove(&self.id);
        }
    }

    /// The process is gone: its health is unknown until the next one answers.
    fn lost(&self) {
        self.set_phase(Phase::Restarting);
        *self.health.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Records `next`; returns whether it is news worth an event.
    fn record_health(&self, next: &Health) -> bool {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let news = health.as_ref().is_none_or(|last| last.differs_from(next));
        *health = Some(next.clone());
        news
    }

    /// Whether the last health check passed; `None` before the first.
    pub(crate) fn healthy(&self) -> Option<bool> {
        let health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        health.as_ref().map(|h| matches!(h, Health::Passed(_)))
    }

    /// Hands the launched process to a supervision task.
    pub(crate) fn supervise(
        self: &Arc<Self>,
        ctx: &Arc<SupervisorContext>,
        process: ProviderProcess,
    ) {
        let (stop, stopped) = oneshot::channel();
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = Some(stop);
        let task = tokio::spawn(run(Arc::clone(ctx), Arc::clone(self), process, stopped));
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// Asks the supervision task to stop the process, and waits until it
    /// has (and has published `provider_stopped`).
    pub(crate) async fn stop(&self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = stop.send(());
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    pub(crate) fn name(&self) -> Option<String> {
        self.claims.as_ref()?.claims.metadata.as_ref()?.name.clone()
    }

    pub(crate) fn revision(&self) -> i32 {
        self.claims
            .as_ref()
            .and_then(|t| t.claims.metadata.as_ref()?.rev)
            .unwrap_or(0)
    }
}

/// Brings one process of `provider` up, as described in the module docs.
pub(crate) async fn launch(
    ctx: &SupervisorContext,
    provider: &SupervisedProvider,
) -> Result<ProviderProcess, HostError> {
    let config = ctx.state.resolve_config(&provider.config_names).await?;
    let data_dir = ctx.provider_data_dir(&provider.id);
    tokio::fs::create_dir_all(&data_dir)
        .await
        .map_err(|e| HostError::Provider {
            provider_id: provider.id.clone(),
            reason: format!(
                "has no data directory: creating {}: {e}",
                data_dir.display()
            ),
        })?;
    let mut host_data = ctx.host_data.for_provider(
        &provider.id,
        config,
        ctx.state.links_involving(&provider.id),
        data_dir,
    );
    host_data.provider_xkey_seed = Some(provider.xkey.seed().map_err(|e| HostError::Provider {
        provider_id: provider.id.clone(),
        reason: format!("has no key for its secrets: {e}"),
    })?);
    if ctx.provider_metrics {
        let addr = free_loopback_addr();
        host_data.metrics_addr = addr.map(|a| a.to_string());
        *provider
            .metrics_addr
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = addr;
    }
    super::artifact::reverify(&provider.executable, &provider.sha256)
        .await
        .map_err(|reason| HostError::Provider {
            provider_id: provider.id.clone(),
            reason,
        })?;
    let mut process = ProviderProcess::spawn(&provider.executable, &host_data).await?;
    let first = match process
        .await_health(&provider.control, ctx.start_timeout)
        .await
    {
        Ok(answer) => Health::from_response(answer),
        Err(err) => {
            process.abandon().await;
            return Err(err);
        }
    };
    // Up before the links are read: a link that changes from here on is
    // forwarded by the link watcher, one that changed before is in the table.
    provider.set_phase(Phase::Up);
    let mut health = first;
    for link in ctx.state.links_involving(&provider.id) {
        if let Some(problem) = send_link(ctx, provider, &link).await {
            health = Health::Failed(problem);
        }
    }
    ctx.events
        .publish(LatticeEvent::ProviderStarted(ProviderStarted {
            host_id: ctx.host_id.clone(),
            provider_id: provider.id.clone(),
            image_ref: provider.image_ref.clone(),
            annotations: provider.annotations.clone(),
            claims: provider.claims.as_ref().map(provider_claims),
        }))
        .await;
    report_health(ctx, provider, health).await;
    Ok(process)
}

/// The secrets the provider's side of `link` grants it, fetched on its
/// behalf and sealed by their backend for its key.
async fn link_secrets(
    ctx: &SupervisorContext,
    provider: &SupervisedProvider,
    link: &Link,
) -> Result<BTreeMap<String, SealedSecret>, String> {
    let side = if link.target == provider.id {
        &link.target_config
    } else {
        &link.source_config
    };
    let refs = ctx
        .state
        .resolve_secrets(side)
        .await
        .map_err(|e| format!("cannot read the link's secret references: {e}"))?;
    if refs.is_empty() {
        return Ok(BTreeMap::new());
    }
    let grant = SecretGrant {
        entity_id: provider.id.clone(),
        jwt: provider.claims.as_ref().map(|t| t.jwt.clone()),
        subject: provider.claims.as_ref().map(|t| t.claims.sub.clone()),
        app: provider.annotations.get(APP_ANNOTATION).cloned(),
        refs,
    };
    let reply_key = provider.xkey.public_key();
    let mut secrets = BTreeMap::new();
    for reference in grant.refs.values() {
        match ctx.router.fetch_sealed(&grant, reference, &reply_key).await {
            Ok(Some(sealed)) => {
                secrets.insert(reference.name.clone(), sealed);
            }
            Ok(None) => {
                return Err(format!(
                    "secret `{}` (key `{}`) does not exist in backend `{}`",
                    reference.name, reference.key, reference.backend
                ));
            }
            Err(why) => return Err(format!("secret `{}`: {why}", reference.name)),
        }
    }
    Ok(secrets)
}

/// Sends `link` with its config resolved; returns the provider's reason
/// if it refused it. A provider that cannot be reached gets the link again
/// with the rest when it is next launched.
pub(crate) async fn send_link(
    ctx: &SupervisorContext,
    provider: &SupervisedProvider,
    link: &Link,
) -> Option<String> {
    let resolved = async {
        Ok::<_, HostError>(ProviderLink {
            source_config_values: ctx.state.resolve_config(&link.source_config).await?,
            target_config_values: ctx.state.resolve_config(&link.target_config).await?,
            link: link.clone(),
            ..ProviderLink::default()
        })
    };
    let mut resolved = match resolved.await {
        Ok(resolved) => resolved,
        Err(err) => {
            tracing::warn!(provider_id = %provider.id, error = %err, "cannot resolve a link's config");
            return None;
        }
    };
    // The provider's own side of the link may grant it secrets; a secret
    // it is granted but cannot get fails the link, with the reason.
    match link_secrets(ctx, provider, link).await {
        Ok(secrets) => resolved.secrets = secrets,
        Err(problem) => {
            tracing::warn!(provider_id = %provider.id, source = %link.source_id, %problem, "a link's secret cannot be fetched");
            return Some(problem);
        }
    }
    match provider.control.put_link(&resolved).await {
        Ok(()) => {
            tracing::debug!(provider_id = %provider.id, source = %link.source_id, target = %link.target, "link sent to provider");
            None
        }
        Err(ProviderRequestError::Refused(message)) => {
            tracing::warn!(provider_id = %provider.id, source = %link.source_id, %message, "provider refused a link");
            Some(message)
        }
        Err(err) => {
            tracing::warn!(provider_id = %provider.id, error = %err, "cannot send a link to provider");
            None
        }
    }
}

/// Tells the provider a link is gone.
pub(crate) async fn send_link_deleted(provider: &SupervisedProvider, link: &Link) {
    if let Err(err) = provider.control.delete_link(link).await {
        tracing::warn!(provider_id = %provider.id, source = %link.source_id, error = %err, "cannot tell provider a link was deleted");
    }
}

/// Asks a running provider for its health and reports any change.
pub(crate) async fn check_health(ctx: &SupervisorContext, provider: &SupervisedProvider) {
    let health = match provider.control.health(REQUEST_TIMEOUT).await {
        Ok(answer) => Health::from_response(answer),
        Err(ProviderRequestError::Timeout { timeout, .. }) => Health::Failed(format!(
            "did not answer a health check within {}",
            seconds(timeout)
        )),
        Err(err) => Health::Failed(err.to_string()),
    };
    // A process that exited meanwhile is reported by its supervision task.
    if provider.phase() == Phase::Up {
        report_health(ctx, provider, health).await;
    }
}

/// Records `health` and publishes `health_check_passed|failed` if it is news.
pub(crate) async fn report_health(
    ctx: &SupervisorContext,
    provider: &SupervisedProvider,
    health: Health,
) {
    if !provider.record_health(&health) {
        return;
    }
    let check = |message| ProviderHealthCheck {
        host_id: ctx.host_id.clone(),
        provider_id: provider.id.clone(),
        message,
    };
    let event = match health {
        Health::Passed(message) => LatticeEvent::HealthCheckPassed(check(message)),
        Health::Failed(message) => {
            tracing::warn!(provider_id = %provider.id, %message, "provider is unhealthy");
            LatticeEvent::HealthCheckFailed(check(Some(message)))
        }
    };
    ctx.events.publish(event).await;
}

/// The supervision task of one provider (see the module docs).
async fn run(
    ctx: Arc<SupervisorContext>,
    provider: Arc<SupervisedProvider>,
    mut process: ProviderProcess,
    mut stop: oneshot::Receiver<()>,
) {
    let mut backoff = Backoff::default();
    loop {
        let running_since = Instant::now();
        tokio::select! {
            exit = process.wait() => {
                provider.lost();
                tracing::warn!(provider_id = %provider.id, "provider {exit}; restarting it");
                publish_stopped(&ctx, &provider, exit).await;
                if running_since.elapsed() >= BACKOFF_RESET_AFTER {
                    backoff = Backoff::default();
                }
                match relaunch(&ctx, &provider, &mut backoff, &mut stop).await {
                    Some(next) => process = next,
                    None => {
                        publish_stopped(&ctx, &provider, "stop".into()).await;
                        return;
                    }
                }
            }
            _ = &mut stop => {
                process.shutdown(&provider.control, &ctx.host_id, ctx.stop_grace).await;
                tracing::info!(provider_id = %provider.id, "provider stopped");
                publish_stopped(&ctx, &provider, "stop".into()).await;
                return;
            }
        }
    }
}

/// Relaunches until a launch succeeds (`Some`) or a stop is requested
/// (`None`), waiting longer after each failure.
async fn relaunch(
    ctx: &SupervisorContext,
    provider: &SupervisedProvider,
    backoff: &mut Backoff,
    stop: &mut oneshot::Receiver<()>,
) -> Option<ProviderProcess> {
    loop {
        let delay = backoff.next_delay();
        tracing::info!(provider_id = %provider.id, delay_ms = delay.as_millis() as u64, "restarting provider");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = &mut *stop => return None,
        }
        let attempt = tokio::select! {
            attempt = launch(ctx, provider) => attempt,
            _ = &mut *stop => return None,
        };
        match attempt {
            Ok(process) => {
                provider
                    .restarts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(provider_id = %provider.id, "provider restarted");
                return Some(process);
            }
            Err(err) => {
                tracing::warn!(provider_id = %provider.id, error = %err, "provider restart failed");
                publish_start_failed(ctx, &provider.id, &provider.image_ref, &err).await;
            }
        }
    }
}

/// Publishes `provider_start_failed` for `error`.
pub(crate) async fn publish_start_failed(
    ctx: &SupervisorContext,
    provider_id: &str,
    provider_ref: &str,
    error: &HostError,
) {
    ctx.events
        .publish(LatticeEvent::ProviderStartFailed(ProviderStartFailed {
            host_id: ctx.host_id.clone(),
            provider_id: provider_id.to_owned(),
            provider_ref: provider_ref.to_owned(),
            error: error.to_string(),
        }))
        .await;
}

async fn publish_stopped(ctx: &SupervisorContext, provider: &SupervisedProvider, reason: String) {
    ctx.events
        .publish(LatticeEvent::ProviderStopped(ProviderStopped {
            host_id: ctx.host_id.clone(),
            provider_id: provider.id.clone(),
            annotations: provider.annotations.clone(),
            reason,
        }))
        .await;
}

fn provider_claims(token: &Token<ProviderMetadata>) -> ProviderClaims {
    let meta = token.claims.metadata.as_ref();
    ProviderClaims {
        issuer: token.claims.iss.clone(),
        name: meta.and_then(|m| m.name.clone()).unwrap_or_default(),
        version: meta.and_then(|m| m.ver.clone()).unwrap_or_default(),
        tags: None,
        expires_human: token
            .claims
            .exp
            .map_or_else(|| "never".to_owned(), human_time),
        not_before_human: token
            .claims
            .nbf
            .map_or_else(|| "immediately".to_owned(), human_time),
    }
}

/// Waits between restarts: 250 ms, doubling up to 30 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: FIRST_BACKOFF,
        }
    }
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(MAX_BACKOFF);
        delay
    }
}

/// A loopback address with a port free right now, for a provider's
/// metrics: only the host scrapes it.
fn free_loopback_addr() -> Option<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .inspect_err(|err| tracing::warn!(error = %err, "no free port for provider metrics"))
        .ok()?;
    listener.local_addr().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..10)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
    }

    #[test]
    fn health_news_is_a_flip_or_a_new_reason() {
        let passed = Health::Passed(None);
        let failed = |m: &str| Health::Failed(m.into());
        assert!(!passed.differs_from(&Health::Passed(Some("fine".into()))));
        assert!(passed.differs_from(&failed("port in use")));
        assert!(failed("port in use").differs_from(&passed));
        assert!(!failed("port in use").differs_from(&failed("port in use")));
        assert!(failed("port in use").differs_from(&failed("redis down")));
    }

    #[test]
    fn an_unhealthy_answer_without_a_reason_still_says_something() {
        let health = Health::from_response(HealthCheckResponse {
            healthy: false,
            message: None,
        });
        assert!(matches!(health, Health::Failed(m) if m.contains("unhealthy")));
    }
}
