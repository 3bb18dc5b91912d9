//! A component running on this host: its verified claims, its compiled and
//! pre-linked code, and the two ways to call it (`wasi:http` and any other
//! export). Every call gets a fresh instance from the `InstancePre`,
//! bounded by `max_instances` concurrent instances, a deadline and a memory
//! cap, so one misbehaving call cannot harm the next.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use tokio::sync::Semaphore;
use tracing::Instrument;
use trellis_claims::{Claims, ComponentMetadata};
use trellis_lattice::config::NamedConfig;
use trellis_lattice::grant::OutboundGrant;
use trellis_lattice::http::{HttpRequest, HttpResponse};
use trellis_lattice::rpc::{RpcError, RpcErrorKind};
use trellis_lattice::secret::{APP_ANNOTATION, SecretRefs};
use trellis_lattice::wit::WitFunction;
use trellis_oci::{ArtifactCache, Fetched};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};

use crate::config::HostConfig;
use crate::engine::{InstanceState, Runtime};
use crate::files::{FileLimits, read_bounded};
use crate::guest_log::GuestLogBudget;
use crate::imports::ImportRouter;
use crate::metrics::HostMetrics;
use crate::secrets::{SecretGrant, SharedGrant};
use crate::{HostError, value};

/// What a scale command asks for.
#[derive(Debug, Clone, Default)]
pub struct ComponentSpec {
    /// The component's id on the lattice.
    pub id: String,
    /// Where its code comes from: a file path or `file://` URL.
    pub image_ref: String,
    /// Concurrent instances allowed.
    pub max_instances: u32,
    /// Free-form annotations (wadm records ownership here).
    pub annotations: BTreeMap<String, String>,
    /// The hosts it may reach over outgoing HTTP ([`trellis_lattice::grant`]).
    pub allowed_hosts: Vec<String>,
    /// The named configs it reads through `wasi:config/store`, merged in
    /// order (later names win).
    pub config: Vec<String>,
}

/// A component's config: the names it was given and their merged values,
/// which change when any of those configs is put or deleted.
#[derive(Debug, Default)]
pub struct ComponentConfig {
    /// The named configs, in merge order.
    pub names: Vec<String>,
    /// Their values merged; each instance takes the values current when
    /// it was created.
    pub values: Arc<NamedConfig>,
    /// The secrets the names among them that are references grant, with
    /// who the component is.
    pub secrets: SharedGrant,
}

/// A component this host runs.
pub struct RunningComponent {
    /// Its lattice id.
    pub id: String,
    /// Its image reference.
    pub image_ref: String,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// Its verified claims; `None` when unsigned code was allowed.
    pub claims: Option<Claims<ComponentMetadata>>,
    /// The JWT they were read from, which vouches for the component to
    /// its secrets' backends.
    jwt: Option<String>,
    /// The outbound grant, as given.
    pub allowed_hosts: Vec<String>,
    grant: Arc<OutboundGrant>,
    max_instances: AtomicU32,
    permits: Arc<Semaphore>,
    pre: InstancePre<InstanceState>,
    proxy: Option<ProxyPre<InstanceState>>,
    /// Unversioned export name (`ns:pkg/iface`) to the name the component
    /// uses (`ns:pkg/iface@1.0.0`): subjects carry no versions.
    exports: HashMap<String, String>,
    /// Every exported function (`ns:pkg/iface.function`).
    functions: HashSet<String>,
    runtime: Runtime,
    router: ImportRouter,
    metrics: Arc<HostMetrics>,
    call_timeout: Duration,
    /// The most bytes of response body one call may produce.
    max_body_bytes: u64,
    /// What `wasi:config/store` answers.
    config: std::sync::RwLock<ComponentConfig>,
    /// The log budget every instance's stdout and stderr share.
    output: Arc<GuestLogBudget>,
}

/// Reads the bytes behind an image reference: a file path, a `file://`
/// URL, or a registry reference pulled through the host's artifact cache.
/// A pulled artifact comes back too, so its signer can be recorded once the
/// policy has admitted it.
pub async fn fetch(
    artifacts: &ArtifactCache,
    image_ref: &str,
    limits: FileLimits,
) -> Result<(Vec<u8>, Option<Fetched>), HostError> {
    if trellis_oci::is_oci_reference(image_ref) {
        let mut fetched = artifacts.component(image_ref).await?;
        return Ok((std::mem::take(&mut fetched.bytes), Some(fetched)));
    }
    let path = PathBuf::from(image_ref.strip_prefix("file://").unwrap_or(image_ref));
    let wasm = read_bounded(&path, limits)
        .await
        .map_err(|reason| HostError::Fetch {
            reference: image_ref.to_owned(),
            reason,
        })?;
    Ok((wasm, None))
}

