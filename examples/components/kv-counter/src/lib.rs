//! A request counter kept in a key-value bucket.
//!
//! On `GET /` the component atomically increments the key `counter` in the
//! `default` bucket and answers with the new value; `GET /visits` increments
//! the key `visits` instead. Other methods get `405 Method Not Allowed`. A
//! failing store becomes `500 Internal Server Error` with the store's message
//! as the body.
//!
//! ```text
//! $ curl http://127.0.0.1:8080/
//! 1
//! $ curl http://127.0.0.1:8080/
//! 2
//! ```
//!
//! The component imports `wasi:keyvalue/store` and `wasi:keyvalue/atomics`
//! but does not know what stores them: the link from the counter to a
//! keyvalue provider decides. `examples/manifests/dev.yaml` links it to
//! keyvalue-sqlite and `prod.yaml` to keyvalue-redis, with the same binary.

mod bindings {
    //! Rust bindings for the `trellis:examples/kv-counter` world.
    #![allow(missing_docs)]

    wit_bindgen::generate!({
        path: "../../../interfaces/wit",
        world: "trellis:examples/kv-counter",
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use bindings::wasi::keyvalue::{atomics, store};

/// The bucket the counters live in; which store backs it is the link's choice.
const BUCKET: &str = "default";

/// The key incremented when the request path names none.
const DEFAULT_KEY: &str = "counter";

/// The component: stateless, since the count lives in the bucket.
struct KvCounter;

impl Guest for KvCounter {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        if !matches!(request.method(), Method::Get) {
            let allow = [("allow".to_string(), b"GET".to_vec())];
            respond(response_out, 405, &allow, b"only GET is supported\n");
            return;
        }

        let path = request.path_with_query();
        let key = key_for_path(path.as_deref());
        match increment(key) {
            Ok(count) => respond(response_out, 200, &[], format!("{count}\n").as_bytes()),
            Err(message) => respond(response_out, 500, &[], format!("{message}\n").as_bytes()),
        }
    }
}

/// Picks the counter a request path names: `/` (or no path) means [`DEFAULT_KEY`],
/// `/visits?x=1` means `visits`.
fn key_for_path(path_with_query: Option<&str>) -> &str {
    let path = path_with_query.unwrap_or("/");
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    match path.trim_matches('/') {
        "" => DEFAULT_KEY,
        key => key,
    }
}

/// Adds one to `key` in the bucket and returns the new value.
fn increment(key: &str) -> Result<u64, String> {
    let bucket = store::open(BUCKET)
        .map_err(|error| format!("cannot open bucket `{BUCKET}`: {}", describe(&error)))?;
    atomics::increment(&bucket, key, 1)
        .map_err(|error| format!("cannot increment `{key}`: {}", describe(&error)))
}

/// Renders a store error for a human reading the HTTP response.
fn describe(error: &store::Error) -> String {
    match error {
        store::Error::NoSuchStore => {
            "no such store (is the component linked to a keyvalue provider?)".to_string()
        }
        store::Error::AccessDenied => "access denied".to_string(),
        store::Error::Other(message) => message.clone(),
    }
}

/// Sends a complete plain-text response.
fn respond(
    response_out: ResponseOutparam,
    status: u16,
    extra_headers: &[(String, Vec<u8>)],
    body: &[u8],
) {
    let mut headers = vec![("content-type".to_string(), b"text/plain".to_vec())];
    headers.extend_from_slice(extra_headers);
    let headers = Fields::from_list(&headers).expect("our headers are valid and permitted");

    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .expect("we only send valid status codes");
    let outgoing_body = response
        .body()
        .expect("the body of a new response is taken only once");
    ResponseOutparam::set(response_out, Ok(response));
    write_body(outgoing_body, body);
}

/// Writes `bytes` to `body` and finishes it. A client that went away is not
/// an error worth reporting: the write simply stops.
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

bindings::export!(KvCounter with_types_in bindings);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_path_counts_the_default_key() {
        assert_eq!(key_for_path(Some("/")), DEFAULT_KEY);
        assert_eq!(key_for_path(Some("")), DEFAULT_KEY);
        assert_eq!(key_for_path(None), DEFAULT_KEY);
        assert_eq!(key_for_path(Some("/?reset=no")), DEFAULT_KEY);
    }

    #[test]
    fn path_names_the_key_without_slashes_or_query() {
        assert_eq!(key_for_path(Some("/visits")), "visits");
        assert_eq!(key_for_path(Some("/visits/?from=home")), "visits");
        assert_eq!(key_for_path(Some("/a/b")), "a/b");
    }
}
