//! Hostile control-plane input: what one command names must never wedge a
//! host or hold up the commands of others.

use std::time::{Duration, Instant};

use trellis_e2e::app::{HTTP, LinkConfig, TestLattice, get};
use trellis_e2e::{HostProcess, Signer, file_url, unique_lattice, wash_at};
use trellis_test_support::NatsServer;

use crate::common::{client, scale_command};

#[tokio::test(flavor = "multi_thread")]
async fn fifo_device_and_oversized_images_are_refused_at_once() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("images");
    let host = HostProcess::start(&nats.url(), &lattice, &["--max-artifact-mib", "1"]).unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.wasm");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // Sparse: two MiB long, no space used.
    let big = dir.path().join("big.wasm");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(2 * 1024 * 1024)
        .unwrap();
    for (image, why) in [
        (fifo.display().to_string(), "is a FIFO"),
        ("/dev/zero".to_owned(), "is a character device"),
        (big.display().to_string(), "--max-artifact-mib"),
    ] {
        let started = Instant::now();
        let err = ctl
            .scale_component(&scale_command(
                host.id(),
                "bomb",
                &file_url(image.as_ref()),
                1,
            ))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{image}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{image} took {:?}",
            started.elapsed()
        );
    }
    // The host is as it was.
    let hosts = ctl.ping_hosts().await.unwrap();
    assert!(hosts.iter().any(|h| h.id == host.id()), "{hosts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_that_stalls_holds_up_no_other_command() {
    // A "registry" that accepts connections and never answers.
    let stall = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let registry = format!("127.0.0.1:{}", stall.local_addr().unwrap().port());
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("stall");
    let host = HostProcess::start(
        &nats.url(),
        &lattice,
        &["--allow-insecure-registry", &registry],
    )
    .unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    let stalled = {
        let ctl = ctl.clone();
        let command = scale_command(host.id(), "stalled", &format!("{registry}/slow:1.0"), 1);
        tokio::spawn(async move { ctl.scale_component(&command).await })
    };
    // Give the stalled scale time to be under way.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let signer = Signer::new().unwrap();
    let image = file_url(&signer.sign_example("http-hello").unwrap());
    let started = Instant::now();
    ctl.scale_component(&scale_command(host.id(), "hello", &image, 1))
        .await
        .unwrap_or_else(|e| panic!("{e}\nhost log:\n{}", host.log()));
    let inventory = ctl.get_inventory(host.id()).await.unwrap();
    assert!(
        inventory.components.iter().any(|c| c.id == "hello"),
        "{inventory:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "other commands waited {:?} behind the stalled fetch",
        started.elapsed()
    );
    assert!(!stalled.is_finished(), "the stalled fetch ended on its own");
    stalled.abort();
    drop(stall);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_label_bomb_is_refused_and_the_host_stays_listed() {
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("labels");
    let host = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    let bomb = "x".repeat(600 * 1024);
    for (key, value, why) in [
        ("big", bomb.as_str(), "values are at most 1024 bytes"),
        ("", "x", "must not be empty"),
        ("has space", "x", "may not contain spaces"),
    ] {
        let err = ctl
            .put_label(host.id(), key, value)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{key}: {err}");
    }
    for i in 0..64 {
        ctl.put_label(host.id(), &format!("k{i}"), &"v".repeat(1024))
            .await
            .unwrap();
    }
    let err = ctl
        .put_label(host.id(), "one-too-many", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 64 labels"), "{err}");
    // Replacing an existing label is not adding one.
    ctl.put_label(host.id(), "k0", "new").await.unwrap();
    // At the limits the host is still listed, in a table and in JSON.
    let text = trellis_e2e::wash_ok(&nats.url(), &lattice, &["get", "hosts"]).unwrap();
    assert!(text.contains(host.id()), "{text}");
    let json =
        trellis_e2e::wash_ok(&nats.url(), &lattice, &["get", "hosts", "-o", "json"]).unwrap();
    let hosts: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(hosts[0]["labels"]["k0"], "new");
}

#[tokio::test(flavor = "multi_thread")]
async fn annotation_config_and_link_bombs_are_refused_and_the_host_stays_listed() {
    use std::collections::BTreeMap;
    use trellis_lattice::Link;
    let nats = NatsServer::start().unwrap();
    let lattice = unique_lattice("bombs");
    let host = HostProcess::start(&nats.url(), &lattice, &[]).unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    let bomb = "x".repeat(600 * 1024);

    let mut scale = scale_command(host.id(), "bomb", "file:///nowhere.wasm", 1);
    scale.annotations = Some([("app".to_owned(), bomb.clone())].into());
    let err = ctl.scale_component(&scale).await.unwrap_err().to_string();
    assert!(err.contains("--max-annotation-bytes"), "{err}");

    let config: BTreeMap<String, String> = [("blob".to_owned(), bomb.clone())].into();
    let err = ctl
        .put_config("big", &config)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--max-config-value-bytes"), "{err}");
    assert!(
        ctl.get_config("big").await.unwrap().is_none(),
        "nothing stored"
    );

    let link = Link {
        source_id: "a".into(),
        target: "b".into(),
        name: "x".repeat(100 * 1024),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into()],
        source_config: Vec::new(),
        target_config: Vec::new(),
    };
    let err = ctl.put_link(&link).await.unwrap_err().to_string();
    assert!(err.contains("--max-field-bytes"), "{err}");
    assert!(ctl.get_links().await.unwrap().is_empty(), "no link stored");

    // The host is still listed, and answers its inventory.
    let hosts = ctl.ping_hosts().await.unwrap();
    assert!(hosts.iter().any(|h| h.id == host.id()), "{hosts:?}");
    assert!(ctl.get_inventory(host.id()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_and_inventories_over_the_max_payload_still_arrive_whole() {
    use futures::StreamExt;
    use trellis_lattice::LatticeEvent;
    // Four components with 24 annotations of 1000 bytes each make an
    // inventory and a heartbeat of some 100 KB: over a server whose max
    // payload is 64 KiB.
    let nats = NatsServer::start_with_max_payload(65536).unwrap();
    let lattice = unique_lattice("bigbeat");
    let signer = Signer::new().unwrap();
    let issuer = signer.issuer();
    let host = HostProcess::start(
        &nats.url(),
        &lattice,
        &["--heartbeat-secs", "1", "--allowed-issuers", &issuer],
    )
    .unwrap();
    let ctl = client(&nats.url(), &lattice).await;
    let image = file_url(&signer.sign_example("http-hello").unwrap());
    for i in 0..4 {
        let mut scale = scale_command(host.id(), &format!("hello-{i}"), &image, 1);
        scale.annotations = Some(
            (0..24)
                .map(|k| (format!("note-{k}"), "a".repeat(1000)))
                .collect(),
        );
        ctl.scale_component(&scale).await.unwrap();
    }
    let inventory = ctl.get_inventory(host.id()).await.unwrap();
    assert_eq!(inventory.components.len(), 4);
    let annotations = |c: &trellis_lattice::ctl::ComponentDescription| {
        c.annotations.as_ref().map_or(0, |a| a.len())
    };
    assert!(inventory.components.iter().all(|c| annotations(c) == 24));
    let mut events = ctl.subscribe_events().await.unwrap();
    let beat = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            if let Ok(LatticeEvent::HostHeartbeat(beat)) = event.parse()
                && beat.components.len() == 4
            {
                return beat;
            }
        }
        panic!("the event stream ended");
    })
    .await
    .expect("a whole heartbeat within 10 s");
    assert!(beat.components.iter().all(|c| annotations(c) == 24));
    let text = trellis_e2e::wash_ok(&nats.url(), &lattice, &["get", "inventory"]).unwrap();
    assert!(text.contains("hello-3"), "{text}");
    assert!(!host.log().contains("Maximum Payload"), "{}", host.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn wash_down_stops_the_node_even_when_nats_is_gone() {
    let home = tempfile::tempdir().unwrap();
    let url = format!(
        "nats://127.0.0.1:{}",
        trellis_test_support::free_port().unwrap()
    );
    let (ok, text) = wash_at(home.path(), &["up", "--detach", "--nats-url", &url]);
    assert!(ok, "{text}");
    let pid = |name: &str| -> u32 {
        std::fs::read_to_string(home.path().join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (node, nats) = (pid("wash-up.pid"), pid("nats-server.pid"));
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &nats.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let (ok, text) = wash_at(home.path(), &["down", "--grace-secs", "10"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("stopped the node") || text.contains("was killed"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "wash down took {:?}",
        started.elapsed()
    );
    // Gone, or a zombie its (departed) parent left unreaped.
    let state = std::fs::read_to_string(format!("/proc/{node}/stat")).unwrap_or_default();
    let running = state
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .is_some_and(|s| s != "Z");
    assert!(!running, "the node (pid {node}) is still running: {state}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_flooding_its_output_gets_a_bounded_share_of_the_host_log() {
    let lattice = TestLattice::start_with(
        "flood",
        &["--guest-log-burst", "20", "--guest-log-lines-per-sec", "5"],
    )
    .await
    .unwrap();
    let address = hello_app(&lattice).await;
    let url = format!("http://{address}/?log=10000&stderr=10000");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(get(&url).await, Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "no answer\n{}",
            lattice.host.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    for _ in 0..4 {
        let (status, body) = get(&url).await.unwrap();
        assert_eq!((status, body.as_str()), (200, "Hello from Trellis\n"));
    }
    // Let the budget refill, so the next line reports the drops.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    get(&format!("http://{address}/?stderr=1")).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64() + 30.0;
    let log = lattice.host.log();
    let logged = log.matches("http-hello log line").count();
    let lines = logged + log.matches("http-hello stderr line").count();
    // 100 000 lines written; the burst plus the rate over the whole test.
    assert!(lines >= 20, "{lines} lines logged");
    assert!(
        (lines as f64) <= 20.0 + 5.0 * elapsed,
        "{lines} lines logged in {elapsed:.0} s"
    );
    assert!(log.contains("dropped lines of guest output"), "{log}");
    assert!(log.contains("component=hello"), "{log}");
    // Both ways out arrive: wasi:logging with its context, and stderr.
    assert!(logged > 0, "{log}");
    assert!(
        log.lines().any(|line| line.contains("http-hello log line")
            && line.contains("context")
            && line.contains("\"http-hello\"")),
        "{log}"
    );
    assert!(log.contains("http-hello stderr line"), "{log}");
}

/// The counter app on SQLite behind http-server, with `max` instances, on
/// a fresh lattice; returns it with the counter's URL.
async fn sqlite_counter(prefix: &str, max: u32) -> (TestLattice, String) {
    use trellis_e2e::app::SQLITE;
    let lattice = TestLattice::start(prefix).await.unwrap();
    for provider in [SQLITE, HTTP] {
        lattice.start_provider(provider).await.unwrap();
    }
    let db = lattice.dir.path().join("counter.sqlite3");
    lattice
        .config("counter-kv", &[("path", db.to_str().unwrap())])
        .await
        .unwrap();
    let url = lattice
        .counter_app(SQLITE.0, "counter-kv", max)
        .await
        .unwrap();
    (lattice, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_whose_config_outgrows_one_message_still_reaches_its_provider() {
    use trellis_e2e::app::{COUNTER, SQLITE, increment};
    let (lattice, url) = sqlite_counter("bigcfg", 1).await;
    let before = increment(&url).await.unwrap();
    // Three configs of 600 KB each: the link put that carries them to the
    // provider is some 1.8 MB, over the server's 1 MiB max payload.
    let mut target_config = vec!["counter-kv".to_owned()];
    for i in 0..3 {
        let name = format!("bulk-{i}");
        let value = "b".repeat(60 * 1024);
        let pairs: Vec<(String, &str)> =
            (0..10).map(|k| (format!("k{k}"), value.as_str())).collect();
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        lattice.config(&name, &pairs).await.unwrap();
        target_config.push(name);
    }
    let link = trellis_lattice::Link {
        source_id: COUNTER.into(),
        target: SQLITE.0.into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into(), "atomics".into()],
        source_config: Vec::new(),
        target_config,
    };
    lattice.ctl.put_link(&link).await.unwrap();
    // The provider applied it, and the counter goes on from where it was.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lattice.host.log().matches("link applied").count() < 3 {
        assert!(Instant::now() < deadline, "{}", lattice.host.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(increment(&url).await.unwrap(), before + 1);
    let log = lattice.host.log();
    assert!(!log.contains("Maximum Payload"), "{log}");
    assert!(!log.contains("cannot send a link"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nats_down_a_caller_hears_the_lattice_is_unreachable() {
    let (mut lattice, url) = sqlite_counter("unreachable", 2).await;
    lattice.nats.kill();
    // The http-server provider is still listening; its calls go nowhere.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        let (status, body) = get(&url).await.unwrap();
        if body.contains("unreachable") || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the lattice is unreachable"), "{body}");
    assert!(!body.contains("start it"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn while_a_provider_restarts_its_callers_hear_that_it_is_restarting() {
    let (lattice, url) = sqlite_counter("restarting", 4).await;
    let pgrep = std::process::Command::new("pgrep")
        .args([
            "-P",
            &lattice.host.pid().to_string(),
            "-f",
            "trellis-keyvalue-sqlite",
        ])
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8_lossy(&pgrep.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("the keyvalue-sqlite process");
    trellis_e2e::kill_9(pid).unwrap();
    // Until the relaunched process has its links, requests fail; one of
    // them must say why, and none may send the reader to `wash link put`.
    // Requests go out every 20 ms without waiting for each other: one that
    // was in flight to the killed process only times out, and must not
    // hold the others back past the restart.
    let mut requests = Vec::new();
    for _ in 0..150 {
        let url = url.clone();
        requests.push(tokio::spawn(async move { get(&url).await }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut failures = Vec::new();
    for request in requests {
        match request.await.unwrap() {
            Ok((200, _)) => {}
            Ok((_, body)) => failures.push(body),
            Err(err) => failures.push(err.to_string()),
        }
    }
    let recovered = matches!(get(&url).await, Ok((200, _)));
    assert!(recovered, "{failures:#?}\n{}", lattice.host.log());
    assert!(
        failures.iter().any(|f| f.contains("is restarting")),
        "{failures:#?}"
    );
    assert!(
        failures.iter().all(|f| !f.contains("wash link put")),
        "{failures:#?}"
    );
}

/// http-server on a fresh address → http-hello as `hello` (two
/// instances); returns the address once it answers.
async fn hello_app(lattice: &TestLattice) -> String {
    lattice.start_provider(HTTP).await.unwrap();
    let address = format!("127.0.0.1:{}", trellis_test_support::free_port().unwrap());
    lattice
        .config("hello-http", &[("address", &address)])
        .await
        .unwrap();
    lattice
        .link(
            HTTP.0,
            "hello",
            ("wasi", "http", &["incoming-handler"]),
            LinkConfig::Source("hello-http"),
        )
        .await
        .unwrap();
    lattice
        .start_component("http-hello", "hello", 2)
        .await
        .unwrap();
    lattice
        .wait_until_ok(&format!("http://{address}/"), Duration::from_secs(30))
        .await
        .unwrap();
    address
}

/// The most memory process `pid` has held so far, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        / 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn a_50_mib_upload_reaches_a_component_whole_and_a_larger_one_gets_413() {
    use sha2::{Digest, Sha256};
    let lattice = TestLattice::start_with("upload", &["--max-body-mib", "64"])
        .await
        .unwrap();
    let address = hello_app(&lattice).await;
    let len = 50 * 1024 * 1024;
    let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let digest: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let http = reqwest::Client::new();
    let before = peak_rss_mib(lattice.host.pid());
    let started = Instant::now();
    let response = http
        .post(format!("http://{address}/?sha256"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        (status, text.as_str()),
        (200, format!("{digest}  {len}\n").as_str()),
        "host log:\n{}",
        lattice.host.log()
    );
    let peak = peak_rss_mib(lattice.host.pid());
    eprintln!(
        "a 50 MiB upload took {elapsed:?}; host peak RSS {before} MiB before, {peak} MiB after"
    );
    // The body streamed through: the host never held it whole.
    assert!(
        peak < before + 30,
        "the host went from {before} to {peak} MiB"
    );

    // Declaring one byte over the limit is enough: the answer comes before
    // the body (which is why none is sent; a client still writing it could
    // find the connection closed under it).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /?sha256 HTTP/1.1\r\nhost: {address}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        64 * 1024 * 1024 + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("--max-body-mib"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_returning_1_gb_is_stopped_at_the_limit_and_its_host_stays_small() {
    let lattice = TestLattice::start_with("gigabyte", &["--max-body-mib", "64"])
        .await
        .unwrap();
    let address = hello_app(&lattice).await;
    let started = Instant::now();
    // The body streams: its head is out before the guest passes the limit,
    // so the response is cut short there, and the reason logged.
    let mut response = reqwest::get(format!("http://{address}/?bytes=1073741824"))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut received = 0usize;
    let ended = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => break "complete",
            Err(_) => break "cut short",
        }
    };
    assert_eq!(ended, "cut short", "after {received} bytes");
    assert!(received <= 64 * 1024 * 1024, "{received} bytes got through");
    // The provider's log reaches the host's a moment later.
    let named = |log: &str| {
        log.lines()
            .any(|l| l.contains("67108864-byte limit") && l.contains("--max-body-mib"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !named(&lattice.host.log()) {
        assert!(Instant::now() < deadline, "{}", lattice.host.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let peak = peak_rss_mib(lattice.host.pid());
    eprintln!(
        "a 1 GB response was cut off after {:?}; host peak RSS {peak} MiB",
        started.elapsed()
    );
    assert!(peak < 160, "the host held {peak} MiB");
    // A body within the limit still crosses whole.
    let (status, text) = get(&format!("http://{address}/?bytes=3000000"))
        .await
        .unwrap();
    assert_eq!((status, text.len()), (200, 3_000_000));
}
