#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

//! The private registry answers, counts blob fetches per request, and is
//! gone after drop.

use std::io::{Read, Write};
use std::net::TcpStream;

use trellis_test_support::RegistryServer;

/// The status code of a plain HTTP/1.0 GET, read to the end so the
/// registry has finished the request.
fn get(port: u16, path: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let status = reply.split(' ').nth(1).unwrap();
    status.parse().unwrap()
}

#[test]
fn registry_answers_and_counts_blob_gets() {
    let registry = RegistryServer::start().unwrap();
    let port = registry.port();
    assert_ne!(port, 5000, "must not use the system registry");
    assert_eq!(registry.address(), format!("127.0.0.1:{port}"));
    assert_eq!(get(port, "/v2/"), 200);
    assert_eq!(registry.blob_gets("x"), 0);

    let digest = format!("sha256:{}", "0".repeat(64));
    let blob = format!("/v2/x/blobs/{digest}");
    assert_eq!(get(port, &blob), 404);
    assert_eq!(get(port, &blob), 404);
    assert_eq!(get(port, "/v2/x/manifests/latest"), 404);
    assert_eq!(get(port, &format!("/v2/y/blobs/{digest}")), 404);
    assert_eq!(registry.blob_gets("x"), 2, "{}", registry.log());
    assert_eq!(registry.manifest_gets("x"), 1, "{}", registry.log());
    assert_eq!(registry.blob_gets("y"), 1);

    assert_eq!(
        registry.blob_path(&digest),
        registry.storage_dir().join(format!(
            "docker/registry/v2/blobs/sha256/00/{}/data",
            "0".repeat(64)
        ))
    );

    drop(registry);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
