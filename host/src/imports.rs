//! Imports a component needs from the lattice. WASI's local interfaces
//! (cli, clocks, io, random, filesystem, sockets, http) are served by
//! wasmtime-wasi inside the host; `wasi:keyvalue` is served by
//! [`crate::keyvalue`], which keeps the `bucket` resource here and forwards
//! its methods; every other imported interface is bound here to a function
//! that forwards the call over NATS to whichever target the component's
//! link names, so the component never knows where its dependency runs.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tracing::Instrument;
use trellis_claims::ClaimsError;
use trellis_claims::invocation::{Invocation, InvocationSigner, now_ms};
use trellis_lattice::Link;
use trellis_lattice::chunk::ChunkLimits;
use trellis_lattice::link::{DEFAULT_LINK_NAME, find_route};
use trellis_lattice::request::{self, Unanswered};
use trellis_lattice::rpc::{self, CallHeaders, RpcError, RpcErrorKind};
use trellis_lattice::subject::Subjects;
use trellis_lattice::wit::{WitFunction, WitInterface};
use trellis_telemetry::trace;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, Linker, Val};

use crate::engine::InstanceState;
use crate::{HostError, blobstore, builtin, keyvalue, value};

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

/// How long a call that reached a target not (yet, or any more) holding
/// its link is sent again while the link settles: a host and a provider
/// hear of a put within milliseconds of each other, on a loaded machine
/// within a few hundred.
const LINK_SETTLE_WAIT: Duration = Duration::from_secs(1);

/// Whether the host serves import `name` itself, with no link.
fn served_by_host(name: &str) -> bool {
    LOCAL_PACKAGES.iter().any(|p| name.starts_with(p))
        || builtin::serves(name)
        || blobstore::host_only(name)
}

/// The interfaces a component (its bytes) imports that only a link can
/// serve: every interface import with a function in it, less those
/// [`served_by_host`]. Read without compiling, so `wash app validate`
/// can check a manifest's links offline.
pub fn lattice_imports(bytes: &[u8]) -> Result<Vec<WitInterface>, HostError> {
    use wasmparser::component_types::ComponentEntityType;
    use wasmparser::{Validator, WasmFeatures};
    let invalid = |e: wasmparser::BinaryReaderError| HostError::InvalidComponent(e.to_string());
    let types = Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .map_err(invalid)?;
    let types = types.as_ref();
    let names = outer_names(bytes, Outer::Imports)?;
    let mut interfaces = Vec::new();
    for name in names {
        if served_by_host(&name) {
            continue;
        }
        let Some(item) = types.component_item_for_import(&name) else {
            continue;
        };
        let ComponentEntityType::Instance(id) = item.ty else {
            continue;
        };
        let has_functions = types[id]
            .exports
            .values()
            .any(|export| matches!(export.ty, ComponentEntityType::Func(_)));
        if has_functions {
            interfaces.push(WitInterface::parse(&name)?);
        }
    }
    Ok(interfaces)
}

/// The names a component (its bytes) exports at its outer level, such as
/// `wasi:http/incoming-handler@0.2.12`: what `wash dev` reads to know
/// which providers drive the component.
pub fn component_exports(bytes: &[u8]) -> Result<Vec<String>, HostError> {
    outer_names(bytes, Outer::Exports)
}

/// Which of the outer component's names [`outer_names`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outer {
    Imports,
    Exports,
}

