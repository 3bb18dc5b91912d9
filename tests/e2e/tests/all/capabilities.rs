//! Capability providers as real processes: the kv-counter example behind
//! the http-server provider, stored through keyvalue-sqlite and then,
//! relinked without a restart, keyvalue-redis; a provider killed under
//! traffic; messaging-echo through messaging-nats; and bad link config
//! reported as failed health checks.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::future::join_all;
use trellis_e2e::app::{
    COUNTER, HTTP, LinkConfig, MESSAGING, REDIS, SQLITE, TestLattice, increment,
};
use trellis_e2e::unique_lattice;
use trellis_lattice::event::EventKind;
use trellis_test_support::{RedisServer, free_port};

use crate::common::{redis_get, wait_for_event};

/// Sends `n` requests at once; every one must succeed, and the values they
/// return must be distinct (no two requests saw the same increment).
async fn concurrent_increments(url: &str, n: usize) -> BTreeSet<u64> {
    let results = join_all((0..n).map(|_| increment(url))).await;
    let values: Vec<u64> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("a concurrent request failed: {e}")))
        .collect();
    let distinct: BTreeSet<u64> = values.iter().copied().collect();
    assert_eq!(distinct.len(), n, "two requests returned the same count");
    distinct
}

fn sqlite_count(path: &Path, key: &str) -> Option<String> {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for table in tables {
        let sql = format!("SELECT value FROM \"{table}\" WHERE bucket = ?1 AND key = ?2");
        if let Ok(mut statement) = db.prepare(&sql) {
            let value: Option<Vec<u8>> =
                statement.query_row(["default", key], |row| row.get(0)).ok();
            if let Some(value) = value {
                return Some(String::from_utf8_lossy(&value).into_owned());
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn counter_moves_from_sqlite_to_redis_by_relinking() {
    let lattice = TestLattice::start("counter").await.unwrap();
    let redis = RedisServer::start().unwrap();
    for provider in [SQLITE, REDIS, HTTP] {
        lattice.start_provider(provider).await.unwrap();
    }
    let db = lattice.dir.path().join("counter.sqlite3");
    lattice
        .config("counter-sqlite", &[("path", db.to_str().unwrap())])
        .await
        .unwrap();
    lattice
        .config("counter-redis", &[("url", &redis.url())])
        .await
        .unwrap();

    // Dev: SQLite. The first answer (polled for) was 1.
    let url = lattice
        .counter_app(SQLITE.0, "counter-sqlite", 64)
        .await
        .unwrap();
    assert_eq!(increment(&url).await.unwrap(), 2);
    let seen = concurrent_increments(&url, 200).await;
    assert_eq!(seen, (3..=202).collect());
    assert_eq!(sqlite_count(&db, "counter").as_deref(), Some("202"));

    // Prod: the same running component, relinked to Redis.
    lattice
        .link_counter_store(REDIS.0, "counter-redis")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let value = increment(&url).await.unwrap();
        // Until every host has seen the new link, SQLite may still answer.
        if value < 203 || Instant::now() > deadline {
            break value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(first, 1, "the relinked counter starts from Redis's count");
    assert_eq!(
        redis_get(&redis.url(), "default:counter").as_deref(),
        Some("1")
    );
    let seen = concurrent_increments(&url, 200).await;
    assert_eq!(seen, (2..=201).collect());
    assert_eq!(
        redis_get(&redis.url(), "default:counter").as_deref(),
        Some("201")
    );

    // The dev data stayed where it was written.
    let kept: u64 = sqlite_count(&db, "counter").unwrap().parse().unwrap();
    assert!(kept >= 202, "the SQLite count went from 202 to {kept}");
    let inventory = lattice.ctl.get_inventory(lattice.host.id()).await.unwrap();
    assert_eq!(
        inventory.components.len(),
        1,
        "the component was not restarted"
    );
}

/// The pids of `host`'s children whose command line mentions `name`.
fn child_pids(host_pid: u32, name: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The parent pid is the second field after the parenthesised name.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if ppid == Some(host_pid) && String::from_utf8_lossy(&cmdline).contains(name) {
            pids.push(pid);
        }
    }
    pids
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_keyvalue_provider_is_restarted_and_loses_no_acknowledged_increment() {
    let lattice = TestLattice::start("kill").await.unwrap();
    for provider in [SQLITE, HTTP] {
        lattice.start_provider(provider).await.unwrap();
    }
    let db = lattice.dir.path().join("counter.sqlite3");
    lattice
        .config("counter-sqlite", &[("path", db.to_str().unwrap())])
        .await
        .unwrap();
    let mut events = lattice.ctl.subscribe_events().await.unwrap();
    let url = lattice
        .counter_app(SQLITE.0, "counter-sqlite", 64)
        .await
        .unwrap();

    // Traffic from 8 clients while the provider is killed once.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut acked, mut failures) = (Vec::new(), Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match increment(&url).await {
                        Ok(value) => acked.push(value),
                        Err(e) => failures.push(e),
                    }
                }
                (acked, failures)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pids = child_pids(lattice.host.pid(), "trellis-keyvalue-sqlite");
    assert_eq!(pids.len(), 1, "one keyvalue-sqlite child: {pids:?}");
    trellis_e2e::kill_9(pids[0]).unwrap();
    wait_for_event(
        &mut events,
        EventKind::ProviderStopped,
        Duration::from_secs(10),
        |e| e["provider_id"] == SQLITE.0,
    )
    .await;
    wait_for_event(
        &mut events,
        EventKind::ProviderStarted,
        Duration::from_secs(30),
        |e| e["provider_id"] == SQLITE.0,
    )
    .await;
    // Traffic recovers: a request after the restart succeeds.
    lattice
        .wait_until_ok(&url, Duration::from_secs(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut acked = Vec::new();
    let mut failures = Vec::new();
    for client in clients {
        let (a, f) = client.await.unwrap();
        acked.extend(a);
        failures.extend(f);
    }
    let distinct: BTreeSet<u64> = acked.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        acked.len(),
        "an increment was acknowledged twice"
    );
    let stored: u64 = sqlite_count(&db, "counter").unwrap().parse().unwrap();
    let highest = *distinct.last().unwrap();
    // Every acknowledged value is in the store: the count is at least the
    // highest one acknowledged, and at least as many increments happened as
    // were acknowledged (a request cut off after its commit adds one more).
    assert!(
        stored >= highest,
        "stored {stored} < acknowledged {highest}"
    );
    assert!(stored >= acked.len() as u64);
    // Requests made while the provider is down fail at once, naming it;
    // requests in flight when it died wait out the HTTP timeout (504), or
    // the component's own deadline, whichever of the two 10 s clocks ends
    // first (500, saying so).
    assert!(
        failures
            .iter()
            .all(|f| (f.starts_with("500") && f.contains(SQLITE.0))
                || (f.starts_with("500") && f.contains("ran past its deadline"))
                || (f.starts_with("504") && f.contains("did not answer"))),
        "every failure says why: {failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn messaging_echo_answers_requests_through_messaging_nats() {
    echo_through_messaging_nats("messaging-echo", "trellis").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasmcloud_messaging_handler_receives_and_replies_unchanged() {
    echo_through_messaging_nats("wasmcloud-echo", "wasmcloud").await;
}

/// Runs the echo example `package`, links it both ways to messaging-nats
/// in `namespace`'s messaging package, and requests an echo over NATS.
async fn echo_through_messaging_nats(package: &str, namespace: &str) {
    let lattice = TestLattice::start("echo").await.unwrap();
    lattice.start_provider(MESSAGING).await.unwrap();
    lattice.start_component(package, "echo", 8).await.unwrap();
    let subject = format!("{}.echo", unique_lattice("subject"));
    lattice
        .config("echo-subscriptions", &[("subscriptions", &subject)])
        .await
        .unwrap();
    lattice
        .link(
            "echo",
            MESSAGING.0,
            (namespace, "messaging", &["consumer"]),
            LinkConfig::None,
        )
        .await
        .unwrap();
    lattice
        .link(
            MESSAGING.0,
            "echo",
            (namespace, "messaging", &["handler"]),
            LinkConfig::Source("echo-subscriptions"),
        )
        .await
        .unwrap();
    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = tokio::time::timeout(
            Duration::from_secs(2),
            nats.request(subject.clone(), "hello lattice".into()),
        )
        .await;
        match reply {
            Ok(Ok(message)) => {
                assert_eq!(&message.payload[..], b"hello lattice");
                break;
            }
            _ if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!(
                "no echo on {subject}: {other:?}\nhost log:\n{}",
                lattice.host.log()
            ),
        }
    }
}

/// Puts config `name` with one `key=value` and a link that uses it, and
/// returns the message of the `health_check_failed` event `provider` sends.
async fn failed_link(
    lattice: &TestLattice,
    events: &mut (impl futures::Stream<Item = trellis_lattice::CloudEvent> + Unpin),
    (name, key, value): (&str, &str, &str),
    (source, target, wit): (&str, &str, (&str, &str, &[&str])),
    config: LinkConfig<'_>,
    provider: &str,
) -> String {
    lattice.config(name, &[(key, value)]).await.unwrap();
    lattice.link(source, target, wit, config).await.unwrap();
    let event = wait_for_event(
        events,
        EventKind::HealthCheckFailed,
        Duration::from_secs(30),
        |e| e["provider_id"] == provider,
    )
    .await;
    event["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_link_config_fails_health_checks_and_names_the_problem() {
    let lattice = TestLattice::start("badlink").await.unwrap();
    for provider in [SQLITE, REDIS, HTTP] {
        lattice.start_provider(provider).await.unwrap();
    }
    lattice
        .start_component("kv-counter", COUNTER, 4)
        .await
        .unwrap();
    let mut events = lattice.ctl.subscribe_events().await.unwrap();

    let closed = format!("redis://127.0.0.1:{}/", free_port().unwrap());
    let message = failed_link(
        &lattice,
        &mut events,
        ("bad-redis", "url", &closed),
        (COUNTER, REDIS.0, ("wasi", "keyvalue", &["store"])),
        LinkConfig::Target("bad-redis"),
        REDIS.0,
    )
    .await;
    assert!(message.contains(&closed), "{message}");

    let message = failed_link(
        &lattice,
        &mut events,
        ("bad-sqlite", "path", "/proc/trellis-nope/counter.sqlite3"),
        (COUNTER, SQLITE.0, ("wasi", "keyvalue", &["atomics"])),
        LinkConfig::Target("bad-sqlite"),
        SQLITE.0,
    )
    .await;
    assert!(message.contains("/proc/trellis-nope"), "{message}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let message = failed_link(
        &lattice,
        &mut events,
        ("bad-http", "address", &address),
        (HTTP.0, COUNTER, ("wasi", "http", &["incoming-handler"])),
        LinkConfig::Source("bad-http"),
        HTTP.0,
    )
    .await;
    assert!(message.contains(&address), "{message}");

    // The host and every provider keep running.
    assert_eq!(lattice.ctl.ping_hosts().await.unwrap().len(), 1);
    let inventory = lattice.ctl.get_inventory(lattice.host.id()).await.unwrap();
    let running: BTreeSet<&str> = inventory.providers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(running, BTreeSet::from([SQLITE.0, REDIS.0, HTTP.0]));
}

/// Runs the blob-files example linked to the blobstore provider `store`
/// (with target config `pairs`), puts a body of `size` bytes, and checks
/// that it comes back byte for byte, is listed, and can be deleted.
/// Returns the lattice, so a caller can look at the store behind it.
async fn blob_round_trip(
    store: trellis_e2e::app::ProviderKind,
    pairs: &[(&str, &str)],
    size: usize,
) -> trellis_e2e::app::TestLattice {
    let lattice = TestLattice::start("blobs").await.unwrap();
    lattice.start_provider(HTTP).await.unwrap();
    lattice.start_provider(store).await.unwrap();
    lattice
        .start_component("blob-files", "blob-files", 4)
        .await
        .unwrap();
    lattice.config("blob-store", pairs).await.unwrap();
    lattice
        .link(
            "blob-files",
            store.0,
            ("wasi", "blobstore", &["blobstore", "container"]),
            LinkConfig::Target("blob-store"),
        )
        .await
        .unwrap();
    let address = format!("127.0.0.1:{}", trellis_test_support::free_port().unwrap());
    lattice
        .config("blob-http", &[("address", &address)])
        .await
        .unwrap();
    lattice
        .link(
            HTTP.0,
            "blob-files",
            ("wasi", "http", &["incoming-handler"]),
            LinkConfig::Source("blob-http"),
        )
        .await
        .unwrap();
    let base = format!("http://{address}");
    lattice
        .wait_until_ok(&format!("{base}/"), Duration::from_secs(60))
        .await
        .unwrap();
    // Not a repeating pattern, so a misplaced chunk cannot go unnoticed.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let body: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let client = reqwest::Client::new();
    let url = format!("{base}/big.bin");
    let put = client.put(&url).body(body.clone()).send().await.unwrap();
    let status = put.status();
    let text = put.text().await.unwrap();
    assert_eq!(status, 200, "{text}\nhost log:\n{}", lattice.host.log());
    assert_eq!(text, format!("stored big.bin: {size} bytes\n"));
    let got = client.get(&url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    let got = got.bytes().await.unwrap();
    assert_eq!(got.len(), body.len());
    assert!(
        got.as_ref() == body.as_slice(),
        "the object came back changed"
    );
    let (status, listing) = trellis_e2e::app::get(&format!("{base}/")).await.unwrap();
    assert_eq!((status, listing.as_str()), (200, "big.bin\n"));
    let deleted = client.delete(&url).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    let gone = client.get(&url).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    // Put it back, for the caller to find in the store.
    let again = client.put(&url).body(body).send().await.unwrap();
    assert_eq!(again.status(), 200);
    lattice
}

/// Over 10 MiB each way: more than ten times the NATS payload limit, so
/// both the put and the get cross the lattice in chunks.
const BIG_BLOB: usize = 12 * 1024 * 1024 + 3;

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_over_10_mib_round_trips_through_blobstore_fs_into_a_plain_file() {
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().to_str().unwrap().to_owned();
    let _lattice = blob_round_trip(
        trellis_e2e::app::BLOB_FS,
        &[("root", root_path.as_str())],
        BIG_BLOB,
    )
    .await;
    // The object is a file an operator can read.
    let file = root.path().join("files").join("big.bin");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), BIG_BLOB as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_over_10_mib_round_trips_through_blobstore_nats_into_a_jetstream_object_store() {
    // The store's own NATS, apart from the lattice's, as in production.
    let store = trellis_test_support::NatsServer::start().unwrap();
    let url = store.url();
    let _lattice = blob_round_trip(
        trellis_e2e::app::BLOB_NATS,
        &[("url", url.as_str()), ("bucket_prefix", "e2e_")],
        BIG_BLOB,
    )
    .await;
    // The object is in the bucket, whole, for any NATS client to read.
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let bucket = js.get_object_store("e2e_files").await.unwrap();
    let info = bucket.info("big.bin").await.unwrap();
    assert_eq!(info.size, BIG_BLOB);
}
