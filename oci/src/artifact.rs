//! The shape of a Trellis artifact in a registry: a wire contract shared by
//! `wash push` and every host, pinned by the golden test below.
//!
//! Both kinds are OCI image manifests (schema 2) with a JSON config blob
//! ([`ArtifactConfig`]) that carries the signed claims JWT; the manifest's
//! [`ANNOTATION_CLAIMS`] annotation carries the same JWT, so a client reads
//! the claims from the manifest alone.
//!
//! - A **component** has config [`COMPONENT_CONFIG_MEDIA_TYPE`] and one
//!   layer [`COMPONENT_LAYER_MEDIA_TYPE`]: the signed Wasm component, its
//!   claims embedded as always. Components pushed by other tools as
//!   `application/wasm` (the CNCF Wasm OCI artifact) or wasmCloud's
//!   `application/vnd.module.wasm.content.layer.v1+wasm` are read too.
//! - A **provider archive** has config [`PROVIDER_CONFIG_MEDIA_TYPE`] and
//!   one layer [`PROVIDER_LAYER_MEDIA_TYPE`] per target (`x86_64-linux`,
//!   named by the [`ANNOTATION_TARGET`] annotation), so a host downloads
//!   only its own executable. The claims record each target's SHA-256.

use std::collections::BTreeMap;

use oci_client::manifest::{OciDescriptor, OciImageManifest};
use serde::{Deserialize, Serialize};
use trellis_claims::{ComponentMetadata, Policy, ProviderMetadata, Token};

use crate::OciError;

/// Config media type of a Trellis component.
pub const COMPONENT_CONFIG_MEDIA_TYPE: &str = "application/vnd.trellis.component.config.v1+json";
/// Layer media type of a Trellis component: the signed Wasm bytes.
pub const COMPONENT_LAYER_MEDIA_TYPE: &str = "application/vnd.trellis.component.v1+wasm";
/// Config media type of a Trellis provider archive.
pub const PROVIDER_CONFIG_MEDIA_TYPE: &str = "application/vnd.trellis.provider.config.v1+json";
/// Layer media type of one provider executable.
pub const PROVIDER_LAYER_MEDIA_TYPE: &str = "application/vnd.trellis.provider.executable.v1";
/// Wasm layer media types other tools push, accepted as components.
pub const FOREIGN_WASM_LAYER_MEDIA_TYPES: [&str; 3] = [
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];
/// Manifest annotation holding the claims JWT.
pub const ANNOTATION_CLAIMS: &str = "dev.trellis.claims";
/// Layer annotation naming a provider executable's target.
pub const ANNOTATION_TARGET: &str = "dev.trellis.target";
/// The standard OCI title annotation: the artifact's or file's name.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// What an artifact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// A signed Wasm component.
    Component,
    /// A provider archive.
    Provider,
}

impl ArtifactKind {
    fn describe(self) -> &'static str {
        match self {
            ArtifactKind::Component => "a component",
            ArtifactKind::Provider => "a provider archive",
        }
    }
}

/// The config blob of a Trellis artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactConfig {
    /// Which kind of artifact this is.
    pub kind: ArtifactKind,
    /// The signed claims JWT.
    pub claims: String,
    /// For a provider archive, the targets it has executables for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

/// One blob of an artifact being built for a push.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Its media type.
    pub media_type: String,
    /// Its bytes.
    pub data: Vec<u8>,
    /// Descriptor annotations.
    pub annotations: BTreeMap<String, String>,
}

impl Blob {
    /// `sha256:<hex>` of the bytes.
    pub fn digest(&self) -> String {
        sha256_digest(&self.data)
    }

    fn descriptor(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.clone(),
            digest: self.digest(),
            size: i64::try_from(self.data.len()).unwrap_or(i64::MAX),
            annotations: (!self.annotations.is_empty()).then(|| self.annotations.clone()),
            ..Default::default()
        }
    }
}

/// A signed artifact ready to push: a config, layers and the manifest that
/// ties them together.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Its kind.
    pub kind: ArtifactKind,
    /// The config blob.
    pub config: Blob,
    /// The layers, in manifest order.
    pub layers: Vec<Blob>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

impl Artifact {
    /// A component artifact from signed Wasm bytes. The claims must verify
    /// (signature and code hash), so a registry never receives a component
    /// that no host would run; `name` is only used in messages.
    pub fn component(name: &str, wasm: Vec<u8>) -> Result<Self, OciError> {
        let invalid = |reason: String| OciError::InvalidArtifact {
            reference: name.to_owned(),
            reason,
        };
        let token = trellis_claims::verify_component(
            &wasm,
            &Policy::any_issuer(),
            trellis_claims::now_unix(),
        )
        .map_err(|e| {
            invalid(format!(
                "{e}; sign it with `wash claims sign` before pushing"
            ))
        })?;
        let title = token
            .claims
            .metadata
            .as_ref()
            .and_then(|m| m.name.clone())
            .filter(|n| !n.is_empty());
        let config = ArtifactConfig {
            kind: ArtifactKind::Component,
            claims: token.jwt.clone(),
            targets: Vec::new(),
        };
        Ok(Artifact {
            kind: ArtifactKind::Component,
            config: config_blob(COMPONENT_CONFIG_MEDIA_TYPE, &config),
            layers: vec![Blob {
                media_type: COMPONENT_LAYER_MEDIA_TYPE.to_owned(),
                data: wasm,
                annotations: BTreeMap::new(),
            }],
            annotations: manifest_annotations(&token.jwt, title),
        })
    }

