//! `trellis-oci` against a real registry (Debian's `docker-registry`) on
//! loopback: push, pull through the cache, and every refusal a host relies
//! on. The artifacts are tiny but really signed; what runs them is tested
//! end to end in `tests/e2e`.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use base64::Engine;

use trellis_claims::{KeyKind, KeyPair, ProviderSignOptions, SignOptions};
use trellis_oci::{
    Artifact, ArtifactCache, Credentials, OciError, Registry, RegistryOptions, Signer,
};
use trellis_test_support::{REGISTRY_PASSWORD, REGISTRY_USER, RegistryServer};

const FOREIGN_TARGET: &str = "riscv64-plan9";

fn registry_for(server: &RegistryServer) -> Registry {
    Registry::new(RegistryOptions {
        insecure: vec![server.address()],
        ..RegistryOptions::default()
    })
}

fn cache_in(dir: &Path, server: &RegistryServer) -> ArtifactCache {
    ArtifactCache::new(dir.join("oci"), registry_for(server))
}

/// A minimal Wasm module, signed; `salt` makes each one's bytes differ.
fn signed_wasm(account: &KeyPair, subject: &str, salt: &str) -> Vec<u8> {
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    trellis_claims::wasm::append_custom_section(&mut wasm, "salt", salt.as_bytes());
    let options = SignOptions {
        name: Some("tiny".into()),
        ..SignOptions::default()
    };
    trellis_claims::sign_component(&wasm, account, subject, &options).unwrap()
}

async fn push_component(server: &RegistryServer, reference: &str, wasm: Vec<u8>) -> String {
    let registry = registry_for(server);
    let reference = registry.parse(reference).unwrap();
    let artifact = Artifact::component("tiny", wasm).unwrap();
    registry.push(&reference, &artifact).await.unwrap()
}

/// A provider archive with executables for this machine and one other
/// target, signed by `account`.
fn provider_archive(account: &KeyPair) -> (Artifact, Vec<u8>) {
    let native = b"#!/bin/sh\necho native\n".to_vec();
    let foreign = b"\x7fELF pretend riscv".to_vec();
    let target = trellis_claims::native_target();
    let token = trellis_claims::sign_provider(
        [
            (target.as_str(), native.as_slice()),
            (FOREIGN_TARGET, foreign.as_slice()),
        ],
        account,
        &KeyKind::Provider.generate().public_key(),
        &ProviderSignOptions {
            name: Some("kv".into()),
            ..ProviderSignOptions::default()
        },
    )
    .unwrap();
    let artifact = Artifact::provider(
        "kv",
        &token.jwt,
        vec![
            (target, "trellis-kv".into(), native.clone()),
            (FOREIGN_TARGET.into(), "trellis-kv".into(), foreign),
        ],
    )
    .unwrap();
    (artifact, native)
}

fn component_ref(server: &RegistryServer, repository: &str, tag: &str) -> String {
    format!("oci://{}/{repository}:{tag}", server.address())
}

#[tokio::test]
async fn a_component_is_pulled_once_and_then_served_from_the_cache() {
    let server = RegistryServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let account = KeyKind::Account.generate();
    let wasm = signed_wasm(&account, &KeyKind::Component.generate().public_key(), "a");
    let reference = component_ref(&server, "acme/tiny", "0.1.0");
    let digest = push_component(&server, &reference, wasm.clone()).await;

    let cache = cache_in(dir.path(), &server);
    let first = cache.component(&reference).await.unwrap();
    assert_eq!(first.bytes, wasm);
    assert_eq!(first.digest, digest);
    assert!(first.pulled);
    cache.record(&first).await.unwrap();
    let blobs_after_first = server.blob_gets("acme/tiny");
    assert_eq!(blobs_after_first, 2, "config and layer");

    let second = cache.component(&reference).await.unwrap();
    assert_eq!(second.bytes, wasm);
    assert!(!second.pulled);
    assert_eq!(
        server.blob_gets("acme/tiny"),
        blobs_after_first,
        "no blob pulled again"
    );

    // A digest reference whose blobs are here needs no registry at all.
    let manifests = server.manifest_gets("acme/tiny");
    let pinned = format!("oci://{}/acme/tiny@{digest}", server.address());
    let third = cache.component(&pinned).await.unwrap();
    assert_eq!(third.bytes, wasm);
    assert_eq!(server.manifest_gets("acme/tiny"), manifests);
}

