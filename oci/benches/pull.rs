//! What a host pays to get an artifact from a registry, printed as a table.
//!
//! A private `docker-registry` on loopback holds the signed `kv-counter`
//! component (built from `examples/`) and the signed `keyvalue-sqlite`
//! provider executable (this workspace's build). For each, the median of
//! several runs of:
//!
//! - push: `wash push`'s work (claims check, blobs, manifest);
//! - cold pull: a fresh cache, so the manifest, config and layer come down
//!   and are hashed and written;
//! - warm tag: the cache is full; the tag is resolved again (one manifest
//!   request), the blobs are read back and re-hashed;
//! - cached digest: a `@sha256:` reference whose blobs are cached, which
//!   asks the registry nothing.
//!
//! Run with `cargo bench -p trellis-oci`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use trellis_claims::{KeyKind, ProviderSignOptions, SignOptions};
use trellis_oci::{Artifact, ArtifactCache, Registry, RegistryOptions};
use trellis_test_support::RegistryServer;

const RUNS: usize = 7;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Row {
    what: &'static str,
    size: usize,
    push: Duration,
    cold: Duration,
    warm: Duration,
    digest: Duration,
}

async fn fetch(cache: &ArtifactCache, text: &str, provider: bool, size: usize) -> (Duration, bool) {
    let start = Instant::now();
    let fetched = if provider {
        cache
            .provider(text, &trellis_claims::native_target())
            .await
            .unwrap()
    } else {
        cache.component(text).await.unwrap()
    };
    assert_eq!(fetched.bytes.len(), size);
    (start.elapsed(), fetched.pulled)
}

async fn measure(
    server: &RegistryServer,
    what: &'static str,
    repository: &str,
    artifact: &Artifact,
    size: usize,
) -> Row {
    let options = RegistryOptions {
        insecure: vec![server.address()],
        ..RegistryOptions::default()
    };
    let registry = Registry::new(options.clone());
    let text = format!("oci://{}/{repository}:1.0.0", server.address());
    let reference = registry.parse(&text).unwrap();
    let mut pushes = Vec::new();
    let mut digest = String::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        digest = registry.push(&reference, artifact).await.unwrap();
        pushes.push(start.elapsed());
    }
    let pinned = reference.pinned(&digest);
    let provider = artifact.kind == trellis_oci::ArtifactKind::Provider;
    let dir = tempfile::tempdir().unwrap();
    let (mut cold, mut warm, mut cached) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let cache = ArtifactCache::new(
            dir.path().join(run.to_string()),
            Registry::new(options.clone()),
        );
        let (elapsed, pulled) = fetch(&cache, &text, provider, size).await;
        assert!(pulled);
        cold.push(elapsed);
        let (elapsed, pulled) = fetch(&cache, &text, provider, size).await;
        assert!(!pulled);
        warm.push(elapsed);
        let (elapsed, pulled) = fetch(&cache, &pinned, provider, size).await;
        assert!(!pulled);
        cached.push(elapsed);
    }
    Row {
        what,
        size,
        push: median(pushes),
        cold: median(cold),
        warm: median(warm),
        digest: median(cached),
    }
}

#[tokio::main]
async fn main() {
    let server = RegistryServer::start().unwrap();
    let account = KeyKind::Account.generate();

    let wasm =
        std::fs::read(trellis_test_support::example_component("kv-counter").unwrap()).unwrap();
    let signed = trellis_claims::sign_component(
        &wasm,
        &account,
        &KeyKind::Component.generate().public_key(),
        &SignOptions::default(),
    )
    .unwrap();
    let component_size = signed.len();
    let component = Artifact::component("kv-counter", signed).unwrap();

    let executable = std::fs::read(
        trellis_test_support::workspace_binary(
            "trellis-keyvalue-sqlite",
            "trellis-keyvalue-sqlite",
        )
        .unwrap(),
    )
    .unwrap();
    let target = trellis_claims::native_target();
    let token = trellis_claims::sign_provider(
        [(target.as_str(), executable.as_slice())],
        &account,
        &KeyKind::Provider.generate().public_key(),
        &ProviderSignOptions::default(),
    )
    .unwrap();
    let provider_size = executable.len();
    let provider = Artifact::provider(
        "keyvalue-sqlite",
        &token.jwt,
        vec![(target, "trellis-keyvalue-sqlite".into(), executable)],
    )
    .unwrap();

    let rows = [
        measure(
            &server,
            "component kv-counter",
            "bench/kv-counter",
            &component,
            component_size,
        )
        .await,
        measure(
            &server,
            "provider keyvalue-sqlite",
            "bench/keyvalue-sqlite",
            &provider,
            provider_size,
        )
        .await,
    ];
    println!("median of {RUNS} runs, registry on loopback");
    println!();
    println!("| artifact | size (MiB) | push ms | cold pull ms | warm tag ms | cached digest ms |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {:.2} | {} | {} | {} | {} |",
            row.what,
            row.size as f64 / (1024.0 * 1024.0),
            ms(row.push),
            ms(row.cold),
            ms(row.warm),
            ms(row.digest)
        );
    }
}