    /// A provider archive from its claims JWT and one `(target, file name,
    /// executable)` per target. Every executable must match the hash the
    /// claims record for its target.
    pub fn provider(
        name: &str,
        jwt: &str,
        executables: Vec<(String, String, Vec<u8>)>,
    ) -> Result<Self, OciError> {
        let invalid = |reason: String| OciError::InvalidArtifact {
            reference: name.to_owned(),
            reason,
        };
        if executables.is_empty() {
            return Err(invalid(
                "a provider archive needs at least one executable".into(),
            ));
        }
        let jwt = jwt.trim();
        let mut token = None;
        let mut layers = Vec::new();
        let mut targets = Vec::new();
        for (target, file_name, bytes) in executables {
            let checked = trellis_claims::verify_provider(
                jwt,
                &target,
                &bytes,
                &Policy::any_issuer(),
                trellis_claims::now_unix(),
            )
            .map_err(|e| {
                invalid(format!(
                    "executable `{file_name}` for {target}: {e}; sign it with `wash claims \
                     sign-provider` before pushing"
                ))
            })?;
            if targets.contains(&target) {
                return Err(invalid(format!("target {target} is given twice")));
            }
            layers.push(Blob {
                media_type: PROVIDER_LAYER_MEDIA_TYPE.to_owned(),
                data: bytes,
                annotations: BTreeMap::from([
                    (ANNOTATION_TARGET.to_owned(), target.clone()),
                    (ANNOTATION_TITLE.to_owned(), file_name),
                ]),
            });
            targets.push(target);
            token = Some(checked);
        }
        let title = token
            .and_then(|t| t.claims.metadata)
            .and_then(|m| m.name)
            .filter(|n| !n.is_empty());
        let config = ArtifactConfig {
            kind: ArtifactKind::Provider,
            claims: jwt.to_owned(),
            targets,
        };
        Ok(Artifact {
            kind: ArtifactKind::Provider,
            config: config_blob(PROVIDER_CONFIG_MEDIA_TYPE, &config),
            layers,
            annotations: manifest_annotations(jwt, title),
        })
    }

    /// The image manifest naming the config and layers.
    pub fn manifest(&self) -> OciImageManifest {
        OciImageManifest {
            schema_version: 2,
            media_type: Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_owned()),
            config: self.config.descriptor(),
            layers: self.layers.iter().map(Blob::descriptor).collect(),
            subject: None,
            artifact_type: None,
            annotations: Some(self.annotations.clone()),
        }
    }

    /// The manifest as the bytes that are pushed; its digest is the
    /// artifact's digest.
    pub fn manifest_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.manifest()).unwrap_or_default()
    }
}

fn config_blob(media_type: &str, config: &ArtifactConfig) -> Blob {
    Blob {
        media_type: media_type.to_owned(),
        data: serde_json::to_vec(config).unwrap_or_default(),
        annotations: BTreeMap::new(),
    }
}

fn manifest_annotations(jwt: &str, title: Option<String>) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([(ANNOTATION_CLAIMS.to_owned(), jwt.to_owned())]);
    if let Some(title) = title {
        annotations.insert(ANNOTATION_TITLE.to_owned(), title);
    }
    annotations
}

/// `sha256:<lower-case hex>` of `bytes`, the OCI digest form.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        trellis_claims::sha256_hex(bytes).to_ascii_lowercase()
    )
}

/// A manifest read back from a registry.
#[derive(Debug, Clone)]
pub struct ArtifactManifest {
    /// What it holds.
    pub kind: ArtifactKind,
    /// The manifest itself.
    pub manifest: OciImageManifest,
}