#[tokio::test]
async fn a_provider_pull_downloads_only_this_machines_executable() {
    let server = RegistryServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let account = KeyKind::Account.generate();
    let (artifact, native) = provider_archive(&account);
    let registry = registry_for(&server);
    let reference = component_ref(&server, "acme/kv", "1.2.0");
    registry
        .push(&registry.parse(&reference).unwrap(), &artifact)
        .await
        .unwrap();

    let cache = cache_in(dir.path(), &server);
    let fetched = cache
        .provider(&reference, &trellis_claims::native_target())
        .await
        .unwrap();
    assert_eq!(fetched.bytes, native);
    assert_eq!(fetched.file_name.as_deref(), Some("trellis-kv"));
    let claims = fetched.claims.as_deref().unwrap();
    assert_eq!(
        Signer::of_provider(&reference, claims).unwrap().issuer,
        account.public_key()
    );
    assert_eq!(server.blob_gets("acme/kv"), 2, "config and one executable");

    let err = cache
        .provider(&reference, "sparc-solaris")
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::NoTarget { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("sparc-solaris") && text.contains(FOREIGN_TARGET),
        "{text}"
    );

    let err = cache.component(&reference).await.unwrap_err();
    assert!(matches!(err, OciError::WrongKind { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("is a provider archive, not a component"),
        "{err}"
    );

    let inspected = registry
        .inspect(&registry.parse(&reference).unwrap())
        .await
        .unwrap();
    assert_eq!(inspected.kind, trellis_oci::ArtifactKind::Provider);
    assert_eq!(inspected.claims.as_deref(), Some(claims));
    assert_eq!(inspected.targets.len(), 2);
}

#[tokio::test]
async fn a_tag_replaced_by_a_different_signer_is_refused() {
    let server = RegistryServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let publisher = KeyKind::Account.generate();
    let subject = KeyKind::Component.generate().public_key();
    let reference = component_ref(&server, "acme/tiny", "1.0.0");
    push_component(&server, &reference, signed_wasm(&publisher, &subject, "v1")).await;
    let cache = cache_in(dir.path(), &server);
    let first = cache.component(&reference).await.unwrap();
    cache.record(&first).await.unwrap();

    // The same publisher rebuilding the tag is an update, not an attack.
    let rebuilt = signed_wasm(&publisher, &subject, "v1-rebuilt");
    push_component(&server, &reference, rebuilt.clone()).await;
    let update = cache.component(&reference).await.unwrap();
    assert_eq!(update.bytes, rebuilt);
    cache.record(&update).await.unwrap();

    let intruder = KeyKind::Account.generate();
    let replaced = signed_wasm(
        &intruder,
        &KeyKind::Component.generate().public_key(),
        "evil",
    );
    let new_digest = push_component(&server, &reference, replaced).await;
    let err = cache.component(&reference).await.unwrap_err();
    assert!(matches!(err, OciError::ReplacedTag(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("replaced by a differently signed artifact"),
        "{text}"
    );
    assert!(text.contains(&publisher.public_key()), "{text}");
    assert!(text.contains(&intruder.public_key()), "{text}");
    assert!(text.contains(&new_digest), "{text}");

    // Another host, with no history of the tag, gets the new content; its
    // policy decides whether the new signer may run.
    let fresh = cache_in(&dir.path().join("other-host"), &server);
    assert!(fresh.component(&reference).await.is_ok());
}

#[tokio::test]
async fn a_corrupted_blob_is_a_digest_mismatch() {
    let server = RegistryServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let account = KeyKind::Account.generate();
    let wasm = signed_wasm(&account, &KeyKind::Component.generate().public_key(), "a");
    let layer_digest = trellis_oci::artifact::sha256_digest(&wasm);
    let reference = component_ref(&server, "acme/tiny", "0.1.0");
    push_component(&server, &reference, wasm.clone()).await;

    // Same length, different bytes: what a bit flip on the registry's disk
    // or a tampered mirror looks like.
    let mut damaged = wasm.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    std::fs::write(server.blob_path(&layer_digest), &damaged).unwrap();

    let cache = cache_in(dir.path(), &server);
    let err = cache.component(&reference).await.unwrap_err();
    assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("digest mismatch"), "{text}");
    assert!(text.contains(&layer_digest), "{text}");
    assert!(
        !dir.path()
            .join("oci/blobs/sha256")
            .join(&layer_digest[7..])
            .exists(),
        "the damaged layer is not cached"
    );
}

#[tokio::test]
async fn an_unreachable_registry_fails_unless_the_tag_was_pulled_here_before() {
    let mut server = RegistryServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let account = KeyKind::Account.generate();
    let wasm = signed_wasm(&account, &KeyKind::Component.generate().public_key(), "a");
    let reference = component_ref(&server, "acme/tiny", "0.1.0");
    push_component(&server, &reference, wasm.clone()).await;
    let cache = cache_in(dir.path(), &server);
    let first = cache.component(&reference).await.unwrap();
    cache.record(&first).await.unwrap();
    server.stop();

    let again = cache.component(&reference).await.unwrap();
    assert_eq!(
        again.bytes, wasm,
        "served from the cache while the registry is down"
    );

    let never_pulled = component_ref(&server, "acme/other", "0.1.0");
    let err = cache.component(&never_pulled).await.unwrap_err();
    assert!(matches!(err, OciError::Unreachable { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("cannot reach registry `{}`", server.address())),
        "{text}"
    );
    assert!(text.contains("--allow-insecure-registry"), "{text}");
}

#[tokio::test]
async fn refusals_before_any_request() {
    let server = RegistryServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path(), &server);
    let err = cache
        .component(&format!("oci://{}/acme/tiny:latest", server.address()))
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::LatestRefused { .. }), "{err}");
    let err = cache
        .component(&format!("oci://{}/acme/tiny:9.9.9", server.address()))
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::NotFound { .. }), "{err}");

    let unsigned = b"\0asm\x01\0\0\0".to_vec();
    let err = Artifact::component("tiny.wasm", unsigned).unwrap_err();
    assert!(err.to_string().contains("wash claims sign"), "{err}");
    assert_eq!(server.blob_gets("acme/tiny"), 0);
}

