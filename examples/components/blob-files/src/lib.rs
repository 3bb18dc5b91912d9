//! Files in a blob store, over HTTP.
//!
//! `PUT /NAME` stores the request body as object NAME in the container
//! `files` (made on first use) and answers with its size; `GET /NAME`
//! answers with the object; `DELETE /NAME` removes it; `GET /` lists the
//! names, one per line. Bodies stream through in 64 KiB pieces both ways,
//! so the component never holds a whole file. The store is whichever
//! `wasi:blobstore` provider the component is linked to:
//!
//! ```text
//! $ curl -T photo.jpg http://127.0.0.1:8080/photo.jpg
//! stored photo.jpg: 2483211 bytes
//! $ curl -s http://127.0.0.1:8080/photo.jpg | cmp - photo.jpg && echo same
//! same
//! ```

mod bindings {
    //! Rust bindings for the `trellis:examples/blob-files` world.
    #![allow(missing_docs)]

    wit_bindgen::generate!({
        path: "../../../interfaces/wit",
        world: "trellis:examples/blob-files",
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::blobstore::blobstore;
use bindings::wasi::blobstore::container::Container;
use bindings::wasi::blobstore::types::{IncomingValue, OutgoingValue};
use bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};

/// The container every file goes in.
const CONTAINER: &str = "files";

/// How much one read or write moves.
const PIECE: u64 = 64 * 1024;

struct BlobFiles;

impl Guest for BlobFiles {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let name = path
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned();
        let container = match open() {
            Ok(container) => container,
            Err(e) => return respond(response_out, 503, format!("no blob store: {e}\n")),
        };
        match (request.method(), name.is_empty()) {
            (Method::Get, true) => match list(&container) {
                Ok(names) => respond(response_out, 200, names),
                Err(e) => respond(response_out, 500, format!("{e}\n")),
            },
            (Method::Put, false) => match store(&container, &name, request) {
                Ok(size) => respond(response_out, 200, format!("stored {name}: {size} bytes\n")),
                Err(e) => respond(response_out, 500, format!("{e}\n")),
            },
            (Method::Get, false) => match fetch(&container, &name) {
                Ok(value) => stream_back(response_out, value),
                Err(e) => respond(response_out, 404, format!("{e}\n")),
            },
            (Method::Delete, false) => match container.delete_object(&name) {
                Ok(()) => respond(response_out, 200, format!("deleted {name}\n")),
                Err(e) => respond(response_out, 500, format!("{e}\n")),
            },
            _ => respond(
                response_out,
                405,
                "use GET, PUT or DELETE /NAME, or GET /\n".into(),
            ),
        }
    }
}

/// The `files` container, made if it is missing.
fn open() -> Result<Container, String> {
    if blobstore::container_exists(CONTAINER)? {
        blobstore::get_container(CONTAINER)
    } else {
        blobstore::create_container(CONTAINER)
    }
}

fn list(container: &Container) -> Result<String, String> {
    let names = container.list_objects()?;
    let mut out = String::new();
    loop {
        let (batch, end) = names.read_stream_object_names(100)?;
        for name in batch {
            out.push_str(&name);
            out.push('\n');
        }
        if end {
            return Ok(out);
        }
    }
}

/// Copies the request body into a new object `name`; returns its size.
fn store(container: &Container, name: &str, request: IncomingRequest) -> Result<u64, String> {
    let body = request
        .consume()
        .map_err(|()| "the request body was already taken")?;
    let input = body
        .stream()
        .map_err(|()| "the request body has no stream")?;
    let value = OutgoingValue::new_outgoing_value();
    let size = {
        let output = value.outgoing_value_write_body()?;
        copy(&input, &output)?
    };
    container.write_data(name, &value)?;
    OutgoingValue::finish(value)?;
    Ok(size)
}

fn fetch(container: &Container, name: &str) -> Result<IncomingValue, String> {
    let info = container.object_info(name)?;
    container.get_data(name, 0, info.size.saturating_sub(1))
}

/// Answers with `value`'s bytes, streamed.
fn stream_back(response_out: ResponseOutparam, value: IncomingValue) {
    let response = OutgoingResponse::new(Fields::new());
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(input) = IncomingValue::incoming_value_consume_async(value) {
        if let Ok(output) = body.write() {
            let _ = copy(&input, &output);
        }
    }
    let _ = OutgoingBody::finish(body, None);
}

/// Copies `input` to its end into `output`; returns the bytes moved.
fn copy(input: &InputStream, output: &OutputStream) -> Result<u64, String> {
    let mut moved = 0;
    loop {
        match input.blocking_read(PIECE) {
            Ok(piece) => {
                moved += piece.len() as u64;
                for chunk in piece.chunks(4096) {
                    output
                        .blocking_write_and_flush(chunk)
                        .map_err(|e| format!("writing: {e:?}"))?;
                }
            }
            Err(StreamError::Closed) => return Ok(moved),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!("reading: {}", e.to_debug_string()));
            }
        }
    }
}

fn respond(response_out: ResponseOutparam, status: u16, text: String) {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
        .expect("content-type is a valid header");
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .expect("the status code is valid");
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(stream) = body.write() {
        let _ = stream.blocking_write_and_flush(text.as_bytes());
    }
    let _ = OutgoingBody::finish(body, None);
}

bindings::export!(BlobFiles with_types_in bindings);
