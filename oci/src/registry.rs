//! Push and pull over the OCI distribution API, with the registry's errors
//! turned into ones that say which check failed.

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciDescriptor};
use oci_client::secrets::RegistryAuth;

use crate::artifact::{self, Artifact, ArtifactKind, ArtifactManifest};
use crate::{ArtifactRef, Credentials, OciError};

/// How to talk to registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries (`host:port`) spoken to over plain HTTP, such as a local
    /// one; every other registry must speak HTTPS.
    pub insecure: Vec<String>,
    /// Accept `:latest` and untagged references.
    pub allow_latest: bool,
    /// Who to log in as.
    pub credentials: Credentials,
}

/// A client for OCI registries.
pub struct Registry {
    client: oci_client::Client,
    options: RegistryOptions,
}

/// What `wash claims inspect <ref>` shows: read from the manifest (and the
/// config, or for a foreign component the Wasm layer) without running
/// anything.
#[derive(Debug, Clone)]
pub struct Inspected {
    /// The manifest digest the reference resolved to.
    pub digest: String,
    /// The artifact's kind.
    pub kind: ArtifactKind,
    /// The claims JWT, if the artifact is signed.
    pub claims: Option<String>,
    /// For a provider archive, the targets it holds.
    pub targets: Vec<String>,
}

impl Registry {
    /// A client with `options`.
    pub fn new(options: RegistryOptions) -> Self {
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(options.insecure.clone()),
            // A registry that does not answer should fail a scale quickly
            // rather than hold it for reqwest's default of forever.
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: Some(Duration::from_secs(60)),
            // Trellis artifacts are never image indexes; a provider archive
            // picks its target from layer annotations.
            platform_resolver: None,
            ..ClientConfig::default()
        };
        Registry {
            client: oci_client::Client::new(config),
            options,
        }
    }

    /// The options this client was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// Parses `text` under this client's `:latest` policy.
    pub fn parse(&self, text: &str) -> Result<ArtifactRef, OciError> {
        ArtifactRef::parse(text, self.options.allow_latest)
    }

    async fn authorize(&self, reference: &ArtifactRef) -> RegistryAuth {
        let auth = self.options.credentials.auth_for(reference.registry());
        self.client
            .store_auth_if_needed(reference.registry(), &auth)
            .await;
        auth
    }

    /// Pushes `artifact` to `reference` and returns its manifest digest.
    pub async fn push(
        &self,
        reference: &ArtifactRef,
        artifact: &Artifact,
    ) -> Result<String, OciError> {
        let auth = self.authorize(reference).await;
        // Asking for a push token up front turns "no credentials" into one
        // clear error instead of a failure halfway through the blobs.
        if !matches!(auth, RegistryAuth::Anonymous) {
            self.client
                .auth(reference.oci(), &auth, oci_client::RegistryOperation::Push)
                .await
                .map_err(|e| map_error(reference, e))?;
        }
        for blob in artifact.layers.iter().chain([&artifact.config]) {
            self.client
                .push_blob(reference.oci(), &blob.data, &blob.digest())
                .await
                .map_err(|e| map_error(reference, e))?;
        }
        let manifest = artifact.manifest_bytes();
        let digest = artifact::sha256_digest(&manifest);
        self.client
            .push_manifest_raw(reference.oci(), manifest, http_header(OCI_IMAGE_MEDIA_TYPE))
            .await
            .map_err(|e| map_error(reference, e))?;
        Ok(digest)
    }

    /// Fetches the manifest `reference` names, with its digest and raw
    /// bytes. A reference that pins a digest is checked against it.
    pub async fn manifest(
        &self,
        reference: &ArtifactRef,
    ) -> Result<(ArtifactManifest, String, Vec<u8>), OciError> {
        let auth = self.authorize(reference).await;
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(
                reference.oci(),
                &auth,
                &[OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE],
            )
            .await
            .map_err(|e| map_error(reference, e))?;
        // The registry's digest header is checked by the client; this
        // catches a registry that sends neither header nor the right body.
        let actual = artifact::sha256_digest(&bytes);
        if let Some(expected) = reference.digest()
            && expected != actual
        {
            return Err(OciError::DigestMismatch {
                reference: reference.to_string(),
                expected: expected.to_owned(),
                actual,
            });
        }
        let parsed = ArtifactManifest::parse(reference.as_str(), &bytes)?;
        Ok((parsed, digest, bytes))
    }

    /// Downloads the blob `descriptor` names and checks it hashes to its
    /// digest.
    pub async fn blob(
        &self,
        reference: &ArtifactRef,
        descriptor: &OciDescriptor,
    ) -> Result<Vec<u8>, OciError> {
        self.authorize(reference).await;
        let mut out = Vec::new();
        self.client
            .pull_blob(reference.oci(), descriptor, &mut out)
            .await
            .map_err(|e| map_error(reference, e))?;
        let actual = artifact::sha256_digest(&out);
        if actual != descriptor.digest {
            return Err(OciError::DigestMismatch {
                reference: reference.to_string(),
                expected: descriptor.digest.clone(),
                actual,
            });
        }
        Ok(out)
    }

    /// Reads an artifact's kind and claims without pulling its executables.
    pub async fn inspect(&self, reference: &ArtifactRef) -> Result<Inspected, OciError> {
        let (manifest, digest, _) = self.manifest(reference).await?;
        let claims = match manifest.claims_annotation() {
            Some(jwt) => Some(jwt.to_owned()),
            None if manifest.has_trellis_config() => {
                let bytes = self.blob(reference, &manifest.manifest.config).await?;
                Some(artifact::parse_config(reference.as_str(), &bytes)?.claims)
            }
            None => {
                let layer = manifest.component_layer(reference.as_str())?;
                let wasm = self.blob(reference, layer).await?;
                trellis_claims::wasm::find_claims(&wasm).map_err(|e| OciError::InvalidArtifact {
                    reference: reference.to_string(),
                    reason: e.to_string(),
                })?
            }
        };
        Ok(Inspected {
            digest,
            kind: manifest.kind,
            claims,
            targets: manifest.targets(),
        })
    }
}

fn http_header(value: &'static str) -> http::HeaderValue {
    http::HeaderValue::from_static(value)
}

/// Sorts a client error into the cases an operator acts on differently.
fn map_error(reference: &ArtifactRef, error: OciDistributionError) -> OciError {
    let text = reference.to_string();
    let registry = reference.registry().to_owned();
    match error {
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            OciError::Unreachable {
                reference: text,
                registry,
                reason: error_chain(&e),
            }
        }
        OciDistributionError::RequestError(e)
            if e.status() == Some(http::StatusCode::NOT_FOUND) =>
        {
            OciError::NotFound {
                reference: text,
                reason: error_chain(&e),
            }
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => OciError::Unauthorized {
            reference: text,
            registry,
        },
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => OciError::DigestMismatch {
            reference: text,
            expected,
            actual,
        },
        OciDistributionError::ImageManifestNotFoundError(reason) => OciError::NotFound {
            reference: text,
            reason,
        },
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) =>
        {
            OciError::NotFound {
                reference: text,
                reason: envelope.to_string(),
            }
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            OciError::Unauthorized {
                reference: text,
                registry,
            }
        }
        OciDistributionError::ServerError {
            code: 404, message, ..
        } => OciError::NotFound {
            reference: text,
            reason: message,
        },
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => OciError::Unauthorized {
            reference: text,
            registry,
        },
        other => OciError::Registry {
            reference: text,
            reason: error_chain(&other),
        },
    }
}

/// An error and its causes on one line, skipping a cause whose text the
/// previous one already included.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