impl RunningComponent {
    /// Verifies, compiles and links `spec`'s component.
    pub(crate) async fn prepare(
        runtime: &Runtime,
        policy: &crate::policy::RunPolicy,
        artifacts: &ArtifactCache,
        router: &ImportRouter,
        spec: &ComponentSpec,
        config: &HostConfig,
        metrics: &Arc<HostMetrics>,
    ) -> Result<Self, HostError> {
        let grant = OutboundGrant::parse(&spec.allowed_hosts)
            .map_err(|e| HostError::BadRequest(format!("component `{}`: {e}", spec.id)))?;
        let (wasm, pulled) = fetch(artifacts, &spec.image_ref, config.file_limits).await?;
        let token = policy.admit(&wasm).map_err(|source| HostError::Refused {
            reference: spec.image_ref.clone(),
            source,
        })?;
        if let Some(pulled) = &pulled {
            artifacts.record(pulled).await?;
        }
        let hash = trellis_claims::component_hash(&wasm)
            .map_err(|e| HostError::InvalidComponent(e.to_string()))?;
        let component = runtime.compile(&hash, Arc::new(wasm)).await?;
        let pre = link(runtime, router, &component)?;
        let exports = export_names(runtime, &component);
        let functions = export_functions(runtime, &component);
        let proxy = exports
            .contains_key("wasi:http/incoming-handler")
            .then(|| ProxyPre::new(pre.clone()))
            .transpose()
            .map_err(|e| HostError::InvalidComponent(format!("{e:#}")))?;
        let max = spec.max_instances.max(1);
        let (jwt, claims) = token.map(|t| (t.jwt, t.claims)).unzip();
        let running = RunningComponent {
            id: spec.id.clone(),
            image_ref: spec.image_ref.clone(),
            annotations: spec.annotations.clone(),
            claims,
            jwt,
            allowed_hosts: spec.allowed_hosts.clone(),
            grant: Arc::new(grant),
            max_instances: AtomicU32::new(max),
            permits: Arc::new(Semaphore::new(max as usize)),
            pre,
            proxy,
            exports,
            functions,
            runtime: runtime.clone(),
            router: router.clone(),
            metrics: Arc::clone(metrics),
            call_timeout: config.call_timeout,
            max_body_bytes: config.max_body_bytes,
            output: GuestLogBudget::new(&spec.id, config.guest_log),
            config: std::sync::RwLock::new(ComponentConfig {
                names: spec.config.clone(),
                values: Arc::default(),
                secrets: Arc::default(),
            }),
        };
        running.instantiates().await?;
        Ok(running)
    }

    /// Instantiates the component once and drops the instance. Every call
    /// gets a fresh instance, so one that traps as it is instantiated (an
    /// initializer that fails, memory past the host's limit) would fail
    /// every call; refused here, it fails its start, where an operator and
    /// a rollout see it, and the version it was to replace keeps serving.
    async fn instantiates(&self) -> Result<(), HostError> {
        let mut store = self.new_store();
        match self.pre.instantiate_async(&mut store).await {
            Ok(_) => Ok(()),
            // Every instance slot busy says nothing about this image.
            Err(err)
                if err
                    .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                    .is_some() =>
            {
                tracing::warn!(component = %self.id, "no free instance slot to try the component in; starting it untried");
                Ok(())
            }
            Err(err) => Err(HostError::InvalidComponent(format!(
                "`{}` fails as it is instantiated ({}): {}",
                self.image_ref,
                self.id,
                describe_trap(&err)
            ))),
        }
    }

    /// Concurrent instances allowed now.
    pub fn max_instances(&self) -> u32 {
        self.max_instances.load(Ordering::SeqCst)
    }

    /// Whether the component exports `function` (`ns:pkg/iface.function`,
    /// unversioned).
    pub fn exports_function(&self, function: &str) -> bool {
        self.functions.contains(function)
    }

