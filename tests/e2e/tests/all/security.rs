//! A lattice on a secured NATS: the server runs `deploy/nats/lattice.conf`
//! with TLS from a CA the test makes and one user per role. Each test is
//! an attack or a misconfiguration, and fails if its hole reopens.

use std::time::Duration;

use futures::StreamExt;
use trellis_claims::KeyKind;
use trellis_claims::invocation::{Invocation, InvocationSigner, now_ms};
use trellis_e2e::app::{example_manifest, increment};
use trellis_e2e::wadm::{FAST_WADM_ARGS, WadmProcess};
use trellis_e2e::{HostProcess, Signer, unique_lattice, wash, wash_at};
use trellis_lattice::client::CtlClient;
use trellis_lattice::connect::{NatsAuth, NatsConnection};
use trellis_lattice::ctl::{ScaleComponentCommand, StartProviderCommand};
use trellis_lattice::keyvalue::KvRequest;
use trellis_lattice::rpc::{self, CallHeaders, RpcError, RpcErrorKind};
use trellis_test_support::{Role, SecuredNats, TestCa, free_port};
use wadm::api::WadmClient;

/// A connection to `nats` as `role`, over TLS with the test's CA.
fn connection(nats: &SecuredNats, role: Role) -> NatsConnection {
    NatsConnection {
        auth: NatsAuth::User {
            user: role.user().into(),
            password: role.password(),
        },
        tls_ca: Some(nats.ca_file()),
        ..NatsConnection::new(nats.url())
    }
}

async fn connect(connection: &NatsConnection) -> async_nats::Client {
    connection
        .connect(|o| o, Duration::from_secs(10))
        .await
        .unwrap()
}

fn args(nats: &SecuredNats, role: Role) -> Vec<String> {
    nats.args(role)
}

/// `wash` with `extra` after `command`, returning (exit code, stderr).
fn wash_as(nats: &SecuredNats, lattice: &str, command: &[&str], extra: &[String]) -> (i32, String) {
    let mut all: Vec<&str> = command.to_vec();
    all.extend(extra.iter().map(String::as_str));
    let output = wash(&nats.url(), lattice, &all).unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout),
    )
}