impl ArtifactManifest {
    /// Reads `bytes` as a Trellis (or foreign Wasm) artifact manifest.
    pub fn parse(reference: &str, bytes: &[u8]) -> Result<Self, OciError> {
        let invalid = |reason: String| OciError::InvalidArtifact {
            reference: reference.to_owned(),
            reason,
        };
        let manifest: OciImageManifest = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("its manifest is not an OCI image manifest: {e}")))?;
        let kind = match manifest.config.media_type.as_str() {
            COMPONENT_CONFIG_MEDIA_TYPE => ArtifactKind::Component,
            PROVIDER_CONFIG_MEDIA_TYPE => ArtifactKind::Provider,
            _ if manifest.layers.len() == 1
                && FOREIGN_WASM_LAYER_MEDIA_TYPES
                    .contains(&manifest.layers[0].media_type.as_str()) =>
            {
                ArtifactKind::Component
            }
            other => {
                return Err(OciError::WrongKind {
                    reference: reference.to_owned(),
                    expected: "a Trellis component or provider archive".into(),
                    found: format!("an artifact with config media type `{other}`"),
                });
            }
        };
        Ok(ArtifactManifest { kind, manifest })
    }

    /// Fails unless this is of `kind`.
    pub fn expect(&self, reference: &str, kind: ArtifactKind) -> Result<(), OciError> {
        if self.kind == kind {
            return Ok(());
        }
        Err(OciError::WrongKind {
            reference: reference.to_owned(),
            expected: kind.describe().to_owned(),
            found: self.kind.describe().to_owned(),
        })
    }

    /// Whether the config blob is a Trellis config (foreign components
    /// carry their claims only inside the Wasm).
    pub fn has_trellis_config(&self) -> bool {
        matches!(
            self.manifest.config.media_type.as_str(),
            COMPONENT_CONFIG_MEDIA_TYPE | PROVIDER_CONFIG_MEDIA_TYPE
        )
    }

    /// The claims JWT from the manifest's annotations, if present.
    pub fn claims_annotation(&self) -> Option<&str> {
        self.manifest
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_CLAIMS))
            .map(String::as_str)
    }

    /// The component's Wasm layer.
    pub fn component_layer(&self, reference: &str) -> Result<&OciDescriptor, OciError> {
        self.expect(reference, ArtifactKind::Component)?;
        let wasm: Vec<&OciDescriptor> = self
            .manifest
            .layers
            .iter()
            .filter(|l| {
                l.media_type == COMPONENT_LAYER_MEDIA_TYPE
                    || FOREIGN_WASM_LAYER_MEDIA_TYPES.contains(&l.media_type.as_str())
            })
            .collect();
        match wasm.as_slice() {
            [layer] => Ok(layer),
            layers => Err(OciError::InvalidArtifact {
                reference: reference.to_owned(),
                reason: format!("a component has one Wasm layer; this has {}", layers.len()),
            }),
        }
    }

    /// The targets a provider archive has executables for.
    pub fn targets(&self) -> Vec<String> {
        self.manifest
            .layers
            .iter()
            .filter(|l| l.media_type == PROVIDER_LAYER_MEDIA_TYPE)
            .filter_map(|l| l.annotations.as_ref()?.get(ANNOTATION_TARGET).cloned())
            .collect()
    }

    /// The provider executable layer for `target`.
    pub fn provider_layer(
        &self,
        reference: &str,
        target: &str,
    ) -> Result<&OciDescriptor, OciError> {
        self.expect(reference, ArtifactKind::Provider)?;
        self.manifest
            .layers
            .iter()
            .find(|l| {
                l.media_type == PROVIDER_LAYER_MEDIA_TYPE
                    && l.annotations
                        .as_ref()
                        .and_then(|a| a.get(ANNOTATION_TARGET))
                        .is_some_and(|t| t == target)
            })
            .ok_or_else(|| OciError::NoTarget {
                reference: reference.to_owned(),
                target: target.to_owned(),
                available: match self.targets() {
                    t if t.is_empty() => "none".to_owned(),
                    t => t.join(", "),
                },
            })
    }
}

/// Reads a config blob.
pub fn parse_config(reference: &str, bytes: &[u8]) -> Result<ArtifactConfig, OciError> {
    serde_json::from_slice(bytes).map_err(|e| OciError::InvalidArtifact {
        reference: reference.to_owned(),
        reason: format!("its config is not a Trellis artifact config: {e}"),
    })
}

/// Who signed an artifact: its claims' issuer and subject, read from a
/// JWT whose signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signer {
    /// The signing account (`A…`).
    pub issuer: String,
    /// The component (`M…`) or provider (`V…`) key.
    pub subject: String,
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "account {} (subject {})", self.issuer, self.subject)
    }
}

impl Signer {
    /// The signer of a component's embedded claims; `None` if unsigned.
    pub fn of_component(reference: &str, wasm: &[u8]) -> Result<Option<Self>, OciError> {
        let invalid = |reason: String| OciError::InvalidArtifact {
            reference: reference.to_owned(),
            reason,
        };
        let Some(jwt) =
            trellis_claims::wasm::find_claims(wasm).map_err(|e| invalid(e.to_string()))?
        else {
            return Ok(None);
        };
        let token: Token<ComponentMetadata> =
            Token::decode(&jwt).map_err(|e| invalid(format!("its claims: {e}")))?;
        Ok(Some(Signer {
            issuer: token.claims.iss,
            subject: token.claims.sub,
        }))
    }

    /// The signer of a provider's claims JWT.
    pub fn of_provider(reference: &str, jwt: &str) -> Result<Self, OciError> {
        let token: Token<ProviderMetadata> =
            Token::decode(jwt.trim()).map_err(|e| OciError::InvalidArtifact {
                reference: reference.to_owned(),
                reason: format!("its claims: {e}"),
            })?;
        Ok(Signer {
            issuer: token.claims.iss,
            subject: token.claims.sub,
        })
    }
}
