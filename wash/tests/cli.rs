//! `wash` as a user runs it: the real binary, a private TRELLIS_HOME, and
//! the `http-hello` example component built from source.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

fn wash(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wash"))
        .args(args)
        .env("TRELLIS_HOME", home)
        .env_remove("TRELLIS_ISSUER")
        .output()
        .expect("wash runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn hello_copy(dir: &Path) -> PathBuf {
    let built = trellis_test_support::example_component("http-hello").expect("example builds");
    let copy = dir.join("http_hello.wasm");
    std::fs::copy(built, &copy).unwrap();
    copy
}

fn sign(home: &Path, input: &Path, extra: &[&str]) -> (PathBuf, Output) {
    let out = input.with_file_name("signed.wasm");
    let mut args = vec![
        "claims",
        "sign",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--name",
        "http-hello",
        "--ver",
        "0.1.0",
    ];
    args.extend_from_slice(extra);
    let output = wash(home, &args);
    assert!(output.status.success(), "{}", stderr(&output));
    (out, output)
}

#[test]
fn keys_gen_prints_a_key_of_each_kind_as_json() {
    let home = TempDir::new().unwrap();
    for (kind, prefix) in [
        ("account", 'A'),
        ("component", 'M'),
        ("provider", 'V'),
        ("host", 'N'),
        ("cluster", 'C'),
    ] {
        let output = wash(home.path(), &["keys", "gen", kind, "-o", "json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert!(json["public_key"].as_str().unwrap().starts_with(prefix));
        assert!(json["seed"].as_str().unwrap().starts_with('S'));
    }
}

#[cfg(unix)]
#[test]
fn saved_keys_are_private_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let home = TempDir::new().unwrap();
    let output = wash(home.path(), &["keys", "gen", "account", "--name", "ops"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let file = home.path().join("keys/ops_account.nk");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(home.path().join("keys"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let before = std::fs::read_to_string(&file).unwrap();
    let again = wash(home.path(), &["keys", "gen", "account", "--name", "ops"]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("never overwritten"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
}

#[test]
fn inspect_of_the_signed_example_shows_its_claims() {
    let home = TempDir::new().unwrap();
    let input = hello_copy(home.path());
    let (signed, _) = sign(home.path(), &input, &["--expires-in-days", "30"]);

    let output = wash(
        home.path(),
        &["claims", "inspect", signed.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let account = std::fs::read_to_string(home.path().join("keys/default_account.nk")).unwrap();
    let account = trellis_claims::KeyPair::from_seed(account.trim()).unwrap();
    for expected in [
        "Name",
        "http-hello",
        "Issuer",
        "Subject",
        "Hash",
        "Expires",
        "Verified",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert!(text.contains(&account.public_key()), "{text}");
    assert!(!text.contains("never"), "expiry was set: {text}");

    let json = wash(
        home.path(),
        &["claims", "inspect", signed.to_str().unwrap(), "-o", "json"],
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(json["name"], "http-hello");
    assert_eq!(json["issuer"], account.public_key());
    assert!(json["subject"].as_str().unwrap().starts_with('M'));
    let wasm = std::fs::read(&signed).unwrap();
    assert_eq!(json["hash"], trellis_claims::component_hash(&wasm).unwrap());
    assert!(json["expires"].as_u64().unwrap() > json["issued_at"].as_u64().unwrap());
    assert_eq!(json["valid"], true);
}

#[test]
fn the_signed_example_is_still_a_component() {
    let home = TempDir::new().unwrap();
    let input = hello_copy(home.path());
    let (signed, _) = sign(home.path(), &input, &[]);
    let bytes = std::fs::read(signed).unwrap();
    assert_eq!(
        trellis_claims::wasm::kind(&bytes).unwrap(),
        trellis_claims::wasm::WasmKind::Component
    );
}

#[test]
fn inspect_reports_a_tampered_component_and_fails() {
    let home = TempDir::new().unwrap();
    let input = hello_copy(home.path());
    let (signed, _) = sign(home.path(), &input, &[]);
    let mut bytes = std::fs::read(&signed).unwrap();
    // Flip a byte in the middle of the code, well away from the claims
    // section appended at the end.
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&signed, bytes).unwrap();
    let output = wash(
        home.path(),
        &["claims", "inspect", signed.to_str().unwrap()],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("changed after signing"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn inspect_of_an_unsigned_component_says_how_to_sign_it() {
    let home = TempDir::new().unwrap();
    let input = hello_copy(home.path());
    let output = wash(home.path(), &["claims", "inspect", input.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("wash claims sign"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn resigning_keeps_the_component_identity() {
    let home = TempDir::new().unwrap();
    let input = hello_copy(home.path());
    let (first, _) = sign(home.path(), &input, &[]);
    let second = first.with_file_name("second.wasm");
    let output = wash(
        home.path(),
        &[
            "claims",
            "sign",
            first.to_str().unwrap(),
            "-o",
            second.to_str().unwrap(),
            "--rev",
            "2",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let read = |p: &Path| {
        trellis_claims::read_component_claims(&std::fs::read(p).unwrap())
            .unwrap()
            .unwrap()
    };
    assert_eq!(read(&first).sub, read(&second).sub);
    assert_eq!(read(&second).metadata.unwrap().rev, Some(2));
}

#[test]
fn an_explicit_issuer_seed_signs() {
    let home = TempDir::new().unwrap();
    let input = hello_copy(home.path());
    let account = trellis_claims::KeyKind::Account.generate();
    let seed = account.seed().unwrap();
    let (signed, _) = sign(home.path(), &input, &["--issuer", &seed]);
    let claims = trellis_claims::read_component_claims(&std::fs::read(signed).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(claims.iss, account.public_key());
    assert!(!home.path().join("keys/default_account.nk").exists());
}

#[test]
fn a_component_seed_as_issuer_is_refused_with_a_clear_error() {
    let home = TempDir::new().unwrap();
    let input = hello_copy(home.path());
    let seed = trellis_claims::KeyKind::Component
        .generate()
        .seed()
        .unwrap();
    let output = wash(
        home.path(),
        &["claims", "sign", input.to_str().unwrap(), "--issuer", &seed],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("must be a key of kind account"),
        "{}",
        stderr(&output)
    );
}
