//! Imports a component needs from the lattice. WASI's local interfaces
//! (cli, clocks, io, random, filesystem, sockets, http) are served by
//! wasmtime-wasi inside the host; every other imported interface is bound
//! here to a function that forwards the call over NATS to whichever target
//! the component's link names, so the component never knows where its
//! dependency runs.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use trellis_lattice::Link;
use trellis_lattice::link::{DEFAULT_LINK_NAME, find_route};
use trellis_lattice::rpc::{self, CallHeaders, RpcError, RpcErrorKind};
use trellis_lattice::subject::Subjects;
use trellis_lattice::wit::{WitFunction, WitInterface};
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, Linker, Val};

use crate::engine::InstanceState;
use crate::{HostError, value};

/// WASI packages the host implements itself.
const LOCAL_PACKAGES: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:http/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// The links currently known to this host, shared with the state watcher.
pub type LinkTable = Arc<RwLock<Vec<Link>>>;

/// Binds a component's lattice imports to NATS requests.
#[derive(Clone)]
pub struct ImportRouter {
    nats: async_nats::Client,
    subjects: Subjects,
    links: LinkTable,
    timeout: Duration,
}

impl ImportRouter {
    /// A router that sends calls on `nats` using the links in `links`.
    pub fn new(
        nats: async_nats::Client,
        subjects: Subjects,
        links: LinkTable,
        timeout: Duration,
    ) -> Self {
        ImportRouter {
            nats,
            subjects,
            links,
            timeout,
        }
    }

    /// Defines every non-local import of `component` in `linker`.
    pub fn link_imports(
        &self,
        linker: &mut Linker<InstanceState>,
        component: &Component,
    ) -> Result<(), HostError> {
        let engine = component.engine();
        for (name, item) in component.component_type().imports(engine) {
            if LOCAL_PACKAGES.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let ComponentItem::ComponentInstance(instance) = item.ty else {
                return Err(HostError::InvalidComponent(format!(
                    "component imports `{name}`, which is not an interface; only interface imports can be linked"
                )));
            };
            let interface = WitInterface::parse(name)?;
            let mut bound = linker
                .instance(name)
                .map_err(|e| HostError::InvalidComponent(format!("{e:#}")))?;
            for (function, item) in instance.exports(engine) {
                let ComponentItem::ComponentFunc(func) = item.ty else {
                    return Err(HostError::InvalidComponent(format!(
                        "`{name}` exports `{function}`, which is not a function (resources cannot cross the lattice yet)"
                    )));
                };
                let forward = Forward::new(self.clone(), &interface, function, &func)?;
                bound
                    .func_new_async(function, move |store, _ty, params, results| {
                        let forward = forward.clone();
                        let source = store.data().component_id.clone();
                        Box::new(async move { forward.call(&source, params, results).await })
                    })
                    .map_err(|e| HostError::InvalidComponent(format!("{e:#}")))?;
            }
        }
        Ok(())
    }
}

/// One imported function, ready to forward.
#[derive(Clone)]
struct Forward {
    router: ImportRouter,
    function: WitFunction,
    results: Arc<Vec<Type>>,
}

impl Forward {
    fn new(
        router: ImportRouter,
        interface: &WitInterface,
        function: &str,
        func: &ComponentFunc,
    ) -> Result<Self, HostError> {
        Ok(Forward {
            router,
            function: WitFunction::new(interface.clone(), function)?,
            results: Arc::new(func.results().collect()),
        })
    }

    async fn call(
        &self,
        source: &str,
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        let reply = self
            .request(source, params)
            .await
            .map_err(|e| wasmtime::Error::msg(e.message))?;
        let values = match reply {
            rmpv::Value::Array(values) => values,
            rmpv::Value::Nil => Vec::new(),
            other => vec![other],
        };
        if values.len() != results.len() {
            return Err(wasmtime::Error::msg(format!(
                "{} returned {} results where {} were expected",
                self.function,
                values.len(),
                results.len()
            )));
        }
        for ((slot, value), ty) in results.iter_mut().zip(&values).zip(self.results.iter()) {
            *slot = value::decode_val(value, ty)
                .map_err(|e| wasmtime::Error::msg(format!("{}: {e}", self.function)))?;
        }
        Ok(())
    }

    async fn request(&self, source: &str, params: &[Val]) -> Result<rmpv::Value, RpcError> {
        let router = &self.router;
        let target = {
            let links = router.links.read().unwrap_or_else(|p| p.into_inner());
            find_route(
                links.iter(),
                source,
                DEFAULT_LINK_NAME,
                &self.function.interface,
            )
            .map(|link| link.target.clone())
        };
        let Some(target) = target else {
            return Err(RpcError::new(
                RpcErrorKind::NoLink,
                format!(
                    "component `{source}` has no link named `{DEFAULT_LINK_NAME}` for {}; put one with `wash link put {source} <target> {} {} --interface {}`",
                    self.function.interface,
                    self.function.interface.namespace,
                    self.function.interface.package,
                    self.function.interface.interface,
                ),
            ));
        };
        let codec = |e: &dyn std::fmt::Display| RpcError::new(RpcErrorKind::Codec, e.to_string());
        let args = value::encode_vals(params).map_err(|e| codec(&e))?;
        let body = rpc::encode(&args).map_err(|e| codec(&e))?;
        let subject = router
            .subjects
            .rpc(&target, &self.function)
            .map_err(|e| codec(&e))?;
        let mut headers = async_nats::HeaderMap::new();
        let call = CallHeaders {
            source_id: source.to_owned(),
            link_name: DEFAULT_LINK_NAME.to_owned(),
            traceparent: None,
            tracestate: None,
        };
        for (name, value) in call.to_pairs() {
            headers.insert(name, value.as_str());
        }
        let request = router
            .nats
            .request_with_headers(subject, headers, body.into());
        let message = match tokio::time::timeout(router.timeout, request).await {
            Err(_) => {
                return Err(RpcError::new(
                    RpcErrorKind::Timeout,
                    format!(
                        "`{target}` did not answer {} within {:?}",
                        self.function, router.timeout
                    ),
                ));
            }
            Ok(Err(err)) if err.kind() == async_nats::RequestErrorKind::NoResponders => {
                return Err(RpcError::new(
                    RpcErrorKind::NoTarget,
                    format!(
                        "nothing on the lattice serves `{target}` (linked from `{source}` for {})",
                        self.function.interface
                    ),
                ));
            }
            Ok(Err(err)) => return Err(RpcError::new(RpcErrorKind::NoTarget, err.to_string())),
            Ok(Ok(message)) => message,
        };
        rpc::decode_reply::<rmpv::Value>(&message.payload)
    }
}
