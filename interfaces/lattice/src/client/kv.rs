//! Opening JetStream key-value buckets in a way every supported
//! nats-server accepts; hosts (lattice state) and wadm (manifests, status,
//! lease) share it.

use async_nats::jetstream::{self, kv};

use super::ClientError;

/// Opens the KV bucket `bucket`, creating its backing stream when missing.
///
/// The stream is created by hand, with the settings a KV bucket has
/// (`KV_{bucket}` on `$KV.{bucket}.>`, one message per key, rollups,
/// direct get), rather than with `create_key_value`: that call first reads
/// the JetStream account info, whose reply from nats-server 2.9 (Debian's)
/// lacks fields async-nats 0.46 requires. Creating an identical stream
/// twice succeeds, so processes racing here are fine.
pub async fn open_kv_bucket(
    js: &jetstream::Context,
    bucket: &str,
) -> Result<kv::Store, ClientError> {
    if let Ok(store) = js.get_key_value(bucket).await {
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
        num_replicas: 1,
        ..Default::default()
    };
    js.get_or_create_stream(config).await.map_err(|e| {
        ClientError::nats(format!(
            "creating KV bucket {bucket} (is JetStream enabled on the NATS server? start it \
             with -js)"
        ))(e.into())
    })?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| ClientError::nats(format!("opening KV bucket {bucket}"))(e.into()))
}
