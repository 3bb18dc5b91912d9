//! `wasi:blobstore` on JetStream object stores: the store for production,
//! replicated by the NATS cluster that holds it.
//!
//! Each container is one object store bucket, named
//! `{bucket_prefix}{container}` (the prefix defaults to `blobs_`); an
//! object is an object in it. JetStream stores an object as a stream of
//! chunks, so objects far larger than the server's payload limit are fine.
//!
//! # Link target config
//!
//! | key | meaning |
//! |---|---|
//! | `url` | the NATS server(s) holding the buckets, comma separated (required) |
//! | `bucket_prefix` | prepended to every bucket name (default `blobs_`); links with different prefixes on one NATS never see each other's containers |
//! | `replicas` | JetStream replicas of a bucket it creates (default 1; 3 on a cluster of 3 or more) |
//!
//! Bucket names allow only ASCII letters, digits, `-` and `_`; any other
//! byte of a container name, and `_` itself, is written `_XX` in hex, so
//! every container name maps to a distinct bucket.

use std::time::Duration;

use async_nats::jetstream::{self, object_store::ObjectStore};
use futures::TryStreamExt;
use tokio::io::AsyncReadExt;
use trellis_lattice::blobstore::{
    BlobRequest, BlobResponse, ContainerMetadata, ObjectId, ObjectMetadata,
};
use trellis_lattice::connect::NatsConnection;
use trellis_provider_sdk::ProviderLink;
use trellis_provider_sdk::blobstore::{BlobBackend, BlobStore};

/// Link target config: the NATS URL(s).
pub const URL_KEY: &str = "url";
/// Link target config: the bucket name prefix.
pub const PREFIX_KEY: &str = "bucket_prefix";
/// Link target config: replicas of new buckets.
pub const REPLICAS_KEY: &str = "replicas";
/// The prefix when none is set.
pub const DEFAULT_PREFIX: &str = "blobs_";

/// How long connecting to the store's NATS may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a NATS connection per link.
#[derive(Debug, Default)]
pub struct NatsBackend;

impl NatsBackend {
    /// The backend.
    pub fn new() -> Self {
        NatsBackend
    }
}

impl BlobBackend for NatsBackend {
    type Store = NatsStore;

    async fn open(&self, link: &ProviderLink) -> Result<NatsStore, String> {
        let config = &link.target_config_values;
        let Some(url) = config.get(URL_KEY).filter(|u| !u.trim().is_empty()) else {
            return Err(format!(
                "target config `{URL_KEY}` is missing; set it to the NATS server holding the object stores, e.g. {URL_KEY}=nats://127.0.0.1:4222"
            ));
        };
        let prefix = config
            .get(PREFIX_KEY)
            .cloned()
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "target config `{PREFIX_KEY}` ({prefix:?}) may hold only ASCII letters, digits, `-` and `_`"
            ));
        }
        let replicas = match config.get(REPLICAS_KEY) {
            None => 1,
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n @ 1..=5) => n,
                _ => {
                    return Err(format!(
                        "target config `{REPLICAS_KEY}` ({text:?}) must be a number from 1 to 5"
                    ));
                }
            },
        };
        let client = NatsConnection::new(url.clone())
            .connect(|o| o.name("trellis-blobstore-nats"), CONNECT_TIMEOUT)
            .await
            .map_err(|e| format!("connecting to the object store NATS at {url}: {e}"))?;
        tracing::info!(
            source_id = %link.link.source_id,
            link_name = %link.link.name,
            %url,
            %prefix,
            "blobstore on JetStream open"
        );
        Ok(NatsStore {
            js: jetstream::new(client),
            prefix,
            replicas,
        })
    }
}

/// One link's store: the buckets under its prefix.
pub struct NatsStore {
    js: jetstream::Context,
    prefix: String,
    replicas: usize,
}

impl NatsStore {
    fn bucket(&self, container: &str) -> String {
        format!("{}{}", self.prefix, encode(container))
    }

