//! A host's view of registries: pull once, keep blobs by digest, and
//! remember who signed each tag.
//!
//! Layout under the cache root (a host uses `{data_dir}/oci`):
//!
//! - `blobs/sha256/{hex}`: manifests, configs and layers, each written under
//!   a temporary name and renamed, and re-hashed whenever it is read, so a
//!   half-written or damaged file is never used;
//! - `tags/{registry}/{repository}/{tag}.json`: the digest and signer a tag
//!   had when this host last ran it ([`Pin`]).
//!
//! A tag is resolved with the registry on every fetch (one small manifest
//! request), because tags move; the blobs it names come from the cache when
//! present. A digest reference whose blobs are cached needs no registry at
//! all. When a tag resolves to content with a different signer than its
//! pin, the fetch fails: a publisher's tag taken over by someone else is
//! the supply-chain attack this guards against.

use std::path::{Path, PathBuf};

use oci_client::manifest::OciDescriptor;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::artifact::{self, ArtifactKind, ArtifactManifest, Signer};
use crate::error::ReplacedTag;
use crate::{ArtifactRef, OciError, Registry};

/// Pulls artifacts through a local, digest-addressed cache.
pub struct ArtifactCache {
    root: PathBuf,
    registry: Registry,
}

/// An artifact's bytes, ready for the host's claims check.
#[derive(Debug)]
pub struct Fetched {
    /// The reference as given.
    pub reference: String,
    /// The manifest digest it resolved to.
    pub digest: String,
    /// The component's Wasm, or the provider executable for the target.
    pub bytes: Vec<u8>,
    /// A provider's claims JWT (a component's are embedded in `bytes`).
    pub claims: Option<String>,
    /// A provider executable's file name, as pushed.
    pub file_name: Option<String>,
    /// Whether any blob had to be downloaded (false: all from the cache).
    pub pulled: bool,
    pin: Option<(PathBuf, Pin)>,
}

/// What a tag pointed at when this host last ran it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pin {
    /// The manifest digest.
    pub digest: String,
    /// Who signed that content; `None` for an unsigned component.
    pub signer: Option<Signer>,
}

impl ArtifactCache {
    /// A cache rooted at `root`, pulling through `registry`.
    pub fn new(root: PathBuf, registry: Registry) -> Self {
        ArtifactCache { root, registry }
    }

    /// The registry client.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The signed Wasm component `reference` names.
    pub async fn component(&self, reference: &str) -> Result<Fetched, OciError> {
        self.fetch(reference, ArtifactKind::Component, None).await
    }

    /// The executable for `target` from the provider archive `reference`
    /// names, with the archive's claims.
    pub async fn provider(&self, reference: &str, target: &str) -> Result<Fetched, OciError> {
        self.fetch(reference, ArtifactKind::Provider, Some(target))
            .await
    }

    /// Records who signed what a tag now points at. Call it once the host
    /// has admitted the artifact, so content its policy refused never
    /// becomes the signer a tag is held to.
    pub async fn record(&self, fetched: &Fetched) -> Result<(), OciError> {
        let Some((path, pin)) = &fetched.pin else {
            return Ok(());
        };
        let bytes = serde_json::to_vec_pretty(pin).map_err(|e| cache_error(path, e))?;
        write_atomically(path, &bytes)
            .await
            .map_err(|e| cache_error(path, e))
    }

    async fn fetch(
        &self,
        text: &str,
        kind: ArtifactKind,
        target: Option<&str>,
    ) -> Result<Fetched, OciError> {
        let reference = self.registry.parse(text)?;
        let pin_path = reference
            .tag()
            .filter(|_| reference.digest().is_none())
            .map(|tag| {
                self.root
                    .join("tags")
                    .join(reference.registry())
                    .join(reference.repository())
                    .join(format!("{tag}.json"))
            });
        let pinned = match &pin_path {
            Some(path) => read_pin(path).await,
            None => None,
        };
        let (manifest, digest) = self.resolve(&reference, pinned.as_ref()).await?;
        manifest.expect(text, kind)?;
        let mut pulled = false;

        let config = if manifest.has_trellis_config() {
            let bytes = self
                .blob(&reference, &manifest.manifest.config, &mut pulled)
                .await?;
            Some(artifact::parse_config(text, &bytes)?)
        } else {
            None
        };
        let layer = match target {
            None => manifest.component_layer(text)?,
            Some(target) => manifest.provider_layer(text, target)?,
        };
        let file_name = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(artifact::ANNOTATION_TITLE))
            .cloned();
        let bytes = self.blob(&reference, layer, &mut pulled).await?;

