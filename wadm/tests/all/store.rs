//! The manifest store and the API against a private nats-server.

use std::time::Duration;

use async_nats::jetstream;
use trellis_lattice::client::{CtlClient, Replicas};
use trellis_test_support::NatsServer;
use wadm::api::{WadmClient, serve};
use wadm::observe::LatticeReader;
use wadm::store::{AppStatus, DeployStatus, ManifestStore, StoreError};

fn manifest(version: &str, instances: u32) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: hello
  annotations:
    version: {version}
spec:
  components:
    - name: greeter
      type: component
      properties:
        image: file:///greeter.wasm
      traits:
        - type: spreadscaler
          properties:
            instances: {instances}
"#
    )
}

async fn store(nats: &NatsServer) -> ManifestStore {
    let client = async_nats::connect(nats.url()).await.unwrap();
    ManifestStore::open(&jetstream::new(client), "test", Replicas::Auto)
        .await
        .unwrap()
}

#[tokio::test]
async fn versions_are_stored_and_identical_puts_are_no_ops() {
    let nats = NatsServer::start().unwrap();
    let store = store(&nats).await;

    let first = store.put(&manifest("v1", 1)).await.unwrap();
    assert_eq!(
        (first.name.as_str(), first.version.as_str(), first.created),
        ("hello", "v1", true)
    );
    let again = store.put(&manifest("v1", 1)).await.unwrap();
    assert!(!again.created);
    let second = store.put(&manifest("v2", 2)).await.unwrap();
    assert_eq!(second.version, "v2");

    let versions: Vec<String> = store
        .versions("hello")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, ["v1", "v2"]);
    assert_eq!(store.get("hello", None).await.unwrap().version, "v2");
    assert_eq!(
        store.get("hello", Some("v1")).await.unwrap().manifest,
        manifest("v1", 1)
    );
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_version_with_different_content_is_refused() {
    let nats = NatsServer::start().unwrap();
    let store = store(&nats).await;
    store.put(&manifest("v1", 1)).await.unwrap();
    let err = store.put(&manifest("v1", 3)).await.unwrap_err();
    assert!(matches!(err, StoreError::VersionExists { .. }), "{err}");
}

