//! The hello-world Trellis component.
//!
//! It exports `wasi:http/incoming-handler` and answers every request, whatever
//! its method or path, with `200 OK`, `content-type: text/plain` and the body
//! `Hello from Trellis`. Link the http-server provider to it and try:
//!
//! ```text
//! $ curl http://127.0.0.1:8080/
//! Hello from Trellis
//! ```
//!
//! `GET /?log=N` first logs N entries through `wasi:logging`, and
//! `?stderr=N` writes N lines to stderr. A host puts both in its own log
//! under the component's id, within one line budget per component, so this
//! is also how to see that budget at work:
//!
//! ```text
//! $ curl 'http://127.0.0.1:8080/?log=3&stderr=3'
//! Hello from Trellis
//! ```
//!
//! Two more modes exercise large bodies. `?sha256` reads the whole request
//! body as a stream and answers with its SHA-256 (hex) and length;
//! `?bytes=N` answers with a body of N bytes, written a piece at a time:
//!
//! ```text
//! $ curl --data-binary @big.iso 'http://127.0.0.1:8080/?sha256'
//! 4b2c…e1  52428800
//! $ curl -s 'http://127.0.0.1:8080/?bytes=1048576' | wc -c
//! 1048576
//! ```
//!
//! The component needs only the wasi:http types, wasi:io streams,
//! wasi:logging and stderr, all of which every Trellis host serves itself.

mod bindings {
    //! Rust bindings for the `trellis:examples/http-hello` world.
    #![allow(missing_docs)]

    wit_bindgen::generate!({
        path: "../../../interfaces/wit",
        world: "trellis:examples/http-hello",
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use bindings::wasi::logging::logging;

/// The greeting every request receives.
const GREETING: &[u8] = b"Hello from Trellis\n";

/// The component: one stateless handler, instantiated afresh for each call.
struct HttpHello;

impl Guest for HttpHello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let query = request.path_with_query().unwrap_or_default();
        for line in 0..count(&query, "log") {
            logging::log(
                logging::Level::Info,
                "http-hello",
                &format!("http-hello log line {line}"),
            );
        }
        for line in 0..count(&query, "stderr") {
            eprintln!("http-hello stderr line {line}");
        }
        // Headers must be set before the response is sent: once handed to
        // `OutgoingResponse` they become immutable.
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
            .expect("content-type is a valid, permitted header");

        let hashed = has_flag(&query, "sha256").then(|| hash_body(request));
        let response = OutgoingResponse::new(headers);
        response
            .set_status_code(200)
            .expect("200 is a valid status code");
        let body = response
            .body()
            .expect("the body of a new response is taken only once");

        // Send the head first so the client starts receiving while the body
        // is written, then stream the body and finish it.
        ResponseOutparam::set(response_out, Ok(response));
        if let Some(answer) = hashed {
            write_body(body, answer.as_bytes());
        } else if let Some(len) = number(&query, "bytes") {
            write_repeated(body, len);
        } else {
            write_body(body, GREETING);
        }
    }
}

/// Whether the query holds `name` on its own, or as `name=…`.
fn has_flag(path_with_query: &str, name: &str) -> bool {
    query_pairs(path_with_query).any(|pair| pair == name || pair.starts_with(&format!("{name}=")))
}

fn query_pairs(path_with_query: &str) -> impl Iterator<Item = &str> {
    path_with_query
        .split_once('?')
        .into_iter()
        .flat_map(|(_, query)| query.split('&'))
}

/// The number in query parameter `name`, if there is one.
fn number(path_with_query: &str, name: &str) -> Option<u64> {
    query_pairs(path_with_query)
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// Reads the request body to its end, a piece at a time, and returns
/// `"<sha256 hex>  <length>\n"`, or what went wrong.
fn hash_body(request: IncomingRequest) -> String {
    use sha2::{Digest, Sha256};
    let Ok(body) = request.consume() else {
        return "the request body was already taken\n".to_owned();
    };
    let Ok(stream) = body.stream() else {
        return "the request body has no stream\n".to_owned();
    };
    let mut hasher = Sha256::new();
    let mut len: u64 = 0;
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(piece) => {
                len += piece.len() as u64;
                hasher.update(&piece);
            }
            Err(bindings::wasi::io::streams::StreamError::Closed) => break,
            Err(bindings::wasi::io::streams::StreamError::LastOperationFailed(e)) => {
                return format!("reading the body failed: {}\n", e.to_debug_string());
            }
        }
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{digest}  {len}\n")
}

/// Writes `len` bytes of `x` to `body`, 4 KiB at a time (the most one
/// blocking write may carry), and finishes it; stops early if the host
/// refuses more.
fn write_repeated(body: OutgoingBody, len: u64) {
    let piece = [b'x'; 4096];
    {
        let Ok(stream) = body.write() else { return };
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(piece.len() as u64)).unwrap_or(piece.len());
            if stream.blocking_write_and_flush(&piece[..n]).is_err() {
                return;
            }
            left -= n as u64;
        }
    }
    let _ = OutgoingBody::finish(body, None);
}

/// The number in query parameter `name`, or 0.
fn count(path_with_query: &str, name: &str) -> u32 {
    number(path_with_query, name)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// Writes `bytes` to `body` and finishes it, so the host knows the response
/// is complete. A client that went away is not an error worth reporting: the
/// write simply stops.
fn write_body(body: OutgoingBody, bytes: &[u8]) {
    {
        // The stream borrows the body and must be dropped before `finish`.
        let Ok(stream) = body.write() else { return };
        if stream.blocking_write_and_flush(bytes).is_err() {
            return;
        }
    }
    // `finish` fails only if the trailers are invalid; we send none.
    let _ = OutgoingBody::finish(body, None);
}

bindings::export!(HttpHello with_types_in bindings);