    /// How many instances are running a call now (approximate while the
    /// maximum is being lowered).
    pub fn busy_instances(&self) -> u32 {
        let idle = u32::try_from(self.permits.available_permits()).unwrap_or(u32::MAX);
        self.max_instances().saturating_sub(idle)
    }

    /// Changes the concurrency bound without disturbing calls in flight:
    /// extra permits are added, or idle ones withdrawn; permits held by
    /// busy calls are withdrawn as those calls end.
    pub fn set_max_instances(&self, max: u32) {
        let max = max.max(1);
        let old = self.max_instances.swap(max, Ordering::SeqCst);
        if max > old {
            self.permits.add_permits((max - old) as usize);
        } else if old > max {
            let wanted = (old - max) as usize;
            let removed = self.permits.forget_permits(wanted);
            if removed < wanted {
                let permits = Arc::clone(&self.permits);
                tokio::spawn(async move {
                    if let Ok(p) = permits.acquire_many((wanted - removed) as u32).await {
                        p.forget();
                    }
                });
            }
        }
    }

    /// The named configs the component reads, in merge order.
    pub fn config_names(&self) -> Vec<String> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .names
            .clone()
    }

    /// Sets the component's config: instances created from now on read
    /// `values`, the merge of `names`, and may fetch the secrets `secrets`
    /// (the references among `names`).
    pub fn set_config(&self, names: Vec<String>, (values, secrets): (NamedConfig, SecretRefs)) {
        let grant = SecretGrant {
            entity_id: self.id.clone(),
            jwt: self.jwt.clone(),
            subject: self.claims.as_ref().map(|c| c.sub.clone()),
            app: self.annotations.get(APP_ANNOTATION).cloned(),
            refs: secrets,
        };
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = ComponentConfig {
            names,
            values: Arc::new(values),
            secrets: Arc::new(grant),
        };
    }

    /// The component's friendly name from its claims, if signed.
    pub fn name(&self) -> Option<String> {
        self.claims
            .as_ref()
            .and_then(|c| c.metadata.as_ref()?.name.clone())
    }

    /// Waits until every call in flight has finished, or `timeout` passes.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let max = self.max_instances();
        tokio::time::timeout(timeout, self.permits.acquire_many(max))
            .await
            .is_ok_and(|p| p.is_ok())
    }

    /// The config and secrets a new instance reads.
    fn config_now(&self) -> (Arc<NamedConfig>, SharedGrant) {
        let config = self.config.read().unwrap_or_else(|p| p.into_inner());
        (Arc::clone(&config.values), Arc::clone(&config.secrets))
    }

    fn new_store(&self) -> Store<InstanceState> {
        let mut store = Store::new(
            self.runtime.engine(),
            InstanceState::new(
                &self.id,
                self.runtime.max_memory_bytes(),
                self.router.clone(),
                Arc::clone(&self.grant),
                &self.output,
                self.config_now(),
            ),
        );
        store.data_mut().blob_budget = Arc::new(std::sync::atomic::AtomicUsize::new(
            usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
        ));
        store.limiter(|state| state.limits());
        // Yield to the executor on every epoch tick so a busy guest cannot
        // starve other calls on this thread, and trap once the call's
        // deadline has passed.
        let deadline = Instant::now() + self.call_timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                return Err(wasmtime::Trap::Interrupt.into());
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, RpcError> {
        let permits = Arc::clone(&self.permits);
        match tokio::time::timeout(self.call_timeout, permits.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(RpcError::new(
                RpcErrorKind::Refused,
                format!("component `{}` is stopping", self.id),
            )),
            Err(_) => Err(RpcError::new(
                RpcErrorKind::Timeout,
                format!(
                    "all {} instances of `{}` stayed busy for {:?}; scale it up",
                    self.max_instances(),
                    self.id,
                    self.call_timeout
                ),
            )),
        }
    }

    /// Runs `wasi:http/incoming-handler.handle` on a fresh instance.
    pub async fn handle_http(&self, request: HttpRequest) -> Result<HttpResponse, RpcError> {
        use futures::TryStreamExt;
        let answer = self.handle_http_streaming(request, None).await?;
        let mut response = answer.response;
        if let Some(rest) = answer.rest {
            let chunks: Vec<bytes::Bytes> = rest
                .try_collect()
                .await
                .map_err(|why| RpcError::new(RpcErrorKind::Application, why))?;
            response.body = chunks.concat();
        }
        Ok(response)
    }

    /// Like [`RunningComponent::handle_http`], with the request body read
    /// from `body`, as the guest reads it, when it streams (in which case
    /// `request.body` is empty).
    pub async fn handle_http_streaming(
        &self,
        request: HttpRequest,
        body: Option<BodyStream>,
    ) -> Result<HttpAnswer, RpcError> {
        let Some(proxy) = self.proxy.clone() else {
            return Err(RpcError::new(
                RpcErrorKind::Refused,
                format!(
                    "component `{}` does not export wasi:http/incoming-handler",
                    self.id
                ),
            ));
        };
        let permit = self.permit().await?;
        let hyper_request = to_hyper(&request, body)?;
        let mut store = self.new_store();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (req, out) = {
            let mut http = wasmtime_wasi_http::WasiHttpView::http(store.data_mut());
            let scheme = if request.scheme == "https" {
                Scheme::Https
            } else {
                Scheme::Http
            };
            let req = http
                .new_incoming_request(scheme, hyper_request)
                .map_err(trap)?;
            let out = http.new_response_outparam(sender).map_err(trap)?;
            (req, out)
        };
        let metrics = Arc::clone(&self.metrics);
        let id = self.id.clone();
        // The guest runs on its own task, inside the call's span, so the
        // calls it makes are traced as children of this one.
        let guest = tokio::spawn(
            async move {
                let started = std::time::Instant::now();
                let instance = proxy.instantiate_async(&mut store).await?;
                metrics.instantiated(&id, started.elapsed());
                instance
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            }
            .instrument(tracing::Span::current()),
        );
        let deadline = self.call_timeout;
        let response = match tokio::time::timeout(deadline, receiver).await {
            Ok(Ok(Ok(response))) => response,
            Ok(Ok(Err(code))) => {
                return Err(RpcError::new(
                    RpcErrorKind::Application,
                    format!(
                        "component `{}` answered with an HTTP error: {code:?}",
                        self.id
                    ),
                ));
            }
            Ok(Err(_)) => {
                let why = match guest.await {
                    Ok(Err(err)) => describe_trap(&err),
                    Ok(Ok(())) => "it returned without setting a response".to_owned(),
                    Err(err) => err.to_string(),
                };
                return Err(RpcError::new(
                    RpcErrorKind::Application,
                    format!("component `{}` failed: {why}", self.id),
                ));
            }
            Err(_) => {
                guest.abort();
                return Err(timeout_error(&self.id, deadline));
            }
        };
        let (parts, mut body_rest) = response.into_parts();
        let limit = self.max_body_bytes;
        let too_large = || {
            RpcError::new(
                RpcErrorKind::Application,
                format!(
                    "component `{}` wrote a response body over the {limit}-byte limit \
                     (--max-body-mib); it was stopped",
                    self.id
                ),
            )
        };
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            guest.abort();
            return Err(too_large());
        }
        let inline = limit.min(INLINE_BODY_BYTES);
        let collected = collect_bounded(&mut body_rest, inline);
        let (body, ended) = match tokio::time::timeout(deadline, collected).await {
            Ok(Ok(body)) => body,
            Ok(Err(BodyFailure::Guest(code))) => {
                return Err(RpcError::new(
                    RpcErrorKind::Application,
                    format!(
                        "component `{}` failed while writing its body: {code}",
                        self.id
                    ),
                ));
            }
            Err(_) => {
                guest.abort();
                return Err(timeout_error(&self.id, deadline));
            }
        };
        let response = HttpResponse {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                .collect(),
            body: Vec::new(),
        };
        if ended {
            if body.len() as u64 > limit {
                guest.abort();
                return Err(too_large());
            }
            if let Ok(Err(err)) = guest.await {
                tracing::debug!(component = %self.id, error = %describe_trap(&err), "handler failed after responding");
            }
            return Ok(HttpAnswer {
                response: HttpResponse { body, ..response },
                rest: None,
            });
        }
        // The rest streams as the receiver pulls it. The guest and its
        // instance permit live as long as the stream: dropped early (the
        // receiver went away, or the limit was passed) they stop the guest.
        let guard = GuestGuard {
            guest,
            _permit: permit,
        };
        let rest = RestOfBody {
            prefix: Some(bytes::Bytes::from(body)),
            body: Some(body_rest),
            guard,
            sent: 0,
            limit,
            id: self.id.clone(),
        };
        let rest = futures::stream::unfold(rest, |mut rest| async move {
            let item = rest.next().await?;
            Some((item, rest))
        });
        Ok(HttpAnswer {
            response,
            rest: Some(Box::pin(rest)),
        })
    }

    /// Calls any other export with MessagePack arguments decoded by the
    /// function's own parameter types; returns the results as an array.
    pub async fn call(
        &self,
        function: &WitFunction,
        args: &rmpv::Value,
    ) -> Result<rmpv::Value, RpcError> {
        let interface = function.interface.to_string();
        let Some(export) = self.exports.get(&interface) else {
            return Err(RpcError::new(
                RpcErrorKind::Refused,
                format!("component `{}` does not export {interface}", self.id),
            ));
        };
        let _permit = self.permit().await?;
        let mut store = self.new_store();
        let started = std::time::Instant::now();
        let instance = self.pre.instantiate_async(&mut store).await.map_err(trap)?;
        self.metrics.instantiated(&self.id, started.elapsed());
        let missing = || {
            RpcError::new(
                RpcErrorKind::Refused,
                format!(
                    "component `{}` has no function `{}` in {interface}",
                    self.id, function.function
                ),
            )
        };
        let iface_index = instance
            .get_export_index(&mut store, None, export)
            .ok_or_else(missing)?;
        let func_index = instance
            .get_export_index(&mut store, Some(&iface_index), &function.function)
            .ok_or_else(missing)?;
        let func = instance
            .get_func(&mut store, func_index)
            .ok_or_else(missing)?;
        let func_type = func.ty(&store);
        let param_types: Vec<_> = func_type.params().map(|(_, ty)| ty).collect();
        let params = value::decode_params(args, &param_types)
            .map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))?;
        let mut results = vec![wasmtime::component::Val::Bool(false); func_type.results().len()];
        let deadline = self.call_timeout;
        let outcome =
            tokio::time::timeout(deadline, func.call_async(&mut store, &params, &mut results))
                .await;
        match outcome {
            Err(_) => return Err(timeout_error(&self.id, deadline)),
            Ok(Err(err)) => {
                return Err(RpcError::new(
                    RpcErrorKind::Application,
                    format!("component `{}` failed: {}", self.id, describe_trap(&err)),
                ));
            }
            Ok(Ok(())) => {}
        }
        value::encode_vals(&results).map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))
    }
}