    /// The container's bucket and when it was created; `None` if absent.
    async fn find(&self, container: &str) -> Result<Option<(ObjectStore, u64)>, String> {
        use async_nats::jetstream::ErrorCode;
        use async_nats::jetstream::context::GetStreamErrorKind;
        let bucket = self.bucket(container);
        match self.js.get_stream(format!("OBJ_{bucket}")).await {
            Ok(mut stream) => {
                let created = stream
                    .info()
                    .await
                    .map(|i| u64::try_from(i.created.unix_timestamp()).unwrap_or(0))
                    .map_err(|e| format!("reading container `{container}`: {e}"))?;
                let store = self
                    .js
                    .get_object_store(&bucket)
                    .await
                    .map_err(|e| format!("opening container `{container}`: {e}"))?;
                Ok(Some((store, created)))
            }
            Err(err) => match err.kind() {
                GetStreamErrorKind::JetStream(e)
                    if e.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(None)
                }
                _ => Err(format!("looking up container `{container}`: {err}")),
            },
        }
    }

    async fn existing(&self, container: &str) -> Result<(ObjectStore, u64), String> {
        self.find(container)
            .await?
            .ok_or_else(|| format!("container `{container}` does not exist"))
    }

    async fn read(
        &self,
        store: &ObjectStore,
        container: &str,
        object: &str,
    ) -> Result<Vec<u8>, String> {
        let mut reader = store
            .get(object)
            .await
            .map_err(|_| format!("object `{object}` does not exist in `{container}`"))?;
        let mut data = Vec::with_capacity(reader.info.size);
        reader
            .read_to_end(&mut data)
            .await
            .map_err(|e| format!("reading `{object}` in `{container}`: {e}"))?;
        Ok(data)
    }

    async fn names(store: &ObjectStore, container: &str) -> Result<Vec<String>, String> {
        let list = store
            .list()
            .await
            .map_err(|e| format!("listing `{container}`: {e}"))?;
        let infos: Vec<_> = list
            .try_collect()
            .await
            .map_err(|e| format!("listing `{container}`: {e}"))?;
        let mut names: Vec<String> = infos
            .into_iter()
            .filter(|i| !i.deleted)
            .map(|i| i.name)
            .collect();
        names.sort();
        Ok(names)
    }

    async fn copy(
        &self,
        src: &ObjectId,
        dest: &ObjectId,
        then_remove: bool,
    ) -> Result<BlobResponse, String> {
        let (from, _) = self.existing(&src.container).await?;
        let (to, _) = self.existing(&dest.container).await?;
        let data = self.read(&from, &src.container, &src.object).await?;
        to.put(dest.object.as_str(), &mut data.as_slice())
            .await
            .map_err(|e| format!("writing `{}` in `{}`: {e}", dest.object, dest.container))?;
        let same = src.container == dest.container && src.object == dest.object;
        if then_remove && !same {
            from.delete(&src.object)
                .await
                .map_err(|e| format!("deleting `{}`: {e}", src.object))?;
        }
        Ok(BlobResponse::Done)
    }
}

