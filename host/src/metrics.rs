//! The host's Prometheus metrics. Call counters and histograms are updated
//! as calls happen; instances and provider health (gauges), provider
//! restarts and NATS reconnects (counters kept by the supervisor and the
//! NATS client) are read off the host's state at each scrape, so the call
//! path pays for none of them. Scrapes run one at a time.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How long a scrape waits for one provider's metrics.
const PROVIDER_SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Labels of one function of one component.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub(crate) component: String,
    pub(crate) function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabel {
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

/// Every metric one host keeps.
pub(crate) struct HostMetrics {
    registry: Mutex<Registry>,
    /// Held through a scrape: two at once would add the same catch-up
    /// twice, or one would encode while the other clears its gauges.
    scraping: tokio::sync::Mutex<()>,
    invocations: Family<CallLabels, Counter>,
    errors: Family<CallLabels, Counter>,
    duration: Family<CallLabels, Histogram>,
    instantiation: Family<ComponentLabel, Histogram>,
    bytes_in: Family<ComponentLabel, Counter>,
    bytes_out: Family<ComponentLabel, Counter>,
    instances_active: Family<ComponentLabel, Gauge>,
    instances_max: Family<ComponentLabel, Gauge>,
    provider_restarts: Family<ProviderLabel, Counter>,
    provider_healthy: Family<ProviderLabel, Gauge>,
    nats_reconnects: Counter,
}

/// What a scrape reads off one component.
pub(crate) struct ComponentVitals {
    pub(crate) id: String,
    pub(crate) active: u32,
    pub(crate) max: u32,
}

/// What a scrape reads off one provider.
pub(crate) struct ProviderVitals {
    pub(crate) id: String,
    pub(crate) restarts: u64,
    /// `None` until its first health check.
    pub(crate) healthy: Option<bool>,
    pub(crate) metrics_addr: Option<SocketAddr>,
}

impl HostMetrics {
    pub(crate) fn new() -> Self {
        // 50 µs to about 13 s: a warm call up to one near the deadline.
        let latency = || Histogram::new(exponential_buckets(0.000_05, 2.0, 19));
        // 5 µs to about 1.3 s.
        let startup = || Histogram::new(exponential_buckets(0.000_005, 2.0, 19));
        let metrics = HostMetrics {
            registry: Mutex::new(Registry::default()),
            scraping: tokio::sync::Mutex::new(()),
            invocations: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(latency),
            instantiation: Family::new_with_constructor(startup),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            instances_active: Family::default(),
            instances_max: Family::default(),
            provider_restarts: Family::default(),
            provider_healthy: Family::default(),
            nats_reconnects: Counter::default(),
        };
        {
            let mut r = metrics.registry.lock().unwrap_or_else(|p| p.into_inner());
            r.register(
                "trellis_host_invocations",
                "Calls to a component's exports, by component and function",
                metrics.invocations.clone(),
            );
            r.register(
                "trellis_host_invocation_errors",
                "Calls that failed (trap, timeout, refusal, bad input), by component and function",
                metrics.errors.clone(),
            );
            r.register(
                "trellis_host_invocation_duration_seconds",
                "Time from a call's arrival to its reply, by component and function",
                metrics.duration.clone(),
            );
            r.register(
                "trellis_host_instantiation_duration_seconds",
                "Time to instantiate a fresh instance for one call",
                metrics.instantiation.clone(),
            );
            r.register(
                "trellis_host_received_bytes",
                "Call parameter bytes received in call messages (streamed bodies not included), by component",
                metrics.bytes_in.clone(),
            );
            r.register(
                "trellis_host_sent_bytes",
                "Reply bytes sent in reply messages (streamed bodies not included), by component",
                metrics.bytes_out.clone(),
            );
            r.register(
                "trellis_host_instances_active",
                "Instances running a call now, by component",
                metrics.instances_active.clone(),
            );
            r.register(
                "trellis_host_instances_max",
                "The most instances a component may run at once",
                metrics.instances_max.clone(),
            );
            r.register(
                "trellis_host_provider_restarts",
                "Times the host restarted a provider's process after it exited",
                metrics.provider_restarts.clone(),
            );
            r.register(
                "trellis_host_provider_healthy",
                "1 if the provider's last health check passed, 0 if it failed",
                metrics.provider_healthy.clone(),
            );
            r.register(
                "trellis_host_nats_reconnects",
                "Times the host's NATS connection was re-established",
                metrics.nats_reconnects.clone(),
            );
        }
        metrics
    }

    /// Records one call that took `elapsed`, received `received` bytes and
    /// sent `sent`.
    pub(crate) fn call(
        &self,
        labels: &CallLabels,
        elapsed: Duration,
        failed: bool,
        received: usize,
        sent: usize,
    ) {
        self.invocations.get_or_create(labels).inc();
        if failed {
            self.errors.get_or_create(labels).inc();
        }
        self.duration
            .get_or_create(labels)
            .observe(elapsed.as_secs_f64());
        let component = ComponentLabel {
            component: labels.component.clone(),
        };
        self.bytes_in
            .get_or_create(&component)
            .inc_by(received as u64);
        self.bytes_out.get_or_create(&component).inc_by(sent as u64);
    }

    /// Records one instantiation of `component`.
    pub(crate) fn instantiated(&self, component: &str, elapsed: Duration) {
        self.instantiation
            .get_or_create(&ComponentLabel {
                component: component.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The exposition: the host's own metrics, with the gauges set from
    /// `components`, `providers` and the NATS statistics, merged with
    /// what each provider serves.
    pub(crate) async fn render(
        &self,
        components: Vec<ComponentVitals>,
        providers: Vec<ProviderVitals>,
        nats: &async_nats::Client,
    ) -> String {
        let _one_at_a_time = self.scraping.lock().await;
        self.instances_active.clear();
        self.instances_max.clear();
        for c in components {
            let label = ComponentLabel { component: c.id };
            self.instances_active
                .get_or_create(&label)
                .set(i64::from(c.active));
            self.instances_max
                .get_or_create(&label)
                .set(i64::from(c.max));
        }
        self.provider_healthy.clear();
        let mut scrapes = Vec::new();
        for p in providers {
            let label = ProviderLabel {
                provider: p.id.clone(),
            };
            catch_up(&self.provider_restarts.get_or_create(&label), p.restarts);
            if let Some(healthy) = p.healthy {
                self.provider_healthy
                    .get_or_create(&label)
                    .set(i64::from(healthy));
            }
            if let Some(addr) = p.metrics_addr {
                scrapes.push(async move {
                    trellis_telemetry::metrics::scrape(addr, PROVIDER_SCRAPE_TIMEOUT)
                        .await
                        .inspect_err(|err| {
                            tracing::debug!(provider_id = %p.id, error = %err, "no provider metrics")
                        })
                        .ok()
                });
            }
        }
        let connects = nats
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed);
        // The first connect is not a reconnect.
        catch_up(&self.nats_reconnects, connects.saturating_sub(1));
        let own = {
            let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
            trellis_telemetry::metrics::encode(&registry)
        };
        let mut all = vec![own];
        all.extend(
            futures::future::join_all(scrapes)
                .await
                .into_iter()
                .flatten(),
        );
        trellis_telemetry::metrics::merge(&all)
    }
}

/// Raises `counter` to `total`, a count kept elsewhere (by the supervisor,
/// by the NATS client): counters only go up.
fn catch_up(counter: &Counter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}
