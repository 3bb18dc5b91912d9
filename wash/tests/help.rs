//! Every `wash` command answers `--help`, and lattice commands fail fast
//! and clearly when no NATS server is there.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn wash(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wash"))
        .args(args)
        .env_remove("TRELLIS_NATS_URL")
        .env_remove("TRELLIS_LATTICE")
        .env_remove("TRELLIS_TIMEOUT_MS")
        .env_remove("TRELLIS_NATS_CREDS")
        .output()
        .expect("wash runs")
}

const COMMANDS: &[&[&str]] = &[
    &[],
    &["keys"],
    &["keys", "gen"],
    &["keys", "list"],
    &["claims"],
    &["claims", "sign"],
    &["claims", "inspect"],
    &["get"],
    &["get", "hosts"],
    &["get", "inventory"],
    &["get", "links"],
    &["get", "claims"],
    &["start"],
    &["start", "component"],
    &["scale"],
    &["scale", "component"],
    &["stop"],
    &["stop", "component"],
    &["link"],
    &["link", "put"],
    &["link", "del"],
    &["link", "get"],
    &["config"],
    &["config", "put"],
    &["config", "get"],
    &["config", "del"],
    &["label"],
    &["call"],
    &["push"],
    &["pull"],
];

#[test]
fn every_command_has_help() {
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push("--help");
        let output = wash(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "wash {args:?} failed");
        assert!(stdout.contains("Usage: wash"), "wash {args:?}:\n{stdout}");
    }
}

#[test]
fn lattice_commands_share_the_connection_options() {
    let output = wash(&["get", "hosts", "--help"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--nats-url",
        "--nats-creds",
        "--lattice",
        "--timeout-ms",
        "--output",
    ] {
        assert!(stdout.contains(option), "missing {option}:\n{stdout}");
    }
}

#[test]
fn a_closed_port_is_a_clear_error_not_a_hang() {
    let port = trellis_test_support::free_port().unwrap();
    let url = format!("nats://127.0.0.1:{port}");
    for command in [
        &["get", "hosts"][..],
        &["link", "get"],
        &["config", "get", "x"],
        &["call", "echo", "trellis:demo/echo.ping"],
    ] {
        let mut args = command.to_vec();
        args.extend(["--nats-url", &url, "--timeout-ms", "3000"]);
        let started = Instant::now();
        let output = wash(&args);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(output.status.code(), Some(1), "wash {args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let expected = format!("no NATS server answers at {url}");
        assert!(stderr.contains(&expected), "wash {args:?}:\n{stderr}");
        assert!(
            stderr.contains("pass --nats-url"),
            "wash {args:?}:\n{stderr}"
        );
    }
}

#[test]
fn bad_arguments_fail_before_connecting() {
    let port = trellis_test_support::free_port().unwrap();
    let url = format!("nats://127.0.0.1:{port}");
    let cases: [(&[&str], &str); 4] = [
        (&["label", "NHOST", "zone"], "is not `key=value`"),
        (&["call", "echo", "not-a-function"], "invalid WIT name"),
        (
            &["call", "echo", "trellis:demo/echo.ping", "--path", "/"],
            "only apply to wasi:http/incoming-handler.handle",
        ),
        (
            &["start", "component", "no/such/file.wasm", "echo"],
            "is not a file",
        ),
    ];
    for (command, expected) in cases {
        let mut args = command.to_vec();
        args.extend(["--nats-url", &url]);
        let output = wash(&args);
        assert_eq!(output.status.code(), Some(1), "wash {args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "wash {args:?}:\n{stderr}");
    }
}
