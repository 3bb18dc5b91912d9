//! Secrets end to end: the real `trellis-secrets-nats-kv` beside a real
//! host, values put with the real `wash secrets`, and the signed
//! `secret-check` component reading them through `wasmcloud:secrets`
//! behind http-server. Every test also listens to all of NATS (`>`) from
//! the start, and ends by checking that no value it used appears in that
//! traffic, in the JetStream store on disk, in the raw KV stream, or in the
//! log of any process.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use trellis_e2e::app::{COUNTER, HTTP, LinkConfig, REDIS, TestLattice};
use trellis_e2e::{cluster_key, file_url};
use trellis_lattice::Link;
use trellis_lattice::ctl::ScaleComponentCommand;
use trellis_lattice::event::{CloudEvent, LatticeEvent};
use trellis_lattice::secret::{AdminOp, SecretAccessed};
use trellis_test_support::{RedisServer, free_port};

/// The id the component runs under.
const CHECK: &str = "secret-check";

/// A lattice with a secrets backend, the secret-check component and a
/// recorder of everything that crossed NATS.
struct SecretsLattice {
    lattice: TestLattice,
    backend: Child,
    backend_log: PathBuf,
    /// Every subject, header and payload seen on `>`, concatenated.
    wire: Arc<Mutex<Vec<u8>>>,
    /// `secret_accessed` events, in order.
    audits: Arc<Mutex<Vec<SecretAccessed>>>,
    /// What every `wash` run printed.
    wash_output: Mutex<Vec<u8>>,
    /// The component's claims subject.
    subject: String,
    /// Where the component answers.
    url: String,
}

