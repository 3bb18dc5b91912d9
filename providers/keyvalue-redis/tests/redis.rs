//! The Redis provider against a private `redis-server`: every function of
//! the contract, the key layout operators rely on, atomic counters,
//! failures while Redis is unreachable, and the binary serving NATS.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use trellis_keyvalue_redis::{RedisBackend, RedisStore, SCAN_PAGE_SIZE};
use trellis_lattice::keyvalue::{KeyResponse, KvError, KvRequest, KvResponse};
use trellis_provider_sdk::ProviderLink;
use trellis_provider_sdk::keyvalue::{KvBackend, KvStore};
use trellis_provider_sdk::testing::keyvalue::{get, increment, increment_through_both, set};
use trellis_provider_sdk::testing::{ProviderProcess, TestLattice, call_headers};
use trellis_test_support::{RedisServer, free_port};

fn link(source_id: &str, config: &[(&str, &str)]) -> ProviderLink {
    let interfaces = ["store", "atomics", "batch"];
    trellis_provider_sdk::testing::keyvalue::link(source_id, "kv-redis", &interfaces, config)
}

/// A plain client, to look at Redis the way an operator would.
async fn raw(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_store_function_works_against_a_real_redis() {
    let redis = RedisServer::start().unwrap();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let done = Ok(KvResponse::Done);

    assert_eq!(
        store.handle(get("b", "k")).await,
        Ok(KvResponse::Value(None))
    );
    assert_eq!(store.handle(set("b", "k", &[0, 255, 7])).await, done);
    assert_eq!(
        store.handle(get("b", "k")).await,
        Ok(KvResponse::Value(Some(vec![0, 255, 7])))
    );
    assert_eq!(
        store.handle(get("other", "k")).await,
        Ok(KvResponse::Value(None))
    );
    let exists = |key: &str| KvRequest::Exists {
        bucket: "b".into(),
        key: key.into(),
    };
    assert_eq!(
        store.handle(exists("k")).await,
        Ok(KvResponse::Exists(true))
    );
    assert_eq!(
        store.handle(exists("nope")).await,
        Ok(KvResponse::Exists(false))
    );
    let delete = KvRequest::Delete {
        bucket: "b".into(),
        key: "k".into(),
    };
    assert_eq!(store.handle(delete.clone()).await, done);
    assert_eq!(
        store.handle(exists("k")).await,
        Ok(KvResponse::Exists(false))
    );
    assert_eq!(store.handle(delete).await, done);

    let set_many = KvRequest::SetMany {
        bucket: "b".into(),
        entries: vec![("x".into(), b"1".to_vec()), ("y".into(), b"2".to_vec())],
    };
    assert_eq!(store.handle(set_many).await, done);
    let get_many = KvRequest::GetMany {
        bucket: "b".into(),
        keys: vec!["y".into(), "missing".into(), "x".into()],
    };
    assert_eq!(
        store.handle(get_many.clone()).await,
        Ok(KvResponse::Many(vec![
            Some(("y".into(), b"2".to_vec())),
            None,
            Some(("x".into(), b"1".to_vec())),
        ]))
    );
    let delete_many = KvRequest::DeleteMany {
        bucket: "b".into(),
        keys: vec!["x".into(), "missing".into()],
    };
    assert_eq!(store.handle(delete_many).await, done);
    assert_eq!(
        store.handle(get_many).await,
        Ok(KvResponse::Many(vec![
            Some(("y".into(), b"2".to_vec())),
            None,
            None
        ]))
    );
    // Empty batches are no-ops, not Redis syntax errors.
    let empty = KvRequest::GetMany {
        bucket: "b".into(),
        keys: vec![],
    };
    assert_eq!(store.handle(empty).await, Ok(KvResponse::Many(vec![])));
    let empty = KvRequest::SetMany {
        bucket: "b".into(),
        entries: vec![],
    };
    assert_eq!(store.handle(empty).await, done);
    let empty = KvRequest::DeleteMany {
        bucket: "b".into(),
        keys: vec![],
    };
    assert_eq!(store.handle(empty).await, done);

    assert_eq!(
        store.handle(increment("default", "n", 5)).await,
        Ok(KvResponse::Counter(5))
    );
    assert_eq!(
        store.handle(increment("default", "n", 2)).await,
        Ok(KvResponse::Counter(7))
    );
    assert!(store.check().await.is_ok());
}

#[tokio::test]
async fn data_is_kept_under_bucket_colon_key_for_operators() {
    let redis = RedisServer::start().unwrap();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    store
        .handle(set("default", "greeting", b"hello"))
        .await
        .unwrap();
    store
        .handle(increment("default", "hits", 41))
        .await
        .unwrap();

    let mut raw = raw(&redis).await;
    let greeting: Vec<u8> = redis::cmd("GET")
        .arg("default:greeting")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(greeting, b"hello");
    let hits: String = redis::cmd("GET")
        .arg("default:hits")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(hits, "41");
    // And what an operator writes, a component reads.
    redis::cmd("SET")
        .arg("default:set-by-hand")
        .arg("7")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        store.handle(increment("default", "set-by-hand", 1)).await,
        Ok(KvResponse::Counter(8))
    );
}