fn link(
    runtime: &Runtime,
    router: &ImportRouter,
    component: &Component,
) -> Result<InstancePre<InstanceState>, HostError> {
    let mut linker: Linker<InstanceState> = Linker::new(runtime.engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(HostError::engine)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(HostError::engine)?;
    router.link_imports(&mut linker, component)?;
    linker
        .instantiate_pre(component)
        .map_err(|e| HostError::InvalidComponent(format!("{e:#}")))
}

/// Every exported function, as `ns:pkg/iface.function` without versions:
/// the names a call may carry, and so the only ones metrics label.
fn export_functions(runtime: &Runtime, component: &Component) -> HashSet<String> {
    let engine = runtime.engine();
    let mut names = HashSet::new();
    for (name, item) in component.component_type().exports(engine) {
        let ComponentItem::ComponentInstance(instance) = &item.ty else {
            continue;
        };
        let interface = name.split('@').next().unwrap_or(name);
        for (function, item) in instance.exports(engine) {
            if matches!(item.ty, ComponentItem::ComponentFunc(_)) {
                names.insert(format!("{interface}.{function}"));
            }
        }
    }
    names
}

fn export_names(runtime: &Runtime, component: &Component) -> HashMap<String, String> {
    component
        .component_type()
        .exports(runtime.engine())
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(name, _)| {
            let unversioned = name.split('@').next().unwrap_or(name).to_owned();
            (unversioned, name.to_owned())
        })
        .collect()
}

