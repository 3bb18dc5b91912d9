//! {{name}}: keeps files in a blob store. `PUT /NAME` stores the request
//! body as object NAME, `GET /NAME` answers with it.
//!
//! `wash dev` builds, signs and runs it behind an http-server provider,
//! with its objects in a directory through the blobstore-fs provider:
//!
//! ```text
//! curl -T notes.txt http://127.0.0.1:8000/notes.txt
//! curl http://127.0.0.1:8000/notes.txt
//! ```

mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({ world: "component", generate_all });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::blobstore::blobstore;
use bindings::wasi::blobstore::container::Container;
use bindings::wasi::blobstore::types::{IncomingValue, OutgoingValue};
use bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use bindings::wasi::io::streams::StreamError;

/// The container the files go in.
const CONTAINER: &str = "files";

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let name = path.split('?').next().unwrap_or_default().trim_start_matches('/').to_owned();
        let answer = match request.method() {
            Method::Put => put(&name, request).map(|size| format!("stored {name}: {size} bytes\n").into_bytes()),
            Method::Get => get(&name),
            _ => Err("use PUT or GET /NAME".to_owned()),
        };
        match answer {
            Ok(body) => respond(response_out, 200, &body),
            Err(message) => respond(response_out, 500, format!("{message}\n").as_bytes()),
        }
    }
}

/// The container, made on first use.
fn container() -> Result<Container, String> {
    if blobstore::container_exists(CONTAINER)? {
        blobstore::get_container(CONTAINER)
    } else {
        blobstore::create_container(CONTAINER)
    }
}

/// Stores the request body as `name`; returns its size.
fn put(name: &str, request: IncomingRequest) -> Result<u64, String> {
    let body = request.consume().map_err(|()| "no request body")?;
    let input = body.stream().map_err(|()| "no request body stream")?;
    let value = OutgoingValue::new_outgoing_value();
    let mut size = 0;
    {
        let output = value.outgoing_value_write_body()?;
        loop {
            match input.blocking_read(4096) {
                Ok(piece) => {
                    size += piece.len() as u64;
                    output.blocking_write_and_flush(&piece).map_err(|e| format!("{e:?}"))?;
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
            }
        }
    }
    let container = container()?;
    container.write_data(name, &value)?;
    OutgoingValue::finish(value)?;
    Ok(size)
}

/// The object `name`, whole.
fn get(name: &str) -> Result<Vec<u8>, String> {
    let container = container()?;
    let size = container.object_info(name)?.size;
    let value = container.get_data(name, 0, size.saturating_sub(1))?;
    IncomingValue::incoming_value_consume_sync(value)
}

/// Sends `body` with `status`.
fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let response = OutgoingResponse::new(Fields::new());
    response
        .set_status_code(status)
        .expect("the status code is valid");
    let outgoing = response.body().expect("a new response has a body");
    ResponseOutparam::set(response_out, Ok(response));
    {
        // The stream borrows the body: drop it before `finish`.
        let Ok(stream) = outgoing.write() else { return };
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

bindings::export!(Component with_types_in bindings);