#[tokio::test]
async fn list_keys_walks_the_bucket_with_scan_and_strips_the_prefix() {
    let redis = RedisServer::start().unwrap();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let total = SCAN_PAGE_SIZE as usize * 2 + 500;
    let entries = (0..total).map(|i| (format!("key-{i}"), vec![1])).collect();
    let set_many = KvRequest::SetMany {
        bucket: "b*".into(),
        entries,
    };
    store.handle(set_many).await.unwrap();
    // Neighbours the pattern must not pick up, glob characters included.
    store.handle(set("bx", "other", b"1")).await.unwrap();
    store.handle(set("b", "plain", b"1")).await.unwrap();

    let mut all = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let request = KvRequest::ListKeys {
            bucket: "b*".into(),
            cursor,
        };
        let Ok(KvResponse::Keys(KeyResponse { keys, cursor: next })) = store.handle(request).await
        else {
            panic!("list-keys failed");
        };
        pages += 1;
        all.extend(keys);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 1000, "SCAN did not finish");
    }
    assert!(pages > 1);
    all.sort();
    all.dedup();
    let mut expected: Vec<String> = (0..total).map(|i| format!("key-{i}")).collect();
    expected.sort();
    assert_eq!(all, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_increments_from_two_connections_count_exactly_two_hundred() {
    let redis = RedisServer::start().unwrap();
    let first = RedisStore::connect(&redis.url()).await.unwrap();
    let second = RedisStore::connect(&redis.url()).await.unwrap();
    let seen = increment_through_both(&first, &second, "hits", 200).await;
    assert_eq!(seen, (1..=200).collect::<Vec<u64>>());
    assert_eq!(
        first.handle(get("default", "hits")).await,
        Ok(KvResponse::Value(Some(b"200".to_vec())))
    );
}

#[tokio::test]
async fn incrementing_a_value_that_is_not_a_number_is_a_store_error() {
    let redis = RedisServer::start().unwrap();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    store
        .handle(set("default", "name", b"alice"))
        .await
        .unwrap();
    let err = store
        .handle(increment("default", "name", 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an unsigned decimal"), "{err}");
    assert!(err.to_string().contains("`name`"), "{err}");
    let err = store
        .handle(increment("default", "n", u64::MAX))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
}

#[tokio::test]
async fn an_unreachable_url_fails_open_naming_it_without_its_password() {
    let port = free_port().unwrap();
    let url = format!("redis://user:s3cret@127.0.0.1:{port}/");
    let started = Instant::now();
    let err = RedisBackend
        .open(&link("counter", &[("url", &url)]))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.contains(&format!("redis://user:***@127.0.0.1:{port}/")),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    assert!(err.contains("`url`"), "{err}");

    let err = RedisBackend
        .open(&link("counter", &[("url", "http://not-redis/")]))
        .await
        .unwrap_err();
    assert!(err.contains("not a Redis URL"), "{err}");
}

#[tokio::test]
async fn a_link_without_url_is_refused_and_the_wasmcloud_spelling_is_accepted() {
    let err = RedisBackend.open(&link("counter", &[])).await.unwrap_err();
    assert!(err.contains("`counter`"), "{err}");
    assert!(err.contains("`url`"), "{err}");

    let redis = RedisServer::start().unwrap();
    let store = RedisBackend
        .open(&link("counter", &[("URL", &redis.url())]))
        .await
        .unwrap();
    assert_eq!(store.url(), redis.url());
}

#[tokio::test]
async fn a_dropped_connection_is_re_established() {
    let redis = RedisServer::start().unwrap();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    store.handle(set("b", "k", b"v")).await.unwrap();
    // What a Redis restart or a failover does to clients.
    let mut raw = raw(&redis).await;
    redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if store.handle(get("b", "k")).await == Ok(KvResponse::Value(Some(b"v".to_vec()))) {
            break;
        }
        assert!(Instant::now() < deadline, "the store did not reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.check().await.is_ok());
}

#[tokio::test]
async fn while_redis_is_down_requests_and_health_fail_naming_the_server() {
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let store = RedisStore::connect(&url).await.unwrap();
    assert!(store.check().await.is_ok());
    drop(redis);

    let started = Instant::now();
    let reason = store.check().await.unwrap_err();
    assert!(reason.contains(&url), "{reason}");
    let err = store.handle(get("b", "k")).await.unwrap_err();
    let KvError::Other(message) = err else {
        panic!("expected a store error, got {err:?}");
    };
    assert!(message.contains(&url), "{message}");
    // Well inside the lattice's default call timeout of 2 s per request.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_binary_serves_links_calls_and_health_and_exits_when_stdin_closes() {
    let lattice = TestLattice::start("redis-bin").await;
    let redis = RedisServer::start().unwrap();
    let host_data = lattice.host_data("kv-redis", "NHOSTTEST");
    let process = ProviderProcess::spawn(env!("CARGO_BIN_EXE_trellis-keyvalue-redis"), &host_data);

    let provider = lattice.provider("kv-redis");
    let reply = provider.wait_until_answering(Duration::from_secs(20)).await;
    assert!(reply.healthy, "{reply:?}");

    // A link to a Redis that is not there fails, and health says so.
    let dead = format!("redis://127.0.0.1:{}/", free_port().unwrap());
    let reply = provider.put_link(&link("broken", &[("url", &dead)])).await;
    assert!(!reply.success);
    assert!(reply.message.contains(&dead), "{}", reply.message);
    let reply = provider.health().await;
    assert!(!reply.healthy);
    assert!(reply.message.unwrap_or_default().contains(&dead));

    let reply = provider
        .put_link(&link("counter", &[("url", &redis.url())]))
        .await;
    assert!(reply.success, "{}", reply.message);
    let request = increment("default", "hits", 3);
    let headers = call_headers("counter", "default");
    assert_eq!(
        provider.call_keyvalue(&headers, &request).await.unwrap(),
        Ok(KvResponse::Counter(3))
    );

    let status = process.close_stdin_and_wait(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn after_a_redis_restart_the_first_read_succeeds_and_an_increment_fails_clearly() {
    let mut redis = RedisServer::start().unwrap();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    store.handle(set("b", "k", b"v")).await.unwrap();
    redis.restart().unwrap();
    // The restarted server kept nothing; what matters is that the very
    // first request after the restart gets an answer.
    assert_eq!(
        store.handle(get("b", "k")).await,
        Ok(KvResponse::Value(None))
    );
    store.handle(set("b", "k", b"again")).await.unwrap();
    assert_eq!(
        store.handle(get("b", "k")).await,
        Ok(KvResponse::Value(Some(b"again".to_vec())))
    );

    redis.restart().unwrap();
    let bump = KvRequest::Increment {
        bucket: "b".into(),
        key: "n".into(),
        delta: 1,
    };
    // Refused before it left, or lost in flight and not repeated: it never
    // counts twice, and a failure says why.
    match store.handle(bump.clone()).await {
        Ok(KvResponse::Counter(1)) => {}
        Err(KvError::Other(message)) => {
            assert!(
                message.contains("may or may not have been applied"),
                "{message}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let Ok(KvResponse::Counter(n)) = store.handle(bump).await else {
        panic!("the connection was not re-established");
    };
    assert!(n <= 2, "{n}");
}
