//! A one-host lattice running capability providers, and the kv-counter app
//! on it, as the provider tests and the counter benchmark both need it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;
use trellis_lattice::Link;
use trellis_lattice::client::CtlClient;
use trellis_lattice::ctl::{ScaleComponentCommand, StartProviderCommand};
use trellis_test_support::{NatsServer, free_port};

use crate::{HostProcess, Signer, file_url, unique_lattice};

/// A provider id and the package whose binary of the same name runs it.
pub type ProviderKind = (&'static str, &'static str);

/// keyvalue on SQLite.
pub const SQLITE: ProviderKind = ("keyvalue-sqlite", "trellis-keyvalue-sqlite");
/// keyvalue on Redis.
pub const REDIS: ProviderKind = ("keyvalue-redis", "trellis-keyvalue-redis");
/// The HTTP server.
pub const HTTP: ProviderKind = ("http-server", "trellis-http-server");
/// Blobs in a directory.
pub const BLOB_FS: ProviderKind = ("blobstore-fs", "trellis-blobstore-fs");
/// Blobs in JetStream object stores.
pub const BLOB_NATS: ProviderKind = ("blobstore-nats", "trellis-blobstore-nats");
/// Messaging on NATS.
pub const MESSAGING: ProviderKind = ("messaging-nats", "trellis-messaging-nats");

/// The id the counter component runs under.
pub const COUNTER: &str = "kv-counter";

