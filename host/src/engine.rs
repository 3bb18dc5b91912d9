//! The wasmtime side of a host: one engine configured for the component
//! model, the instance state every store carries, and a cache of compiled
//! components.
//!
//! Isolation comes from three limits. The pooling allocator pre-reserves
//! instance slots so instantiation per call is cheap; a per-store limiter
//! caps linear memory; and a ticker advances the engine's epoch so a call
//! that runs past its deadline traps instead of spinning forever.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use trellis_lattice::config::NamedConfig;
use trellis_lattice::grant::OutboundGrant;
use trellis_lattice::link::DEFAULT_LINK_NAME;
use trellis_lattice::wit::WitInterface;
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::HostError;
use crate::blobstore::BlobstoreView;
use crate::compile_cache::DiskCache;
use crate::guest_log::GuestLogBudget;
use crate::imports::ImportRouter;
use crate::keyvalue::KeyvalueView;
use crate::outbound::OutboundHttp;

/// How often the epoch advances: how often a running guest yields, and the
/// resolution of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// How many compiled components are kept for reuse.
const CACHE_CAPACITY: usize = 64;
/// Instance slots reserved by the pooling allocator.
const POOLED_INSTANCES: u32 = 256;

/// The link a call to `interface` goes by, given the names
/// `set-link-name` chose.
pub(crate) fn link_name_in<'a>(
    link_names: &'a HashMap<WitInterface, String>,
    interface: &WitInterface,
) -> &'a str {
    link_names
        .get(interface)
        .map_or(DEFAULT_LINK_NAME, String::as_str)
}

/// Who makes a lattice call: the component, and the link names its
/// instance chose.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    /// The calling component's id.
    pub source: &'a str,
    /// Link names by interface.
    pub link_names: &'a HashMap<WitInterface, String>,
}

impl Caller<'_> {
    /// The link its calls to `interface` go by.
    pub fn link_name(&self, interface: &WitInterface) -> &str {
        link_name_in(self.link_names, interface)
    }
}

/// Per-call state inside a wasmtime store.
pub struct InstanceState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// Outgoing HTTP checks against the component's grant.
    outbound: OutboundHttp,
    pub(crate) table: ResourceTable,
    limits: StoreLimits,
    /// Where calls to lattice imports go; the keyvalue bindings need it
    /// inside the store because they run behind generated traits.
    router: ImportRouter,
    /// The component this instance belongs to, for routing its imports.
    pub component_id: String,
    /// Where its `wasi:logging` entries go, within its log budget.
    pub(crate) log: Arc<GuestLogBudget>,
    /// What `wasi:config/store` answers: the component's named config as
    /// it was when this instance was created.
    pub(crate) config: Arc<NamedConfig>,
    /// Who the component is and which secrets it was granted, for
    /// `wasmcloud:secrets/store`.
    pub(crate) secrets: crate::secrets::SharedGrant,
    /// How many fetched secrets the instance holds handles to.
    pub(crate) open_secrets: usize,
    /// The link names `wasmcloud:bus/lattice.set-link-name` chose for this
    /// instance's calls, by interface; the rest use the link `default`.
    pub(crate) link_names: HashMap<WitInterface, String>,
    /// What is left of the bytes this instance's `wasi:blobstore` values
    /// may hold, all together: the host's body limit to begin with.
    pub(crate) blob_budget: crate::blobstore::BlobBudget,
}

impl InstanceState {
    /// Fresh state for one call of `component_id`, reading `config` and
    /// `secrets`, with stdout/stderr going to the host's log within
    /// `output`'s budget. Its lattice imports are sent through `router`,
    /// and its outgoing HTTP requests are checked against `grant`.
    pub fn new(
        component_id: &str,
        max_memory_bytes: u64,
        router: ImportRouter,
        grant: Arc<OutboundGrant>,
        output: &Arc<GuestLogBudget>,
        (config, secrets): (Arc<NamedConfig>, crate::secrets::SharedGrant),
    ) -> Self {
        let wasi = WasiCtx::builder()
            .stdout(output.stream("stdout"))
            .stderr(output.stream("stderr"))
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(max_memory_bytes).unwrap_or(usize::MAX))
            .trap_on_grow_failure(true)
            .build();
        InstanceState {
            wasi,
            http: WasiHttpCtx::new(),
            outbound: OutboundHttp::new(component_id, grant),
            table: ResourceTable::new(),
            limits,
            router,
            component_id: component_id.to_owned(),
            log: Arc::clone(output),
            config,
            secrets,
            open_secrets: 0,
            link_names: HashMap::new(),
            blob_budget: Arc::new(std::sync::atomic::AtomicUsize::new(
                usize::try_from(trellis_lattice::chunk::DEFAULT_MAX_BODY_BYTES)
                    .unwrap_or(usize::MAX),
            )),
        }
    }

    /// The link this instance's calls to `interface` go by.
    pub(crate) fn link_name(&self, interface: &WitInterface) -> &str {
        link_name_in(&self.link_names, interface)
    }

    /// Where this instance's lattice calls go.
    pub(crate) fn router(&self) -> &ImportRouter {
        &self.router
    }

    /// The limiter wasmtime consults on every memory or table growth.
    pub fn limits(&mut self) -> &mut StoreLimits {
        &mut self.limits
    }

    /// What the `wasi:keyvalue` bindings work on: the resource table that
    /// holds open buckets and the route to the linked provider.
    pub fn keyvalue(&mut self) -> KeyvalueView<'_> {
        let caller = Caller {
            source: &self.component_id,
            link_names: &self.link_names,
        };
        KeyvalueView::new(&mut self.table, &self.router, caller)
    }

    /// What the `wasi:blobstore` bindings work on, as for keyvalue, plus
    /// the budget its values are held within.
    pub fn blobstore(&mut self) -> BlobstoreView<'_> {
        let caller = Caller {
            source: &self.component_id,
            link_names: &self.link_names,
        };
        BlobstoreView::new(&mut self.table, &self.router, caller, &self.blob_budget)
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// The engine plus the compiled-component cache.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    cache: Arc<Mutex<ComponentCache>>,
    disk: Option<DiskCache>,
    max_memory_bytes: u64,
}

