//! Outgoing HTTP, deny-by-default: the wasi-http hooks each instance gets.
//!
//! wasmtime-wasi-http sends a component's `outgoing-handler` requests
//! through [`WasiHttpHooks::send_request`]. Here that checks the request's
//! scheme, host and port against the component's grant
//! ([`trellis_lattice::grant`]) before anything leaves the host. A request
//! outside it fails with `HTTP-request-denied`, and the host logs the
//! component and the refused host so an operator can see what to grant.

use std::future::Future;
use std::sync::Arc;

use trellis_lattice::grant::OutboundGrant;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The hooks of one instance: its component's id and grant.
pub(crate) struct OutboundHttp {
    component_id: String,
    grant: Arc<OutboundGrant>,
}

impl OutboundHttp {
    pub(crate) fn new(component_id: &str, grant: Arc<OutboundGrant>) -> Self {
        OutboundHttp {
            component_id: component_id.to_owned(),
            grant,
        }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_owned();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16();
        if !self.grant.allows(&scheme, &host, port) {
            let target = match port {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            };
            tracing::warn!(
                component_id = %self.component_id,
                host = %target,
                "outgoing HTTP request denied: the component has no grant for this host; add it to the component's allowedHosts"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;

            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}