/// Which side of a link a named config belongs to.
#[derive(Clone, Copy, Debug)]
pub enum LinkConfig<'a> {
    /// The link's source reads it (http-server's `address`).
    Source(&'a str),
    /// The link's target reads it (a keyvalue store's `path` or `url`).
    Target(&'a str),
    /// The link carries no config.
    None,
}

/// A private NATS with one real `trellis-host` on a fresh lattice.
pub struct TestLattice {
    /// The lattice's NATS server.
    pub nats: NatsServer,
    /// The one host.
    pub host: HostProcess,
    /// A control client with a generous timeout.
    pub ctl: CtlClient,
    /// Signs what the host runs.
    pub signer: Signer,
    /// Scratch space for databases and the like.
    pub dir: TempDir,
}

impl TestLattice {
    /// Starts NATS and a host on a lattice named after `prefix`.
    pub async fn start(prefix: &str) -> anyhow::Result<Self> {
        TestLattice::start_with(prefix, &[]).await
    }

    /// [`TestLattice::start`] with extra flags for the host.
    pub async fn start_with(prefix: &str, host_args: &[&str]) -> anyhow::Result<Self> {
        TestLattice::start_with_env(prefix, host_args, &[]).await
    }

    /// [`TestLattice::start_with`] with extra environment variables for the
    /// host (and so for its providers, which inherit them).
    pub async fn start_with_env(
        prefix: &str,
        host_args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let nats = NatsServer::start()?;
        let lattice = unique_lattice(prefix);
        let host = HostProcess::start_with_env(&nats.url(), &lattice, host_args, env)?;
        let connection = async_nats::connect(nats.url()).await?;
        let ctl = CtlClient::new(connection, &lattice)?.with_timeout(Duration::from_secs(30));
        Ok(TestLattice {
            nats,
            host,
            ctl,
            signer: Signer::new()?,
            dir: TempDir::new()?,
        })
    }

    /// Signs the provider binary of `kind` and starts it on the host.
    pub async fn start_provider(&self, (id, package): ProviderKind) -> anyhow::Result<()> {
        let built = trellis_test_support::workspace_binary(package, package)?;
        let path = self.signer.sign_provider(&built)?;
        self.ctl
            .start_provider(&StartProviderCommand {
                provider_id: id.into(),
                provider_ref: file_url(&path),
                host_id: self.host.id().into(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("starting {id}; host log:\n{}", self.host.log()))
    }

    /// Runs the signed example `package` as `id`.
    pub async fn start_component(
        &self,
        package: &str,
        id: &str,
        max_instances: u32,
    ) -> anyhow::Result<()> {
        let image = file_url(&self.signer.sign_example(package)?);
        self.ctl
            .scale_component(&ScaleComponentCommand {
                component_id: id.into(),
                component_ref: image,
                max_instances,
                host_id: self.host.id().into(),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Puts named config `name`.
    pub async fn config(&self, name: &str, pairs: &[(&str, &str)]) -> anyhow::Result<()> {
        let values: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(self.ctl.put_config(name, &values).await?)
    }

    /// Puts the default link from `source` to `target` for
    /// `namespace:package/{interfaces}`.
    pub async fn link(
        &self,
        source: &str,
        target: &str,
        (namespace, package, interfaces): (&str, &str, &[&str]),
        config: LinkConfig<'_>,
    ) -> anyhow::Result<()> {
        let (source_config, target_config) = match config {
            LinkConfig::Source(name) => (vec![name.to_owned()], vec![]),
            LinkConfig::Target(name) => (vec![], vec![name.to_owned()]),
            LinkConfig::None => (vec![], vec![]),
        };
        self.ctl
            .put_link(&Link {
                source_id: source.into(),
                target: target.into(),
                name: "default".into(),
                wit_namespace: namespace.into(),
                wit_package: package.into(),
                interfaces: interfaces.iter().map(|i| i.to_string()).collect(),
                source_config,
                target_config,
            })
            .await?;
        Ok(())
    }

    /// Links the counter's keyvalue imports to provider `store` with its
    /// target config `store_config`.
    pub async fn link_counter_store(&self, store: &str, store_config: &str) -> anyhow::Result<()> {
        self.link(
            COUNTER,
            store,
            ("wasi", "keyvalue", &["store", "atomics"]),
            LinkConfig::Target(store_config),
        )
        .await
    }

    /// The counter app: http-server on a fresh port → kv-counter (`max`
    /// instances) → keyvalue provider `store` with config `store_config`.
    /// Returns the counter's URL once it answers 200.
    pub async fn counter_app(
        &self,
        store: &str,
        store_config: &str,
        max: u32,
    ) -> anyhow::Result<String> {
        let address = format!("127.0.0.1:{}", free_port()?);
        self.config("counter-http", &[("address", &address)])
            .await?;
        self.start_component("kv-counter", COUNTER, max).await?;
        self.link_counter_store(store, store_config).await?;
        self.link(
            HTTP.0,
            COUNTER,
            ("wasi", "http", &["incoming-handler"]),
            LinkConfig::Source("counter-http"),
        )
        .await?;
        let url = format!("http://{address}/");
        self.wait_until_ok(&url, Duration::from_secs(60)).await?;
        Ok(url)
    }

    /// GETs `url` until it answers 200; the error carries the last answer
    /// and the host's log.
    pub async fn wait_until_ok(&self, url: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match get(url).await {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => last = format!("{status}: {body}"),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "{url} did not answer 200 within {timeout:?}; last: {last}\nhost log:\n{}",
            self.host.log()
        )
    }
}

/// GETs `url`: status and body.
pub async fn get(url: &str) -> anyhow::Result<(u16, String)> {
    let response = reqwest::get(url).await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// One GET of the counter: the new count, or the status and body of a
/// failure.
pub async fn increment(url: &str) -> Result<u64, String> {
    match get(url).await {
        Ok((200, body)) => body
            .trim()
            .parse()
            .map_err(|e| format!("body {body:?}: {e}")),
        Ok((status, body)) => Err(format!("{status}: {body}")),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// `examples/manifests/{name}.yaml`, written into `dir` with its images
/// pointing at artifacts `signer` signed, its HTTP address at `address`
/// and its Redis at `redis`.
pub fn example_manifest(
    signer: &Signer,
    dir: &Path,
    name: &str,
    address: &str,
    redis: &str,
) -> PathBuf {
    let path = trellis_test_support::workspace_root()
        .join("examples/manifests")
        .join(format!("{name}.yaml"));
    let mut text = std::fs::read_to_string(&path).expect("reading an example manifest");
    let counter = signer
        .sign_example("kv-counter")
        .expect("signing kv-counter");
    text = text.replace("file://../build/kv_counter_s.wasm", &file_url(&counter));
    for package in [
        "trellis-keyvalue-sqlite",
        "trellis-keyvalue-redis",
        "trellis-http-server",
    ] {
        let built =
            trellis_test_support::workspace_binary(package, package).expect("a provider binary");
        let signed = signer.sign_provider(&built).expect("signing a provider");
        text = text.replace(&format!("file://../build/{package}"), &file_url(&signed));
    }
    text = text
        .replace("127.0.0.1:8080", address)
        .replace("redis://127.0.0.1:6379/", redis);
    let out = dir.join(format!("{name}.yaml"));
    std::fs::write(&out, text).expect("writing a manifest");
    out
}
