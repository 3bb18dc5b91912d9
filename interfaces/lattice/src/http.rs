//! HTTP across the lattice. A `wasi:http/incoming-handler.handle` call
//! cannot carry wasi:http resources over NATS, so the caller (the
//! http-server provider, or `wash call`) sends a plain [`HttpRequest`] and
//! the host that runs the component builds the wasi:http resources locally,
//! runs the handler and replies with an [`HttpResponse`]. Both travel in the
//! one RPC codec ([`crate::rpc`]).

use serde::{Deserialize, Serialize};

/// The function name `wasi:http/incoming-handler` exports.
pub const INCOMING_HANDLER: &str = "wasi:http/incoming-handler.handle";

/// An HTTP request as a component will see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// `GET`, `POST`, ….
    pub method: String,
    /// Path and query, e.g. `/counter?x=1`.
    pub path_with_query: String,
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// The `Host` the client asked for, e.g. `127.0.0.1:8080`.
    #[serde(default)]
    pub authority: String,
    /// Header names and raw values, in order; names may repeat.
    #[serde(default)]
    pub headers: Vec<(String, Vec<u8>)>,
    /// The full request body, sent as MessagePack `bin` (an array of
    /// integers would double its size).
    #[serde(default, with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// What the component answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names and raw values, in order.
    #[serde(default)]
    pub headers: Vec<(String, Vec<u8>)>,
    /// The full response body.
    #[serde(default, with = "serde_bytes")]
    pub body: Vec<u8>,
}

fn default_scheme() -> String {
    "http".into()
}

impl HttpRequest {
    /// A `GET` of `path_with_query` with no headers and no body.
    pub fn get(path_with_query: impl Into<String>) -> Self {
        HttpRequest {
            method: "GET".into(),
            path_with_query: path_with_query.into(),
            scheme: default_scheme(),
            authority: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc;

    #[test]
    fn request_round_trips_through_the_rpc_codec_with_a_binary_body() {
        let mut request = HttpRequest::get("/counter?x=1");
        request
            .headers
            .push(("accept".into(), b"text/plain".to_vec()));
        request.body = vec![0, 1, 2, 255];
        let bytes = rpc::encode(&request).unwrap();
        // 0xc4 is MessagePack `bin 8`: the body is bytes, not an int array.
        assert!(bytes.windows(2).any(|w| w == [0xc4, 4]));
        assert_eq!(rpc::decode::<HttpRequest>(&bytes).unwrap(), request);
    }

    #[test]
    fn response_round_trips_through_the_rpc_codec() {
        let response = HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), b"text/plain".to_vec())],
            body: b"Hello from Trellis\n".to_vec(),
        };
        let bytes = rpc::encode(&response).unwrap();
        assert_eq!(rpc::decode::<HttpResponse>(&bytes).unwrap(), response);
    }
}
