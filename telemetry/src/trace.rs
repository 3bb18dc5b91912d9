//! W3C trace context across lattice hops, and the OTLP exporter.
//!
//! Each hop (http-server's request, the host's invocation of a component,
//! a component's call to a provider, the provider serving it) is a
//! `tracing` span with target [`TARGET`]. The hop that sends a call writes
//! its span's context as `traceparent`/`tracestate` ([`context_of`]); the
//! hop that receives one makes its span a child of it ([`adopt`]). Without
//! a collector configured the spans are disabled and cost a branch each.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of every hop span; the OTLP layer exports only
/// these.
pub const TARGET: &str = "trellis::trace";

/// A log filter directive that keeps hop spans out of log lines.
pub(crate) fn quiet_in_logs() -> tracing_subscriber::filter::Directive {
    #[allow(clippy::expect_used)]
    "trellis::trace=off"
        .parse()
        .expect("a constant, valid directive")
}

/// The W3C trace context headers of one hop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    /// `traceparent`: version, trace id, parent span id and flags.
    pub traceparent: Option<String>,
    /// `tracestate`: vendor entries, passed along.
    pub tracestate: Option<String>,
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "traceparent" => self.traceparent = Some(value),
            "tracestate" if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent.as_deref(),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The context to send with a call made inside `span`; empty when `span`
/// is not traced.
pub fn context_of(span: &tracing::Span) -> TraceHeaders {
    let mut headers = TraceHeaders::default();
    if span.is_disabled() {
        return headers;
    }
    TraceContextPropagator::new().inject_context(&span.context(), &mut headers);
    headers
}

/// The client span of a call to `function` on `target` by link `link`, a
/// child of the current span, with the context to send with the call:
/// what the host and providers alike do before a lattice request.
pub fn call_span(
    function: &dyn std::fmt::Display,
    target: &str,
    link: &str,
) -> (tracing::Span, TraceHeaders) {
    let span = tracing::info_span!(
        target: TARGET,
        "call",
        otel.name = %function,
        otel.kind = "client",
        target = %target,
        link = %link,
    );
    let context = context_of(&span);
    (span, context)
}

/// Makes `span` a child of the remote hop that sent `headers`. A missing or
/// malformed `traceparent` leaves `span` the root of a new trace.
pub fn adopt(span: &tracing::Span, headers: &TraceHeaders) {
    if span.is_disabled() || headers.traceparent.is_none() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(headers);
    // Only fails when the span is not recorded by the OpenTelemetry layer.
    let _ = span.set_parent(parent);
}

/// The OTLP/HTTP tracer the standard variables ask for, `None` when they
/// name no collector (or `OTEL_SDK_DISABLED=true`, or
/// `OTEL_TRACES_EXPORTER=none`). The error says what is unsupported.
pub(crate) fn otlp_provider(service: &str) -> Result<Option<SdkTracerProvider>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    match var("OTEL_TRACES_EXPORTER").as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => {
            return Err(format!(
                "OTEL_TRACES_EXPORTER={other:?} is not supported; use `otlp` or `none`"
            ));
        }
    }
    if var("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
        && var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
    {
        return Ok(None);
    }
    let protocol =
        var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
    if let Some(protocol) = protocol.filter(|p| p != "http/protobuf") {
        return Err(format!(
            "OTLP protocol {protocol:?} is not supported; set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
             (a collector's port 4318)"
        ));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if var("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_owned());
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untraced_span_sends_no_context_and_ignores_one() {
        let span = tracing::Span::none();
        assert_eq!(context_of(&span), TraceHeaders::default());
        adopt(
            &span,
            &TraceHeaders {
                traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
                tracestate: None,
            },
        );
    }

    #[test]
    fn the_log_filter_directive_silences_hop_spans() {
        assert_eq!(quiet_in_logs().to_string(), "trellis::trace=off");
    }
}
