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
        write_body(body, GREETING);
    }
}

/// The number in query parameter `name`, or 0.
fn count(path_with_query: &str, name: &str) -> u32 {
    path_with_query
        .split_once('?')
        .into_iter()
        .flat_map(|(_, query)| query.split('&'))
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
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
