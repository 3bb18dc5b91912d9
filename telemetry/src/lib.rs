//! Logs, metrics and traces, set up alike in every Trellis process (host,
//! wadm, wash and each provider).
//!
//! - [`init`] installs the `tracing` subscriber: text or JSON lines on
//!   stderr (`TRELLIS_LOG_FORMAT`), colour only when stderr is a terminal,
//!   and, when the standard `OTEL_EXPORTER_OTLP_*` variables name a
//!   collector, an OTLP/HTTP exporter for the spans in [`trace::TARGET`].
//! - [`trace`] carries W3C trace context across lattice hops.
//! - [`metrics`] serves Prometheus metrics and merges the expositions of
//!   several processes into one.
//!
//! ```no_run
//! let _telemetry = trellis_telemetry::init(&trellis_telemetry::Service {
//!     name: "trellis-host",
//!     filter_var: "TRELLIS_LOG",
//!     default_filter: "info",
//!     timestamps: true,
//! });
//! tracing::info!("logged as text or JSON, traced when OTLP is configured");
//! ```

pub mod metrics;
pub mod trace;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Chooses the log line format: `text` (the default) or `json`.
pub const LOG_FORMAT_ENV: &str = "TRELLIS_LOG_FORMAT";

/// How one process logs and traces.
#[derive(Clone, Copy, Debug)]
pub struct Service<'a> {
    /// The OpenTelemetry `service.name` unless `OTEL_SERVICE_NAME` sets one.
    pub name: &'a str,
    /// The variable holding the log filter (`TRELLIS_LOG`, `RUST_LOG`).
    pub filter_var: &'a str,
    /// The filter when that variable is unset or unreadable.
    pub default_filter: &'a str,
    /// Whether text lines start with a timestamp.
    pub timestamps: bool,
}

/// Keeps the trace exporter alive; dropping it sends the spans still
/// buffered, so hold it until the process is about to exit.
#[must_use = "dropping the guard stops exporting traces"]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    pub fn exports_traces(&self) -> bool {
        self.tracer.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(tracer) = self.tracer.take() {
            // Flushes the batch; a collector that is gone only loses it.
            let _ = tracer.shutdown();
        }
    }
}

/// The log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Parses `TRELLIS_LOG_FORMAT`'s value; the error names the choices.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "{LOG_FORMAT_ENV}={other:?} is not a log format; use `text` or `json`"
            )),
        }
    }
}

/// Installs logging (and trace export when configured) for this process.
/// A second call in the same process keeps the first subscriber, which is
/// what tests that run several services in one process want.
pub fn init(service: &Service<'_>) -> Telemetry {
    // Hop spans are for the exporter alone: kept out of the lines, they cost
    // nothing when no collector is configured.
    let filter = tracing_subscriber::EnvFilter::try_from_env(service.filter_var)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(service.default_filter))
        .add_directive(trace::quiet_in_logs());
    let (format, format_problem) = match std::env::var(LOG_FORMAT_ENV) {
        Ok(value) => match LogFormat::parse(&value) {
            Ok(format) => (format, None),
            Err(problem) => (LogFormat::Text, Some(problem)),
        },
        Err(_) => (LogFormat::Text, None),
    };
    let lines = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        // Colour only for a person at a terminal: `wash up --detach` and
        // service managers write the log to a file.
        LogFormat::Text => {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
            if service.timestamps {
                layer.boxed()
            } else {
                layer.without_time().boxed()
            }
        }
    };
    let (tracer, trace_problem) = match trace::otlp_provider(service.name) {
        Ok(tracer) => (tracer, None),
        Err(problem) => (None, Some(problem)),
    };
    // Only Trellis's own hop spans are exported: the exporter's HTTP client
    // and NATS client have spans of their own, which would trace the
    // exporter itself.
    let spans = tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("trellis"))
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(trace::TARGET, tracing::Level::INFO),
            )
    });
    let installed = tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(spans)
        .try_init()
        .is_ok();
    if !installed {
        if let Some(tracer) = tracer {
            let _ = tracer.shutdown();
        }
        return Telemetry { tracer: None };
    }
    if let Some(problem) = format_problem {
        tracing::warn!("{problem}; logging text");
    }
    if let Some(problem) = trace_problem {
        tracing::warn!("traces are not exported: {problem}");
    }
    Telemetry { tracer }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse_and_a_wrong_one_names_the_choices() {
        assert_eq!(LogFormat::parse("json"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(" JSON "), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(""), Ok(LogFormat::Text));
        let err = LogFormat::parse("yaml").unwrap_err();
        assert!(
            err.contains("TRELLIS_LOG_FORMAT") && err.contains("`json`"),
            "{err}"
        );
    }
}
