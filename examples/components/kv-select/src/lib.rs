//! A request counter that picks its store per request.
//!
//! The component has one keyvalue import and may have several links for it,
//! told apart by link name. `GET /?link=NAME` asks the host, through
//! `wasmcloud:bus/lattice.set-link-name`, to route this request's keyvalue
//! calls by the link `NAME`; plain `GET /` uses the link `default`. Either
//! way it increments `counter` in the bucket `default` and answers with its
//! `greeting` config (from `wasi:config/store`, `counted` when unset), the
//! new count and the link:
//!
//! ```text
//! $ wash link put kv-select keyvalue-sqlite wasi keyvalue --interface store --interface atomics
//! $ wash link put kv-select keyvalue-redis wasi keyvalue --interface store --interface atomics --link-name cache
//! $ curl http://127.0.0.1:8080/
//! counted 1 on link `default`
//! $ curl 'http://127.0.0.1:8080/?link=cache'
//! counted 1 on link `cache`
//! ```
//!
//! Each count is also logged through `wasi:logging`. A link name the
//! component has no link by is a `400` naming the missing link.

mod bindings {
    //! Rust bindings for the `trellis:examples/kv-select` world.
    #![allow(missing_docs)]

    wit_bindgen::generate!({
        path: "../../../interfaces/wit",
        world: "trellis:examples/kv-select",
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::config::store as config;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use bindings::wasi::keyvalue::{atomics, store};
use bindings::wasi::logging::logging;
use bindings::wasmcloud::bus::lattice;

/// The component: stateless, since the counts live in the stores.
struct KvSelect;

impl Guest for KvSelect {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let link = link_in_query(&path);
        if let Some(name) = link {
            let interfaces = [
                lattice::CallTargetInterface::new("wasi", "keyvalue", "store"),
                lattice::CallTargetInterface::new("wasi", "keyvalue", "atomics"),
            ];
            let borrowed: Vec<&lattice::CallTargetInterface> = interfaces.iter().collect();
            if let Err(why) = lattice::set_link_name(name, &borrowed) {
                respond(response_out, 400, format!("{why}\n").as_bytes());
                return;
            }
        }
        let link = link.unwrap_or("default");
        let greeting = match config::get("greeting") {
            Ok(Some(greeting)) => greeting,
            _ => "counted".to_string(),
        };
        match increment() {
            Ok(count) => {
                logging::log(
                    logging::Level::Info,
                    "kv-select",
                    &format!("counted {count} on link `{link}`"),
                );
                let body = format!("{greeting} {count} on link `{link}`\n");
                respond(response_out, 200, body.as_bytes());
            }
            Err(message) => respond(response_out, 500, format!("{message}\n").as_bytes()),
        }
    }
}

/// The value of `link=` in the query of `path_with_query`, if any.
fn link_in_query(path_with_query: &str) -> Option<&str> {
    let (_, query) = path_with_query.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("link="))
        .filter(|name| !name.is_empty())
}

/// Adds one to `counter` in the bucket `default` and returns the new value.
fn increment() -> Result<u64, String> {
    let bucket = store::open("default").map_err(|e| format!("cannot open the bucket: {e:?}"))?;
    atomics::increment(&bucket, "counter", 1).map_err(|e| format!("cannot increment: {e:?}"))
}

/// Sends a complete plain-text response.
fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
        .expect("a valid header");
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .expect("a valid status code");
    let outgoing_body = response.body().expect("the body is taken once");
    ResponseOutparam::set(response_out, Ok(response));
    {
        // The stream borrows the body and must be dropped before `finish`.
        let Ok(stream) = outgoing_body.write() else {
            return;
        };
        if stream.blocking_write_and_flush(body).is_err() {
            return;
        }
    }
    let _ = OutgoingBody::finish(outgoing_body, None);
}

bindings::export!(KvSelect with_types_in bindings);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_comes_from_the_query() {
        assert_eq!(link_in_query("/?link=cache"), Some("cache"));
        assert_eq!(link_in_query("/x?a=1&link=b"), Some("b"));
        assert_eq!(link_in_query("/?link="), None);
        assert_eq!(link_in_query("/"), None);
    }
}