impl SecretsLattice {
    /// Starts everything; the component is granted the secret references
    /// `grants` (names of `SECRET_…` configs, put later by the test).
    async fn start(prefix: &str, grants: &[&str]) -> anyhow::Result<Self> {
        let lattice = TestLattice::start(prefix).await?;
        let nats = async_nats::connect(lattice.nats.url()).await?;
        let wire = Arc::new(Mutex::new(Vec::new()));
        let mut everything = nats.subscribe(">").await?;
        let recorded = Arc::clone(&wire);
        tokio::spawn(async move {
            while let Some(message) = everything.next().await {
                let mut wire = recorded.lock().unwrap();
                wire.extend_from_slice(message.subject.as_bytes());
                if let Some(headers) = &message.headers {
                    for (name, values) in headers.iter() {
                        wire.extend_from_slice(name.to_string().as_bytes());
                        for value in values {
                            wire.extend_from_slice(value.as_str().as_bytes());
                        }
                    }
                }
                wire.extend_from_slice(&message.payload);
            }
        });
        let audits = Arc::new(Mutex::new(Vec::new()));
        let mut events = nats
            .subscribe(format!(
                "wasmbus.evt.{}.secret_accessed",
                lattice.ctl.lattice()
            ))
            .await?;
        let heard = Arc::clone(&audits);
        tokio::spawn(async move {
            while let Some(message) = events.next().await {
                let parsed = CloudEvent::from_json(&message.payload).and_then(|e| e.parse());
                if let Ok(LatticeEvent::SecretAccessed(audit)) = parsed {
                    heard.lock().unwrap().push(audit);
                }
            }
        });
        nats.flush().await?;

        let backend_log = lattice.dir.path().join("secrets.log");
        let binary = trellis_test_support::workspace_binary(
            "trellis-secrets-nats-kv",
            "trellis-secrets-nats-kv",
        )?;
        let backend = Command::new(binary)
            .args(["--nats-url", &lattice.nats.url()])
            .args(["--lattice", lattice.ctl.lattice()])
            .arg("--key-file")
            .arg(lattice.dir.path().join("secrets.xkey"))
            .args(["--cluster-issuers", &cluster_key().public_key()])
            .args(["--allowed-issuers", &lattice.signer.issuer()])
            .env("TRELLIS_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&backend_log)?)
            .spawn()
            .context("spawning trellis-secrets-nats-kv")?;
        let xkey = AdminOp::Xkey.subject(lattice.ctl.lattice(), "secrets-nats-kv")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while nats.request(xkey.clone(), "{}".into()).await.is_err() {
            if std::time::Instant::now() > deadline {
                bail!(
                    "the secrets backend did not answer; its log:\n{}",
                    std::fs::read_to_string(&backend_log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let image = lattice.signer.sign_example("secret-check")?;
        let claims = trellis_claims::read_component_claims(&std::fs::read(&image)?)?
            .context("the example is signed")?;
        lattice.start_provider(HTTP).await?;
        let address = format!("127.0.0.1:{}", free_port()?);
        lattice
            .config("check-http", &[("address", &address)])
            .await?;
        lattice
            .ctl
            .scale_component(&ScaleComponentCommand {
                component_id: CHECK.into(),
                component_ref: file_url(&image),
                max_instances: 4,
                host_id: lattice.host.id().into(),
                config: grants.iter().map(|g| g.to_string()).collect(),
                ..Default::default()
            })
            .await?;
        lattice
            .link(
                HTTP.0,
                CHECK,
                ("wasi", "http", &["incoming-handler"]),
                LinkConfig::Source("check-http"),
            )
            .await?;
        let url = format!("http://{address}");
        let secrets = SecretsLattice {
            lattice,
            backend,
            backend_log,
            wire,
            audits,
            wash_output: Mutex::default(),
            subject: claims.sub,
            url,
        };
        // Answers (with 404 for a name it does not know) once it is up.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while secrets.get("absent").await.is_err() {
            if std::time::Instant::now() > deadline {
                bail!(
                    "secret-check never answered; host log:\n{}",
                    secrets.lattice.host.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(secrets)
    }

    /// `GET /{name}`: the status and body.
    async fn get(&self, name: &str) -> anyhow::Result<(u16, String)> {
        trellis_e2e::app::get(&format!("{}/{name}", self.url)).await
    }

    /// Runs `wash secrets ARGS`, with `stdin` as its input; fails unless it
    /// succeeds.
    fn wash(&self, args: &[&str], stdin: &[u8]) -> anyhow::Result<String> {
        let binary = trellis_test_support::workspace_binary("wash", "wash")?;
        let mut child = Command::new(binary)
            .arg("secrets")
            .args(args)
            .env("TRELLIS_NATS_URL", self.lattice.nats.url())
            .env("TRELLIS_LATTICE", self.lattice.ctl.lattice())
            .env("TRELLIS_TIMEOUT_MS", "20000")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child.stdin.take().context("stdin")?.write_all(stdin)?;
        let output = child.wait_with_output()?;
        let mut recorded = self.wash_output.lock().unwrap();
        recorded.extend_from_slice(&output.stdout);
        recorded.extend_from_slice(&output.stderr);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "wash secrets {args:?} failed: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(text)
    }

    /// Puts the reference config `SECRET_{name}` for key `key`.
    async fn grant(&self, name: &str, key: &str) -> anyhow::Result<()> {
        self.lattice
            .config(&format!("SECRET_{name}"), &[("key", key)])
            .await
    }

    /// The audit events heard so far for `secret`.
    fn audits_of(&self, secret: &str) -> Vec<SecretAccessed> {
        self.audits
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.secret == secret)
            .cloned()
            .collect()
    }

    /// Fails if any of `values` appears anywhere it must not.
    async fn assert_never_leaked(&self, values: &[&str]) -> anyhow::Result<()> {
        // Late messages reach the recorder.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut places: Vec<(String, Vec<u8>)> = vec![
            ("NATS traffic".into(), self.wire.lock().unwrap().clone()),
            (
                "wash output".into(),
                self.wash_output.lock().unwrap().clone(),
            ),
            (
                "the host's log".into(),
                self.lattice.host.log().into_bytes(),
            ),
            (
                "the backend's log".into(),
                std::fs::read(&self.backend_log).unwrap_or_default(),
            ),
            (
                "nats-server's log".into(),
                self.lattice.nats.log().into_bytes(),
            ),
        ];
        places.push(("the raw KV stream".into(), self.kv_stream().await?));
        for file in files_under(self.lattice.nats.dir()) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            places.push((file.display().to_string(), bytes));
        }
        for (place, bytes) in &places {
            for value in values {
                if contains(bytes, value.as_bytes()) {
                    bail!("the secret value {value:?} appears in {place}");
                }
            }
        }
        // The recorder did see the traffic: the check is not vacuous.
        let wire = self.wire.lock().unwrap();
        anyhow::ensure!(
            contains(&wire, b"trellis:secrets/backend.get"),
            "no fetch was recorded"
        );
        Ok(())
    }

    /// Every message in the backend's KV stream, as stored.
    async fn kv_stream(&self) -> anyhow::Result<Vec<u8>> {
        let nats = async_nats::connect(self.lattice.nats.url()).await?;
        let js = async_nats::jetstream::new(nats);
        let name = format!("KV_SECRETS_{}", self.lattice.ctl.lattice());
        let mut stream = js.get_stream(&name).await?;
        let info = stream.info().await?.clone();
        let mut all = Vec::new();
        for sequence in info.state.first_sequence..=info.state.last_sequence {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                all.extend_from_slice(message.subject.as_bytes());
                all.extend_from_slice(&message.payload);
            }
        }
        anyhow::ensure!(info.state.messages > 0, "the KV stream is empty");
        Ok(all)
    }
}

impl Drop for SecretsLattice {
    fn drop(&mut self) {
        let _ = self.backend.kill();
        let _ = self.backend.wait();
    }
}

fn sha256_line(value: &str) -> String {
    format!(
        "sha256:{} len:{}\n",
        trellis_claims::sha256_hex(value.as_bytes()).to_lowercase(),
        value.len()
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[tokio::test]
async fn a_component_reads_the_secrets_it_is_granted_and_is_refused_the_rest() {
    let s = SecretsLattice::start(
        "secrets-grant",
        &["SECRET_db_password", "SECRET_locked", "SECRET_missing"],
    )
    .await
    .unwrap();
    let value = "correct horse battery staple";
    let subject_rule = s.subject.clone();
    s.wash(
        &["put", "db_password", "--allow", &subject_rule],
        value.as_bytes(),
    )
    .unwrap();
    // Readable only by some other component.
    let other = trellis_claims::KeyKind::Component.generate().public_key();
    s.wash(&["put", "locked", "--allow", &other], b"not for you")
        .unwrap();
    s.wash(&["put", "unreferenced", "--allow", "*"], b"never granted")
        .unwrap();
    s.grant("db_password", "db_password").await.unwrap();
    s.grant("locked", "locked").await.unwrap();
    s.grant("missing", "no_such_secret").await.unwrap();

    // Granted by its config and by the backend's rule.
    let (status, body) = wait_for(&s, "db_password", 200).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, sha256_line(value));

    // Not among its references: refused by the host.
    let (status, body) = s.get("unreferenced").await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("not granted to component `secret-check`"),
        "{body}"
    );

    // Referenced, but the backend's rules name another subject.
    let (status, body) = s.get("locked").await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("no access rule names it"), "{body}");
    assert!(body.contains(&s.subject), "{body}");

    // Referenced, but the backend holds no such secret.
    let (status, body) = s.get("missing").await.unwrap();
    assert_eq!(status, 404, "{body}");

    // Every access is audited, with who asked and the outcome.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let granted = s.audits_of("db_password");
    assert!(
        granted
            .iter()
            .any(|a| a.allowed && a.entity_id == CHECK && a.subject.as_deref() == Some(&s.subject)),
        "{granted:?}"
    );
    let refused = s.audits_of("unreferenced");
    assert!(
        refused
            .iter()
            .any(|a| !a.allowed && a.host_id == s.lattice.host.id()),
        "{refused:?}"
    );
    let locked = s.audits_of("locked");
    assert!(
        locked
            .iter()
            .any(|a| !a.allowed && a.backend == "secrets-nats-kv"),
        "{locked:?}"
    );

    // One instance holds at most 64 secrets at once.
    let (status, body) = s.get("db_password?hold=70").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("held 64; then: this instance holds 64 secrets"),
        "{body}"
    );

    // `list` shows names, versions and rules, and no value.
    let listed = s.wash(&["list", "-o", "json"], b"").unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db_password", "locked", "unreferenced"]);

    s.assert_never_leaked(&[value, "not for you", "never granted"])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_new_value_and_a_new_sealing_key_are_seen_by_the_next_call() {
    let s = SecretsLattice::start("secrets-rotate", &["SECRET_token", "SECRET_other"])
        .await
        .unwrap();
    s.wash(&["put", "token", "--allow", "*"], b"first-token-value")
        .unwrap();
    s.wash(&["put", "other", "--allow", "*"], b"other-token-value")
        .unwrap();
    s.grant("token", "token").await.unwrap();
    s.grant("other", "other").await.unwrap();
    let (_, body) = wait_for(&s, "token", 200).await;
    assert_eq!(body, sha256_line("first-token-value"));

    // A new value: the next call sees it, with nothing restarted.
    let put = s
        .wash(
            &["put", "token", "--allow", "*", "-o", "json"],
            b"second-token-value",
        )
        .unwrap();
    let put: serde_json::Value = serde_json::from_str(&put).unwrap();
    assert!(put["version"].as_u64().unwrap() > 1, "{put}");
    let (_, body) = s.get("token").await.unwrap();
    assert_eq!(body, sha256_line("second-token-value"));

    // A new sealing key: every value is re-sealed and stays readable.
    let before: serde_json::Value =
        serde_json::from_str(&s.wash(&["list", "-o", "json"], b"").unwrap()).unwrap();
    let rotated: serde_json::Value =
        serde_json::from_str(&s.wash(&["rotate-key", "-o", "json"], b"").unwrap()).unwrap();
    assert_eq!(rotated["resealed"], 2, "{rotated}");
    assert_eq!(
        rotated["retired"], before[0]["sealed_with"],
        "{rotated} {before}"
    );
    let after: serde_json::Value =
        serde_json::from_str(&s.wash(&["list", "-o", "json"], b"").unwrap()).unwrap();
    for info in after.as_array().unwrap() {
        assert_eq!(info["sealed_with"], rotated["xkey"], "{after}");
    }
    let (_, body) = s.get("token").await.unwrap();
    assert_eq!(body, sha256_line("second-token-value"));
    let (_, body) = s.get("other").await.unwrap();
    assert_eq!(body, sha256_line("other-token-value"));
    // The retired key is gone from the backend's key file.
    let keys = std::fs::read_to_string(s.lattice.dir.path().join("secrets.xkey")).unwrap();
    assert_eq!(keys.lines().count(), 1, "{keys}");

    // A deleted secret is gone.
    s.wash(&["del", "other"], b"").unwrap();
    let (status, _) = s.get("other").await.unwrap();
    assert_eq!(status, 404);

    s.assert_never_leaked(&[
        "first-token-value",
        "second-token-value",
        "other-token-value",
    ])
    .await
    .unwrap();
}

#[tokio::test]
async fn a_provider_gets_its_links_secret_sealed_for_it() {
    // A Redis that needs a password, which keyvalue-redis learns only from
    // the secret its link grants it: not from the URL, not from config.
    let password = "redis-password-from-a-secret";
    let redis = RedisServer::start().unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(password)
        .query_async::<()>(&mut raw)
        .await
        .unwrap();

    let s = SecretsLattice::start("secrets-provider", &[])
        .await
        .unwrap();
    s.wash(
        &["put", "redis_password", "--allow", "*"],
        password.as_bytes(),
    )
    .unwrap();
    s.lattice
        .config("redis-url", &[("url", &redis.url())])
        .await
        .unwrap();
    s.grant("password", "redis_password").await.unwrap();
    s.lattice.start_provider(REDIS).await.unwrap();
    s.lattice
        .start_component("kv-counter", COUNTER, 2)
        .await
        .unwrap();
    s.lattice
        .ctl
        .put_link(&Link {
            source_id: COUNTER.into(),
            target: REDIS.0.into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: vec!["store".into(), "atomics".into()],
            target_config: vec!["redis-url".into(), "SECRET_password".into()],
            ..Link::default()
        })
        .await
        .unwrap();
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    s.lattice
        .config("counter-http", &[("address", &address)])
        .await
        .unwrap();
    s.lattice
        .link(
            HTTP.0,
            COUNTER,
            ("wasi", "http", &["incoming-handler"]),
            LinkConfig::Source("counter-http"),
        )
        .await
        .unwrap();
    let url = format!("http://{address}/");
    s.lattice
        .wait_until_ok(&url, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e:#}; host log:\n{}", s.lattice.host.log()));
    let first = trellis_e2e::app::increment(&url).await.unwrap();
    let second = trellis_e2e::app::increment(&url).await.unwrap();
    assert_eq!(second, first + 1);

    // Fetched for the provider, under its own identity.
    let audits = s.audits_of("redis_password");
    assert!(
        audits
            .iter()
            .any(|a| a.allowed && a.entity_id == REDIS.0 && a.subject.is_some()),
        "{audits:?}"
    );
    s.assert_never_leaked(&[password]).await.unwrap();
}

#[tokio::test]
async fn a_manifest_grants_a_secret_through_a_policy_to_its_app_only() {
    let s = SecretsLattice::start("secrets-wadm", &[]).await.unwrap();
    let lattice = s.lattice.ctl.lattice().to_owned();
    let nats_url = s.lattice.nats.url();
    let wadm = trellis_e2e::wadm::WadmProcess::start(
        &nats_url,
        &lattice,
        trellis_e2e::wadm::FAST_WADM_ARGS,
    )
    .await
    .unwrap();
    let image = s.lattice.signer.sign_example("secret-check").unwrap();
    let subject = trellis_claims::read_component_claims(&std::fs::read(&image).unwrap())
        .unwrap()
        .unwrap()
        .sub;
    // Readable by that component, and only within app `shop`.
    s.wash(
        &["put", "shop-db", "--allow", &format!("{subject}@shop")],
        b"shop-database-password",
    )
    .unwrap();
    let manifest = format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: shop
  annotations:
    version: v1
spec:
  policies:
    - name: vault
      type: policy.secret.wasmcloud.dev/v1alpha1
      properties:
        backend: secrets-nats-kv
  components:
    - name: checker
      type: component
      properties:
        image: {}
        secrets:
          - name: db_password
            properties:
              policy: vault
              key: shop-db
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"#,
        file_url(&image)
    );
    let file = s.lattice.dir.path().join("shop.yaml");
    std::fs::write(&file, manifest).unwrap();
    trellis_e2e::wash_ok(
        &nats_url,
        &lattice,
        &["app", "deploy", file.to_str().unwrap(), "--wait"],
    )
    .unwrap();
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    s.lattice
        .config("shop-http", &[("address", &address)])
        .await
        .unwrap();
    s.lattice
        .link(
            HTTP.0,
            "shop-checker",
            ("wasi", "http", &["incoming-handler"]),
            LinkConfig::Source("shop-http"),
        )
        .await
        .unwrap();
    let url = format!("http://{address}/db_password");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        match trellis_e2e::app::get(&url).await {
            Ok((200, body)) => break body,
            other if std::time::Instant::now() > deadline => {
                panic!("{other:?}; host log:\n{}", s.lattice.host.log())
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert_eq!(body, sha256_line("shop-database-password"));
    let audits = s.audits_of("shop-db");
    assert!(
        audits.iter().any(|a| a.allowed
            && a.app.as_deref() == Some("shop")
            && a.entity_id == "shop-checker"),
        "{audits:?}"
    );
    s.assert_never_leaked(&["shop-database-password"])
        .await
        .unwrap();
    let wadm_log = wadm.log();
    assert!(wadm_log.contains("shop"), "wadm logged nothing of the app");
    assert!(!wadm_log.contains("shop-database-password"), "{wadm_log}");
}

/// Calls `/{name}` until it answers `status` (config and grants reach the
/// host a moment after they are put), for at most 10 s; returns the last
/// answer.
async fn wait_for(s: &SecretsLattice, name: &str, status: u16) -> (u16, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = s.get(name).await.unwrap();
        if answer.0 == status || std::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
