//! The SQLite provider against real database files: every function of the
//! contract, atomic counters across connections, how links pick (and
//! refuse) files, and the binary serving a private NATS.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use trellis_keyvalue_sqlite::{LIST_PAGE_SIZE, SqliteBackend, SqliteStore};
use trellis_lattice::keyvalue::{KeyResponse, KvError, KvRequest, KvResponse};
use trellis_provider_sdk::ProviderLink;
use trellis_provider_sdk::keyvalue::{KvBackend, KvStore};
use trellis_provider_sdk::testing::keyvalue::{get, increment, increment_through_both, set};
use trellis_provider_sdk::testing::{ProviderProcess, TestLattice, call_headers};

fn link(source_id: &str, name: &str, config: &[(&str, &str)]) -> ProviderLink {
    let interfaces = ["store", "atomics", "batch"];
    let mut link =
        trellis_provider_sdk::testing::keyvalue::link(source_id, "kv-sqlite", &interfaces, config);
    link.link.name = name.into();
    link
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).unwrap()
}

async fn call(store: &SqliteStore, request: KvRequest) -> Result<KvResponse, KvError> {
    store.handle(request).await
}

#[tokio::test]
async fn every_store_function_works_on_a_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("kv.sqlite3"));
    let done = Ok(KvResponse::Done);

    assert_eq!(
        call(&store, get("b", "k")).await,
        Ok(KvResponse::Value(None))
    );
    assert_eq!(call(&store, set("b", "k", &[0, 255, 7])).await, done);
    assert_eq!(
        call(&store, get("b", "k")).await,
        Ok(KvResponse::Value(Some(vec![0, 255, 7])))
    );
    // Buckets are separate namespaces in one file.
    assert_eq!(
        call(&store, get("other", "k")).await,
        Ok(KvResponse::Value(None))
    );
    assert_eq!(call(&store, set("b", "k", b"new")).await, done);
    assert_eq!(
        call(&store, get("b", "k")).await,
        Ok(KvResponse::Value(Some(b"new".to_vec())))
    );
    let exists = |key: &str| KvRequest::Exists {
        bucket: "b".into(),
        key: key.into(),
    };
    assert_eq!(
        call(&store, exists("k")).await,
        Ok(KvResponse::Exists(true))
    );
    assert_eq!(
        call(&store, exists("nope")).await,
        Ok(KvResponse::Exists(false))
    );
    let delete = KvRequest::Delete {
        bucket: "b".into(),
        key: "k".into(),
    };
    assert_eq!(call(&store, delete.clone()).await, done);
    assert_eq!(
        call(&store, exists("k")).await,
        Ok(KvResponse::Exists(false))
    );
    // Deleting what is not there is not an error.
    assert_eq!(call(&store, delete).await, done);

    let set_many = KvRequest::SetMany {
        bucket: "b".into(),
        entries: vec![("x".into(), b"1".to_vec()), ("y".into(), b"2".to_vec())],
    };
    assert_eq!(call(&store, set_many).await, done);
    let get_many = KvRequest::GetMany {
        bucket: "b".into(),
        keys: vec!["y".into(), "missing".into(), "x".into()],
    };
    assert_eq!(
        call(&store, get_many.clone()).await,
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
    assert_eq!(call(&store, delete_many).await, done);
    assert_eq!(
        call(&store, get_many).await,
        Ok(KvResponse::Many(vec![
            Some(("y".into(), b"2".to_vec())),
            None,
            None
        ]))
    );

    assert_eq!(
        call(&store, increment("default", "n", 5)).await,
        Ok(KvResponse::Counter(5))
    );
    assert_eq!(
        call(&store, increment("default", "n", 2)).await,
        Ok(KvResponse::Counter(7))
    );
    // Counters are ASCII decimal, readable by `get` and by Redis-minded tools.
    assert_eq!(
        call(&store, get("default", "n")).await,
        Ok(KvResponse::Value(Some(b"7".to_vec())))
    );
    assert!(store.check().await.is_ok());
}

#[tokio::test]
async fn list_keys_pages_through_a_bucket_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("kv.sqlite3"));
    let total = LIST_PAGE_SIZE as usize * 2 + 500;
    let entries: Vec<(String, Vec<u8>)> = (0..total)
        .rev()
        .map(|i| (format!("key-{i:05}"), vec![1]))
        .collect();
    let set_many = KvRequest::SetMany {
        bucket: "b".into(),
        entries,
    };
    call(&store, set_many).await.unwrap();
    call(&store, set("elsewhere", "key-x", b"1")).await.unwrap();

    let mut all = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let request = KvRequest::ListKeys {
            bucket: "b".into(),
            cursor,
        };
        let Ok(KvResponse::Keys(KeyResponse { keys, cursor: next })) = call(&store, request).await
        else {
            panic!("list-keys failed");
        };
        pages += 1;
        assert!(keys.len() <= LIST_PAGE_SIZE as usize);
        all.extend(keys);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..total).map(|i| format!("key-{i:05}")).collect();
    assert_eq!(all, expected);

    let empty = KvRequest::ListKeys {
        bucket: "empty".into(),
        cursor: None,
    };
    assert_eq!(
        call(&store, empty).await,
        Ok(KvResponse::Keys(KeyResponse::default()))
    );
}

#[tokio::test]
async fn two_hundred_concurrent_increments_count_exactly_two_hundred() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("kv.sqlite3"));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.handle(increment("default", "hits", 1)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        call(&store, get("default", "hits")).await,
        Ok(KvResponse::Value(Some(b"200".to_vec())))
    );
}