/// A request body arriving in chunks over the lattice.
pub type BodyStream = std::pin::Pin<
    Box<
        dyn futures::Stream<Item = Result<bytes::Bytes, trellis_lattice::chunk::ChunkError>> + Send,
    >,
>;

type GuestBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, ErrorCode>;

fn to_hyper(
    request: &HttpRequest,
    streamed: Option<BodyStream>,
) -> Result<hyper::Request<GuestBody>, RpcError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        RpcError::new(
            RpcErrorKind::Codec,
            format!("invalid HTTP request {what}: {e}"),
        )
    };
    let authority = if request.authority.is_empty() {
        "localhost"
    } else {
        &request.authority
    };
    let uri = format!(
        "{}://{authority}{}",
        request.scheme, request.path_with_query
    );
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(uri);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    let body: GuestBody = match streamed {
        None => Full::new(bytes::Bytes::from(request.body.clone()))
            .map_err(|never| match never {})
            .boxed_unsync(),
        Some(stream) => {
            use futures::StreamExt;
            // The guest sees a failed transfer as a failed body read.
            let frames = stream.map(|chunk| {
                chunk
                    .map(hyper::body::Frame::data)
                    .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))
            });
            http_body_util::StreamBody::new(frames).boxed_unsync()
        }
    };
    builder.body(body).map_err(|e| bad("head", &e))
}