#[tokio::test]
async fn an_invalid_manifest_is_refused_with_its_problems() {
    let nats = NatsServer::start().unwrap();
    let store = store(&nats).await;
    let err = store.put("kind: Application").await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

#[tokio::test]
async fn deploy_undeploy_and_delete_move_the_app_through_its_states() {
    let nats = NatsServer::start().unwrap();
    let store = store(&nats).await;
    store.put(&manifest("v1", 1)).await.unwrap();
    store.put(&manifest("v2", 1)).await.unwrap();

    assert_eq!(store.deploy("hello", Some("v1")).await.unwrap(), "v1");
    let app = store.app("hello").await.unwrap().unwrap();
    assert_eq!(app.deployed.as_deref(), Some("v1"));
    assert_eq!(
        store.status("hello").await.unwrap().unwrap().status,
        DeployStatus::Reconciling
    );
    assert_eq!(store.deploy("hello", None).await.unwrap(), "v2");
    assert!(matches!(
        store.deploy("hello", Some("v9")).await.unwrap_err(),
        StoreError::NoSuchVersion { .. }
    ));

    store.undeploy("hello").await.unwrap();
    assert_eq!(store.app("hello").await.unwrap().unwrap().deployed, None);
    assert_eq!(
        store.status("hello").await.unwrap().unwrap().status,
        DeployStatus::Undeployed
    );

    store.delete("hello").await.unwrap();
    assert_eq!(store.app("hello").await.unwrap(), None);
    assert_eq!(store.status("hello").await.unwrap(), None);
    assert!(matches!(
        store.delete("hello").await.unwrap_err(),
        StoreError::NoSuchApp(_)
    ));
    // A deleted name can be put again from scratch.
    assert!(store.put(&manifest("v1", 1)).await.unwrap().created);
}

#[tokio::test]
async fn concurrent_puts_of_different_versions_all_land() {
    let nats = NatsServer::start().unwrap();
    let store = store(&nats).await;
    let puts = (0..5).map(|n| {
        let store = store.clone();
        async move { store.put(&manifest(&format!("v{n}"), 1)).await }
    });
    for result in futures::future::join_all(puts).await {
        result.unwrap();
    }
    assert_eq!(store.versions("hello").await.unwrap().len(), 5);
}

#[tokio::test]
async fn status_is_kept_apart_from_manifests() {
    let nats = NatsServer::start().unwrap();
    let store = store(&nats).await;
    store.put(&manifest("v1", 1)).await.unwrap();
    let status = AppStatus::now(
        DeployStatus::Failed,
        Some("v1".into()),
        vec!["no hosts".into()],
    );
    store.put_status("hello", &status).await.unwrap();
    assert_eq!(store.status("hello").await.unwrap().unwrap(), status);
    assert_eq!(store.app("hello").await.unwrap().unwrap().versions.len(), 1);
}

/// Serves the wadm API on `store` and returns a client with `timeout`,
/// once the server answers (it subscribes asynchronously).
async fn serve_api(nats: &NatsServer, store: ManifestStore, timeout: Duration) -> WadmClient {
    let server_nats = async_nats::connect(nats.url()).await.unwrap();
    let ctl = CtlClient::new(server_nats.clone(), "test").unwrap();
    let js = jetstream::new(server_nats.clone());
    let reader = LatticeReader::open(&ctl, &js, store.clone(), Replicas::Auto)
        .await
        .unwrap();
    tokio::spawn(async move { serve(server_nats, "test", store, reader).await });
    let client = WadmClient::new(
        async_nats::connect(nats.url()).await.unwrap(),
        "test",
        timeout,
    );
    for _ in 0..50 {
        if client.list().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client
}

#[tokio::test]
async fn the_api_drives_the_store_over_nats() {
    let nats = NatsServer::start().unwrap();
    let store = store(&nats).await;
    let client = serve_api(&nats, store, Duration::from_secs(5)).await;
    let listed = client.list().await;
    assert!(listed.unwrap().is_empty());

    let put = client.put(&manifest("v1", 1)).await.unwrap();
    assert_eq!(put.version, "v1");
    client.put(&manifest("v2", 1)).await.unwrap();
    assert_eq!(client.get("hello", Some("v1")).await.unwrap().version, "v1");
    let deployed = client.deploy("hello", Some("v1")).await.unwrap();
    assert_eq!(deployed.version, "v1");

    let versions = client.versions("hello").await.unwrap();
    let deployed_flags: Vec<(String, bool)> = versions
        .into_iter()
        .map(|v| (v.version, v.deployed))
        .collect();
    assert_eq!(deployed_flags, [("v1".into(), true), ("v2".into(), false)]);

    let listed = client.list().await.unwrap();
    assert_eq!(listed[0].deployed_version.as_deref(), Some("v1"));
    assert_eq!(listed[0].latest_version, "v2");

    let status = client.status("hello").await.unwrap();
    assert_eq!(status.status.status, DeployStatus::Reconciling);

    client.undeploy("hello").await.unwrap();
    assert_eq!(
        client.status("hello").await.unwrap().status.status,
        DeployStatus::Undeployed
    );
    client.delete("hello").await.unwrap();
    let err = client.status("hello").await.unwrap_err();
    assert!(
        err.to_string().contains("no application named `hello`"),
        "{err}"
    );
    let err = client.put("not: a manifest").await.unwrap_err();
    assert!(err.to_string().contains("apiVersion"), "{err}");
}

#[tokio::test]
async fn rollback_deploys_the_version_deployed_before_and_twice_returns() {
    let nats = NatsServer::start().unwrap();
    let store = store(&nats).await;
    let client = serve_api(&nats, store.clone(), Duration::from_secs(5)).await;
    for version in ["v1", "v2", "v3"] {
        client.put(&manifest(version, 1)).await.unwrap();
    }
    let err = client.rollback("hello").await.unwrap_err();
    assert!(
        err.to_string().contains("it is not deployed")
            && err.to_string().contains("wash app deploy hello --version"),
        "{err}"
    );
    client.deploy("hello", Some("v1")).await.unwrap();
    let err = client.rollback("hello").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("no other version of it was deployed before"),
        "{err}"
    );
    // v1, then v3; back to v1, and back again to v3.
    client.deploy("hello", Some("v3")).await.unwrap();
    assert_eq!(client.rollback("hello").await.unwrap().version, "v1");
    let status = client.status("hello").await.unwrap();
    assert_eq!(status.deployed_version.as_deref(), Some("v1"));
    assert_eq!(status.status.status, DeployStatus::Reconciling);
    assert_eq!(client.rollback("hello").await.unwrap().version, "v3");
    // The history is bounded.
    for round in 0..(wadm::store::DEPLOY_HISTORY + 5) {
        let version = if round % 2 == 0 { "v2" } else { "v3" };
        client.deploy("hello", Some(version)).await.unwrap();
    }
    let app = store.app("hello").await.unwrap().unwrap();
    assert_eq!(app.previously_deployed.len(), wadm::store::DEPLOY_HISTORY);
}

#[tokio::test]
async fn a_list_larger_than_one_message_arrives_whole() {
    // On a server whose max payload is 64 KiB, 1000 apps make a list reply
    // of some 80 KB.
    let nats = NatsServer::start_with_max_payload(65536).unwrap();
    let store = store(&nats).await;
    for i in 0..1000 {
        let text = manifest("v1", 1).replace("name: hello", &format!("name: app-{i:04}"));
        store.put(&text).await.unwrap();
    }
    let client = serve_api(&nats, store, Duration::from_secs(10)).await;
    let listed = client.list().await;
    let listed = listed.unwrap();
    assert_eq!(listed.len(), 1000);
    let encoded = serde_json::to_vec(&listed).unwrap();
    assert!(
        encoded.len() > 65536,
        "{} bytes: not over the max payload",
        encoded.len()
    );
}
