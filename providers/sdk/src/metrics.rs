//! A provider's Prometheus metrics, served at the host data's
//! `metrics_addr` (the host scrapes it and serves it with its own). Every
//! series carries the provider's id, so a host's merged exposition keeps
//! its providers apart. Providers register their own metrics with
//! [`ProviderMetrics::register`].

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    provider: String,
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KvLabels {
    provider: String,
    backend: String,
    operation: String,
    outcome: &'static str,
}

/// The most distinct function names labelled; later ones count as
/// `other`, so no caller can grow the metrics without bound.
const MAX_FUNCTION_LABELS: usize = 64;

/// The metrics of one provider process.
pub struct ProviderMetrics {
    provider: String,
    functions: Mutex<std::collections::HashSet<String>>,
    registry: Mutex<Registry>,
    invocations: Family<CallLabels, Counter>,
    errors: Family<CallLabels, Counter>,
    duration: Family<CallLabels, Histogram>,
    keyvalue: Family<KvLabels, Counter>,
}

impl std::fmt::Debug for ProviderMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderMetrics")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl ProviderMetrics {
    /// The metrics of provider `provider`.
    pub fn new(provider: &str) -> Self {
        let metrics = ProviderMetrics {
            provider: provider.to_owned(),
            functions: Mutex::default(),
            registry: Mutex::new(Registry::default()),
            invocations: Family::default(),
            errors: Family::default(),
            // 50 µs to about 13 s.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
            }),
            keyvalue: Family::default(),
        };
        metrics.register(
            "trellis_provider_invocations",
            "Calls the provider served, by function",
            metrics.invocations.clone(),
        );
        metrics.register(
            "trellis_provider_invocation_errors",
            "Calls that returned an error (refused, bad input, no link, the provider's own)",
            metrics.errors.clone(),
        );
        metrics.register(
            "trellis_provider_invocation_duration_seconds",
            "Time the provider took to serve a call, by function",
            metrics.duration.clone(),
        );
        metrics.register(
            "trellis_provider_keyvalue_operations",
            "wasi:keyvalue operations, by backend, operation and outcome",
            metrics.keyvalue.clone(),
        );
        metrics
    }

    /// Adds a provider's own metric; its name should start with
    /// `trellis_provider_`.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register(name, help, metric);
    }

    /// Records one call to `function` that took `elapsed`. Past
    /// [`MAX_FUNCTION_LABELS`] distinct names, new ones count as `other`.
    pub fn call(&self, function: &str, elapsed: Duration, failed: bool) {
        let function = {
            let mut seen = self.functions.lock().unwrap_or_else(|p| p.into_inner());
            if seen.contains(function) || seen.len() < MAX_FUNCTION_LABELS {
                seen.insert(function.to_owned());
                function.to_owned()
            } else {
                "other".to_owned()
            }
        };
        let labels = CallLabels {
            provider: self.provider.clone(),
            function,
        };
        self.invocations.get_or_create(&labels).inc();
        if failed {
            self.errors.get_or_create(&labels).inc();
        }
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Records one keyvalue `operation` (e.g. `atomics.increment`) on
    /// `backend` (e.g. `sqlite`).
    pub fn keyvalue(&self, backend: &str, operation: &str, ok: bool) {
        self.keyvalue
            .get_or_create(&KvLabels {
                provider: self.provider.clone(),
                backend: backend.to_owned(),
                operation: operation.to_owned(),
                outcome: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// The exposition.
    pub fn encode(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        trellis_telemetry::metrics::encode(&registry)
    }
}
