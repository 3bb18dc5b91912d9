//! A lattice on a secured NATS: the server runs `deploy/nats/lattice.conf`
//! with TLS from a CA the test makes and one user per role. Each test is
//! an attack or a misconfiguration, and fails if its hole reopens.

use std::time::Duration;

use trellis_e2e::app::{example_manifest, increment};
use trellis_e2e::wadm::{FAST_WADM_ARGS, WadmProcess};
use trellis_e2e::{HostProcess, Signer, unique_lattice, wash};
use trellis_lattice::client::CtlClient;
use trellis_lattice::connect::{NatsAuth, NatsConnection};
use trellis_lattice::ctl::ScaleComponentCommand;
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

#[tokio::test(flavor = "multi_thread")]
async fn every_role_does_its_part_over_tls_and_the_counter_app_runs() {
    let nats = SecuredNats::start().unwrap();
    let lattice = unique_lattice("secured");
    let signer = Signer::new().unwrap();
    let issuer = signer.issuer();
    let host = host(&nats, &lattice, &["--allowed-issuers", &issuer]);
    // WadmProcess passes --nats-url itself.
    let wadm_args: Vec<String> = args(&nats, Role::Wadm)
        .split_off(2)
        .into_iter()
        .chain(FAST_WADM_ARGS.iter().map(|s| (*s).to_owned()))
        .collect();
    let wadm_args: Vec<&str> = wadm_args.iter().map(String::as_str).collect();
    let operator = connect(&connection(&nats, Role::Operator)).await;
    let api = WadmClient::new(operator.clone(), &lattice, Duration::from_secs(10));
    let _wadm = WadmProcess::start_with(&nats.url(), &lattice, &wadm_args, &api)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let manifest = example_manifest(&signer, dir.path(), "dev", &address, "redis://unused");
    let operator_flags = args(&nats, Role::Operator);
    let (code, text) = wash_as(
        &nats,
        &lattice,
        &["app", "deploy", manifest.to_str().unwrap(), "--wait"],
        &operator_flags,
    );
    assert_eq!(code, 0, "{text}\nhost log:\n{}", host.log());
    // Providers connected as the provider user, over TLS, and serve.
    let url = format!("http://{address}/");
    let mut last = 0;
    for _ in 0..20 {
        match increment(&url).await {
            Ok(count) => {
                assert!(count > last, "{count} after {last}");
                last = count;
            }
            Err(err) => {
                assert_eq!(last, 0, "the counter failed after answering: {err}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    assert!(
        last >= 10,
        "the counter answered {last} times\nhost log:\n{}",
        host.log()
    );
    let (code, text) = wash_as(&nats, &lattice, &["get", "inventory"], &operator_flags);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("kv-counter"), "{text}");
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

/// `wash` with its own `$TRELLIS_HOME`, as a user of this machine runs it.
fn wash_at(home: &std::path::Path, args: &[&str]) -> (bool, String) {
    let binary = trellis_test_support::workspace_binary("wash", "wash").unwrap();
    let output = std::process::Command::new(binary)
        .args(args)
        .env("TRELLIS_HOME", home)
        .env_remove("TRELLIS_NATS_URL")
        .env_remove("TRELLIS_NATS_USER")
        .env_remove("TRELLIS_NATS_PASSWORD")
        .env("TRELLIS_TIMEOUT_MS", "10000")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn wash_up_secures_the_nats_it_starts_and_trusts_only_the_users_accounts() {
    let home = tempfile::tempdir().unwrap();
    let url = format!("nats://127.0.0.1:{}", free_port().unwrap());
    let (ok, text) = wash_at(home.path(), &["up", "--detach", "--nats-url", &url]);
    assert!(ok, "{text}");
    assert!(
        text.contains("started by wash up, with credentials"),
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
async fn outbound_http_is_denied_unless_the_host_is_granted() {
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

    // A malformed grant is refused before anything runs.
    let err = lattice
        .ctl
        .scale_component(&scale(vec!["ftp://127.0.0.1".into()]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid allowed host"), "{err}");
}