/// Why a response body could not be collected.
enum BodyFailure {
    /// The guest's body stream failed, as described.
    Guest(String),
}

/// Collects `body`, frame by frame, until it ends or more than `stop_after`
/// bytes have come; says which.
async fn collect_bounded<B>(body: &mut B, stop_after: u64) -> Result<(Vec<u8>, bool), BodyFailure>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut collected = Vec::new();
    while collected.len() as u64 <= stop_after {
        let Some(frame) = body.frame().await else {
            return Ok((collected, true));
        };
        let frame = frame.map_err(|e| BodyFailure::Guest(format!("{e:?}")))?;
        if let Ok(data) = frame.into_data() {
            collected.extend_from_slice(&data);
        }
    }
    Ok((collected, false))
}

/// A guest response body up to this size travels in the reply; a larger
/// one streams.
const INLINE_BODY_BYTES: u64 = 256 * 1024;

/// What a guest answered an HTTP request with.
pub struct HttpAnswer {
    /// Status and headers, and the body if it was small.
    pub response: HttpResponse,
    /// The body, when it was too large to go with the response: a stream
    /// the guest is still writing.
    pub rest: Option<BodySource>,
}

/// A response body the guest is still writing; an error names why it
/// stopped.
pub type BodySource =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, String>> + Send>>;

/// Keeps a guest that is still writing its body running, and stops it when
/// dropped.
struct GuestGuard {
    guest: tokio::task::JoinHandle<wasmtime::Result<()>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for GuestGuard {
    fn drop(&mut self) {
        self.guest.abort();
    }
}

/// The rest of a streamed response body, counted against the limit.
struct RestOfBody {
    prefix: Option<bytes::Bytes>,
    body: Option<wasmtime_wasi_http::p2::body::HyperOutgoingBody>,
    guard: GuestGuard,
    sent: u64,
    limit: u64,
    id: String,
}

impl RestOfBody {
    async fn next(&mut self) -> Option<Result<bytes::Bytes, String>> {
        let data = match self.prefix.take() {
            Some(prefix) => prefix,
            None => loop {
                let frame = self.body.as_mut()?.frame().await;
                match frame {
                    None => {
                        self.body = None;
                        return None;
                    }
                    Some(Err(e)) => {
                        self.body = None;
                        return Some(Err(format!(
                            "component `{}` failed while writing its body: {e:?}",
                            self.id
                        )));
                    }
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            break data;
                        }
                    }
                }
            },
        };
        self.sent += data.len() as u64;
        if self.sent > self.limit {
            self.body = None;
            self.guard.guest.abort();
            return Some(Err(format!(
                "component `{}` wrote a response body over the {}-byte limit (--max-body-mib); \
                 it was stopped",
                self.id, self.limit
            )));
        }
        Some(Ok(data))
    }
}

fn timeout_error(id: &str, deadline: Duration) -> RpcError {
    RpcError::new(
        RpcErrorKind::Timeout,
        format!("component `{id}` was interrupted after {deadline:?} (call timeout)"),
    )
}

fn trap(err: wasmtime::Error) -> RpcError {
    RpcError::new(RpcErrorKind::Application, describe_trap(&err))
}

/// A trap's message, naming the limit that fired when one did.
fn describe_trap(err: &wasmtime::Error) -> String {
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => "interrupted: the call ran past its deadline".to_owned(),
        Some(wasmtime::Trap::OutOfFuel) => "ran out of fuel".to_owned(),
        Some(trap) => format!("trapped: {trap}"),
        None => format!("{err:#}"),
    }
}
