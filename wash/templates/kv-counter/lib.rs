//! {{name}}: counts the requests to each path in a key-value bucket.
//!
//! `wash dev` builds, signs and runs it behind an http-server provider,
//! with its counts in a SQLite file through the keyvalue-sqlite provider.

mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({ world: "component", generate_all });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use bindings::wasi::keyvalue::{atomics, store};

/// The bucket the counts live in.
const BUCKET: &str = "default";

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let key = path.split('?').next().unwrap_or_default().trim_matches('/');
        let key = if key.is_empty() { "counter" } else { key };
        match increment(key) {
            Ok(count) => respond(response_out, 200, format!("{key}: {count}\n").as_bytes()),
            Err(message) => respond(response_out, 500, format!("{message}\n").as_bytes()),
        }
    }
}

/// Adds one to `key` and returns the new count.
fn increment(key: &str) -> Result<u64, String> {
    let bucket = store::open(BUCKET).map_err(|e| format!("opening `{BUCKET}`: {e:?}"))?;
    atomics::increment(&bucket, key, 1).map_err(|e| format!("counting `{key}`: {e:?}"))
}

/// Sends `body` with `status` as text/plain.
fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
        .expect("content-type is a valid header");
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .expect("the status code is valid");
    let outgoing = response.body().expect("a new response has a body");
    ResponseOutparam::set(response_out, Ok(response));
    {
        // The stream borrows the body: drop it before `finish`.
        let Ok(stream) = outgoing.write() else { return };
        if stream.blocking_write_and_flush(body).is_err() {
            return;
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

bindings::export!(Component with_types_in bindings);
