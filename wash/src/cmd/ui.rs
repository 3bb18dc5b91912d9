//! `wash ui`: a dashboard of one lattice in the browser. A small axum
//! server keeps a snapshot (hosts with their components and providers,
//! links, named config by name, apps) fresh from lattice events, streams
//! the events to the page as server-sent events, and turns the hosts'
//! `/metrics` into request and error rates per component. The page is
//! plain HTML, CSS and a JS module, embedded in wash.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use futures::StreamExt;
use serde::Serialize;
use trellis_lattice::client::CtlClient;
use trellis_lattice::ctl::HostInventory;
use trellis_lattice::event::{CloudEvent, EventKind};
use wadm::api::WadmClient;

use crate::cmd::lattice::LatticeArgs;

const INDEX: &str = include_str!("../../ui/index.html");
const SCRIPT: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/style.css");

/// How often the rates are recomputed from the metrics.
const RATE_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct UiArgs {
    /// Where to serve the dashboard.
    #[arg(long, env = "TRELLIS_UI_ADDR", default_value = "127.0.0.1:3030")]
    addr: String,
    /// A host's (or `wash up`'s) `--metrics-addr`, read for request and
    /// error rates; repeat for more hosts.
    #[arg(long = "metrics-addr", value_name = "HOST:PORT")]
    metrics: Vec<std::net::SocketAddr>,
    #[command(flatten)]
    lattice: LatticeArgs,
}

/// Requests and errors per second of one component, summed over hosts.
#[derive(Clone, Debug, Default, Serialize)]
struct Rate {
    requests_per_second: f64,
    errors_per_second: f64,
}

struct Ui {
    ctl: CtlClient,
    wadm: WadmClient,
    rates: RwLock<BTreeMap<String, Rate>>,
    /// Each host's inventory, kept current from the events: asking every
    /// host afresh takes the ping's whole gather window.
    hosts: RwLock<BTreeMap<String, HostInventory>>,
    /// Lattice events as JSON, sent once [`Ui::hosts`] reflects them.
    events: tokio::sync::broadcast::Sender<String>,
}

/// A full re-read of every host, besides the updates events bring.
const HOST_RESYNC: Duration = Duration::from_secs(15);

/// Everything the page shows but the event feed.
#[derive(Serialize)]
struct Snapshot {
    lattice: String,
    hosts: Vec<HostInventory>,
    links: Vec<trellis_lattice::Link>,
    /// Names only: values never leave the lattice through the dashboard.
    config: Vec<String>,
    apps: Vec<wadm::api::AppSummary>,
    /// Why wadm did not answer, if it did not.
    wadm_error: Option<String>,
    rates: BTreeMap<String, Rate>,
}

pub async fn run(args: UiArgs) -> anyhow::Result<()> {
    let ctl = args.lattice.connect().await?;
    let wadm = WadmClient::new(
        ctl.nats().clone(),
        &args.lattice.lattice,
        args.lattice.timeout(),
    );
    let lattice_events = ctl
        .subscribe_events()
        .await
        .context("subscribing to the lattice's events")?;
    let ui = Arc::new(Ui {
        ctl,
        wadm,
        rates: RwLock::default(),
        hosts: RwLock::default(),
        events: tokio::sync::broadcast::channel(256).0,
    });
    ui.resync_hosts().await;
    tokio::spawn(follow_events(Arc::clone(&ui), lattice_events));
    tokio::spawn(resync_hosts(Arc::clone(&ui)));
    if !args.metrics.is_empty() {
        tokio::spawn(follow_rates(Arc::clone(&ui), args.metrics.clone()));
    }
    let app = axum::Router::new()
        .route(
            "/",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .route("/api/snapshot", get(snapshot))
        .route("/api/events", get(events))
        .with_state(Arc::clone(&ui));
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| {
            format!(
                "cannot serve the dashboard on {}; pick another --addr",
                args.addr
            )
        })?;
    let addr = listener
        .local_addr()
        .context("reading the dashboard's address")?;
    let app = app.layer(axum::middleware::from_fn_with_state(
        Arc::new(HostNames::for_addr(addr)),
        same_host_only,
    ));
    println!(
        "dashboard   http://{addr}/ (lattice `{}`; Ctrl-C stops)",
        ui.ctl.lattice()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(trellis_host::shutdown_signal())
        .await
        .context("serving the dashboard")
}

/// The `Host` header values a request to the dashboard may carry; `None`
/// when it listens on every interface (the user chose to share it).
struct HostNames(Option<Vec<String>>);

impl HostNames {
    fn for_addr(addr: std::net::SocketAddr) -> Self {
        if addr.ip().is_unspecified() {
            return HostNames(None);
        }
        let port = addr.port();
        HostNames(Some(vec![
            addr.to_string(),
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ]))
    }
}

/// Refuses requests whose `Host` names another site: a page elsewhere
/// that rebinds its DNS name to this address must not read the lattice.
async fn same_host_only(
    State(names): State<Arc<HostNames>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let HostNames(Some(allowed)) = names.as_ref() {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            return (
                axum::http::StatusCode::FORBIDDEN,
                format!("wash ui answers only requests for {}\n", allowed[0]),
            )
                .into_response();
        }
    }
    next.run(request).await
}

