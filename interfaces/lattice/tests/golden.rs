//! Golden tests: the wire format, pinned.
//!
//! Each test builds a fixed value, serializes it and compares the result with
//! a fixture in `tests/golden/` (as JSON values, so key order and whitespace
//! do not matter), then parses the fixture back and expects the same value.
//! A failing test here means the wire format changed: every host, provider,
//! wadm and `wash` of an older build would see the difference. If the change
//! is intended, regenerate the fixtures with
//! `TRELLIS_BLESS=1 cargo test -p trellis-lattice --test golden` and review
//! the diff.
//!
//! The `wasmcloud_*` fixtures are written by hand in the shape wasmCloud's
//! control-interface 3.x crate and hosts produce; they only need to parse.

// Test helpers outside `#[test]` functions panic on purpose, too.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{TimeZone, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use trellis_lattice::ctl::{
    ClaimsEntry, ClaimsSummary, ComponentAuctionAck, ComponentAuctionRequest, ComponentDescription,
    CtlResponse, DeleteInterfaceLinkDefinitionRequest, Host, HostInventory, HostLabel, LocalData,
    ProviderAuctionRequest, ProviderDescription, ScaleComponentCommand, StartProviderCommand,
    StopHostCommand, StopProviderCommand, UpdateComponentCommand,
};
use trellis_lattice::event::{ComponentScaled, HostHeartbeat, LatticeEvent};
use trellis_lattice::host_data::LogLevel;
use trellis_lattice::rpc::{self, RpcError, RpcErrorKind};
use trellis_lattice::{CloudEvent, EventKind, HostData, Link};
use uuid::Uuid;

const HOST_ID: &str = "NBLUEHOSTXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn blessing() -> bool {
    std::env::var_os("TRELLIS_BLESS").is_some()
}

fn read_fixture(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Serializes `value`, compares it with the fixture, and parses the fixture
/// back into the same value.
fn golden<T>(name: &str, value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let produced = serde_json::to_value(value).unwrap();
    if blessing() {
        let text = serde_json::to_string_pretty(&produced).unwrap() + "\n";
        std::fs::write(fixture_path(name), text).unwrap();
    }
    let text = read_fixture(name);
    let pinned: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        produced, pinned,
        "{name}: serialized form differs from fixture"
    );
    let parsed: T = serde_json::from_str(&text).unwrap();
    assert_eq!(
        &parsed, value,
        "{name}: fixture parses to a different value"
    );
}

/// Parses a hand-written wasmCloud-shaped fixture.
fn parse_wasmcloud<T: DeserializeOwned>(name: &str) -> T {
    serde_json::from_str(&read_fixture(name))
        .unwrap_or_else(|e| panic!("{name} does not parse: {e}"))
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn kv_link() -> Link {
    Link {
        source_id: "counter".into(),
        target: "keyvalue-sqlite".into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into(), "atomics".into()],
        source_config: vec![],
        target_config: vec!["counter-kv".into()],
    }
}

fn counter_component() -> ComponentDescription {
    ComponentDescription {
        id: "counter".into(),
        image_ref: "file:///srv/counter_s.wasm".into(),
        name: Some("counter".into()),
        annotations: Some(map(&[("wasmcloud.dev/appspec", "counter-app")])),
        revision: 2,
        max_instances: 10,
    }
}

fn kv_provider() -> ProviderDescription {
    ProviderDescription {
        id: "keyvalue-sqlite".into(),
        image_ref: Some("file:///srv/keyvalue-sqlite".into()),
        name: Some("keyvalue-sqlite".into()),
        revision: 0,
        annotations: None,
    }
}

fn inventory() -> HostInventory {
    HostInventory {
        components: vec![counter_component()],
        providers: vec![kv_provider()],
        host_id: HOST_ID.into(),
        friendly_name: "quiet-river-4821".into(),
        labels: map(&[("hostcore.os", "linux"), ("zone", "eu-west")]),
        version: "0.1.0".into(),
        uptime_human: "1h 2m 3s".into(),
        uptime_seconds: 3723,
        local_data: vec![LocalData {
            provider_id: "keyvalue-sqlite".into(),
            path: "/var/lib/trellis/providers/default/keyvalue-sqlite".into(),
        }],
    }
}

#[test]
fn ctl_success_envelope_is_pinned() {
    golden("ctl_success.json", &CtlResponse::ok(vec![kv_link()]));
}

#[test]
fn ctl_failure_envelope_is_pinned() {
    golden(
        "ctl_failure.json",
        &CtlResponse::<()>::error("host NBLUEHOST has no component `counter`; scale it up first"),
    );
}

