//! Pins the artifact format (a wire contract between `wash push` and every
//! host): media types, annotations, the config document and layer order.
//! The JWT and the config digest vary per signing and are masked.

#![allow(clippy::unwrap_used)]

use trellis_claims::{KeyKind, ProviderSignOptions, SignOptions};
use trellis_oci::Artifact;
use trellis_oci::artifact::{ArtifactConfig, ArtifactKind, ArtifactManifest, sha256_digest};

fn masked(artifact: &Artifact, jwt: &str) -> serde_json::Value {
    let text = String::from_utf8(artifact.manifest_bytes())
        .unwrap()
        .replace(jwt, "<jwt>")
        .replace(&artifact.config.digest(), "<config digest>");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn provider_archive_manifest_and_config_are_pinned() {
    let account = KeyKind::Account.generate();
    let amd = b"amd64 executable".to_vec();
    let arm = b"arm64 executable".to_vec();
    let token = trellis_claims::sign_provider(
        [
            ("x86_64-linux", amd.as_slice()),
            ("aarch64-linux", arm.as_slice()),
        ],
        &account,
        &KeyKind::Provider.generate().public_key(),
        &ProviderSignOptions {
            name: Some("keyvalue-redis".into()),
            ..ProviderSignOptions::default()
        },
    )
    .unwrap();
    let artifact = Artifact::provider(
        "kv",
        &token.jwt,
        vec![
            (
                "x86_64-linux".into(),
                "trellis-keyvalue-redis".into(),
                amd.clone(),
            ),
            (
                "aarch64-linux".into(),
                "trellis-keyvalue-redis".into(),
                arm.clone(),
            ),
        ],
    )
    .unwrap();
    let expected = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.trellis.provider.config.v1+json",
            "digest": "<config digest>",
            "size": artifact.config.data.len(),
        },
        "layers": [
            {
                "mediaType": "application/vnd.trellis.provider.executable.v1",
                "digest": sha256_digest(&amd),
                "size": amd.len(),
                "annotations": {
                    "dev.trellis.target": "x86_64-linux",
                    "org.opencontainers.image.title": "trellis-keyvalue-redis",
                },
            },
            {
                "mediaType": "application/vnd.trellis.provider.executable.v1",
                "digest": sha256_digest(&arm),
                "size": arm.len(),
                "annotations": {
                    "dev.trellis.target": "aarch64-linux",
                    "org.opencontainers.image.title": "trellis-keyvalue-redis",
                },
            },
        ],
        "annotations": {
            "dev.trellis.claims": "<jwt>",
            "org.opencontainers.image.title": "keyvalue-redis",
        },
    });
    assert_eq!(masked(&artifact, &token.jwt), expected);

    let config: serde_json::Value = serde_json::from_slice(&artifact.config.data).unwrap();
    assert_eq!(
        config,
        serde_json::json!({
            "kind": "provider",
            "claims": token.jwt,
            "targets": ["x86_64-linux", "aarch64-linux"],
        })
    );

    let read = ArtifactManifest::parse("kv", &artifact.manifest_bytes()).unwrap();
    assert_eq!(read.kind, ArtifactKind::Provider);
    assert_eq!(read.targets(), ["x86_64-linux", "aarch64-linux"]);
    assert_eq!(read.claims_annotation(), Some(token.jwt.as_str()));
    assert_eq!(
        read.provider_layer("kv", "aarch64-linux").unwrap().digest,
        sha256_digest(&arm)
    );
}

#[test]
fn component_manifest_and_config_are_pinned() {
    let account = KeyKind::Account.generate();
    let wasm = trellis_claims::sign_component(
        b"\0asm\x01\0\0\0",
        &account,
        &KeyKind::Component.generate().public_key(),
        &SignOptions {
            name: Some("counter".into()),
            ..SignOptions::default()
        },
    )
    .unwrap();
    let jwt = trellis_claims::wasm::find_claims(&wasm).unwrap().unwrap();
    let artifact = Artifact::component("counter.wasm", wasm.clone()).unwrap();
    let expected = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.trellis.component.config.v1+json",
            "digest": "<config digest>",
            "size": artifact.config.data.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.trellis.component.v1+wasm",
            "digest": sha256_digest(&wasm),
            "size": wasm.len(),
        }],
        "annotations": {
            "dev.trellis.claims": "<jwt>",
            "org.opencontainers.image.title": "counter",
        },
    });
    assert_eq!(masked(&artifact, &jwt), expected);
    let config: ArtifactConfig = serde_json::from_slice(&artifact.config.data).unwrap();
    assert_eq!(config.kind, ArtifactKind::Component);
    assert_eq!(config.claims, jwt);
    assert!(config.targets.is_empty());
}

#[test]
fn wasm_pushed_by_other_tools_reads_as_a_component() {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/wasm", "digest": sha256_digest(b"wasm"), "size": 4}],
    });
    let read = ArtifactManifest::parse("x", &serde_json::to_vec(&manifest).unwrap()).unwrap();
    assert_eq!(read.kind, ArtifactKind::Component);
    assert!(!read.has_trellis_config());
    assert!(read.component_layer("x").is_ok());

    let image = serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256_digest(b"t"), "size": 1}],
    });
    let err = ArtifactManifest::parse("nginx", &serde_json::to_vec(&image).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .contains("application/vnd.oci.image.config.v1+json"),
        "{err}"
    );
}
