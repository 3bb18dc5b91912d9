//! Registries end to end: `wash push` the example component and providers
//! to a real registry (Debian's `docker-registry` on loopback), deploy a
//! manifest that names them by reference on two hosts, and check the
//! refusals: a tag re-pushed by another signer, content that does not
//! match its digest, and a registry that is not there.

use std::path::Path;
use std::time::Duration;

use trellis_e2e::app::increment;
use trellis_e2e::wadm::{FAST_WADM_ARGS, WadmProcess};
use trellis_e2e::{HostProcess, Signer, unique_lattice, wash_ok};
use trellis_lattice::client::{ClientError, CtlClient};
use trellis_lattice::ctl::StartProviderCommand;
use trellis_test_support::{
    NatsServer, REGISTRY_PASSWORD, REGISTRY_USER, RegistryServer, free_port,
};

use crate::common::{client, scale_command};

const SCALE_WAIT: Duration = Duration::from_secs(60);

/// `wash push`es `file` to `reference` and returns the digest it printed.
fn push(nats: &NatsServer, registry: &RegistryServer, reference: &str, file: &Path) -> String {
    let out = wash_ok(
        &nats.url(),
        "unused",
        &[
            "push",
            reference,
            file.to_str().unwrap(),
            "--allow-insecure-registry",
            &registry.address(),
        ],
    )
    .unwrap();
    out.split_whitespace()
        .find(|word| word.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in `wash push` output: {out}"))
        .to_owned()
}

/// A host that may pull from `registry` and runs what `signers` signed.
fn registry_host(
    nats: &NatsServer,
    lattice: &str,
    registry: &RegistryServer,
    signers: &[&Signer],
) -> HostProcess {
    let issuers: Vec<String> = signers.iter().map(|s| s.issuer()).collect();
    HostProcess::start(
        &nats.url(),
        lattice,
        &[
            "--allow-insecure-registry",
            &registry.address(),
            "--allowed-issuers",
            &issuers.join(","),
        ],
    )
    .unwrap()
}

fn provider_binary(signer: &Signer, package: &str) -> std::path::PathBuf {
    let built = trellis_test_support::workspace_binary(package, package).unwrap();
    signer.sign_provider(&built).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_counter_app_runs_from_a_registry_on_two_hosts() {
    let nats = NatsServer::start().unwrap();
    let registry = RegistryServer::start().unwrap();
    let lattice = unique_lattice("oci");
    let signer = Signer::new().unwrap();
    let base = format!("oci://{}/trellis", registry.address());
    let counter_ref = format!("{base}/kv-counter:0.1.0");
    let sqlite_ref = format!("{base}/keyvalue-sqlite:0.1.0");
    let http_ref = format!("{base}/http-server:0.1.0");
    push(
        &nats,
        &registry,
        &counter_ref,
        &signer.sign_example("kv-counter").unwrap(),
    );
    push(
        &nats,
        &registry,
        &sqlite_ref,
        &provider_binary(&signer, "trellis-keyvalue-sqlite"),
    );
    push(
        &nats,
        &registry,
        &http_ref,
        &provider_binary(&signer, "trellis-http-server"),
    );

    let hosts = [
        registry_host(&nats, &lattice, &registry, &[&signer]),
        registry_host(&nats, &lattice, &registry, &[&signer]),
    ];
    let _wadm = WadmProcess::start(&nats.url(), &lattice, FAST_WADM_ARGS)
        .await
        .unwrap();

    // The example registry.yaml, pointed at this test's registry.
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let manifest = std::fs::read_to_string(
        trellis_test_support::workspace_root().join("examples/manifests/registry.yaml"),
    )
    .unwrap()
    .replace("oci://127.0.0.1:5000/trellis", &base)
    .replace("127.0.0.1:8080", &address);
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = dir.path().join("registry.yaml");
    std::fs::write(&manifest_path, manifest).unwrap();
    wash_ok(
        &nats.url(),
        &lattice,
        &["app", "deploy", manifest_path.to_str().unwrap(), "--wait"],
    )
    .unwrap_or_else(|e| panic!("{e:#}\nhost logs:\n{}\n{}", hosts[0].log(), hosts[1].log()));

    let url = format!("http://{address}/");
    let mut last = 0;
    for _ in 0..20 {
        let value = wait_for_increment(&url).await;
        assert!(value > last, "the count goes up: {value} after {last}");
        last = value;
    }

    let ctl = client(&nats.url(), &lattice).await;
    let inventories = ctl.get_hosts_inventories().await.unwrap();
    for host in &hosts {
        let inventory = inventories.iter().find(|i| i.host_id == host.id()).unwrap();
        let counter = inventory.components.iter().find(|c| c.id == "kv-counter");
        assert_eq!(
            counter.map(|c| c.image_ref.as_str()),
            Some(counter_ref.as_str()),
            "the counter runs from the registry on host {}",
            host.id()
        );
    }
    let providers: Vec<&str> = inventories
        .iter()
        .flat_map(|i| i.providers.iter())
        .map(|p| p.id.as_str())
        .collect();
    assert!(providers.contains(&"keyvalue-sqlite") && providers.contains(&"http-server"));

    // Each host pulled the counter's config and layer once.
    let pulled = registry.blob_gets("trellis/kv-counter");
    assert_eq!(pulled, 4, "two blobs per host:\n{}", registry.log());

    // A second scale-up of the same image is served from the cache.
    let copy = scale_command(hosts[0].id(), "counter-copy", &counter_ref, 2);
    ctl.scale_component_and_wait(&copy, SCALE_WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", hosts[0].log()));
    assert_eq!(
        registry.blob_gets("trellis/kv-counter"),
        pulled,
        "nothing pulled again"
    );
    assert!(
        hosts[0].log().contains("artifact cache hit"),
        "{}",
        hosts[0].log()
    );
}

async fn wait_for_increment(url: &str) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match increment(url).await {
            Ok(value) => return value,
            Err(err) if tokio::time::Instant::now() > deadline => panic!("{url}: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Scales `id` from `image` on `host` and returns the failure message.
async fn scale_refused(ctl: &CtlClient, host: &HostProcess, id: &str, image: &str) -> String {
    match ctl
        .scale_component_and_wait(&scale_command(host.id(), id, image, 1), SCALE_WAIT)
        .await
    {
        // The host answers the command with the failure, and also
        // publishes it as an event; either is the refusal.
        Err(ClientError::ScaleFailed { error, .. }) => error,
        Err(ClientError::Refused { message, .. }) => message,
        other => panic!("scaling {image} was not refused: {other:?}\n{}", host.log()),
    }
}

async fn provider_refused(ctl: &CtlClient, host: &HostProcess, id: &str, image: &str) -> String {
    let command = StartProviderCommand {
        provider_id: id.into(),
        provider_ref: image.into(),
        host_id: host.id().into(),
        ..Default::default()
    };
    match ctl.start_provider_and_wait(&command, SCALE_WAIT).await {
        Err(ClientError::ProviderStartFailed { error, .. }) => error,
        Err(other) => other.to_string(),
        Ok(()) => panic!("starting {image} was not refused\n{}", host.log()),
    }
}

async fn runs_nothing_but(ctl: &CtlClient, host: &HostProcess, components: &[&str]) {
    let inventory = ctl.get_inventory(host.id()).await.unwrap();
    let running: Vec<&str> = inventory.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(running, components, "{}", host.log());
    assert!(inventory.providers.is_empty(), "{:?}", inventory.providers);
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_failures_say_which_and_start_nothing() {
    let nats = NatsServer::start().unwrap();
    let registry = RegistryServer::start().unwrap();
    let lattice = unique_lattice("oci-refusals");
    let publisher = Signer::new().unwrap();
    let intruder = Signer::new().unwrap();
    // The host trusts both accounts, so what refuses the replaced tag is
    // the signer this host saw first, not its issuer policy.
    let host = registry_host(&nats, &lattice, &registry, &[&publisher, &intruder]);
    let ctl = client(&nats.url(), &lattice).await;
    let base = format!("oci://{}/acme", registry.address());

    // A tag re-pushed with content signed by someone else.
    let hello = format!("{base}/hello:1.0.0");
    push(
        &nats,
        &registry,
        &hello,
        &publisher.sign_example("http-hello").unwrap(),
    );
    ctl.scale_component_and_wait(&scale_command(host.id(), "hello", &hello, 1), SCALE_WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", host.log()));
    let new_digest = push(
        &nats,
        &registry,
        &hello,
        &intruder.sign_example("http-hello").unwrap(),
    );
    let error = scale_refused(&ctl, &host, "hello-again", &hello).await;
    assert!(
        error.contains("replaced by a differently signed artifact"),
        "{error}"
    );
    assert!(
        error.contains(&publisher.issuer()) && error.contains(&intruder.issuer()),
        "{error}"
    );
    assert!(error.contains(&new_digest), "{error}");

    // Content that does not hash to its digest: a component and a
    // provider executable, each damaged on the registry's disk.
    let damaged = format!("{base}/damaged:1.0.0");
    let wasm = publisher.sign_example("http-hello").unwrap();
    push(&nats, &registry, &damaged, &wasm);
    corrupt(&registry, &std::fs::read(&wasm).unwrap());
    let error = scale_refused(&ctl, &host, "damaged", &damaged).await;
    assert!(error.contains("digest mismatch"), "{error}");

    let damaged_provider = format!("{base}/damaged-kv:1.0.0");
    let executable = provider_binary(&publisher, "trellis-keyvalue-sqlite");
    push(&nats, &registry, &damaged_provider, &executable);
    corrupt(&registry, &std::fs::read(&executable).unwrap());
    let error = provider_refused(&ctl, &host, "damaged-kv", &damaged_provider).await;
    assert!(error.contains("digest mismatch"), "{error}");

    // A registry that is not there.
    let nowhere = format!("oci://127.0.0.1:{}/acme/hello:1.0.0", free_port().unwrap());
    let error = scale_refused(&ctl, &host, "nowhere", &nowhere).await;
    assert!(error.contains("cannot reach registry"), "{error}");
    let error = provider_refused(&ctl, &host, "nowhere-kv", &nowhere).await;
    assert!(error.contains("cannot reach registry"), "{error}");

    // `latest` moves under you; it needs --allow-latest.
    let latest = format!("{base}/hello:latest");
    let error = scale_refused(&ctl, &host, "latest", &latest).await;
    assert!(error.contains("--allow-latest"), "{error}");

    runs_nothing_but(&ctl, &host, &["hello"]).await;
}

/// Flips the last byte of the blob holding `content` in the registry's
/// storage, keeping its length, as a bad disk or a tampering mirror would.
fn corrupt(registry: &RegistryServer, content: &[u8]) {
    let digest = format!(
        "sha256:{}",
        trellis_claims::sha256_hex(content).to_ascii_lowercase()
    );
    let path = registry.blob_path(&digest);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn wash_pull_and_inspect_read_back_what_wash_push_wrote() {
    let nats = NatsServer::start().unwrap();
    let registry = RegistryServer::start().unwrap();
    let signer = Signer::new().unwrap();
    let address = registry.address();
    let flags = ["--allow-insecure-registry", address.as_str()];
    let provider = provider_binary(&signer, "trellis-keyvalue-sqlite");
    let provider_ref = format!("oci://{address}/acme/kv:2.0.0");
    let digest = push(&nats, &registry, &provider_ref, &provider);
    let component = signer.sign_example("http-hello").unwrap();
    let component_ref = format!("oci://{address}/acme/hello:2.0.0");
    push(&nats, &registry, &component_ref, &component);
    let wash_json = |args: &[&str]| -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(flags);
        all.extend(["-o", "json"]);
        serde_json::from_str(&wash_ok(&nats.url(), "unused", &all).unwrap()).unwrap()
    };

    let inspected = wash_json(&["claims", "inspect", &provider_ref]);
    assert_eq!(inspected["kind"], "provider");
    assert_eq!(inspected["issuer"], signer.issuer().as_str());
    assert_eq!(inspected["digest"], digest.as_str());
    let native = trellis_claims::native_target();
    assert_eq!(inspected["targets"], serde_json::json!([native]));
    let inspected = wash_json(&["claims", "inspect", &component_ref]);
    assert_eq!(inspected["kind"], "component");
    assert_eq!(inspected["name"], "http-hello");

    let dir = tempfile::tempdir().unwrap();
    let pulled = dir.path().join("kv");
    wash_json(&["pull", &provider_ref, "-O", pulled.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(&pulled).unwrap(),
        std::fs::read(&provider).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("kv.jwt"))
            .unwrap()
            .trim(),
        std::fs::read_to_string(trellis_claims::provider_claims_path(&provider))
            .unwrap()
            .trim()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pulled).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "the pulled provider is executable");
    }
    let pulled_wasm = dir.path().join("hello.wasm");
    wash_json(&["pull", &component_ref, "-O", pulled_wasm.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(&pulled_wasm).unwrap(),
        std::fs::read(&component).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_platform_provider_archive_serves_each_target_its_own_executable() {
    let registry = RegistryServer::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let address = registry.address();
    let native = trellis_claims::native_target();
    let built = trellis_test_support::workspace_binary(
        "trellis-keyvalue-sqlite",
        "trellis-keyvalue-sqlite",
    )
    .unwrap();
    let executable = home.path().join("trellis-keyvalue-sqlite");
    std::fs::copy(&built, &executable).unwrap();
    let arm = home.path().join("kv-arm64");
    std::fs::write(&arm, b"\x7fELF an aarch64 build").unwrap();
    let reference = format!("oci://{address}/acme/kv-multi:1.0.0");
    let extra = format!("aarch64-linux={}", arm.display());
    let wash_here = |args: &[&str]| {
        let output = std::process::Command::new(
            trellis_test_support::workspace_binary("wash", "wash").unwrap(),
        )
        .args(args)
        .args(["--allow-insecure-registry", &address])
        .env("TRELLIS_HOME", home.path())
        .current_dir(home.path())
        .output()
        .unwrap();
        assert!(
            output.status.success(),
            "wash {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let sign =
        std::process::Command::new(trellis_test_support::workspace_binary("wash", "wash").unwrap())
            .args([
                "claims",
                "sign-provider",
                executable.to_str().unwrap(),
                "--target",
                &extra,
            ])
            .env("TRELLIS_HOME", home.path())
            .output()
            .unwrap();
    assert!(
        sign.status.success(),
        "{}",
        String::from_utf8_lossy(&sign.stderr)
    );

    wash_here(&[
        "push",
        &reference,
        executable.to_str().unwrap(),
        "--target",
        &extra,
    ]);
    let inspected: serde_json::Value =
        serde_json::from_str(&wash_here(&["claims", "inspect", &reference, "-o", "json"])).unwrap();
    let mut targets: Vec<String> = serde_json::from_value(inspected["targets"].clone()).unwrap();
    targets.sort();
    let mut expected = vec!["aarch64-linux".to_owned(), native.clone()];
    expected.sort();
    assert_eq!(targets, expected);

    wash_here(&[
        "pull",
        &reference,
        "--target",
        "aarch64-linux",
        "-O",
        "arm-pulled",
    ]);
    assert_eq!(
        std::fs::read(home.path().join("arm-pulled")).unwrap(),
        std::fs::read(&arm).unwrap()
    );
    // Only the native executable came down for a native pull: one config
    // and one layer per pull.
    let before = registry.blob_gets("acme/kv-multi");
    wash_here(&["pull", &reference, "-O", "native-pulled"]);
    assert_eq!(registry.blob_gets("acme/kv-multi"), before + 2);
    assert_eq!(
        std::fs::read(home.path().join("native-pulled")).unwrap(),
        std::fs::read(&executable).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_credentials_come_from_the_environment() {
    let nats = NatsServer::start().unwrap();
    let registry = RegistryServer::start_with_login().unwrap();
    let lattice = unique_lattice("oci-login");
    let signer = Signer::new().unwrap();
    let address = registry.address();
    let reference = format!("oci://{address}/acme/hello:1.0.0");
    let component = signer.sign_example("http-hello").unwrap();
    let login = [
        ("TRELLIS_REGISTRY_USER", REGISTRY_USER),
        ("TRELLIS_REGISTRY_PASSWORD", REGISTRY_PASSWORD),
        ("TRELLIS_REGISTRY", address.as_str()),
    ];
    let wash_push = |env: &[(&str, &str)]| {
        std::process::Command::new(trellis_test_support::workspace_binary("wash", "wash").unwrap())
            .args(["push", &reference, component.to_str().unwrap()])
            .args(["--allow-insecure-registry", &address])
            .env_remove("TRELLIS_REGISTRY_USER")
            .env_remove("TRELLIS_REGISTRY_PASSWORD")
            .env("TRELLIS_REGISTRY_CONFIG", "/nonexistent/config.json")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let refused = wash_push(&[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("refused access") && stderr.contains("TRELLIS_REGISTRY_USER"),
        "{stderr}"
    );
    let pushed = wash_push(&login);
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    let flags = [
        "--allow-insecure-registry",
        address.as_str(),
        "--allowed-issuers",
    ];
    let issuer = signer.issuer();
    let args = [flags.as_slice(), &[issuer.as_str()]].concat();
    let no_env = [("TRELLIS_REGISTRY_CONFIG", "/nonexistent/config.json")];
    let anonymous = HostProcess::start_with_env(&nats.url(), &lattice, &args, &no_env).unwrap();
    let logged_in = HostProcess::start_with_env(
        &nats.url(),
        &lattice,
        &args,
        &[login.as_slice(), &no_env].concat(),
    )
    .unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    let error = scale_refused(&ctl, &anonymous, "hello", &reference).await;
    assert!(error.contains("refused access"), "{error}");
    ctl.scale_component_and_wait(
        &scale_command(logged_in.id(), "hello", &reference, 1),
        SCALE_WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logged_in.log()));
}