#[test]
fn link_is_pinned() {
    golden("link.json", &kv_link());
}

#[test]
fn host_inventory_is_pinned() {
    golden("host_inventory.json", &CtlResponse::ok(inventory()));
}

#[test]
fn host_ping_reply_is_pinned() {
    let host = Host {
        id: HOST_ID.into(),
        friendly_name: "quiet-river-4821".into(),
        lattice: "default".into(),
        labels: map(&[("zone", "eu-west")]),
        version: Some("0.1.0".into()),
        uptime_seconds: 3723,
        uptime_human: Some("1h 2m 3s".into()),
        rpc_host: Some("nats://127.0.0.1:4222".into()),
        ctl_host: Some("nats://127.0.0.1:4222".into()),
        js_domain: None,
    };
    golden("host_ping.json", &CtlResponse::ok(host));
}

#[test]
fn scale_command_is_pinned() {
    let cmd = ScaleComponentCommand {
        component_ref: "ghcr.io/trellis/counter:0.1.0".into(),
        component_id: "counter".into(),
        annotations: Some(map(&[("wasmcloud.dev/managed-by", "wadm")])),
        max_instances: 5,
        host_id: HOST_ID.into(),
        config: vec!["counter-defaults".into(), "counter-prod".into()],
        allow_update: true,
        allowed_hosts: vec!["https://api.example.com".into(), "*.example.com:443".into()],
    };
    golden("scale_command.json", &cmd);
}

#[test]
fn other_commands_are_pinned() {
    golden(
        "update_command.json",
        &UpdateComponentCommand {
            component_id: "counter".into(),
            annotations: None,
            host_id: HOST_ID.into(),
            new_component_ref: "ghcr.io/trellis/counter:0.2.0".into(),
        },
    );
    golden(
        "start_provider_command.json",
        &StartProviderCommand {
            provider_id: "keyvalue-redis".into(),
            provider_ref: "ghcr.io/trellis/keyvalue-redis:0.1.0".into(),
            host_id: HOST_ID.into(),
            config: vec!["redis-url".into()],
            annotations: None,
        },
    );
    golden(
        "stop_provider_command.json",
        &StopProviderCommand {
            host_id: HOST_ID.into(),
            provider_id: "keyvalue-redis".into(),
        },
    );
    golden(
        "stop_host_command.json",
        &StopHostCommand {
            host_id: HOST_ID.into(),
            timeout: Some(30),
        },
    );
    golden(
        "link_delete_request.json",
        &DeleteInterfaceLinkDefinitionRequest {
            source_id: "counter".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
        },
    );
    golden(
        "label_put.json",
        &HostLabel {
            key: "zone".into(),
            value: "eu-west".into(),
        },
    );
}

#[test]
fn auctions_are_pinned() {
    golden(
        "component_auction_request.json",
        &ComponentAuctionRequest {
            component_ref: "ghcr.io/trellis/counter:0.1.0".into(),
            component_id: "counter".into(),
            constraints: map(&[("zone", "eu-west")]),
        },
    );
    golden(
        "component_auction_ack.json",
        &CtlResponse::ok(ComponentAuctionAck {
            component_ref: "ghcr.io/trellis/counter:0.1.0".into(),
            component_id: "counter".into(),
            host_id: HOST_ID.into(),
            constraints: map(&[("zone", "eu-west")]),
        }),
    );
    golden(
        "provider_auction_request.json",
        &ProviderAuctionRequest {
            provider_ref: "ghcr.io/trellis/keyvalue-redis:0.1.0".into(),
            provider_id: "keyvalue-redis".into(),
            constraints: BTreeMap::new(),
        },
    );
}

#[test]
fn claims_reply_is_pinned() {
    let claims = ClaimsSummary {
        subject: "MCOUNTERXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX".into(),
        issuer: "AACCOUNTXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX".into(),
        name: "counter".into(),
        revision: "2".into(),
        version: "0.1.0".into(),
        tags: vec!["wasmcloud.com/experimental".into()],
        call_alias: None,
    };
    let reply: CtlResponse<Vec<ClaimsEntry>> = CtlResponse::ok(vec![claims.to_entry()]);
    golden("claims_reply.json", &reply);
}

#[test]
fn config_bodies_are_pinned() {
    golden(
        "config_put.json",
        &map(&[
            ("path", "/var/lib/trellis/counter.db"),
            ("bucket", "counts"),
        ]),
    );
}