#[derive(Default)]
struct ComponentCache {
    by_hash: HashMap<String, Component>,
    order: VecDeque<String>,
    compiles: u64,
    disk_hits: u64,
}

impl Runtime {
    /// An engine with the component model, async support, epoch deadlines
    /// and, where the machine allows it, the pooling allocator.
    pub fn new(max_memory_bytes: u64) -> Result<Self, HostError> {
        let engine = match Engine::new(&engine_config(Some(max_memory_bytes))) {
            Ok(engine) => engine,
            Err(err) => {
                // The pool reserves address space up front; some sandboxes
                // refuse that. Fall back to on-demand allocation, which the
                // per-store limiter still bounds.
                tracing::warn!(error = %err, "pooling allocator unavailable; using on-demand instance allocation");
                Engine::new(&engine_config(None)).map_err(HostError::engine)?
            }
        };
        let ticker = engine.weak();
        thread::Builder::new()
            .name("trellis-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| HostError::Engine(format!("starting the epoch ticker: {e}")))?;
        Ok(Runtime {
            engine,
            cache: Arc::default(),
            disk: None,
            max_memory_bytes,
        })
    }

    /// Keeps compiled components in `dir` too, up to `max_bytes`, so a
    /// restart loads them instead of compiling; entries are authenticated
    /// with a key derived from `secret`.
    pub fn with_disk_cache(
        mut self,
        dir: &std::path::Path,
        secret: &[u8],
        max_bytes: u64,
    ) -> Result<Self, HostError> {
        self.disk = Some(DiskCache::open(dir, secret, max_bytes, &self.engine)?);
        Ok(self)
    }

    /// The shared engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The memory cap of each instance.
    pub fn max_memory_bytes(&self) -> u64 {
        self.max_memory_bytes
    }

    /// The compiled component for `wasm`, whose claims hash is `hash`.
    /// Compilation happens once per hash and off the async runtime.
    pub async fn compile(&self, hash: &str, wasm: Arc<Vec<u8>>) -> Result<Component, HostError> {
        if let Some(component) = self.cached(hash) {
            return Ok(component);
        }
        let engine = self.engine.clone();
        let disk = self.disk.clone();
        let key = hash.to_owned();
        let (component, from_disk) = tokio::task::spawn_blocking(move || {
            if let Some(component) = disk.as_ref().and_then(|d| d.load(&engine, &key)) {
                return Ok((component, true));
            }
            let component = Component::new(&engine, &*wasm)?;
            if let Some(disk) = &disk {
                disk.store(&key, &component);
            }
            Ok::<_, wasmtime::Error>((component, false))
        })
        .await
        .map_err(|e| HostError::Engine(format!("compiler task failed: {e}")))?
        .map_err(|e| HostError::InvalidComponent(format!("{e:#}")))?;
        let mut cache = self.lock_cache();
        if from_disk {
            tracing::info!(
                hash,
                "component loaded from the disk compile cache, not compiled"
            );
            cache.disk_hits += 1;
        } else {
            cache.compiles += 1;
        }
        if !cache.by_hash.contains_key(hash) {
            cache.order.push_back(hash.to_owned());
            cache.by_hash.insert(hash.to_owned(), component.clone());
            while cache.order.len() > CACHE_CAPACITY {
                if let Some(oldest) = cache.order.pop_front() {
                    cache.by_hash.remove(&oldest);
                }
            }
        }
        Ok(component)
    }

    /// How many times a component was compiled (not served from cache).
    pub fn compile_count(&self) -> u64 {
        self.lock_cache().compiles
    }

    /// How many components were loaded from the disk cache.
    pub fn disk_hit_count(&self) -> u64 {
        self.lock_cache().disk_hits
    }

    fn cached(&self, hash: &str) -> Option<Component> {
        self.lock_cache().by_hash.get(hash).cloned()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ComponentCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn engine_config(pool_memory: Option<u64>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if let Some(max_memory) = pool_memory {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOLED_INSTANCES);
        pool.total_core_instances(POOLED_INSTANCES * 4);
        pool.total_memories(POOLED_INSTANCES * 2);
        pool.total_tables(POOLED_INSTANCES * 4);
        pool.max_memory_size(usize::try_from(max_memory).unwrap_or(usize::MAX));
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component there is: it exports nothing.
    const EMPTY_COMPONENT: &str = "(component)";

    #[tokio::test]
    async fn a_component_is_compiled_once_per_hash() {
        let runtime = Runtime::new(16 * 1024 * 1024).unwrap();
        let wasm = Arc::new(wat::parse_str(EMPTY_COMPONENT).unwrap());
        runtime.compile("HASH", Arc::clone(&wasm)).await.unwrap();
        runtime.compile("HASH", Arc::clone(&wasm)).await.unwrap();
        assert_eq!(runtime.compile_count(), 1);
        runtime.compile("OTHER", wasm).await.unwrap();
        assert_eq!(runtime.compile_count(), 2);
    }

    #[tokio::test]
    async fn bytes_that_are_not_a_component_are_refused_clearly() {
        let runtime = Runtime::new(16 * 1024 * 1024).unwrap();
        let err = runtime
            .compile("BAD", Arc::new(b"not wasm".to_vec()))
            .await
            .unwrap_err();
        assert!(matches!(err, HostError::InvalidComponent(_)), "{err}");
    }

    /// A runtime with its compiled components kept in `dir`, under the
    /// key of a host whose seed is `seed`.
    fn on_disk(dir: &std::path::Path, seed: &[u8], max_bytes: u64) -> Runtime {
        Runtime::new(16 * 1024 * 1024)
            .unwrap()
            .with_disk_cache(dir, seed, max_bytes)
            .unwrap()
    }

    /// (compiled, loaded from disk) after compiling `wasm` as `hash`.
    async fn counts(runtime: &Runtime, hash: &str, wasm: &Arc<Vec<u8>>) -> (u64, u64) {
        runtime.compile(hash, Arc::clone(wasm)).await.unwrap();
        (runtime.compile_count(), runtime.disk_hit_count())
    }

    #[tokio::test]
    async fn a_restart_loads_from_disk_and_a_tampered_or_foreign_entry_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = Arc::new(wat::parse_str(EMPTY_COMPONENT).unwrap());
        let first = on_disk(dir.path(), b"seed", u64::MAX);
        assert_eq!(counts(&first, "HASH", &wasm).await, (1, 0));
        // A restart: a new engine and an empty memory cache.
        let restarted = on_disk(dir.path(), b"seed", u64::MAX);
        assert_eq!(counts(&restarted, "HASH", &wasm).await, (0, 1));

        let path = restarted.disk.as_ref().unwrap().path("HASH");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let tampered = on_disk(dir.path(), b"seed", u64::MAX);
        assert_eq!(counts(&tampered, "HASH", &wasm).await, (1, 0));
        // The entry was written again, whole, and is used once more.
        let healed = on_disk(dir.path(), b"seed", u64::MAX);
        assert_eq!(counts(&healed, "HASH", &wasm).await, (0, 1));

        // Another host's entry (another key) is not trusted.
        let other_host = on_disk(dir.path(), b"another seed", u64::MAX);
        assert_eq!(counts(&other_host, "HASH", &wasm).await, (1, 0));
        // Nor is an entry moved under another component's name.
        let mine = on_disk(dir.path(), b"seed", u64::MAX);
        let disk = mine.disk.as_ref().unwrap();
        std::fs::copy(disk.path("HASH"), disk.path("OTHER")).unwrap();
        assert_eq!(counts(&mine, "OTHER", &wasm).await, (1, 0));
    }

    #[tokio::test]
    async fn the_disk_cache_keeps_within_its_size_by_evicting_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = Arc::new(wat::parse_str(EMPTY_COMPONENT).unwrap());
        let probe = on_disk(dir.path(), b"seed", u64::MAX);
        probe.compile("A", Arc::clone(&wasm)).await.unwrap();
        let one = std::fs::metadata(probe.disk.as_ref().unwrap().path("A"))
            .unwrap()
            .len();
        // Room for one entry and a half: the second evicts the first.
        let runtime = on_disk(dir.path(), b"seed", one + one / 2);
        runtime.compile("B", Arc::clone(&wasm)).await.unwrap();
        let disk = runtime.disk.as_ref().unwrap();
        assert!(!disk.path("A").exists());
        assert!(disk.path("B").exists());
        // An entry bigger than the whole cache is not written at all.
        let tiny = on_disk(dir.path(), b"seed", 16);
        tiny.compile("C", wasm).await.unwrap();
        assert!(!tiny.disk.as_ref().unwrap().path("C").exists());
    }
}