/// The outer component's import or export names: nested modules and
/// components import from it and export to it, not to the host.
fn outer_names(bytes: &[u8], which: Outer) -> Result<Vec<String>, HostError> {
    use wasmparser::{Parser, Payload};
    let invalid = |e: wasmparser::BinaryReaderError| HostError::InvalidComponent(e.to_string());
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 && which == Outer::Imports => {
                for import in reader {
                    names.push(import.map_err(invalid)?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 && which == Outer::Exports => {
                for export in reader {
                    names.push(export.map_err(invalid)?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// The providers of this host whose process exited and is being started
/// again, shared with the supervisor: a call that finds nobody serving one
/// of them hears that it is restarting.
pub type RestartingProviders = Arc<RwLock<HashSet<String>>>;

/// The links currently known to this host, shared with the state watcher.
pub type LinkTable = Arc<RwLock<Vec<Link>>>;

/// Binds a component's lattice imports to NATS requests.
#[derive(Clone)]
pub struct ImportRouter {
    nats: async_nats::Client,
    subjects: Subjects,
    links: LinkTable,
    timeout: Duration,
    /// Signs each call for the calling component; `None` only under
    /// `--insecure-unsigned-invocations`.
    signer: Option<Arc<InvocationSigner>>,
    restarting: RestartingProviders,
    limits: ChunkLimits,
    /// How components' secrets are fetched; `None` until the host sets it.
    secrets: Option<Arc<crate::secrets::SecretsDesk>>,
}

impl ImportRouter {
    /// A router that sends calls on `nats` using the links in `links`.
    pub fn new(
        nats: async_nats::Client,
        subjects: Subjects,
        links: LinkTable,
        timeout: Duration,
        signer: Option<Arc<InvocationSigner>>,
    ) -> Self {
        ImportRouter {
            nats,
            subjects,
            links,
            timeout,
            signer,
            restarting: RestartingProviders::default(),
            limits: ChunkLimits::default(),
            secrets: None,
        }
    }

    /// The same router fetching components' secrets through `desk`.
    pub fn with_secrets(mut self, desk: crate::secrets::SecretsDesk) -> Self {
        self.secrets = Some(Arc::new(desk));
        self
    }

    /// How secrets are fetched, if this router fetches them.
    pub(crate) fn secrets_desk(&self) -> Option<&crate::secrets::SecretsDesk> {
        self.secrets.as_deref()
    }

    /// The same router sending and accepting payloads of at most
    /// `max_body` bytes.
    pub fn with_max_body(mut self, max_body: u64) -> Self {
        self.limits.max_body = max_body;
        self
    }

    /// The set of this host's restarting providers, for the supervisor to keep.
    pub fn restarting(&self) -> RestartingProviders {
        Arc::clone(&self.restarting)
    }

    /// `err`, or if it says nothing served `target` while this host is
    /// restarting that provider, an error that says so.
    fn explain_restart(&self, target: &str, err: RpcError) -> RpcError {
        let unanswered = matches!(err.kind, RpcErrorKind::NoTarget | RpcErrorKind::Timeout);
        if !unanswered || err.lattice_unreachable() {
            return err;
        }
        let restarting = self
            .restarting
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(target);
        if !restarting {
            return err;
        }
        RpcError::new(
            err.kind,
            format!(
                "provider `{target}` is restarting: its process exited and this host is starting \
                 it again; try again in a moment"
            ),
        )
    }

    /// Defines every non-local import of `component` in `linker`.
    pub fn link_imports(
        &self,
        linker: &mut Linker<InstanceState>,
        component: &Component,
    ) -> Result<(), HostError> {
        let engine = component.engine();
        let mut keyvalue_linked = false;
        let mut blobstore_linked = false;
        for (name, item) in component.component_type().imports(engine) {
            if LOCAL_PACKAGES.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            if builtin::serves(name) {
                builtin::add(linker, name, &item.ty, engine)?;
                continue;
            }
            if keyvalue::serves(name) {
                // One definition covers store, atomics and batch together,
                // since they share the `bucket` resource.
                if !keyvalue_linked {
                    keyvalue::add_to_linker(linker)?;
                    keyvalue_linked = true;
                }
                continue;
            }
            if blobstore::serves(name) {
                // Likewise for its container and value resources.
                if !blobstore_linked {
                    blobstore::add_to_linker(linker)?;
                    blobstore_linked = true;
                }
                continue;
            }
            let ComponentItem::ComponentInstance(instance) = item.ty else {
                return Err(HostError::InvalidComponent(format!(
                    "component imports `{name}`, which is not an interface; only interface imports can be linked"
                )));
            };
            let mut functions = Vec::new();
            for (function, item) in instance.exports(engine) {
                match item.ty {
                    ComponentItem::ComponentFunc(func) => functions.push((function, func)),
                    // Types (records, variants, ...) a component `use`s from
                    // an interface have no runtime definition to supply.
                    ComponentItem::Type(_) => {}
                    _ => {
                        return Err(HostError::InvalidComponent(format!(
                            "`{name}` exports `{function}`, which is not a function (resources cannot cross the lattice yet)"
                        )));
                    }
                }
            }
            if functions.is_empty() {
                continue;
            }
            let interface = WitInterface::parse(name)?;
            let mut bound = linker
                .instance(name)
                .map_err(|e| HostError::InvalidComponent(format!("{e:#}")))?;
            for (function, func) in functions {
                let forward = Forward::new(self.clone(), &interface, function, &func)?;
                bound
                    .func_new_async(function, move |store, _ty, params, results| {
                        let forward = forward.clone();
                        let state = store.data();
                        let source = state.component_id.clone();
                        let link_name = state.link_name(&forward.function.interface).to_owned();
                        Box::new(async move {
                            forward.call((&source, &link_name), params, results).await
                        })
                    })
                    .map_err(|e| HostError::InvalidComponent(format!("{e:#}")))?;
            }
        }
        Ok(())
    }

    /// The target that `source`'s link `link_name` names for `interface`,
    /// or an error that says which link to put.
    pub fn target(
        &self,
        source: &str,
        link_name: &str,
        interface: &WitInterface,
    ) -> Result<String, RpcError> {
        let links = self.links.read().unwrap_or_else(|p| p.into_inner());
        match find_route(links.iter(), source, link_name, interface) {
            Some(link) => Ok(link.target.clone()),
            None => {
                let flag = if link_name == DEFAULT_LINK_NAME {
                    String::new()
                } else {
                    format!(" --link-name {link_name}")
                };
                Err(RpcError::new(
                    RpcErrorKind::NoLink,
                    format!(
                        "component `{source}` has no link named `{link_name}` for {interface}; put one with `wash link put {source} <target> {} {} --interface {}{flag}`",
                        interface.namespace, interface.package, interface.interface,
                    ),
                ))
            }
        }
    }

    /// Sends `body` (the encoded parameters of `function`) from `source` to
    /// the target its link names, and returns the raw reply for the caller
    /// to decode by the function's own result type.
    ///
    /// A link that is being put or moved reaches this host and its target
    /// providers at slightly different moments. A target that answers
    /// [`RpcErrorKind::NoLink`] ran nothing, so for [`LINK_SETTLE_WAIT`]
    /// the call is sent again, to whatever target the link names by then:
    /// the new target once its put has arrived, or the new target once this
    /// host's table has caught up with a move.
    pub async fn send(
        &self,
        source: &str,
        link_name: &str,
        function: &WitFunction,
        body: Vec<u8>,
    ) -> Result<bytes::Bytes, RpcError> {
        let body = bytes::Bytes::from(body);
        let settled_by = tokio::time::Instant::now() + LINK_SETTLE_WAIT;
        let mut pause = Duration::from_millis(5);
        loop {
            let target = self.target(source, link_name, &function.interface)?;
            let reply = self
                .send_to(&target, (source, link_name), function, &body)
                .await?;
            let unlinked = rpc::reply_error(&reply).filter(|e| e.kind == RpcErrorKind::NoLink);
            let Some(err) = unlinked else {
                return Ok(reply);
            };
            if tokio::time::Instant::now() + pause > settled_by {
                return Ok(reply);
            }
            tracing::debug!(%target, %function, reason = %err.message, "the target holds no such link yet; calling again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// [`ImportRouter::send`] to `target`, once: the call is sealed for the
    /// target's receivers this host has paired with, or signed. A receiver
    /// that could not check the seal introduces itself in its reply instead
    /// of serving the call, which is then sent once more, signed, and pairs
    /// the two.
    pub(crate) async fn send_to(
        &self,
        target: &str,
        (source, link_name): (&str, &str),
        function: &WitFunction,
        body: &bytes::Bytes,
    ) -> Result<bytes::Bytes, RpcError> {
        let subject = self
            .subjects
            .rpc(target, function)
            .map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))?;
        let call = Invocation {
            subject: &subject,
            source_id: source,
            link_name,
            body,
        };
        let cannot_sign = |e: ClaimsError| {
            RpcError::new(RpcErrorKind::Refused, format!("cannot sign the call: {e}"))
        };
        let Some(signer) = &self.signer else {
            let reply = self.request(target, function, (&call, body), None).await?;
            return Ok(reply.payload);
        };
        let sent = signer.seal(target, &call, now_ms()).map_err(cannot_sign)?;
        let reply = self
            .request(target, function, (&call, body), Some(&sent.token))
            .await?;
        if !signer.answered(target, &sent, introduction(&reply)) {
            return Ok(reply.payload);
        }
        let signed = signer.resign(&sent).map_err(cannot_sign)?;
        let reply = self
            .request(target, function, (&call, body), Some(&signed.token))
            .await?;
        signer.answered(target, &signed, introduction(&reply));
        Ok(reply.payload)
    }

    /// Sends `call` (of `function`, with `body`) to `target` once, with
    /// `token` as its proof.
    async fn request(
        &self,
        target: &str,
        function: &WitFunction,
        call: (&Invocation<'_>, &bytes::Bytes),
        token: Option<&str>,
    ) -> Result<async_nats::Message, RpcError> {
        let (call, body) = call;
        // A child of the invocation this call is made from: the guest runs
        // inside that span.
        let (span, context) = trace::call_span(function, target, call.link_name);
        let headers = CallHeaders {
            source_id: call.source_id.to_owned(),
            link_name: call.link_name.to_owned(),
            invocation: token.map(str::to_owned),
            traceparent: context.traceparent,
            tracestate: context.tracestate,
        };
        let timeout = self.timeout;
        let source = call.source_id;
        let subject = call.subject.to_owned();
        request::call(
            &self.nats,
            subject,
            &headers,
            body.clone(),
            timeout,
            &self.limits,
            |why| {
                match why {
                    Unanswered::NoResponders => format!(
                        "nothing on the lattice serves `{target}` (linked from `{source}` for {})",
                        function.interface
                    ),
                    // Whichever clock ran out, the component hears the same thing.
                    Unanswered::Elapsed | Unanswered::TimedOut => {
                        format!("`{target}` did not answer {function} within {timeout:?}")
                    }
                }
            },
        )
        .instrument(span)
        .await
        .map_err(|err| self.explain_restart(target, err))
    }
}

/// The pairing key a receiver introduced in `reply`, if any.
fn introduction(reply: &async_nats::Message) -> Option<&str> {
    reply
        .headers
        .as_ref()
        .and_then(|h| h.get(rpc::INVOCATION_PEER_HEADER))
        .map(|v| v.as_str())
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
        caller: (&str, &str),
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        let reply = self
            .request(caller, params)
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

    async fn request(
        &self,
        (source, link_name): (&str, &str),
        params: &[Val],
    ) -> Result<rmpv::Value, RpcError> {
        let codec = |e: &dyn std::fmt::Display| RpcError::new(RpcErrorKind::Codec, e.to_string());
        let args = value::encode_vals(params).map_err(|e| codec(&e))?;
        let body = rpc::encode(&args).map_err(|e| codec(&e))?;
        let reply = self
            .router
            .send(source, link_name, &self.function, body)
            .await?;
        rpc::decode_reply::<rmpv::Value>(&reply)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use futures::StreamExt;
    use trellis_test_support::NatsServer;

    use super::*;

    fn store_link(target: &str) -> Link {
        Link {
            source_id: "counter".into(),
            target: target.into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: vec!["store".into()],
            ..Link::default()
        }
    }

    fn get() -> WitFunction {
        WitFunction::parse("wasi:keyvalue/store.get").unwrap()
    }

    /// Answers calls to `target` on `nats`: "no link" to the first
    /// `refusals` of them (every one for `u32::MAX`), then 42. Returns how
    /// many calls it has seen.
    async fn target(
        nats: &async_nats::Client,
        subjects: &Subjects,
        target: &str,
        refusals: u32,
    ) -> Arc<AtomicU32> {
        let seen = Arc::new(AtomicU32::new(0));
        let mut calls = nats
            .subscribe(subjects.rpc(target, &get()).unwrap())
            .await
            .unwrap();
        nats.flush().await.unwrap();
        let (nats, counter) = (nats.clone(), Arc::clone(&seen));
        tokio::spawn(async move {
            while let Some(call) = calls.next().await {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let reply = if n < refusals {
                    rpc::encode_reply::<u64>(&Err(RpcError::new(
                        RpcErrorKind::NoLink,
                        "`kv` has no link named `default` from `counter`",
                    )))
                } else {
                    rpc::encode_reply(&Ok(42u64))
                };
                nats.publish(call.reply.unwrap(), reply.unwrap().into())
                    .await
                    .unwrap();
            }
        });
        seen
    }

    async fn router(links: &LinkTable) -> (NatsServer, async_nats::Client, Subjects, ImportRouter) {
        let server = NatsServer::start().unwrap();
        let nats = async_nats::connect(server.url()).await.unwrap();
        let subjects = Subjects::new("imports").unwrap();
        let router = ImportRouter::new(
            nats.clone(),
            subjects.clone(),
            Arc::clone(links),
            Duration::from_secs(2),
            None,
        );
        (server, nats, subjects, router)
    }

    #[tokio::test]
    async fn a_target_that_has_not_heard_of_the_link_yet_is_called_again() {
        let links: LinkTable = Arc::new(RwLock::new(vec![store_link("kv")]));
        let (_server, nats, subjects, router) = router(&links).await;
        let seen = target(&nats, &subjects, "kv", 3).await;
        let reply = router
            .send("counter", DEFAULT_LINK_NAME, &get(), Vec::new())
            .await
            .unwrap();
        assert_eq!(rpc::decode_reply::<u64>(&reply), Ok(42));
        assert_eq!(seen.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_call_to_the_target_a_link_left_follows_it_once_this_host_hears() {
        let links: LinkTable = Arc::new(RwLock::new(vec![store_link("kv-old")]));
        let (_server, nats, subjects, router) = router(&links).await;
        let old = target(&nats, &subjects, "kv-old", u32::MAX).await;
        let new = target(&nats, &subjects, "kv-new", 0).await;
        let moved = {
            let links = Arc::clone(&links);
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                *links.write().unwrap() = vec![store_link("kv-new")];
            }
        };
        let function = get();
        let (reply, ()) = tokio::join!(
            router.send("counter", DEFAULT_LINK_NAME, &function, Vec::new()),
            moved
        );
        assert_eq!(rpc::decode_reply::<u64>(&reply.unwrap()), Ok(42));
        assert!(old.load(Ordering::SeqCst) >= 1);
        assert_eq!(new.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_target_that_never_gets_the_link_is_given_up_on_after_the_settle_wait() {
        let links: LinkTable = Arc::new(RwLock::new(vec![store_link("kv")]));
        let (_server, nats, subjects, router) = router(&links).await;
        let seen = target(&nats, &subjects, "kv", u32::MAX).await;
        let started = std::time::Instant::now();
        let reply = router
            .send("counter", DEFAULT_LINK_NAME, &get(), Vec::new())
            .await
            .unwrap();
        let waited = started.elapsed();
        let err = rpc::decode_reply::<u64>(&reply).unwrap_err();
        assert_eq!(err.kind, RpcErrorKind::NoLink);
        assert!(err.message.contains("has no link named"), "{err}");
        assert!(waited >= LINK_SETTLE_WAIT / 2, "{waited:?}");
        assert!(waited < LINK_SETTLE_WAIT * 2, "{waited:?}");
        // Backing off, not spinning.
        assert!(seen.load(Ordering::SeqCst) <= 20, "{seen:?}");
    }
}