fn host(nats: &SecuredNats, lattice: &str, extra: &[&str]) -> HostProcess {
    // HostProcess passes --nats-url itself.
    let mut all = args(nats, Role::Host).split_off(2);
    all.extend(
        [
            "--provider-nats-user",
            Role::Provider.user(),
            "--provider-nats-password",
        ]
        .map(String::from),
    );
    all.push(Role::Provider.password());
    all.extend(extra.iter().map(|s| (*s).to_owned()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    HostProcess::start(&nats.url(), lattice, &all).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_clients_can_neither_connect_nor_drive_the_lattice() {
    let nats = SecuredNats::start().unwrap();
    let lattice = unique_lattice("anon");
    let _host = host(&nats, &lattice, &[]);
    let ca = [
        "--nats-tls-ca".to_owned(),
        nats.ca_file().display().to_string(),
    ];
    // What an attacker tried: listing, scaling to 0, stopping, reading
    // named config and links.
    for command in [
        &["get", "hosts"][..],
        &[
            "scale",
            "component",
            "NHOST",
            "kv-counter",
            "/x.wasm",
            "--max-instances",
            "0",
        ],
        &["stop", "component", "NHOST", "kv-counter"],
        &["config", "get", "db"],
        &["link", "get"],
    ] {
        let (code, text) = wash_as(&nats, &lattice, command, &ca);
        assert_ne!(code, 0, "wash {command:?} succeeded anonymously: {text}");
        assert!(
            text.contains("refused the credentials"),
            "wash {command:?}: {text}"
        );
        assert!(text.contains("--nats-user"), "wash {command:?}: {text}");
    }
    let anonymous = NatsConnection {
        tls_ca: Some(nats.ca_file()),
        ..NatsConnection::new(nats.url())
    };
    let err = anonymous
        .connect(|o| o, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused the credentials"), "{err}");
    // A wrong password is refused the same way, naming the user.
    let wrong = NatsConnection {
        auth: NatsAuth::User {
            user: "operator".into(),
            password: "guess".into(),
        },
        ..anonymous
    };
    let err = wrong
        .connect(|o| o, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("NATS user `operator`"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_ca_fails_with_a_message_that_names_the_flag() {
    let nats = SecuredNats::start().unwrap();
    let other = TestCa::new("some-other-ca").unwrap();
    let lattice = unique_lattice("wrongca");
    let mut flags = args(&nats, Role::Operator);
    flags[3] = other.ca_file().display().to_string();
    let (code, text) = wash_as(&nats, &lattice, &["get", "hosts"], &flags);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("TLS with the NATS server"), "{text}");
    assert!(text.contains("--nats-tls-ca"), "{text}");
    // A host given the wrong CA does not start, and says the same.
    let mut host_flags = args(&nats, Role::Host);
    host_flags[3] = other.ca_file().display().to_string();
    host_flags.push("--allow-any-issuer".into());
    let binary = trellis_test_support::workspace_binary("trellis-host", "trellis-host").unwrap();
    let output = std::process::Command::new(binary)
        .args(&host_flags)
        .args(["--lattice", &lattice])
        .env("TRELLIS_DATA_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--nats-tls-ca"), "{stderr}");
    // Without any CA, the server's certificate is not trusted either.
    let no_ca = NatsConnection::new(nats.url())
        .connect(|o| o, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(no_ca.contains("--nats-tls-ca"), "{no_ca}");
}

/// The counter app deployed by wadm on a secured lattice: a host with
/// providers connecting as the provider user, wadm as the wadm user, and
/// the manifest deployed by `wash` as the operator.
struct SecuredApp {
    host: HostProcess,
    _wadm: WadmProcess,
    /// The counter's URL.
    url: String,
}

impl SecuredApp {
    async fn deploy(nats: &SecuredNats, lattice: &str) -> SecuredApp {
        let signer = Signer::new().unwrap();
        let issuer = signer.issuer();
        let host = host(nats, lattice, &["--allowed-issuers", &issuer]);
        // WadmProcess passes --nats-url itself.
        let wadm_args: Vec<String> = args(nats, Role::Wadm)
            .split_off(2)
            .into_iter()
            .chain(FAST_WADM_ARGS.iter().map(|s| (*s).to_owned()))
            .collect();
        let wadm_args: Vec<&str> = wadm_args.iter().map(String::as_str).collect();
        let operator = connect(&connection(nats, Role::Operator)).await;
        let api = WadmClient::new(operator.clone(), lattice, Duration::from_secs(10));
        let wadm = WadmProcess::start_with(&nats.url(), lattice, &wadm_args, &api)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_port().unwrap());
        let manifest = example_manifest(&signer, dir.path(), "dev", &address, "redis://unused");
        let (code, text) = wash_as(
            nats,
            lattice,
            &["app", "deploy", manifest.to_str().unwrap(), "--wait"],
            &args(nats, Role::Operator),
        );
        assert_eq!(code, 0, "{text}\nhost log:\n{}", host.log());
        SecuredApp {
            host,
            _wadm: wadm,
            url: format!("http://{address}/"),
        }
    }

    /// The counter's next value, retrying while the app comes up.
    async fn increment(&self) -> u64 {
        let mut last_error = String::new();
        for _ in 0..40 {
            match increment(&self.url).await {
                Ok(count) => return count,
                Err(err) => last_error = err,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "the counter does not answer: {last_error}\nhost log:\n{}",
            self.host.log()
        )
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_does_its_part_over_tls_and_the_counter_app_runs() {
    let nats = SecuredNats::start().unwrap();
    let lattice = unique_lattice("secured");
    let app = SecuredApp::deploy(&nats, &lattice).await;
    // Providers connected as the provider user, over TLS, and serve.
    let mut last = app.increment().await;
    for _ in 0..10 {
        let count = increment(&app.url).await.unwrap();
        assert_eq!(count, last + 1);
        last = count;
    }
    let (code, text) = wash_as(
        &nats,
        &lattice,
        &["get", "inventory"],
        &args(&nats, Role::Operator),
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("kv-counter"), "{text}");
}

/// Sends `body` to `subject` with `headers` as the test's attacker does,
/// and returns what the keyvalue provider answered.
async fn attack(
    nats: &async_nats::Client,
    subject: &str,
    headers: &CallHeaders,
    body: &[u8],
) -> Result<(), RpcError> {
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers.to_pairs() {
        map.insert(name, value.as_str());
    }
    let reply = nats
        .request_with_headers(subject.to_owned(), map, body.to_vec().into())
        .await
        .unwrap();
    rpc::decode_reply::<rmpv::Value>(&reply.payload).map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_altered_or_replayed_call_for_a_component_is_refused() {
    let nats = SecuredNats::start().unwrap();
    let lattice = unique_lattice("forge");
    let app = SecuredApp::deploy(&nats, &lattice).await;
    let before = app.increment().await;

    // The attacker holds the provider role, the most a stranger's process
    // on a secured lattice can hold: it may send and watch calls.
    let attacker = connect(&connection(&nats, Role::Provider)).await;
    let subject_filter = format!("{lattice}.keyvalue-sqlite.rpc.>");
    let mut watch = attacker.subscribe(subject_filter).await.unwrap();
    attacker.flush().await.unwrap();
    assert_eq!(increment(&app.url).await.unwrap(), before + 1);
    let seen = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap();
    let subject = seen.subject.to_string();
    let genuine = CallHeaders::from_lookup(|name| {
        seen.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    });
    assert_eq!(genuine.source_id, "kv-counter");
    // The host paired with the provider on its first call, so it seals.
    let token = genuine
        .invocation
        .clone()
        .expect("the host proves its calls");
    assert!(token.starts_with("m1."), "{token}");
    let million = KvRequest::Increment {
        bucket: "default".into(),
        key: "counter".into(),
        delta: 1_000_000,
    }
    .encode()
    .unwrap();

    let refused = |result: Result<(), RpcError>, what: &str, why: &str| {
        let err = result.expect_err(what);
        assert_eq!(err.kind, RpcErrorKind::Refused, "{what}: {err}");
        assert!(err.message.contains(why), "{what}: {err}");
    };
    // The attack of the issue: the component's name in a header, no proof.
    let forged = CallHeaders {
        invocation: None,
        ..genuine.clone()
    };
    refused(
        attack(&attacker, &subject, &forged, &million).await,
        "a call with no signature",
        "carries no invocation signature",
    );
    // Signed, but by a cluster key of the attacker's own.
    let own = InvocationSigner::new(KeyKind::Cluster.generate(), "NATTACKER").unwrap();
    let call = Invocation {
        subject: &subject,
        source_id: "kv-counter",
        link_name: "default",
        body: &million,
    };
    let foreign = CallHeaders {
        invocation: Some(own.sign(&call, now_ms()).unwrap()),
        ..genuine.clone()
    };
    refused(
        attack(&attacker, &subject, &foreign, &million).await,
        "a call signed by a foreign cluster",
        "not one of this lattice's cluster issuers",
    );
    // The genuine signature on another body, or for another component.
    refused(
        attack(&attacker, &subject, &genuine, &million).await,
        "an altered body",
        "altered after signing",
    );
    let other_component = CallHeaders {
        source_id: "victim".into(),
        ..genuine.clone()
    };
    refused(
        attack(&attacker, &subject, &other_component, &seen.payload).await,
        "an altered source",
        "altered after signing",
    );
    // The genuine seal over claims edited to the attacker's body, and a
    // seal by a host key the provider never paired with.
    let (signed_part, tags) = token.rsplit_once('.').unwrap();
    let (head, claims) = signed_part.rsplit_once('.').unwrap();
    let edited = own.sign(&call, now_ms()).unwrap();
    let edited_claims = edited.split('.').nth(1).unwrap();
    let reclaimed = CallHeaders {
        invocation: Some(format!("{head}.{edited_claims}.{tags}")),
        ..genuine.clone()
    };
    refused(
        attack(&attacker, &subject, &reclaimed, &million).await,
        "a genuine seal over edited claims",
        "seal does not verify",
    );
    let stranger = CallHeaders {
        invocation: Some(format!("m1.{}.{claims}.{tags}", own.host_key())),
        ..genuine.clone()
    };
    refused(
        attack(&attacker, &subject, &stranger, &seen.payload).await,
        "a seal by an unpaired host key",
        "has not paired with host key",
    );
    // The genuine call, sent again.
    refused(
        attack(&attacker, &subject, &genuine, &seen.payload).await,
        "a replayed call",
        "a replay",
    );
    // A call the lattice's own key signed, too long ago.
    let lattice_key = InvocationSigner::new(
        trellis_claims::key_pair_from_seed(
            KeyKind::Cluster,
            "test cluster",
            &trellis_e2e::cluster_key().seed().unwrap(),
        )
        .unwrap(),
        app.host.id(),
    )
    .unwrap();
    let old = CallHeaders {
        invocation: Some(lattice_key.sign(&call, now_ms() - 60_000).unwrap()),
        ..genuine.clone()
    };
    refused(
        attack(&attacker, &subject, &old, &million).await,
        "a call signed a minute ago",
        "outside the 30000 ms invocation window",
    );

    // None of it counted, and the component's own calls still do.
    assert_eq!(increment(&app.url).await.unwrap(), before + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_and_hosts_cannot_send_control_commands_or_read_config() {
    let nats = SecuredNats::start().unwrap();
    let lattice = unique_lattice("roles");
    let host = host(&nats, &lattice, &[]);
    let operator = CtlClient::new(connect(&connection(&nats, Role::Operator)).await, &lattice)
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    operator
        .put_config("db", &[("password".to_owned(), "s3cret".to_owned())].into())
        .await
        .unwrap();
    let scale = ScaleComponentCommand {
        component_id: "intruder".into(),
        component_ref: "file:///nowhere.wasm".into(),
        max_instances: 1,
        host_id: host.id().into(),
        ..Default::default()
    };
    for role in [Role::Provider, Role::Host] {
        let ctl = CtlClient::new(connect(&connection(&nats, role)).await, &lattice)
            .unwrap()
            .with_timeout(Duration::from_secs(2));
        let stop = ctl.stop_host(host.id(), None).await;
        assert!(stop.is_err(), "{role:?} stopped the host");
        assert!(
            ctl.scale_component(&scale).await.is_err(),
            "{role:?} scaled"
        );
        assert!(
            ctl.get_config("db").await.is_err(),
            "{role:?} read config over ctl"
        );
    }
    // Nor can a provider read named config straight from JetStream.
    let provider = connect(&connection(&nats, Role::Provider)).await;
    let js = async_nats::jetstream::new(provider);
    let bucket = format!("CONFIGDATA_{lattice}");
    let read = match js.get_key_value(&bucket).await {
        Ok(store) => store.get("db").await.map(|v| v.is_some()).unwrap_or(false),
        Err(_) => false,
    };
    assert!(!read, "a provider read {bucket}");
    // The host is still there and runs nothing it was not told to.
    let inventory = operator.get_inventory(host.id()).await.unwrap();
    assert!(inventory.components.is_empty(), "{inventory:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wash_up_secures_the_nats_it_starts_and_trusts_only_the_users_accounts() {
    let home = tempfile::tempdir().unwrap();
    let url = format!("nats://127.0.0.1:{}", free_port().unwrap());
    let (ok, text) = wash_at(home.path(), &["up", "--detach", "--nats-url", &url]);
    assert!(ok, "{text}");
    assert!(
        text.contains("started by wash up: nats-server") && text.contains("with credentials"),
        "{text}"
    );
    // Stopped however the test ends.
    struct Down<'a>(&'a std::path::Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            wash_at(self.0, &["down"]);
        }
    }
    let _down = Down(home.path());
    // The detached node's log is a file: plain text, no colour codes.
    let log = std::fs::read_to_string(home.path().join("wash-up.log")).unwrap();
    assert!(log.contains("host started"), "{log}");
    assert!(!log.contains('\x1b'), "ANSI codes in the log file:\n{log}");
    // Another local user, without the credentials, is refused.
    let err = NatsConnection::new(url.clone())
        .connect(|o| o, Duration::from_secs(3))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused the credentials"), "{err}");
    // wash itself finds them with no flags.
    let (ok, text) = wash_at(
        home.path(),
        &["get", "hosts", "--nats-url", &url, "-o", "json"],
    );
    assert!(ok, "{text}");
    let hosts: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(hosts.as_array().map(Vec::len), Some(1), "{text}");
    let host_id = hosts[0]["id"].as_str().unwrap().to_owned();
    // The host trusts the accounts in $TRELLIS_HOME/keys, not a stranger's.
    let stranger = Signer::new().unwrap();
    let image = stranger.sign_example("http-hello").unwrap();
    let (ok, text) = wash_at(
        home.path(),
        &[
            "scale",
            "component",
            &host_id,
            "hello",
            image.to_str().unwrap(),
            "--nats-url",
            &url,
        ],
    );
    assert!(!ok, "a stranger's component ran: {text}");
    assert!(text.contains("is not allowed here"), "{text}");
    let (ok, text) = wash_at(home.path(), &["down"]);
    assert!(ok, "{text}");
    assert!(
        !home.path().join("nats-credentials.json").exists(),
        "wash down leaves no credentials behind"
    );
}

/// A one-shot-per-connection HTTP server on loopback that answers `body`.
async fn upstream(body: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_http_is_denied_unless_the_host_is_granted_and_sockets_always() {
    use trellis_e2e::app::{HTTP, LinkConfig, TestLattice, get};
    let lattice = TestLattice::start("outbound").await.unwrap();
    let granted = upstream("granted upstream").await;
    let other = upstream("other upstream").await;
    lattice.start_provider(HTTP).await.unwrap();
    let image = trellis_e2e::file_url(&lattice.signer.sign_example("http-fetch").unwrap());
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    lattice
        .config("fetch-http", &[("address", &address)])
        .await
        .unwrap();
    lattice
        .link(
            HTTP.0,
            "fetch",
            ("wasi", "http", &["incoming-handler"]),
            LinkConfig::Source("fetch-http"),
        )
        .await
        .unwrap();
    let scale = |allowed_hosts: Vec<String>| ScaleComponentCommand {
        component_id: "fetch".into(),
        component_ref: image.clone(),
        max_instances: 2,
        host_id: lattice.host.id().into(),
        allowed_hosts,
        ..Default::default()
    };
    let fetch = |port: u16| format!("http://{address}/?url=http://127.0.0.1:{port}/");

    // No grant: nothing leaves the host.
    lattice
        .ctl
        .scale_component(&scale(Vec::new()))
        .await
        .unwrap();
    // Until the listener and the component are up, the answer is 503 or
    // no connection at all.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (status, body) = loop {
        match get(&fetch(granted)).await {
            Ok((status, body)) if status != 503 => break (status, body),
            _ if std::time::Instant::now() > deadline => {
                panic!("no answer\n{}", lattice.host.log())
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HTTP-request-denied"), "{body}");
    let log = lattice.host.log();
    assert!(log.contains("outgoing HTTP request denied"), "{log}");
    assert!(
        log.contains(&format!("http://127.0.0.1:{granted}")),
        "{log}"
    );

    // Granted one host and port: that one answers, the other is denied.
    lattice
        .ctl
        .scale_component(&scale(vec![format!("http://127.0.0.1:{granted}")]))
        .await
        .unwrap();
    let (status, body) = get(&fetch(granted)).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "granted upstream"));
    let (status, body) = get(&fetch(other)).await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HTTP-request-denied"), "{body}");

    // No grant covers sockets: a plain TCP connection, even to the granted
    // host and port, is refused inside the host.
    let (status, body) = get(&format!("http://{address}/?tcp=127.0.0.1:{granted}"))
        .await
        .unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("connect failed"), "{body}");
    assert!(body.to_lowercase().contains("permission denied"), "{body}");

    // A malformed grant is refused before anything runs.
    let err = lattice
        .ctl
        .scale_component(&scale(vec!["ftp://127.0.0.1".into()]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid allowed host"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_mutual_tls_every_process_presents_a_client_certificate() {
    let nats = SecuredNats::start_mutual().unwrap();
    let lattice = unique_lattice("mtls");
    let (cert, key) = nats.ca().issue("trellis-client").unwrap();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let with_certificate = |role: Role| NatsConnection {
        tls_client: Some((cert.clone().into(), key.clone().into())),
        ..connection(&nats, role)
    };
    // The right password without a certificate is not enough.
    let refused = connection(&nats, Role::Operator)
        .connect(|o| o, Duration::from_secs(5))
        .await;
    let err = refused
        .expect_err("connected without a client certificate")
        .to_string();
    assert!(err.contains("requires a client certificate"), "{err}");
    assert!(err.contains("--nats-tls-cert"), "{err}");

    let signer = Signer::new().unwrap();
    let issuer = signer.issuer();
    let host = host(
        &nats,
        &lattice,
        &[
            "--nats-tls-cert",
            &cert,
            "--nats-tls-key",
            &key,
            "--allowed-issuers",
            &issuer,
        ],
    );
    // A provider connects with the certificate its host hands it.
    let operator = CtlClient::new(connect(&with_certificate(Role::Operator)).await, &lattice)
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    let built = trellis_test_support::workspace_binary(
        "trellis-keyvalue-sqlite",
        "trellis-keyvalue-sqlite",
    )
    .unwrap();
    let provider = signer.sign_provider(&built).unwrap();
    operator
        .start_provider_and_wait(
            &StartProviderCommand {
                provider_id: "kv-mtls".into(),
                provider_ref: trellis_e2e::file_url(&provider),
                host_id: host.id().into(),
                ..Default::default()
            },
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\nhost log:\n{}", host.log()));
    // And wash takes the same two flags.
    let mut flags = args(&nats, Role::Operator);
    flags.extend(["--nats-tls-cert".into(), cert.clone()]);
    flags.extend(["--nats-tls-key".into(), key.clone()]);
    let (code, text) = wash_as(&nats, &lattice, &["get", "inventory"], &flags);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("kv-mtls"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_missing_a_permission_is_told_where_to_grant_it() {
    let nats = SecuredNats::start().unwrap();
    let lattice = unique_lattice("perms");
    let _host = host(&nats, &lattice, &[]);
    // The provider role may not send control commands.
    let (_, text) = wash_as(
        &nats,
        &lattice,
        &["get", "hosts"],
        &args(&nats, Role::Provider),
    );
    assert!(text.contains("Permissions Violation"), "{text}");
    assert!(text.contains("deploy/nats/README.md"), "{text}");
}

/// Secrets on a secured lattice: the backend as the `secrets` user, the
/// host and its providers as theirs, and `wash` as the operator. The
/// operator stores a value and the component behind http-server reads it;
/// a provider's user may not administer the backend.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_work_on_a_secured_lattice_with_each_role_its_own_user() {
    let nats = SecuredNats::start().unwrap();
    let lattice = unique_lattice("secure-secrets");
    let host = host(&nats, &lattice, &[]);
    let signer = Signer::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend_log = dir.path().join("secrets.log");
    let binary = trellis_test_support::workspace_binary(
        "trellis-secrets-nats-kv",
        "trellis-secrets-nats-kv",
    )
    .unwrap();
    let mut backend = std::process::Command::new(binary)
        .args(args(&nats, Role::Secrets))
        .args(["--lattice", &lattice])
        .arg("--key-file")
        .arg(dir.path().join("secrets.xkey"))
        .args([
            "--cluster-issuers",
            &trellis_e2e::cluster_key().public_key(),
        ])
        .args(["--allowed-issuers", &signer.issuer()])
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&backend_log).unwrap())
        .spawn()
        .unwrap();
    let operator = args(&nats, Role::Operator);
    let value_file = dir.path().join("value");
    std::fs::write(&value_file, "secured-lattice-value").unwrap();
    let value_path = value_file.display().to_string();
    // The backend may take a moment to make its bucket.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, text) = wash_as(
            &nats,
            &lattice,
            &[
                "secrets",
                "put",
                "token",
                "--file",
                &value_path,
                "--allow",
                "*",
            ],
            &operator,
        );
        if code == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{text}; backend log:\n{}",
            std::fs::read_to_string(&backend_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A provider's user cannot read the list, let alone change it.
    let (code, text) = wash_as(
        &nats,
        &lattice,
        &["secrets", "list"],
        &args(&nats, Role::Provider),
    );
    assert_ne!(code, 0, "{text}");

    let image = signer.sign_example("secret-check").unwrap();
    let http = signer
        .sign_provider(
            &trellis_test_support::workspace_binary("trellis-http-server", "trellis-http-server")
                .unwrap(),
        )
        .unwrap();
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let address_pair = format!("address={address}");
    let host_id = host.id().to_owned();
    for command in [
        &["config", "put", "SECRET_token", "key=token"][..],
        &["config", "put", "check-http", &address_pair],
        &[
            "start",
            "component",
            image.to_str().unwrap(),
            "secret-check",
            "--host-id",
            &host_id,
            "--config",
            "SECRET_token",
        ],
        &[
            "start",
            "provider",
            http.to_str().unwrap(),
            "http-server",
            "--host-id",
            &host_id,
        ],
        &[
            "link",
            "put",
            "http-server",
            "secret-check",
            "wasi",
            "http",
            "--interface",
            "incoming-handler",
            "--source-config",
            "check-http",
        ],
    ] {
        let (code, text) = wash_as(&nats, &lattice, command, &operator);
        assert_eq!(code, 0, "wash {command:?}: {text}");
    }
    let url = format!("http://{address}/token");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let body = loop {
        match trellis_e2e::app::get(&url).await {
            Ok((200, body)) => break body,
            other if std::time::Instant::now() > deadline => panic!(
                "{other:?}; host log:\n{}\nbackend log:\n{}",
                host.log(),
                std::fs::read_to_string(&backend_log).unwrap_or_default()
            ),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let digest = trellis_claims::sha256_hex(b"secured-lattice-value").to_lowercase();
    assert_eq!(body, format!("sha256:{digest} len:21\n"));
    let log = std::fs::read_to_string(&backend_log).unwrap_or_default();
    assert!(!log.contains("Permissions Violation"), "{log}");
    let _ = backend.kill();
    let _ = backend.wait();
}
