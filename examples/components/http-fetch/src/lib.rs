//! A Trellis component that fetches a URL: a way to see outbound grants.
//!
//! `GET /?url=http://example.com/` makes an outgoing request to that URL
//! through `wasi:http/outgoing-handler` and answers with its status and
//! body. A host sends the request only if the component was granted the
//! URL's host (`allowedHosts` in a manifest, `--allowed-host` on `wash start
//! component`); otherwise the request fails with `HTTP-request-denied`,
//! which this component reports as `502` with that error in the body:
//!
//! ```text
//! $ curl 'http://127.0.0.1:8080/?url=https://example.com/'
//! fetch failed: HTTP-request-denied
//! ```
//!
//! `GET /?tcp=host:port` opens a plain TCP connection with the standard
//! library instead, which goes through `wasi:sockets`. No grant covers
//! sockets, so a host refuses every such connection:
//!
//! ```text
//! $ curl 'http://127.0.0.1:8080/?tcp=127.0.0.1:6379'
//! connect failed: permission denied
//! ```

mod bindings {
    //! Rust bindings for the `trellis:examples/http-fetch` world.
    #![allow(missing_docs)]

    wit_bindgen::generate!({
        path: "../../../interfaces/wit",
        world: "trellis:examples/http-fetch",
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::outgoing_handler;
use bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

/// The most of a fetched body this component passes on.
const MAX_BODY: usize = 1024 * 1024;

/// The component: each call fetches once.
struct HttpFetch;

impl Guest for HttpFetch {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let query = request.path_with_query().unwrap_or_default();
        let (status, body) = match (parameter(&query, "url"), parameter(&query, "tcp")) {
            (Some(url), _) => match fetch(&url) {
                Ok((status, body)) => (status, body),
                Err(reason) => (502, format!("fetch failed: {reason}\n").into_bytes()),
            },
            (None, Some(address)) => match std::net::TcpStream::connect(&address) {
                Ok(_) => (200, format!("connected to {address}\n").into_bytes()),
                Err(err) => (502, format!("connect failed: {err}\n").into_bytes()),
            },
            (None, None) => (
                400,
                b"ask for ?url=http://host/path or ?tcp=host:port\n".to_vec(),
            ),
        };
        respond(response_out, status, &body);
    }
}

/// The query parameter `name`, as given (no percent-decoding: keep it simple).
fn parameter(path_with_query: &str, name: &str) -> Option<String> {
    let (_, query) = path_with_query.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_owned)
}

/// Fetches `url` with a GET; its status and up to `MAX_BODY` of its body.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => return Err(format!("`{url}` is not an http:// or https:// URL")),
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let set = request
        .set_method(&Method::Get)
        .and(request.set_scheme(Some(&scheme)))
        .and(request.set_authority(Some(authority)))
        .and(request.set_path_with_query(Some(path)));
    if set.is_err() {
        return Err(format!("`{url}` is not a valid request target"));
    }
    let future = outgoing_handler::handle(request, None).map_err(|e| describe(&e))?;
    let pollable = future.subscribe();
    pollable.block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(describe(&code)),
        Some(Err(())) | None => return Err("the response was already taken".to_owned()),
    };
    let status = response.status();
    let incoming = response.consume().map_err(|()| "no body".to_owned())?;
    let stream = incoming
        .stream()
        .map_err(|()| "no body stream".to_owned())?;
    let mut body = Vec::new();
    while body.len() < MAX_BODY {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(_) => break,
        }
    }
    body.truncate(MAX_BODY);
    Ok((status, body))
}

/// The WIT name of an error code, which is what a user searches for.
fn describe(code: &ErrorCode) -> String {
    match code {
        ErrorCode::HttpRequestDenied => "HTTP-request-denied".to_owned(),
        other => format!("{other:?}"),
    }
}

fn respond(response_out: ResponseOutparam, status: u16, bytes: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
        .expect("content-type is a valid, permitted header");
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .expect("the statuses above are valid");
    let body = response
        .body()
        .expect("the body of a new response is taken only once");
    ResponseOutparam::set(response_out, Ok(response));
    {
        let Ok(stream) = body.write() else { return };
        for chunk in bytes.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
}

bindings::export!(HttpFetch with_types_in bindings);