        let (signer, claims) = match kind {
            ArtifactKind::Component => (Signer::of_component(text, &bytes)?, None),
            ArtifactKind::Provider => {
                let claims = config
                    .map(|c| c.claims)
                    .ok_or_else(|| OciError::InvalidArtifact {
                        reference: text.to_owned(),
                        reason: "a provider archive needs a Trellis config with its claims".into(),
                    })?;
                (Some(Signer::of_provider(text, &claims)?), Some(claims))
            }
        };
        if let (Some(old), Some(path)) = (&pinned, &pin_path)
            && old.digest != digest
            && old.signer != signer
        {
            return Err(OciError::ReplacedTag(Box::new(ReplacedTag {
                reference: text.to_owned(),
                old_digest: old.digest.clone(),
                old_signer: describe(old.signer.as_ref()),
                new_digest: digest,
                new_signer: describe(signer.as_ref()),
                pin_path: path.display().to_string(),
            })));
        }
        if pulled {
            info!(reference = text, %digest, "pulled from the registry");
        } else {
            info!(reference = text, %digest, "artifact cache hit: nothing pulled");
        }
        Ok(Fetched {
            reference: text.to_owned(),
            pin: pin_path.map(|path| {
                (
                    path,
                    Pin {
                        digest: digest.clone(),
                        signer,
                    },
                )
            }),
            digest,
            bytes,
            claims,
            file_name,
            pulled,
        })
    }

    /// The manifest `reference` names. A digest reference is served from
    /// the cache when it can be; a tag asks the registry, falling back to
    /// the digest it was pinned to when the registry cannot be reached.
    async fn resolve(
        &self,
        reference: &ArtifactRef,
        pinned: Option<&Pin>,
    ) -> Result<(ArtifactManifest, String), OciError> {
        if let Some(digest) = reference.digest()
            && let Some(bytes) = self.cached(digest).await
        {
            return Ok((
                ArtifactManifest::parse(reference.as_str(), &bytes)?,
                digest.to_owned(),
            ));
        }
        match self.registry.manifest(reference).await {
            Ok((manifest, digest, bytes)) => {
                self.store(&digest, &bytes).await?;
                Ok((manifest, digest))
            }
            Err(err @ OciError::Unreachable { .. }) => {
                let Some(pin) = pinned else {
                    return Err(err);
                };
                let Some(bytes) = self.cached(&pin.digest).await else {
                    return Err(err);
                };
                warn!(
                    reference = reference.as_str(),
                    digest = %pin.digest,
                    error = %err,
                    "registry unreachable; using the digest this tag had when last run here"
                );
                Ok((
                    ArtifactManifest::parse(reference.as_str(), &bytes)?,
                    pin.digest.clone(),
                ))
            }
            Err(err) => Err(err),
        }
    }

    async fn blob(
        &self,
        reference: &ArtifactRef,
        descriptor: &OciDescriptor,
        pulled: &mut bool,
    ) -> Result<Vec<u8>, OciError> {
        if let Some(bytes) = self.cached(&descriptor.digest).await {
            return Ok(bytes);
        }
        let bytes = self.registry.blob(reference, descriptor).await?;
        *pulled = true;
        self.store(&descriptor.digest, &bytes).await?;
        Ok(bytes)
    }

    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        let valid = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| self.root.join("blobs").join("sha256").join(hex))
    }

    /// A cached blob, if present and still hashing to its digest. A damaged
    /// file is removed so the next fetch downloads it again.
    async fn cached(&self, digest: &str) -> Option<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let bytes = tokio::fs::read(&path).await.ok()?;
        if artifact::sha256_digest(&bytes) == digest {
            return Some(bytes);
        }
        warn!(path = %path.display(), digest, "cached blob is damaged; downloading it again");
        let _ = tokio::fs::remove_file(&path).await;
        None
    }

    async fn store(&self, digest: &str, bytes: &[u8]) -> Result<(), OciError> {
        let Some(path) = self.blob_path(digest) else {
            return Err(OciError::Cache {
                path: self.root.display().to_string(),
                reason: format!("`{digest}` is not a sha256 digest"),
            });
        };
        write_atomically(&path, bytes)
            .await
            .map_err(|e| cache_error(&path, e))
    }
}

fn describe(signer: Option<&Signer>) -> String {
    signer.map_or_else(|| "nobody (unsigned)".to_owned(), Signer::to_string)
}

fn cache_error(path: &Path, error: impl std::fmt::Display) -> OciError {
    OciError::Cache {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

async fn read_pin(path: &Path) -> Option<Pin> {
    let bytes = tokio::fs::read(path).await.ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(pin) => Some(pin),
        Err(err) => {
            warn!(path = %path.display(), %err, "ignoring an unreadable tag pin");
            None
        }
    }
}

/// Writes under a unique temporary name, then renames, so readers (other
/// fetches, other hosts sharing the directory) never see a partial file.
async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir).await?;
    let temporary = dir.join(format!(".partial-{}", uuid::Uuid::new_v4()));
    tokio::fs::write(&temporary, bytes).await?;
    if let Err(err) = tokio::fs::rename(&temporary, path).await {
        let _ = tokio::fs::remove_file(&temporary).await;
        return Err(err);
    }
    Ok(())
}
