//! Opening JetStream key-value buckets in a way every supported
//! nats-server accepts; hosts (lattice state) and wadm (manifests, status,
//! lease) share it.
//!
//! Lattice buckets are replicated on a cluster: with [`Replicas::Auto`], a
//! bucket made while the client's server reports three or more servers in
//! its cluster keeps three copies, so the lattice survives one server's
//! loss; on one server it keeps one. `--js-replicas` picks a number.

use async_nats::jetstream::{self, kv};

use super::ClientError;

/// The JetStream context for lattice state: the client's own account's
/// JetStream, or with `domain` that of the JetStream domain of that name,
/// as a host at an edge site (a leaf node without JetStream) reaches the
/// hub cluster's (`$JS.{domain}.API`).
pub fn jetstream(client: async_nats::Client, domain: Option<&str>) -> jetstream::Context {
    match domain {
        Some(domain) => jetstream::with_domain(client, domain),
        None => jetstream::new(client),
    }
}

/// How long creating a bucket is retried while JetStream is not ready.
const JETSTREAM_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// How many copies of a bucket JetStream keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Replicas {
    /// 3 when the cluster has 3 or more servers, else 1.
    #[default]
    Auto,
    /// This many (at least 1; at most the cluster's size, or the server
    /// refuses the bucket).
    Exactly(usize),
}

impl Replicas {
    /// `Some(n)` from a `--js-replicas` flag, `None` for [`Replicas::Auto`].
    pub fn from_flag(flag: Option<usize>) -> Self {
        flag.map_or(Replicas::Auto, |n| Replicas::Exactly(n.max(1)))
    }

    /// The number for a bucket made through `client` now.
    pub fn resolve(self, client: &async_nats::Client) -> usize {
        match self {
            Replicas::Exactly(n) => n.max(1),
            Replicas::Auto => {
                // The server lists the client URLs of every server in its
                // cluster, its own among them; a lone server lists none.
                let servers = client.server_info().connect_urls.len();
                if servers >= 3 { 3 } else { 1 }
            }
        }
    }
}

/// Opens the KV bucket `bucket`, creating its backing stream when missing.
///
/// The stream is created by hand, with the settings a KV bucket has
/// (`KV_{bucket}` on `$KV.{bucket}.>`, one message per key, rollups,
/// direct get), rather than with `create_key_value`: that call first reads
/// the JetStream account info, whose reply from nats-server 2.9 (Debian's)
/// lacks fields async-nats 0.46 requires. Creating an identical stream
/// twice succeeds, so processes racing here are fine.
///
/// A bucket found with fewer replicas than `replicas` asks for (made
/// before the cluster grew) is raised to that many; one with more is left
/// alone.
pub async fn open_kv_bucket(
    js: &jetstream::Context,
    bucket: &str,
    replicas: Replicas,
) -> Result<kv::Store, ClientError> {
    let wanted = replicas.resolve(&js.client());
    if let Ok(store) = js.get_key_value(bucket).await {
        raise_replicas(js, bucket, wanted).await;
        return Ok(store);
    }
    let config = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        discard: jetstream::stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        storage: jetstream::stream::StorageType::File,
        num_replicas: wanted,
        ..Default::default()
    };
    // A cluster that has just started elects its JetStream leaders for a
    // few seconds, and answers "temporarily unavailable" or not at all
    // meanwhile; every host of a machine that booted with it lands here.
    let started = std::time::Instant::now();
    loop {
        match js.get_or_create_stream(config.clone()).await {
            Ok(_) => break,
            Err(e) if started.elapsed() < JETSTREAM_READY_WAIT => {
                tracing::debug!(bucket, error = %e, "JetStream not ready; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => {
                let hint = if wanted > 1 {
                    format!(
                        "; with {wanted} replicas it needs {wanted} JetStream servers up in the \
                         cluster, or pass --js-replicas"
                    )
                } else {
                    String::new()
                };
                return Err(ClientError::nats(format!(
                    "creating KV bucket {bucket} (tried for {}s; is JetStream enabled on the NATS \
                     server? start it with -js{hint})",
                    JETSTREAM_READY_WAIT.as_secs()
                ))(e.into()));
            }
        }
    }
    let store = js
        .get_key_value(bucket)
        .await
        .map_err(|e| ClientError::nats(format!("opening KV bucket {bucket}"))(e.into()))?;
    wait_readable(&store, bucket).await;
    Ok(store)
}

/// Waits (a bounded time) until the bucket answers a read: a replicated
/// stream made a moment ago has no leader yet, and reads of it find "no
/// responders" until it does.
async fn wait_readable(store: &kv::Store, bucket: &str) {
    let started = std::time::Instant::now();
    loop {
        match store.get("trellis-probe").await {
            Ok(_) => return,
            Err(e) if started.elapsed() < JETSTREAM_READY_WAIT => {
                tracing::debug!(bucket, error = %e, "bucket not readable yet");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => {
                tracing::warn!(bucket, error = %e, "the bucket is not readable yet; going on");
                return;
            }
        }
    }
}

/// Raises the bucket's stream to `wanted` replicas if it has fewer. A
/// failure is logged, not returned: the bucket works as it is.
async fn raise_replicas(js: &jetstream::Context, bucket: &str, wanted: usize) {
    let name = format!("KV_{bucket}");
    let Ok(mut stream) = js.get_stream(&name).await else {
        return;
    };
    let Ok(info) = stream.info().await else {
        return;
    };
    if info.config.num_replicas >= wanted {
        return;
    }
    let mut config = info.config.clone();
    config.num_replicas = wanted;
    match js.update_stream(config).await {
        Ok(_) => tracing::info!(bucket, replicas = wanted, "raised the bucket's replicas"),
        Err(err) => {
            tracing::warn!(bucket, replicas = wanted, error = %err, "could not raise the bucket's replicas")
        }
    }
}