fn heartbeat_event() -> CloudEvent {
    let heartbeat = HostHeartbeat::from_inventory(
        inventory(),
        "CCLUSTERXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    );
    LatticeEvent::HostHeartbeat(heartbeat)
        .to_cloud_event_at(
            HOST_ID,
            Uuid::parse_str("4f2c1c8e-8f3a-4d6b-9a51-2f3c4d5e6f70").unwrap(),
            Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap(),
        )
        .unwrap()
}

#[test]
fn heartbeat_event_is_pinned() {
    let event = heartbeat_event();
    golden("heartbeat_event.json", &event);
    let parsed = CloudEvent::from_json(read_fixture("heartbeat_event.json").as_bytes()).unwrap();
    let LatticeEvent::HostHeartbeat(heartbeat) = parsed.parse().unwrap() else {
        panic!("the fixture is not a heartbeat");
    };
    assert_eq!(heartbeat.to_inventory(), inventory());
}

#[test]
fn component_scaled_event_is_pinned() {
    let event = LatticeEvent::ComponentScaled(ComponentScaled {
        host_id: HOST_ID.into(),
        component_id: "counter".into(),
        image_ref: "file:///srv/counter_s.wasm".into(),
        max_instances: 10,
        annotations: BTreeMap::new(),
        claims: None,
    })
    .to_cloud_event_at(
        HOST_ID,
        Uuid::parse_str("0b8f7d4e-1c2a-4e3b-8d5f-6a7b8c9d0e1f").unwrap(),
        Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 6).unwrap(),
    )
    .unwrap();
    golden("component_scaled_event.json", &event);
}

fn host_data() -> HostData {
    HostData {
        host_id: HOST_ID.into(),
        lattice_rpc_prefix: "default".into(),
        lattice_rpc_url: "nats://127.0.0.1:4222".into(),
        lattice_rpc_user_jwt: Some("eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig".into()),
        lattice_rpc_user_seed: Some(
            "SUAEXAMPLESEEDXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX".into(),
        ),
        provider_key: "keyvalue-sqlite".into(),
        config: map(&[("path", "/var/lib/trellis/kv.db")]),
        link_definitions: vec![kv_link()],
        log_level: Some(LogLevel::Info),
        default_rpc_timeout_ms: Some(2000),
        data_dir: Some("/var/lib/trellis/providers/kv-sqlite".into()),
        cluster_issuers: vec!["CB43KVROR7TFJ6KAPCYRF2FJROTZAH4FHLTJLPWX4DRZCC5NASLGJXUH".into()],
        ..HostData::default()
    }
}

/// Host data for a provider on a secured lattice: a provider-role user and
/// password, and the TLS files the host was given.
fn secured_host_data() -> HostData {
    HostData {
        lattice_rpc_url: "tls://nats-a.example:4222,tls://nats-b.example:4222".into(),
        lattice_rpc_user_jwt: None,
        lattice_rpc_user_seed: None,
        lattice_rpc_user: Some("provider".into()),
        lattice_rpc_password: Some("s3cret".into()),
        lattice_rpc_tls_ca_file: Some("/etc/trellis/nats-ca.pem".into()),
        lattice_rpc_tls_cert_file: Some("/etc/trellis/client.pem".into()),
        lattice_rpc_tls_key_file: Some("/etc/trellis/client-key.pem".into()),
        invocation_window_ms: Some(10_000),
        ..host_data()
    }
}

#[test]
fn secured_host_data_is_pinned() {
    golden("host_data_secured.json", &secured_host_data());
}

#[test]
fn host_data_is_pinned() {
    golden("host_data.json", &host_data());
    let encoded = host_data().encode().unwrap();
    if blessing() {
        std::fs::write(fixture_path("host_data.b64"), format!("{encoded}\n")).unwrap();
    }
    // The line a host writes, newline included, decodes back.
    let line = read_fixture("host_data.b64");
    assert_eq!(line.trim(), encoded);
    assert_eq!(HostData::decode(&line).unwrap(), host_data());
}

#[test]
fn rpc_error_reply_bytes_are_pinned() {
    let reply: Result<u64, RpcError> = Err(RpcError::new(
        RpcErrorKind::NoLink,
        "component `counter` has no link `default` for wasi:keyvalue/store",
    ));
    let bytes = rpc::encode_reply(&reply).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if blessing() {
        std::fs::write(fixture_path("rpc_error_reply.hex"), format!("{hex}\n")).unwrap();
    }
    assert_eq!(hex, read_fixture("rpc_error_reply.hex").trim());
    assert_eq!(rpc::decode_reply::<u64>(&bytes), reply);
}

