//! One HTTP request, one call: the bridge between hyper's types and the
//! lattice's [`HttpRequest`] / [`HttpResponse`], and the plain-text answers
//! a client gets when the call fails.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tracing::Instrument;
use trellis_lattice::chunk;
use trellis_lattice::http::{HttpRequest, HttpResponse};
use trellis_lattice::rpc::{RpcError, RpcErrorKind};
use trellis_provider_sdk::ProviderHandle;
use trellis_telemetry::trace;

/// What a client receives as a body: whole, or streamed from the lattice.
pub(crate) type ClientBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn whole(bytes: Bytes) -> ClientBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Where a listener's requests go. A link put that keeps the address
/// replaces it in place, so the listener keeps its port and connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The component called.
    pub component: String,
    /// The link the calls travel under.
    pub link_name: String,
    /// How long a request waits for the component.
    pub timeout: Duration,
}

/// Forwards requests along the current [`Route`]; one per listener, shared
/// by its connections.
#[derive(Clone)]
pub(crate) struct Forwarder {
    pub handle: ProviderHandle,
    pub route: Arc<RwLock<Route>>,
}

impl Forwarder {
    /// Answers one request; every failure becomes a response, so the
    /// connection stays usable.
    pub async fn respond(&self, request: hyper::Request<Incoming>) -> Response<ClientBody> {
        // One trace per request, continuing the client's when it sent a
        // `traceparent`.
        let span = tracing::info_span!(
            target: trace::TARGET,
            "request",
            otel.name = %request.method(),
            otel.kind = "server",
            http.request.method = %request.method(),
            url.path = %request.uri().path(),
        );
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        trace::adopt(
            &span,
            &trace::TraceHeaders {
                traceparent: header("traceparent"),
                tracestate: header("tracestate"),
            },
        );
        self.forward(request).instrument(span).await
    }

    async fn forward(&self, request: hyper::Request<Incoming>) -> Response<ClientBody> {
        let route = self.route.read().unwrap_or_else(|p| p.into_inner()).clone();
        let (parts, body) = request.into_parts();
        let limit = self.handle.host_data().chunk_limits().max_body;
        let body = match read_body(&parts.headers, body, limit).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let (request, result) = match body {
            RequestBody::Whole(body) => {
                let request = lattice_request(&parts, body);
                let result = self
                    .handle
                    .call_http_streaming(
                        &route.component,
                        &route.link_name,
                        &request,
                        None,
                        route.timeout,
                    )
                    .await;
                (request, result)
            }
            RequestBody::Streamed(prefix, rest) => {
                let request = lattice_request(&parts, Vec::new());
                let result = self.call_streaming(&route, &request, prefix, rest).await;
                (request, result)
            }
        };
        match result {
            Ok((response, streamed)) => {
                let rest = streamed.map(|offer| self.streamed_body(offer, &route));
                client_response(response, rest, &route)
            }
            Err(err) => {
                tracing::warn!(
                    component = %route.component,
                    link = %route.link_name,
                    method = %request.method,
                    path = %request.path_with_query,
                    error = %err,
                    "request not served"
                );
                failure_response(&err, &route)
            }
        }
    }
}

impl Forwarder {
    /// Calls the component with the body streamed to it as it arrives: the
    /// component starts before the body is here, and neither this process
    /// nor the host holds more of it than a few chunks.
    /// A response body that streams from the host as the client reads it.
    /// A transfer that fails (the guest passed the limit, say) cuts the
    /// response short, since its head has gone out; the reason is logged.
    fn streamed_body(&self, offer: chunk::StreamOffer, route: &Route) -> ClientBody {
        use futures::StreamExt;
        let limits = self.handle.host_data().chunk_limits();
        let component = route.component.clone();
        let frames = chunk::fetch_stream(self.handle.nats(), offer, &limits).map(move |chunk| {
            chunk.map(hyper::body::Frame::data).map_err(|err| {
                tracing::warn!(component = %component, error = %err, "response cut short");
                Box::new(err) as Box<dyn std::error::Error + Send + Sync>
            })
        });
        http_body_util::StreamBody::new(frames).boxed_unsync()
    }