#[tokio::test]
async fn a_registry_that_requires_a_login_is_given_the_configured_credentials() {
    let server = RegistryServer::start_with_login().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let account = KeyKind::Account.generate();
    let wasm = signed_wasm(&account, &KeyKind::Component.generate().public_key(), "a");
    let artifact = Artifact::component("tiny", wasm.clone()).unwrap();
    let text = component_ref(&server, "acme/tiny", "0.1.0");
    let with = |credentials: Credentials| {
        Registry::new(RegistryOptions {
            insecure: vec![server.address()],
            credentials,
            ..RegistryOptions::default()
        })
    };

    let anonymous = with(Credentials::anonymous());
    let err = anonymous
        .push(&anonymous.parse(&text).unwrap(), &artifact)
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("TRELLIS_REGISTRY_USER"), "{err}");

    let wrong = with(Credentials::anonymous().with(&server.address(), REGISTRY_USER, "nope"));
    let err = wrong
        .push(&wrong.parse(&text).unwrap(), &artifact)
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::Unauthorized { .. }), "{err}");

    // The Docker config file form that `docker login` writes.
    let config = dir.path().join("config.json");
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"));
    std::fs::write(
        &config,
        serde_json::json!({"auths": {server.address(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let credentials = Credentials::from_docker_config(&config).unwrap();
    let logged_in = with(credentials.clone());
    logged_in
        .push(&logged_in.parse(&text).unwrap(), &artifact)
        .await
        .unwrap();
    let cache = ArtifactCache::new(dir.path().join("oci"), with(credentials));
    assert_eq!(cache.component(&text).await.unwrap().bytes, wasm);
    let anonymous_cache =
        ArtifactCache::new(dir.path().join("anonymous"), with(Credentials::anonymous()));
    let err = anonymous_cache.component(&text).await.unwrap_err();
    assert!(matches!(err, OciError::Unauthorized { .. }), "{err}");
}
