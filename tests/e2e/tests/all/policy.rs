//! Which components a host agrees to run. Every refusal reaches the caller
//! as a failed response and a `component_scale_failed` event saying why,
//! and the host keeps running.

use std::time::Duration;

use trellis_claims::SignOptions;
use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice};
use trellis_lattice::client::ClientError;
use trellis_lattice::event::EventKind;
use trellis_test_support::NatsServer;

use crate::common::{client, scale_command, wait_for_event};

/// Scales `image` on `host` and returns the refusal message, after checking
/// that a matching `component_scale_failed` event carried the same reason.
async fn refusal(nats: &NatsServer, lattice: &str, host: &HostProcess, image: &str) -> String {
    let ctl = client(&nats.url(), lattice).await;
    let mut events = ctl.subscribe_events().await.unwrap();
    let command = scale_command(host.id(), "candidate", image, 1);
    let err = ctl.scale_component(&command).await.unwrap_err();
    let ClientError::Refused { message, .. } = err else {
        panic!("expected a refusal, got {err}");
    };
    let event = wait_for_event(
        &mut events,
        EventKind::ComponentScaleFailed,
        Duration::from_secs(20),
        |data| data["component_id"] == "candidate",
    )
    .await;
    let reason = event["error"].as_str().unwrap();
    assert_eq!(reason, message, "event and reply give the same reason");
    // Still alive and still serving the control interface.
    assert_eq!(ctl.ping_hosts().await.unwrap().len(), 1, "{}", host.log());
    message
}

fn unsigned_hello(signer: &Signer) -> String {
    let built = trellis_test_support::example_component("http-hello").unwrap();
    file_url(
        &signer
            .place("unsigned.wasm", &std::fs::read(built).unwrap())
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_component_is_refused_by_default() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("unsigned");
    let signer = Signer::new().unwrap();
    let host = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let message = refusal(&nats, &lattice, &host, &unsigned_hello(&signer)).await;
    assert!(message.contains("not signed"), "{message}");
    assert!(message.contains("--allow-unsigned"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_component_runs_with_allow_unsigned() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("devmode");
    let signer = Signer::new().unwrap();
    let host = HostProcess::start(&nats.url(), &lattice, &["--allow-unsigned"]).unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    let command = scale_command(host.id(), "dev", &unsigned_hello(&signer), 1);
    ctl.scale_component(&command).await.unwrap();
    let inventory = ctl.get_inventory(host.id()).await.unwrap();
    assert_eq!(inventory.components.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_issuer_outside_the_allow_list_is_refused() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("issuer");
    let trusted = Signer::new().unwrap();
    let stranger = Signer::new().unwrap();
    let image = file_url(&stranger.sign_example("http-hello").unwrap());
    let host = HostProcess::start(
        &nats.url(),
        &lattice,
        &["--allowed-issuers", &trusted.issuer()],
    )
    .unwrap();
    let message = refusal(&nats, &lattice, &host, &image).await;
    assert!(message.contains("not allowed"), "{message}");
    assert!(message.contains(&stranger.issuer()), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_component_is_refused() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("tampered");
    let signer = Signer::new().unwrap();
    let signed = std::fs::read(signer.sign_example("http-hello").unwrap()).unwrap();
    let mut tampered = signed.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    let image = file_url(&signer.place("tampered.wasm", &tampered).unwrap());
    let host = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let message = refusal(&nats, &lattice, &host, &image).await;
    assert!(message.contains("changed after signing"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_component_is_refused() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("expired");
    let signer = Signer::new().unwrap();
    let wasm =
        std::fs::read(trellis_test_support::example_component("http-hello").unwrap()).unwrap();
    let options = SignOptions {
        expires_at: Some(trellis_claims::now_unix() - 60),
        ..Default::default()
    };
    let image = file_url(&signer.sign_bytes("old", &wasm, options).unwrap());
    let host = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let message = refusal(&nats, &lattice, &host, &image).await;
    assert!(message.contains("expired"), "{message}");
}