    async fn call_streaming(
        &self,
        route: &Route,
        request: &HttpRequest,
        prefix: Bytes,
        rest: Incoming,
    ) -> Result<(HttpResponse, Option<chunk::StreamOffer>), RpcError> {
        use futures::StreamExt;
        let frames = http_body_util::BodyStream::new(rest).filter_map(|frame| {
            futures::future::ready(match frame {
                Ok(frame) => frame.into_data().ok().map(Ok),
                Err(err) => Some(Err(format!("the client's body failed: {err}"))),
            })
        });
        let source = futures::stream::once(futures::future::ready(Ok(prefix))).chain(frames);
        let limits = self.handle.host_data().chunk_limits();
        let offer = chunk::offer_stream(self.handle.nats(), Box::pin(source), &limits)
            .await
            .map_err(RpcError::from)?;
        self.handle
            .call_http_streaming(
                &route.component,
                &route.link_name,
                request,
                Some(&offer),
                route.timeout,
            )
            .await
    }
}

/// A request body read so far.
enum RequestBody {
    /// All of it: it was small enough to travel in the call.
    Whole(Vec<u8>),
    /// The first [`INLINE_BODY_BYTES`] and the rest, still to be read.
    Streamed(Bytes, Incoming),
}

/// A body up to this size travels inside its call; a larger one streams.
const INLINE_BODY_BYTES: usize = 256 * 1024;

/// Reads the body if it is small, else its first part, refusing a declared
/// length over `limit` bytes with `413` before reading anything.
async fn read_body(
    headers: &http::HeaderMap,
    mut body: Incoming,
    limit: u64,
) -> Result<RequestBody, Response<ClientBody>> {
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than the {limit} bytes this server accepts (the \
                 host's --max-body-mib)"
            ),
        )
    };
    // A declared length answers before a byte of the body is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let inline = INLINE_BODY_BYTES.min(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut prefix = Vec::new();
    while prefix.len() <= inline {
        match body.frame().await {
            None => return Ok(RequestBody::Whole(prefix)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    prefix.extend_from_slice(&data);
                }
            }
            Some(Err(err)) => {
                return Err(text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {err}"),
                ));
            }
        }
    }
    if prefix.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(RequestBody::Streamed(Bytes::from(prefix), body))
}

/// The request as the component will see it.
pub(crate) fn lattice_request(parts: &http::request::Parts, body: Vec<u8>) -> HttpRequest {
    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    HttpRequest {
        method: parts.method.as_str().to_owned(),
        path_with_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned()),
        scheme: "http".to_owned(),
        authority,
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect(),
        body,
    }
}

/// The component's answer as the client will see it; a status or header
/// that HTTP cannot carry becomes a `502` naming it.
pub(crate) fn client_response(
    response: HttpResponse,
    rest: Option<ClientBody>,
    route: &Route,
) -> Response<ClientBody> {
    let bad = |what: String| {
        text(
            StatusCode::BAD_GATEWAY,
            format!("component `{}` answered with {what}", route.component),
        )
    };
    let Ok(status) = StatusCode::from_u16(response.status) else {
        return bad(format!("the invalid status {}", response.status));
    };
    let mut builder = Response::builder().status(status);
    for (name, value) in response.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) else {
            return bad(format!("the invalid header {name:?}"));
        };
        // Hyper frames the body (whole or streamed); the component's own
        // framing headers would contradict that.
        if is_framing(&name) {
            continue;
        }
        builder = builder.header(name, value);
    }
    builder
        .body(rest.unwrap_or_else(|| whole(Bytes::from(response.body))))
        .unwrap_or_else(|e| bad(format!("a response hyper refused: {e}")))
}

fn is_framing(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::CONNECTION
        || name.as_str() == "keep-alive"
}

