//! A component that checks a secret without revealing it.
//!
//! `GET /NAME` fetches the secret granted to it as `NAME` through
//! `wasmcloud:secrets/store`, reveals it, and answers `200` with the
//! value's SHA-256 (hex) and length. A secret it is not granted, or one its
//! backend refuses, is `403` with the reason; one that does not exist is
//! `404`. The value itself never leaves the component, so comparing hashes
//! is how a test (or an operator) sees which value a component got:
//!
//! `GET /NAME?hold=N` gets the secret N times and keeps every handle, to
//! show the host's cap on the handles one instance may hold.
//!
//! ```text
//! $ printf %s hunter2 | wash secrets put db_password --allow '*'
//! $ curl http://127.0.0.1:8080/db_password
//! sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7 len:7
//! ```

mod bindings {
    //! Rust bindings for the `trellis:examples/secret-check` world.
    #![allow(missing_docs)]

    wit_bindgen::generate!({
        path: "../../../interfaces/wit",
        world: "trellis:examples/secret-check",
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use bindings::wasmcloud::secrets::{reveal, store};

/// The component: one stateless handler, instantiated afresh for each call.
struct SecretCheck;

impl Guest for SecretCheck {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let name = path
            .trim_start_matches('/')
            .split(['?', '/'])
            .next()
            .unwrap_or_default();
        if let Some(times) = path
            .split_once("?hold=")
            .and_then(|(_, n)| n.parse::<usize>().ok())
        {
            respond(response_out, 200, hold(name, times).as_bytes());
            return;
        }
        let (status, text) = match store::get(name) {
            Ok(secret) => {
                let bytes = match reveal::reveal(&secret) {
                    store::SecretValue::String(text) => text.into_bytes(),
                    store::SecretValue::Bytes(bytes) => bytes,
                };
                (
                    200,
                    format!("sha256:{} len:{}\n", sha256_hex(&bytes), bytes.len()),
                )
            }
            Err(store::SecretsError::NotFound) => (404, format!("no secret `{name}`\n")),
            Err(store::SecretsError::Upstream(why)) => (403, format!("{why}\n")),
            Err(store::SecretsError::Io(why)) => (502, format!("{why}\n")),
        };
        respond(response_out, status, text.as_bytes());
    }
}

/// Gets `name` up to `times` times, keeping every handle: how many it got,
/// and why it stopped short.
fn hold(name: &str, times: usize) -> String {
    let mut held = Vec::new();
    for _ in 0..times {
        match store::get(name) {
            Ok(secret) => held.push(secret),
            Err(store::SecretsError::Upstream(why) | store::SecretsError::Io(why)) => {
                return format!("held {}; then: {why}\n", held.len());
            }
            Err(store::SecretsError::NotFound) => {
                return format!("held {}; then: not found\n", held.len());
            }
        }
    }
    format!("held {}\n", held.len())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sends `status` with `body` as plain text.
fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
        .expect("content-type is a valid, permitted header");
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .expect("the status codes used here are valid");
    let outgoing = response
        .body()
        .expect("the body of a new response is taken only once");
    ResponseOutparam::set(response_out, Ok(response));
    {
        let Ok(stream) = outgoing.write() else { return };
        if stream.blocking_write_and_flush(body).is_err() {
            return;
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

bindings::export!(SecretCheck with_types_in bindings);
