//! Opening JetStream key-value buckets in a way every supported
//! nats-server accepts; hosts (lattice state) and wadm (manifests, status,
//! lease) share it.
//!
//! Lattice buckets are replicated on a cluster: with [`Replicas::Auto`], a
//! bucket keeps three copies wherever JetStream can place three, so the
//! lattice survives one server's loss; on one server it keeps one.
//! `--js-replicas` picks a number.

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
    /// 3 when the cluster has 3 or more JetStream servers, else 1.
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

    /// The number to ask for first, and whether JetStream refusing that
    /// many (a lone server, a cluster of two) means "use 1" rather than
    /// "not ready yet".
    ///
    /// The servers a client was told of (`connect_urls`) decide only the
    /// second: they are a hint, not the truth. nats-server 2.9 does not
    /// tell a client of a cluster server that restarted, so a client that
    /// trusted them would make one-copy buckets on a healthy cluster of
    /// three. A client that knows of three servers keeps asking for 3
    /// while the cluster elects its leaders.
    fn request(self, client: &async_nats::Client) -> (usize, bool) {
        match self {
            Replicas::Exactly(n) => (n.max(1), false),
            Replicas::Auto => (3, client.server_info().connect_urls.len() < 3),
        }
    }
}

/// Whether JetStream refused a replica count it cannot place: a server
/// not in a cluster, or fewer servers than replicas ("no suitable peers
/// for placement", or on some versions "insufficient resources").
fn refuses_replicas(code: jetstream::ErrorCode) -> bool {
    code == jetstream::ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED
        || code == jetstream::ErrorCode::CLUSTER_NO_PEERS
        || code == jetstream::ErrorCode::INSUFFICIENT_RESOURCES
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
    let (mut wanted, small) = replicas.request(&js.client());
    if let Ok(store) = js.get_key_value(bucket).await {
        raise_replicas(js, bucket, wanted, small).await;
        return Ok(store);
    }
    let mut config = jetstream::stream::Config {
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
            Err(e) if small && wanted > 1 && refused_replicas(&e) => {
                tracing::debug!(bucket, error = %e, "JetStream cannot place {wanted} replicas; making one");
                wanted = 1;
                config.num_replicas = 1;
            }
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

/// Whether a stream create failed because JetStream cannot place its replicas.
fn refused_replicas(err: &jetstream::context::CreateStreamError) -> bool {
    match err.kind() {
        jetstream::context::CreateStreamErrorKind::JetStream(e) => refuses_replicas(e.error_code()),
        _ => false,
    }
}

/// Raises the bucket's stream to `wanted` replicas if it has fewer. A
/// failure is logged, not returned: the bucket works as it is. With
/// `small` (the client knows of fewer than three servers), JetStream
/// refusing the count is the expected answer of a small cluster, not news.
async fn raise_replicas(js: &jetstream::Context, bucket: &str, wanted: usize, small: bool) {
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
        Err(err) if small && refused_replicas(&err) => {
            tracing::debug!(bucket, replicas = wanted, error = %err, "the cluster cannot hold more replicas")
        }
        Err(err) => {
            tracing::warn!(bucket, replicas = wanted, error = %err, "could not raise the bucket's replicas")
        }
    }
}