#[test]
fn rpc_ok_reply_bytes_are_pinned() {
    let reply: Result<Option<String>, RpcError> = Ok(Some("42".into()));
    let bytes = rpc::encode_reply(&reply).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if blessing() {
        std::fs::write(fixture_path("rpc_ok_reply.hex"), format!("{hex}\n")).unwrap();
    }
    assert_eq!(hex, read_fixture("rpc_ok_reply.hex").trim());
    assert_eq!(rpc::decode_reply::<Option<String>>(&bytes), reply);
}

// ---- JSON as wasmCloud produces it -------------------------------------------------

#[test]
fn wasmcloud_inventory_reply_parses() {
    let reply: CtlResponse<HostInventory> = parse_wasmcloud("wasmcloud_host_inventory.json");
    let inv = reply.into_result().unwrap().unwrap();
    assert_eq!(inv.components[0].id, "http-hello-world");
    assert_eq!(inv.components[0].max_instances, 100);
    assert_eq!(inv.components[0].annotations, None);
    assert_eq!(inv.providers[0].id, "http-server");
    assert_eq!(inv.labels["hostcore.arch"], "x86_64");
    assert_eq!(inv.uptime_seconds, 95);
}

#[test]
fn wasmcloud_ping_reply_parses() {
    let reply: CtlResponse<Host> = parse_wasmcloud("wasmcloud_host_ping.json");
    let host = reply.into_result().unwrap().unwrap();
    assert_eq!(host.lattice, "default");
    assert_eq!(host.js_domain.as_deref(), Some("core"));
    assert_eq!(host.version.as_deref(), Some("1.4.0"));
}

#[test]
fn wasmcloud_scale_command_parses() {
    let cmd: ScaleComponentCommand = parse_wasmcloud("wasmcloud_scale_command.json");
    assert_eq!(cmd.component_id, "http-hello-world");
    assert_eq!(cmd.max_instances, 100);
    assert!(cmd.allow_update);
    assert_eq!(cmd.config, ["hello-config"]);
}

#[test]
fn wasmcloud_link_get_reply_parses() {
    let reply: CtlResponse<Vec<Link>> = parse_wasmcloud("wasmcloud_link_get.json");
    let links = reply.into_result().unwrap().unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0].wit_package, "http");
    assert_eq!(links[1].name, "default");
    for link in &links {
        link.validate().unwrap();
    }
}

#[test]
fn wasmcloud_auction_messages_parse() {
    let req: ComponentAuctionRequest = parse_wasmcloud("wasmcloud_component_auction.json");
    assert_eq!(req.constraints["zone"], "us-east");
    let ack: CtlResponse<ComponentAuctionAck> =
        parse_wasmcloud("wasmcloud_component_auction_ack.json");
    assert_eq!(ack.into_result().unwrap().unwrap().host_id, HOST_ID);
}

#[test]
fn wasmcloud_claims_reply_parses() {
    let reply: CtlResponse<Vec<ClaimsEntry>> = parse_wasmcloud("wasmcloud_claims.json");
    let entries = reply.into_result().unwrap().unwrap();
    let component = ClaimsSummary::from_entry(&entries[0]);
    assert_eq!(component.name, "http-hello-world");
    assert_eq!(component.tags, ["wasmcloud.com/experimental"]);
    let provider = ClaimsSummary::from_entry(&entries[1]);
    assert_eq!(provider.call_alias, None);
    assert_eq!(provider.revision, "0");
}

#[test]
fn wasmcloud_events_parse() {
    let events: Vec<CloudEvent> = parse_wasmcloud("wasmcloud_events.json");
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            EventKind::HostHeartbeat,
            EventKind::ComponentScaled,
            EventKind::ProviderStarted,
            EventKind::LinkdefSet,
            EventKind::ConfigSet,
        ]
    );
    let parsed: Vec<LatticeEvent> = events.iter().map(|e| e.parse().unwrap()).collect();
    let LatticeEvent::HostHeartbeat(heartbeat) = &parsed[0] else {
        panic!("not a heartbeat");
    };
    // The host id comes from the envelope's source.
    assert_eq!(heartbeat.host_id, HOST_ID);
    assert_eq!(heartbeat.components[0].id, "http-hello-world");
    let LatticeEvent::ComponentScaled(scaled) = &parsed[1] else {
        panic!("not component_scaled");
    };
    assert_eq!(
        scaled.claims.as_ref().unwrap().name.as_deref(),
        Some("http-hello-world")
    );
}