async fn snapshot(State(ui): State<Arc<Ui>>) -> impl IntoResponse {
    let hosts = ui
        .hosts
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    let links = ui.ctl.get_links().await.unwrap_or_default();
    let (apps, wadm_error) = match ui.wadm.list().await {
        Ok(apps) => (apps, None),
        Err(err) => (Vec::new(), Some(err.to_string())),
    };
    let rates = ui.rates.read().unwrap_or_else(|p| p.into_inner()).clone();
    Json(Snapshot {
        lattice: ui.ctl.lattice().to_owned(),
        hosts,
        links,
        config: config_names(&ui.ctl).await,
        apps,
        wadm_error,
        rates,
    })
}

/// The names in the lattice's config bucket.
async fn config_names(ctl: &CtlClient) -> Vec<String> {
    let Ok(subjects) = trellis_lattice::Subjects::new(ctl.lattice()) else {
        return Vec::new();
    };
    let js = async_nats::jetstream::new(ctl.nats().clone());
    let Ok(bucket) = js.get_key_value(subjects.config_data_bucket()).await else {
        return Vec::new();
    };
    let Ok(keys) = bucket.keys().await else {
        return Vec::new();
    };
    let mut names: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
    names.sort();
    names
}

impl Ui {
    async fn resync_hosts(&self) {
        match self.ctl.get_hosts_inventories().await {
            Ok(all) => {
                *self.hosts.write().unwrap_or_else(|p| p.into_inner()) =
                    all.into_iter().map(|h| (h.host_id.clone(), h)).collect();
            }
            Err(err) => tracing::warn!(error = %err, "cannot list the hosts"),
        }
    }

    /// Brings one host's inventory up to date after an event about it.
    async fn refresh_host(&self, host_id: &str, stopped: bool) {
        if stopped {
            self.hosts
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(host_id);
            return;
        }
        if let Ok(inventory) = self.ctl.get_inventory(host_id).await {
            self.hosts
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(host_id.to_owned(), inventory);
        }
    }
}

/// Re-reads every host now and then, besides what events bring: on its
/// own task, since a ping waits out its whole gather window.
async fn resync_hosts(ui: Arc<Ui>) {
    loop {
        tokio::time::sleep(HOST_RESYNC).await;
        ui.resync_hosts().await;
    }
}

/// Applies each lattice event to the host cache, then hands it to the
/// pages.
async fn follow_events(ui: Arc<Ui>, mut events: impl futures::Stream<Item = CloudEvent> + Unpin) {
    while let Some(event) = events.next().await {
        let host_id = event
            .data
            .get("host_id")
            .and_then(|v| v.as_str())
            .unwrap_or(&event.source)
            .to_owned();
        if host_id.starts_with('N') {
            let stopped = event.kind().ok() == Some(EventKind::HostStopped);
            // Heartbeats repeat what an inventory says; taking one per
            // host per interval is cheap.
            ui.refresh_host(&host_id, stopped).await;
        }
        if let Ok(json) = serde_json::to_string(&event) {
            let _ = ui.events.send(json);
        }
    }
    tracing::warn!("the lattice's events ended; the dashboard no longer updates");
}

