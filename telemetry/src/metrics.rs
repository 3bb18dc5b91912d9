//! Prometheus metrics: each process keeps its own
//! [`prometheus_client`] registry, [`serve`] answers `GET /metrics` with
//! whatever its render function produces, and [`merge`] joins the
//! expositions of several processes (a host and the providers it runs) so
//! one address serves them all.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
pub use prometheus_client;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};

/// The exposition's content type (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What can go wrong serving or scraping metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {addr}: {source}; pick a free address with --metrics-addr")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A scrape failed.
    #[error("cannot scrape metrics from {addr}: {reason}")]
    Scrape {
        /// The address scraped.
        addr: SocketAddr,
        /// Why it failed.
        reason: String,
    },
}

/// The largest exposition [`scrape`] reads.
pub const MAX_SCRAPE_BYTES: usize = 16 * 1024 * 1024;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Produces one exposition per scrape.
pub type Render = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// `registry` in the text exposition format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// Binds the metrics address (`HOST:PORT`); port 0 picks a free one.
pub async fn bind(addr: &str) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind {
            addr: addr.to_owned(),
            source,
        })
}

/// Serves `GET /metrics` on `listener` until the task is dropped; any other
/// path is a 404.
pub async fn serve(listener: TcpListener, render: Render) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let render = Arc::clone(&render);
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let render = Arc::clone(&render);
                async move {
                    if request.uri().path() == "/metrics" {
                        hyper::Response::builder()
                            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
                            .body(Full::new(Bytes::from(render().await)))
                    } else {
                        hyper::Response::builder()
                            .status(http::StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::from_static(b"metrics are at /metrics\n")))
                    }
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Fetches `http://{addr}/metrics`, within `timeout`.
pub async fn scrape(addr: SocketAddr, timeout: Duration) -> Result<String, MetricsError> {
    let failed = |reason: String| MetricsError::Scrape { addr, reason };
    let fetch = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = hyper::Request::get("/metrics")
            .header(http::header::HOST, addr.to_string())
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let body = http_body_util::Limited::new(response.into_body(), MAX_SCRAPE_BYTES)
            .collect()
            .await
            .map_err(|e| format!("{e} (the limit is {MAX_SCRAPE_BYTES} bytes)"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| "not UTF-8 text".to_owned())
    };
    match tokio::time::timeout(timeout, fetch).await {
        Ok(result) => result.map_err(failed),
        Err(_) => Err(failed(format!("no answer within {timeout:?}"))),
    }
}

/// Joins expositions into one: each metric family appears once, with its
/// first `HELP`/`TYPE`/`UNIT` lines and the samples of every input, in the
/// order families are first seen. The inputs' series must differ in their
/// labels (each provider labels its own with its id).
pub fn merge(expositions: &[String]) -> String {
    let mut families: Vec<(String, Vec<&str>, Vec<&str>)> = Vec::new();
    for text in expositions {
        let mut current: Option<usize> = None;
        for line in text.lines() {
            if line.is_empty() || line == "# EOF" {
                continue;
            }
            let header = ["# HELP ", "# TYPE ", "# UNIT "]
                .iter()
                .find_map(|prefix| line.strip_prefix(prefix));
            match header {
                Some(rest) => {
                    let name = rest.split(' ').next().unwrap_or_default();
                    let at = match families.iter().position(|(n, _, _)| n == name) {
                        Some(at) => at,
                        None => {
                            families.push((name.to_owned(), Vec::new(), Vec::new()));
                            families.len() - 1
                        }
                    };
                    let kind = &line[..7];
                    let headers = &mut families[at].1;
                    if !headers.iter().any(|h| h.starts_with(kind)) {
                        headers.push(line);
                    }
                    current = Some(at);
                }
                None if line.starts_with('#') => {}
                None => {
                    let at = match current {
                        Some(at) => at,
                        None => {
                            families.push((String::new(), Vec::new(), Vec::new()));
                            let at = families.len() - 1;
                            current = Some(at);
                            at
                        }
                    };
                    families[at].2.push(line);
                }
            }
        }
    }
    let mut out = String::new();
    for (_, headers, samples) in &families {
        for line in headers.iter().chain(samples) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;

    use super::*;

    fn exposition(provider: &str, calls: u64) -> String {
        let mut registry = Registry::default();
        let family = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "trellis_provider_invocations",
            "Calls served",
            family.clone(),
        );
        family
            .get_or_create(&vec![("provider".to_owned(), provider.to_owned())])
            .inc_by(calls);
        encode(&registry)
    }

    #[test]
    fn merged_expositions_keep_each_family_once_with_every_sample() {
        let host =
            "# HELP trellis_host_up Up.\n# TYPE trellis_host_up gauge\ntrellis_host_up 1\n# EOF\n";
        let merged = merge(&[host.to_owned(), exposition("kv", 3), exposition("http", 5)]);
        assert_eq!(
            merged,
            "# HELP trellis_host_up Up.\n# TYPE trellis_host_up gauge\ntrellis_host_up 1\n\
             # HELP trellis_provider_invocations Calls served.\n\
             # TYPE trellis_provider_invocations counter\n\
             trellis_provider_invocations_total{provider=\"kv\"} 3\n\
             trellis_provider_invocations_total{provider=\"http\"} 5\n# EOF\n"
        );
    }

    #[test]
    fn merging_nothing_is_an_empty_exposition() {
        assert_eq!(merge(&[]), "# EOF\n");
    }

    #[tokio::test]
    async fn served_metrics_scrape_back_and_a_stopped_server_is_named() {
        let listener = bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let render: Render = Arc::new(|| Box::pin(async { exposition("kv", 7) }));
        let server = tokio::spawn(serve(listener, render));
        let text = scrape(addr, Duration::from_secs(5)).await.expect("scrape");
        assert!(
            text.contains("trellis_provider_invocations_total{provider=\"kv\"} 7"),
            "{text}"
        );
        server.abort();
        let err = scrape(addr, Duration::from_secs(5)).await.unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }

    #[tokio::test]
    async fn a_taken_address_names_the_flag() {
        let first = bind("127.0.0.1:0").await.expect("bind");
        let addr = first.local_addr().expect("addr").to_string();
        let err = bind(&addr).await.unwrap_err();
        assert!(err.to_string().contains("--metrics-addr"), "{err}");
    }
}
