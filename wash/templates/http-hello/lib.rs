//! {{name}}: answers every HTTP request with a greeting.
//!
//! `wash dev` builds, signs and runs it behind an http-server provider,
//! and swaps in each saved change while it keeps serving.

mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({ world: "component", generate_all });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use bindings::wasi::logging::logging::{Level, log};

/// What every request receives.
const GREETING: &str = "Hello from {{name}}!\n";

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        log(Level::Debug, "{{name}}", &format!("answering {path}"));
        respond(response_out, 200, GREETING.as_bytes());
    }
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