/// The lattice's events, each as one server-sent event of its CloudEvent
/// JSON.
async fn events(State(ui): State<Arc<Ui>>) -> impl IntoResponse {
    let stream = tokio_stream_of(ui.events.subscribe())
        .map(|json| Ok::<_, Infallible>(Event::default().data(json)));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A broadcast receiver as a stream; a page that falls behind skips what
/// it missed.
fn tokio_stream_of(
    receiver: tokio::sync::broadcast::Receiver<String>,
) -> impl futures::Stream<Item = String> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(json) => return Some((json, receiver)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// Calls and errors so far, per component.
type Totals = BTreeMap<String, (f64, f64)>;

/// Recomputes each component's rates from the hosts' invocation counters
/// every [`RATE_INTERVAL`]. Each address is compared with its own last
/// scrape, so one that failed for a while is not counted from zero.
async fn follow_rates(ui: Arc<Ui>, addrs: Vec<std::net::SocketAddr>) {
    let mut last: BTreeMap<std::net::SocketAddr, (Instant, Totals)> = BTreeMap::new();
    loop {
        let mut rates: BTreeMap<String, Rate> = BTreeMap::new();
        for addr in &addrs {
            let text = match trellis_telemetry::metrics::scrape(*addr, RATE_INTERVAL).await {
                Ok(text) => text,
                Err(err) => {
                    tracing::debug!(error = %err, "no metrics");
                    last.remove(addr);
                    continue;
                }
            };
            let now = Instant::now();
            let totals: Totals = invocation_totals(&text)
                .into_iter()
                .map(|(component, calls, errors)| (component, (calls, errors)))
                .collect();
            if let Some((then, before)) = last.get(addr) {
                let seconds = now.duration_since(*then).as_secs_f64().max(0.001);
                for (component, (calls, errors)) in &totals {
                    let (calls_before, errors_before) =
                        before.get(component).copied().unwrap_or_default();
                    let rate = rates.entry(component.clone()).or_default();
                    rate.requests_per_second += (calls - calls_before).max(0.0) / seconds;
                    rate.errors_per_second += (errors - errors_before).max(0.0) / seconds;
                }
            }
            last.insert(*addr, (now, totals));
        }
        *ui.rates.write().unwrap_or_else(|p| p.into_inner()) = rates;
        tokio::time::sleep(RATE_INTERVAL).await;
    }
}

/// Calls and errors per component in one exposition, summed over functions.
fn invocation_totals(text: &str) -> Vec<(String, f64, f64)> {
    let mut totals: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let (is_error, rest) =
            if let Some(rest) = line.strip_prefix("trellis_host_invocations_total{") {
                (false, rest)
            } else if let Some(rest) = line.strip_prefix("trellis_host_invocation_errors_total{") {
                (true, rest)
            } else {
                continue;
            };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let Some(component) = labels
            .split(',')
            .find_map(|pair| pair.strip_prefix("component=\""))
            .and_then(|v| v.strip_suffix('"'))
        else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let entry = totals.entry(component.to_owned()).or_default();
        if is_error {
            entry.1 += value;
        } else {
            entry.0 += value;
        }
    }
    totals
        .into_iter()
        .map(|(component, (calls, errors))| (component, calls, errors))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_totals_sum_functions_per_component() {
        let text = "# TYPE trellis_host_invocations counter\n\
            trellis_host_invocations_total{component=\"a\",function=\"x.f\"} 3\n\
            trellis_host_invocations_total{component=\"a\",function=\"x.g\"} 4\n\
            trellis_host_invocations_total{component=\"b\",function=\"x.f\"} 1\n\
            trellis_host_invocation_errors_total{component=\"a\",function=\"x.f\"} 2\n";
        assert_eq!(
            invocation_totals(text),
            vec![("a".into(), 7.0, 2.0), ("b".into(), 1.0, 0.0)]
        );
    }
}
