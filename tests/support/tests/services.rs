//! The support crate's own promises: servers answer, are private, survive a
//! restart where promised, and are gone after drop.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;

use trellis_test_support::{NatsServer, RedisServer};

fn port_is_closed(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn nats_server_answers_and_is_gone_after_drop() {
    let nats = NatsServer::start().unwrap();
    let port = nats.port();
    assert_ne!(port, 4222, "must not use the shared server");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut info = [0u8; 512];
    let n = stream.read(&mut info).unwrap();
    let info = String::from_utf8_lossy(&info[..n]);
    assert!(info.starts_with("INFO "), "{info}");
    assert!(
        info.contains("\"jetstream\":true"),
        "JetStream must be on: {info}"
    );
    drop(stream);
    drop(nats);
    assert!(port_is_closed(port));
}

#[test]
fn nats_server_restarts_on_the_same_port() {
    let mut nats = NatsServer::start().unwrap();
    let port = nats.port();
    nats.kill();
    assert!(port_is_closed(port));
    nats.restart().unwrap();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(nats.dir().join("jetstream").exists());
}

#[test]
fn redis_server_answers_ping_and_is_gone_after_drop() {
    let redis = RedisServer::start().unwrap();
    let port = redis.port();
    assert_ne!(port, 6379, "must not use the shared server");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    drop(stream);
    drop(redis);
    assert!(port_is_closed(port));
}

#[test]
fn two_servers_get_different_ports() {
    let a = NatsServer::start().unwrap();
    let b = NatsServer::start().unwrap();
    assert_ne!(a.port(), b.port());
}