/// What the client gets when the call failed.
pub(crate) fn failure_response(err: &RpcError, route: &Route) -> Response<ClientBody> {
    let component = &route.component;
    match err.kind {
        RpcErrorKind::NoTarget if err.lattice_unreachable() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request did not reach component `{component}`: {}",
                err.message
            ),
        ),
        RpcErrorKind::NoTarget => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no instance of component `{component}` is running on the lattice; \
                 start it (wash start component) or point link `{}` at a running one",
                route.link_name
            ),
        ),
        RpcErrorKind::Timeout => text(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "component `{component}` did not answer within {} ms",
                route.timeout.as_millis()
            ),
        ),
        RpcErrorKind::Application => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("component `{component}` failed: {}", err.message),
        ),
        RpcErrorKind::NoLink | RpcErrorKind::Codec | RpcErrorKind::Refused => text(
            StatusCode::BAD_GATEWAY,
            format!(
                "cannot call component `{component}` ({}): {}",
                err.kind, err.message
            ),
        ),
    }
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, message: String) -> Response<ClientBody> {
    let mut response = Response::new(whole(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn route() -> Route {
        Route {
            component: "hello".into(),
            link_name: "default".into(),
            timeout: Duration::from_millis(750),
        }
    }

    async fn body_text(response: Response<ClientBody>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn request_carries_method_path_authority_and_headers() {
        let request = http::Request::builder()
            .method("POST")
            .uri("/counter?x=1")
            .header("host", "127.0.0.1:8080")
            .header("x-two", "a")
            .header("x-two", "b")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let request = lattice_request(&parts, b"hi".to_vec());
        assert_eq!(request.method, "POST");
        assert_eq!(request.path_with_query, "/counter?x=1");
        assert_eq!(request.scheme, "http");
        assert_eq!(request.authority, "127.0.0.1:8080");
        assert_eq!(
            request.headers,
            vec![
                ("host".to_owned(), b"127.0.0.1:8080".to_vec()),
                ("x-two".to_owned(), b"a".to_vec()),
                ("x-two".to_owned(), b"b".to_vec()),
            ]
        );
        assert_eq!(request.body, b"hi");
    }

    #[tokio::test]
    async fn component_response_keeps_status_headers_and_body_but_not_framing() {
        let response = client_response(
            HttpResponse {
                status: 201,
                headers: vec![
                    ("x-made-by".into(), b"hello".to_vec()),
                    ("transfer-encoding".into(), b"chunked".to_vec()),
                ],
                body: b"made".to_vec(),
            },
            None,
            &route(),
        );
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["x-made-by"], "hello");
        assert!(!response.headers().contains_key("transfer-encoding"));
        assert_eq!(body_text(response).await, "made");
    }

    #[tokio::test]
    async fn impossible_status_is_a_bad_gateway() {
        let response = client_response(
            HttpResponse {
                status: 1000,
                headers: Vec::new(),
                body: Vec::new(),
            },
            None,
            &route(),
        );
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert!(body_text(response).await.contains("1000"));
    }

    #[tokio::test]
    async fn failures_map_to_statuses_that_say_why() {
        let cases = [
            (
                RpcErrorKind::NoTarget,
                StatusCode::SERVICE_UNAVAILABLE,
                "no instance",
            ),
            (RpcErrorKind::Timeout, StatusCode::GATEWAY_TIMEOUT, "750 ms"),
            (
                RpcErrorKind::Application,
                StatusCode::INTERNAL_SERVER_ERROR,
                "trap",
            ),
            (RpcErrorKind::Codec, StatusCode::BAD_GATEWAY, "trap"),
        ];
        for (kind, status, says) in cases {
            let response = failure_response(&RpcError::new(kind, "trap"), &route());
            assert_eq!(response.status(), status, "{kind}");
            let body = body_text(response).await;
            assert!(
                body.contains("`hello`") && body.contains(says),
                "{kind}: {body}"
            );
        }
    }
}