impl BlobStore for NatsStore {
    async fn handle(&self, request: BlobRequest) -> Result<BlobResponse, String> {
        use BlobResponse::{Bool, Done};
        match request {
            BlobRequest::CreateContainer(name) => {
                if self.find(&name).await?.is_some() {
                    return Err(format!("container `{name}` already exists"));
                }
                self.js
                    .create_object_store(jetstream::object_store::Config {
                        bucket: self.bucket(&name),
                        num_replicas: self.replicas,
                        ..Default::default()
                    })
                    .await
                    .map(|_| Done)
                    .map_err(|e| format!("creating container `{name}`: {e}"))
            }
            BlobRequest::GetContainer(name) => self.existing(&name).await.map(|_| Done),
            BlobRequest::DeleteContainer(name) => {
                if self.find(&name).await?.is_none() {
                    return Ok(Done);
                }
                self.js
                    .delete_object_store(self.bucket(&name))
                    .await
                    .map(|_| Done)
                    .map_err(|e| format!("deleting container `{name}`: {e}"))
            }
            BlobRequest::ContainerExists(name) => Ok(Bool(self.find(&name).await?.is_some())),
            BlobRequest::CopyObject { src, dest } => self.copy(&src, &dest, false).await,
            BlobRequest::MoveObject { src, dest } => self.copy(&src, &dest, true).await,
            BlobRequest::Info(name) => {
                let (_, created_at) = self.existing(&name).await?;
                Ok(BlobResponse::Container(ContainerMetadata {
                    name,
                    created_at,
                }))
            }
            BlobRequest::GetData {
                container,
                object,
                start,
                end,
            } => {
                let (store, _) = self.existing(&container).await?;
                let data = self.read(&store, &container, &object).await?;
                let len = data.len() as u64;
                if start >= len {
                    return Ok(BlobResponse::Data(Vec::new()));
                }
                let last = end.min(len - 1);
                let range = usize::try_from(start).unwrap_or(usize::MAX)
                    ..=usize::try_from(last).unwrap_or(usize::MAX);
                Ok(BlobResponse::Data(data[range].to_vec()))
            }
            BlobRequest::WriteData {
                container,
                object,
                data,
            } => {
                let (store, _) = self.existing(&container).await?;
                store
                    .put(object.as_str(), &mut data.as_slice())
                    .await
                    .map(|_| Done)
                    .map_err(|e| format!("writing `{object}` in `{container}`: {e}"))
            }
            BlobRequest::ListObjects(container) => {
                let (store, _) = self.existing(&container).await?;
                Self::names(&store, &container)
                    .await
                    .map(BlobResponse::Names)
            }
            BlobRequest::DeleteObject { container, object } => {
                let (store, _) = self.existing(&container).await?;
                delete(&store, &object).await
            }
            BlobRequest::DeleteObjects { container, objects } => {
                let (store, _) = self.existing(&container).await?;
                for object in &objects {
                    delete(&store, object).await?;
                }
                Ok(Done)
            }
            BlobRequest::HasObject { container, object } => {
                let (store, _) = self.existing(&container).await?;
                Ok(Bool(store.info(&object).await.is_ok_and(|i| !i.deleted)))
            }
            BlobRequest::ObjectInfo { container, object } => {
                let (store, _) = self.existing(&container).await?;
                let info = store
                    .info(&object)
                    .await
                    .ok()
                    .filter(|i| !i.deleted)
                    .ok_or_else(|| format!("object `{object}` does not exist in `{container}`"))?;
                Ok(BlobResponse::Object(ObjectMetadata {
                    name: object,
                    container,
                    created_at: info
                        .modified
                        .map_or(0, |t| u64::try_from(t.unix_timestamp()).unwrap_or(0)),
                    size: info.size as u64,
                }))
            }
            BlobRequest::Clear(container) => {
                let (store, _) = self.existing(&container).await?;
                for object in Self::names(&store, &container).await? {
                    delete(&store, &object).await?;
                }
                Ok(Done)
            }
        }
    }
}

/// Deletes `object`; an absent one is not an error.
async fn delete(store: &ObjectStore, object: &str) -> Result<BlobResponse, String> {
    match store.info(object).await {
        Ok(info) if !info.deleted => store
            .delete(object)
            .await
            .map(|()| BlobResponse::Done)
            .map_err(|e| format!("deleting `{object}`: {e}")),
        _ => Ok(BlobResponse::Done),
    }
}

/// A container name as the part of a bucket name after the prefix.
pub fn encode(container: &str) -> String {
    let mut out = String::with_capacity(container.len());
    for byte in container.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("_{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_container_names_get_distinct_valid_buckets() {
        let names = ["photos", "photos_", "photos_5F", "a b", "日本", ""];
        let buckets: Vec<String> = names.iter().map(|n| encode(n)).collect();
        for bucket in &buckets {
            assert!(
                bucket
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
        let mut unique = buckets.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), buckets.len(), "{buckets:?}");
    }
}