/// Two stores opened separately have two connections, which SQLite locks
/// against each other exactly as it locks two processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_through_two_connections_on_one_file_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.sqlite3");
    let (first, second) = (open(&path), open(&path));
    assert!(!first.shares_connection_with(&second));
    let seen = increment_through_both(&first, &second, "hits", 200).await;
    // Every increment saw a distinct value: no two read the same old one.
    assert_eq!(seen, (1..=200).collect::<Vec<u64>>());
    assert_eq!(
        call(&second, get("default", "hits")).await,
        Ok(KvResponse::Value(Some(b"200".to_vec())))
    );
}

#[tokio::test]
async fn incrementing_a_value_that_is_not_a_number_is_a_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("kv.sqlite3"));
    call(&store, set("default", "name", b"alice"))
        .await
        .unwrap();
    let err = call(&store, increment("default", "name", 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an unsigned decimal"), "{err}");
    // The failed increment left the value alone.
    assert_eq!(
        call(&store, get("default", "name")).await,
        Ok(KvResponse::Value(Some(b"alice".to_vec())))
    );
    call(
        &store,
        set("default", "big", u64::MAX.to_string().as_bytes()),
    )
    .await
    .unwrap();
    let err = call(&store, increment("default", "big", 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("64 bits"), "{err}");
}

#[tokio::test]
async fn writes_are_on_disk_when_the_store_is_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/kv.sqlite3");
    let store = open(&path);
    call(&store, set("b", "k", b"kept")).await.unwrap();
    drop(store);
    let again = open(&path);
    assert_eq!(
        call(&again, get("b", "k")).await,
        Ok(KvResponse::Value(Some(b"kept".to_vec())))
    );
}

#[tokio::test]
async fn unwritable_paths_fail_open_naming_the_path_and_the_os_error() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::new(None);
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"").unwrap();
    let mut bad = vec![
        "/proc/nope/x.db".to_string(),
        not_a_dir.join("x.db").display().to_string(),
    ];
    // A read-only directory stops everyone but root.
    let read_only = dir.path().join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    let mut permissions = std::fs::metadata(&read_only).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&read_only, permissions).unwrap();
    if std::fs::write(read_only.join("probe"), b"").is_err() {
        bad.push(read_only.join("x.db").display().to_string());
    }
    for path in bad {
        let err = backend
            .open(&link("counter", "default", &[("path", &path)]))
            .await
            .unwrap_err();
        assert!(err.contains(&path), "{err}");
        assert!(err.contains("os error"), "{err}");
        assert!(err.contains("`path`"), "{err}");
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_fails_open_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        b"these are not the pages you are looking for".repeat(100),
    )
    .unwrap();
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("notes.txt"), "{err}");
    assert!(err.contains("not a database"), "{err}");
}

#[tokio::test]
async fn a_link_without_path_or_data_dir_is_refused_saying_to_set_path() {
    let err = SqliteBackend::new(None)
        .open(&link("counter", "default", &[]))
        .await
        .unwrap_err();
    assert!(err.contains("`counter`"), "{err}");
    assert!(err.contains("`path`"), "{err}");
}

#[tokio::test]
async fn default_and_relative_paths_live_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::new(Some(dir.path().to_owned()));

    let store = backend.open(&link("counter", "cache", &[])).await.unwrap();
    let expected = dir
        .path()
        .canonicalize()
        .unwrap()
        .join("counter-cache.sqlite3");
    assert_eq!(store.path(), expected);
    assert!(expected.is_file());

    let store = backend
        .open(&link("counter", "default", &[("path", "sub/kv.db")]))
        .await
        .unwrap();
    assert_eq!(
        store.path(),
        dir.path().canonicalize().unwrap().join("sub/kv.db")
    );
}

#[tokio::test]
async fn links_to_the_same_file_share_one_connection_and_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::new(Some(dir.path().to_owned()));
    let path = dir.path().join("shared.db").display().to_string();
    let spelled_differently = format!("{}/./shared.db", dir.path().display());
    let a = backend
        .open(&link("writer", "default", &[("path", &path)]))
        .await
        .unwrap();
    let b = backend
        .open(&link(
            "reader",
            "default",
            &[("path", &spelled_differently)],
        ))
        .await
        .unwrap();
    assert!(a.shares_connection_with(&b));
    call(&a, set("b", "k", b"hello")).await.unwrap();
    assert_eq!(
        call(&b, get("b", "k")).await,
        Ok(KvResponse::Value(Some(b"hello".to_vec())))
    );
    let elsewhere = backend.open(&link("other", "default", &[])).await.unwrap();
    assert!(!elsewhere.shares_connection_with(&a));
}

#[tokio::test]
async fn the_binary_serves_links_calls_and_health_and_exits_when_stdin_closes() {
    let lattice = TestLattice::start("sqlite-bin").await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut host_data = lattice.host_data("kv-sqlite", "NHOSTTEST");
    host_data.data_dir = Some(data_dir.path().display().to_string());
    let process = ProviderProcess::spawn(env!("CARGO_BIN_EXE_trellis-keyvalue-sqlite"), &host_data);

    let provider = lattice.provider("kv-sqlite");
    let health_reply = provider.wait_until_answering(Duration::from_secs(20)).await;
    assert!(health_reply.healthy, "{health_reply:?}");

    let put_reply = provider.put_link(&link("counter", "default", &[])).await;
    assert!(put_reply.success, "{}", put_reply.message);

    let request = increment("default", "hits", 3);
    let headers = call_headers("counter", "default");
    assert_eq!(
        provider.call_keyvalue(&headers, &request).await.unwrap(),
        Ok(KvResponse::Counter(3))
    );
    assert!(data_dir.path().join("counter-default.sqlite3").is_file());

    let status = process.close_stdin_and_wait(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
}