#[test]
fn wasmcloud_host_data_decodes() {
    let json = read_fixture("wasmcloud_host_data.json");
    let data = HostData::decode(&STANDARD.encode(json)).unwrap();
    assert_eq!(data.provider_key, "http-server");
    assert_eq!(data.lattice_rpc_user_jwt, None);
    assert_eq!(data.log_level, Some(LogLevel::Debug));
    assert_eq!(data.link_definitions[0].target, "http-hello-world");
    assert!(data.link_definitions[0].involves("http-server"));
    assert_eq!(data.rpc_timeout_ms(), 5000);
}

#[test]
fn provider_link_carries_resolved_config() {
    use trellis_lattice::provider::ProviderLink;
    let link = ProviderLink {
        link: Link {
            source_id: "http-server".into(),
            target: "counter".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            interfaces: vec!["incoming-handler".into()],
            source_config: vec!["counter-address".into()],
            target_config: vec![],
        },
        source_config_values: [("address".to_string(), "127.0.0.1:8080".to_string())].into(),
        target_config_values: BTreeMap::new(),
        ..ProviderLink::default()
    };
    golden("provider_link.json", &link);
}

#[test]
fn provider_link_carries_sealed_secrets_and_never_their_values() {
    use trellis_lattice::provider::ProviderLink;
    use trellis_lattice::secret::{SealedSecret, SecretValue};
    let mut link = ProviderLink {
        link: Link {
            source_id: "counter".into(),
            target: "keyvalue-redis".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: vec!["atomics".into()],
            source_config: vec![],
            target_config: vec!["redis-url".into(), "SECRET_password".into()],
        },
        target_config_values: [("url".to_string(), "redis://10.0.0.5/".to_string())].into(),
        secrets: [(
            "password".to_string(),
            SealedSecret {
                version: 3,
                sender_xkey: "XBACKEND".into(),
                sealed: vec![120, 107, 118, 49],
            },
        )]
        .into(),
        ..ProviderLink::default()
    };
    golden("provider_link_secrets.json", &link);
    link.secret_values
        .insert("password".into(), SecretValue::String("hunter2".into()));
    let sent = serde_json::to_string(&link).unwrap();
    assert!(!sent.contains("hunter2"), "{sent}");
}

#[test]
fn provider_health_and_shutdown() {
    use trellis_lattice::provider::{HealthCheckResponse, ShutdownRequest};
    golden(
        "provider_health_failed.json",
        &HealthCheckResponse {
            healthy: false,
            message: Some(
                "link counter → keyvalue-redis: cannot connect to redis://127.0.0.1:1/".into(),
            ),
        },
    );
    golden(
        "provider_health_ok.json",
        &HealthCheckResponse {
            healthy: true,
            message: None,
        },
    );
    golden(
        "provider_shutdown.json",
        &ShutdownRequest {
            host_id: HOST_ID.into(),
        },
    );
}

#[test]
fn the_secrets_admin_bodies_are_pinned() {
    use trellis_lattice::secret::{
        AccessRule, BackendKey, DeleteSecret, PutOutcome, PutSecret, RotateOutcome, SecretInfo,
    };
    let subject = "MBCFOPM6JW2APJLXJD3Z5O4CN7CPYJ2B4FTKLJUR5YR5MITIU7HD3WD5";
    let rule = AccessRule {
        subject: subject.into(),
        app: Some("shop".into()),
    };
    golden(
        "secrets_xkey.json",
        &BackendKey {
            xkey: "XBACKEND".into(),
        },
    );
    golden(
        "secrets_put.json",
        &PutSecret {
            name: "db_password".into(),
            sender_xkey: "XONETIME".into(),
            sealed: "eGt2MQ==".into(),
            allow: vec![rule.clone(), AccessRule::parse("*").unwrap()],
        },
    );
    golden(
        "secrets_put_outcome.json",
        &PutOutcome {
            name: "db_password".into(),
            version: 4,
        },
    );
    golden(
        "secrets_list.json",
        &vec![SecretInfo {
            name: "db_password".into(),
            version: 4,
            kind: "string".into(),
            allow: vec![rule],
            sealed_with: "XBACKEND".into(),
        }],
    );
    golden(
        "secrets_del.json",
        &DeleteSecret {
            name: "db_password".into(),
        },
    );
    golden(
        "secrets_rotate.json",
        &RotateOutcome {
            xkey: "XNEW".into(),
            retired: "XOLD".into(),
            resealed: 12,
        },
    );
}
