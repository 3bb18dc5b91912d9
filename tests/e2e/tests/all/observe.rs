//! Observability end to end: Prometheus metrics scraped from a host (with
//! its providers' merged in) and from wadm after real traffic, and JSON
//! log lines.

use std::collections::BTreeMap;
use std::time::Duration;

use trellis_e2e::app::{HTTP, SQLITE, TestLattice, increment};
use trellis_e2e::observe::{sample, scrape};
use trellis_e2e::wadm::{
    FAST_WADM_ARGS, SPREAD_APP, SPREAD_COMPONENT, WadmProcess, api_client, spread_manifest,
    wait_deployed,
};
use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice};
use trellis_test_support::{NatsServer, OtlpReceiver, ReceivedSpan, free_port};

use crate::common::client;

const HANDLE: &str = "wasi:http/incoming-handler.handle";

#[tokio::test(flavor = "multi_thread")]
async fn host_and_provider_metrics_count_the_traffic_sent() {
    let addr = format!("127.0.0.1:{}", free_port().unwrap());
    let lattice = TestLattice::start_with("metrics", &["--metrics-addr", &addr])
        .await
        .unwrap();
    for provider in [SQLITE, HTTP] {
        lattice.start_provider(provider).await.unwrap();
    }
    let db = lattice.dir.path().join("counter.sqlite3");
    lattice
        .config("counter-sqlite", &[("path", db.to_str().unwrap())])
        .await
        .unwrap();
    let url = lattice
        .counter_app(SQLITE.0, "counter-sqlite", 8)
        .await
        .unwrap();

    let component = [("component", "kv-counter"), ("function", HANDLE)];
    let increments = [
        ("provider", "keyvalue-sqlite"),
        ("backend", "sqlite"),
        ("operation", "atomics.increment"),
        ("outcome", "ok"),
    ];
    let served = [
        ("provider", "keyvalue-sqlite"),
        ("function", "wasi:keyvalue/atomics.increment"),
    ];
    let before = scrape(&addr).await.unwrap();
    let count =
        |text: &str, name: &str, labels: &[(&str, &str)]| sample(text, name, labels).unwrap_or(0.0);
    const SENT: u32 = 25;
    for _ in 0..SENT {
        increment(&url).await.unwrap();
    }
    let after = scrape(&addr).await.unwrap();
    let delta = |name: &str, labels: &[(&str, &str)]| {
        count(&after, name, labels) - count(&before, name, labels)
    };
    let sent = f64::from(SENT);
    assert_eq!(
        delta("trellis_host_invocations_total", &component),
        sent,
        "{after}"
    );
    assert_eq!(
        delta("trellis_host_invocation_duration_seconds_count", &component),
        sent
    );
    assert!(delta("trellis_host_invocation_duration_seconds_sum", &component) > 0.0);
    assert_eq!(
        count(&after, "trellis_host_invocation_errors_total", &component),
        0.0
    );
    // One fresh instance per request.
    assert_eq!(
        delta(
            "trellis_host_instantiation_duration_seconds_count",
            &[("component", "kv-counter")]
        ),
        sent
    );
    assert!(
        delta(
            "trellis_host_received_bytes_total",
            &[("component", "kv-counter")]
        ) > 0.0
    );
    assert!(
        delta(
            "trellis_host_sent_bytes_total",
            &[("component", "kv-counter")]
        ) > 0.0
    );
    assert_eq!(
        count(
            &after,
            "trellis_host_instances_max",
            &[("component", "kv-counter")]
        ),
        8.0
    );
    assert_eq!(
        count(
            &after,
            "trellis_host_instances_active",
            &[("component", "kv-counter")]
        ),
        0.0
    );
    for provider in ["keyvalue-sqlite", "http-server"] {
        let label = [("provider", provider)];
        assert_eq!(
            sample(&after, "trellis_host_provider_healthy", &label),
            Some(1.0),
            "{after}"
        );
        assert_eq!(
            sample(&after, "trellis_host_provider_restarts_total", &label),
            Some(0.0)
        );
    }
    assert_eq!(
        sample(&after, "trellis_host_nats_reconnects_total", &[]),
        Some(0.0)
    );
    // The keyvalue provider's own metrics, served through the host's address.
    assert_eq!(
        delta("trellis_provider_keyvalue_operations_total", &increments),
        sent,
        "{after}"
    );
    assert_eq!(delta("trellis_provider_invocations_total", &served), sent);
    assert_eq!(
        delta(
            "trellis_provider_invocation_duration_seconds_count",
            &served
        ),
        sent
    );
    // Each family once, however many processes contributed.
    let types = after
        .lines()
        .filter(|l| l.starts_with("# TYPE trellis_provider_invocations "));
    assert_eq!(types.count(), 1, "{after}");
    assert!(after.ends_with("# EOF\n"));

    // A call whose parameters do not decode is an error of its function;
    // one to a function the component does not export counts as `other`,
    // so a caller cannot mint label values.
    let subjects = trellis_lattice::Subjects::new(lattice.ctl.lattice()).unwrap();
    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    for function in [HANDLE, "wasi:http/incoming-handler.no-such-function"] {
        let function = trellis_lattice::WitFunction::parse(function).unwrap();
        let subject = subjects.rpc("kv-counter", &function).unwrap();
        for _ in 0..3 {
            let reply = nats
                .request(subject.clone(), "not messagepack".into())
                .await
                .unwrap();
            assert!(trellis_lattice::rpc::reply_error(&reply.payload).is_some());
        }
    }
    let last = scrape(&addr).await.unwrap();
    let other = [("component", "kv-counter"), ("function", "other")];
    assert_eq!(
        count(&last, "trellis_host_invocation_errors_total", &component),
        3.0,
        "{last}"
    );
    assert_eq!(
        count(&last, "trellis_host_invocation_errors_total", &other),
        3.0
    );
    assert_eq!(count(&last, "trellis_host_invocations_total", &other), 3.0);
    assert!(!last.contains("no-such-function"), "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wadm_metrics_count_passes_commands_and_app_status() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("wadm-metrics");
    let signer = Signer::new().unwrap();
    let image = file_url(&signer.sign_example("http-hello").unwrap());
    let host = HostProcess::start(&nats.url(), &lattice, &["--label", "tier=web"]).unwrap();
    let addr = format!("127.0.0.1:{}", free_port().unwrap());
    let mut args = FAST_WADM_ARGS.to_vec();
    args.extend(["--metrics-addr", &addr]);
    let wadm_process = WadmProcess::start(&nats.url(), &lattice, &args)
        .await
        .unwrap();
    let wadm = api_client(&nats.url(), &lattice).await.unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    wadm.put(&spread_manifest(&image, 2)).await.unwrap();
    wadm.deploy(SPREAD_APP, None).await.unwrap();
    let expected: BTreeMap<String, u32> = [(host.id().to_owned(), 2)].into();
    wait_deployed(
        &wadm,
        &ctl,
        (SPREAD_APP, SPREAD_COMPONENT),
        &expected,
        Duration::from_secs(30),
        || wadm_process.log(),
    )
    .await
    .unwrap();

    // The status is written by the pass after the one that saw it done.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape(&addr).await.unwrap();
        let deployed = [("app", SPREAD_APP), ("status", "deployed")];
        if sample(&text, "trellis_wadm_app_status", &deployed) == Some(1.0)
            || std::time::Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = |s| {
        sample(
            &text,
            "trellis_wadm_app_status",
            &[("app", SPREAD_APP), ("status", s)],
        )
    };
    assert_eq!(status("deployed"), Some(1.0), "{text}");
    assert_eq!(status("failed"), Some(0.0));
    assert!(sample(&text, "trellis_wadm_reconcile_passes_total", &[]).unwrap() >= 1.0);
    assert!(
        sample(
            &text,
            "trellis_wadm_reconcile_pass_duration_seconds_count",
            &[]
        )
        .unwrap()
            >= 1.0
    );
    let scale = [("command", "component_scale")];
    // One scale places both instances; a resend under load adds one.
    assert!(
        sample(&text, "trellis_wadm_commands_sent_total", &scale).unwrap() >= 1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "trellis_wadm_commands_failed_total", &scale),
        None
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trellis_log_format_json_gives_one_json_object_per_line() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("json-logs");
    let host = HostProcess::start_with_env(
        &nats.url(),
        &lattice,
        &[],
        &[("TRELLIS_LOG_FORMAT", "json")],
    )
    .unwrap();
    let log = host.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["fields"].is_object(),
            "{line}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("host started")), "{log}");
}

/// A client's own span, sent as `traceparent` with the traced request.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread")]
async fn one_request_is_one_trace_across_http_server_host_and_keyvalue() {
    let collector = OtlpReceiver::start().unwrap();
    let lattice = TestLattice::start_with_env(
        "traces",
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await
    .unwrap();
    for provider in [SQLITE, HTTP] {
        lattice.start_provider(provider).await.unwrap();
    }
    let db = lattice.dir.path().join("counter.sqlite3");
    lattice
        .config("counter-sqlite", &[("path", db.to_str().unwrap())])
        .await
        .unwrap();
    let url = lattice
        .counter_app(SQLITE.0, "counter-sqlite", 4)
        .await
        .unwrap();

    // The client's traceparent is honoured: the request joins its trace.
    let response = reqwest::Client::new()
        .get(&url)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let wanted = 5;
    let spans = collector.wait_for(Duration::from_secs(20), |spans| {
        spans.iter().filter(|s| s.trace_id == CLIENT_TRACE).count() >= wanted
    });
    let trace: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == CLIENT_TRACE)
        .collect();
    let find = |service: &str, name: &str, kind: i32| {
        let found: Vec<&&ReceivedSpan> = trace
            .iter()
            .filter(|s| s.service == service && s.name == name && s.kind == kind)
            .collect();
        assert_eq!(found.len(), 1, "{service} {name} in {trace:#?}");
        (*found[0]).clone()
    };
    const SERVER: i32 = 2;
    const CLIENT: i32 = 3;
    let request = find("http-server", "GET", SERVER);
    let forwarded = find("http-server", HANDLE, CLIENT);
    let invoked = find("trellis-host", HANDLE, SERVER);
    let increment_call = find("trellis-host", "wasi:keyvalue/atomics.increment", CLIENT);
    let increment_served = find("keyvalue-sqlite", "wasi:keyvalue/atomics.increment", SERVER);
    assert_eq!(request.parent_span_id, CLIENT_SPAN);
    assert_eq!(forwarded.parent_span_id, request.span_id);
    assert_eq!(invoked.parent_span_id, forwarded.span_id);
    assert_eq!(increment_call.parent_span_id, invoked.span_id);
    assert_eq!(increment_served.parent_span_id, increment_call.span_id);
    assert_eq!(trace.len(), wanted, "{trace:#?}");

    // Without a traceparent, one request starts one new trace.
    let before: std::collections::BTreeSet<String> =
        collector.spans().into_iter().map(|s| s.trace_id).collect();
    assert_eq!(increment(&url).await.unwrap(), 3);
    let spans = collector.wait_for(Duration::from_secs(20), |spans| {
        spans
            .iter()
            .filter(|s| !before.contains(&s.trace_id))
            .count()
            >= wanted
    });
    let new: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| !before.contains(&s.trace_id))
        .collect();
    let traces: std::collections::BTreeSet<&str> =
        new.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces.len(), 1, "{new:#?}");
    let roots: Vec<&&ReceivedSpan> = new.iter().filter(|s| s.parent_span_id.is_empty()).collect();
    assert_eq!(roots.len(), 1, "{new:#?}");
    assert_eq!(roots[0].service, "http-server");
}
