//! wadm's Prometheus metrics: reconcile passes, the commands they send,
//! and each app's status.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::DeployStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    app: String,
    status: &'static str,
}

/// Every metric one wadm keeps.
pub struct WadmMetrics {
    registry: Mutex<Registry>,
    passes: Counter,
    pass_duration: Histogram,
    sent: Family<CommandLabels, Counter>,
    failed: Family<CommandLabels, Counter>,
    status: Family<StatusLabels, Gauge>,
}

impl std::fmt::Debug for WadmMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WadmMetrics").finish_non_exhaustive()
    }
}

impl Default for WadmMetrics {
    fn default() -> Self {
        let metrics = WadmMetrics {
            registry: Mutex::new(Registry::default()),
            passes: Counter::default(),
            // 1 ms to about 65 s.
            pass_duration: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            sent: Family::default(),
            failed: Family::default(),
            status: Family::default(),
        };
        {
            let mut r = metrics.registry.lock().unwrap_or_else(|p| p.into_inner());
            r.register(
                "trellis_wadm_reconcile_passes",
                "Observe-plan-act passes over every app",
                metrics.passes.clone(),
            );
            r.register(
                "trellis_wadm_reconcile_pass_duration_seconds",
                "Time one pass took",
                metrics.pass_duration.clone(),
            );
            r.register(
                "trellis_wadm_commands_sent",
                "Commands sent to hosts, by kind",
                metrics.sent.clone(),
            );
            r.register(
                "trellis_wadm_commands_failed",
                "Commands a host refused or did not answer, by kind",
                metrics.failed.clone(),
            );
            r.register(
                "trellis_wadm_app_status",
                "1 for each app's current status, 0 for the others",
                metrics.status.clone(),
            );
        }
        metrics
    }
}

impl WadmMetrics {
    pub(crate) fn pass(&self, elapsed: std::time::Duration) {
        self.passes.inc();
        self.pass_duration.observe(elapsed.as_secs_f64());
    }

    pub(crate) fn command(&self, command: &'static str, ok: bool) {
        let labels = CommandLabels { command };
        self.sent.get_or_create(&labels).inc();
        if !ok {
            self.failed.get_or_create(&labels).inc();
        }
    }

    /// Forgets every app's status: each pass sets those of the apps it
    /// plans for, so undeployed and deleted apps drop out.
    pub(crate) fn forget_statuses(&self) {
        self.status.clear();
    }

    pub(crate) fn status(&self, app: &str, status: DeployStatus) {
        for each in [
            DeployStatus::Undeployed,
            DeployStatus::Reconciling,
            DeployStatus::Deployed,
            DeployStatus::Failed,
        ] {
            self.status
                .get_or_create(&StatusLabels {
                    app: app.to_owned(),
                    status: each.as_str(),
                })
                .set(i64::from(each == status));
        }
    }

    /// The exposition.
    pub fn encode(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        trellis_telemetry::metrics::encode(&registry)
    }
}
