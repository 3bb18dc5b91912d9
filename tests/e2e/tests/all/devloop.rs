//! The component author's loop, as a user runs it: `wash new` writes a
//! project, `wash build` builds and signs it, and `wash dev` runs it on a
//! node of its own and swaps in every save while a client keeps calling.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use trellis_e2e::app::get;
use trellis_test_support::{free_port, workspace_binary, workspace_root};

/// How long the first build may take: on a clean checkout it compiles
/// wit-bindgen and its dependencies for wasm32-wasip2.
const FIRST_BUILD: Duration = Duration::from_secs(420);

/// One target directory for every project these tests make, kept between
/// runs, so only the first run compiles the dependencies.
fn shared_target() -> PathBuf {
    workspace_root().join("target").join("wash-projects")
}

/// `wash ARGS` in `dir` with its own `$TRELLIS_HOME`: success and output.
fn wash_in(home: &Path, dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(workspace_binary("wash", "wash").unwrap())
        .args(args)
        .current_dir(dir)
        .env("TRELLIS_HOME", home)
        .env("CARGO_TARGET_DIR", shared_target())
        .env_remove("TRELLIS_NATS_URL")
        .env("TRELLIS_TIMEOUT_MS", "10000")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[test]
fn every_template_is_a_project_wash_build_builds_and_signs() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    for template in ["http-hello", "kv-counter", "messaging-echo", "blobstore"] {
        let name = format!("my-{template}");
        let (ok, text) = wash_in(home.path(), work.path(), &["new", &name, "-t", template]);
        assert!(ok, "{text}");
        let project = work.path().join(&name);
        let (ok, text) = wash_in(home.path(), &project, &["build"]);
        assert!(ok, "{template}: {text}");
        let signed = project
            .join("build")
            .join(format!("{}_s.wasm", name.replace('-', "_")));
        assert!(signed.is_file(), "{text}");
        let (ok, text) = wash_in(
            home.path(),
            &project,
            &["claims", "inspect", signed.to_str().unwrap(), "-o", "json"],
        );
        assert!(ok, "{text}");
        let claims: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(claims["name"], name.as_str(), "{text}");
        assert_eq!(claims["version"], "0.1.0", "{text}");
    }
    // Twice is refused: nothing of the first project is overwritten.
    let (ok, text) = wash_in(home.path(), work.path(), &["new", "my-http-hello"]);
    assert!(!ok && text.contains("already exists"), "{text}");
    // A build error is cargo's, shown as cargo shows it.
    let project = work.path().join("my-http-hello");
    let source = project.join("src/lib.rs");
    std::fs::write(&source, "fn broken( {").unwrap();
    let (ok, text) = wash_in(home.path(), &project, &["build"]);
    assert!(!ok, "{text}");
    assert!(text.contains("unclosed delimiter"), "{text}");
    assert!(text.contains("the build of my-http-hello failed"), "{text}");
}

/// `wash dev`, running as a child, and its stdout lines as they come.
struct Dev {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: PathBuf,
    home: PathBuf,
}

impl Dev {
    /// Waits for a stdout line holding `text`; returns it.
    fn wait_line(&self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "wash dev printed no `{text}` within {limit:?}; its stderr:\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                ),
            }
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The node wash dev started outlives a killed wash dev.
        let _ = wash_in(&self.home, &self.home, &["down"]);
    }
}

/// Saves `from` → `to` in `file`, and returns how long until `url` answers
/// with `expect`.
async fn save_and_time(file: &Path, from: &str, to: &str, url: &str, expect: &str) -> Duration {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{from} is not in {}", file.display());
    let saved = Instant::now();
    std::fs::write(file, text.replace(from, to)).unwrap();
    loop {
        if let Ok((200, body)) = get(url).await
            && body.contains(expect)
        {
            return saved.elapsed();
        }
        assert!(
            saved.elapsed() < Duration::from_secs(180),
            "{url} never answered {expect:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wash_dev_serves_each_save_with_no_failed_request_and_survives_a_broken_one() {
    for (package, binary) in [
        ("trellis-http-server", "trellis-http-server"),
        ("trellis-keyvalue-sqlite", "trellis-keyvalue-sqlite"),
    ] {
        workspace_binary(package, binary).unwrap();
    }
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (ok, text) = wash_in(
        home.path(),
        work.path(),
        &["new", "tally", "-t", "kv-counter"],
    );
    assert!(ok, "{text}");
    let project = work.path().join("tally");
    let nats_url = format!("nats://127.0.0.1:{}", free_port().unwrap());
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let stderr = home.path().join("dev.stderr");
    let mut child = Command::new(workspace_binary("wash", "wash").unwrap())
        .args(["dev", "--address", &address, "--nats-url", &nats_url])
        .current_dir(&project)
        .env("TRELLIS_HOME", home.path())
        .env("CARGO_TARGET_DIR", shared_target())
        .env("TRELLIS_TIMEOUT_MS", "10000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let dev = Dev {
        child,
        lines,
        stderr,
        home: home.path().to_path_buf(),
    };
    let served = dev.wait_line("serving http://", FIRST_BUILD);
    assert!(served.contains(&address), "{served}");
    let url = format!("http://{address}/visits");
    let (status, body) = get(&url).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "visits: 1\n"));

    // A client keeps calling through every swap that follows.
    let stop = Arc::new(AtomicBool::new(false));
    let client = tokio::spawn({
        let (url, stop) = (url.clone(), stop.clone());
        async move {
            let (mut answered, mut failed) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match get(&url).await {
                    Ok((200, body)) if body.starts_with("visits") => answered += 1,
                    Ok((status, body)) => failed.push(format!("{status}: {body}")),
                    Err(err) => failed.push(format!("{err:#}")),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (answered, failed)
        }
    });
    let source = project.join("src/lib.rs");
    let mut swaps = Vec::new();
    for (from, to) in [
        ("{key}: {count}", "{key} = {count}"),
        ("{key} = {count}", "{key} is at {count}"),
        ("{key} is at {count}", "{key}: {count}"),
    ] {
        let expect = to.replace("{key}", "visits").replace("{count}", "");
        swaps.push(save_and_time(&source, from, to, &url, &expect).await);
        dev.wait_line("updated tally", Duration::from_secs(60));
    }

    // A save that does not build prints cargo's error; the last good
    // build keeps serving, and the next good save is swapped in.
    let good = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, good.replace("fn increment", "fn increment(")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !dev.stderr().contains("the build of tally failed") {
        assert!(Instant::now() < deadline, "{}", dev.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        dev.stderr().contains("unclosed delimiter"),
        "{}",
        dev.stderr()
    );
    let (status, body) = get(&url).await.unwrap();
    assert!(
        status == 200 && body.starts_with("visits: "),
        "{status} {body}"
    );
    std::fs::write(&source, good.replace("{key}: {count}", "{key} now {count}")).unwrap();
    dev.wait_line("updated tally", Duration::from_secs(120));

    stop.store(true, Ordering::Relaxed);
    let (answered, failed) = client.await.unwrap();
    eprintln!(
        "wash dev: save-to-served {:?}; the client loop: {answered} answered, {} failed",
        swaps,
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(answered > 20, "{answered}");
    let (_, body) = get(&url).await.unwrap();
    assert!(body.contains("visits now "), "{body}");

    // Ctrl-C (SIGTERM here) undeploys the app and stops the node it started.
    let pid = dev.child.id();
    trellis_e2e::signal(pid, "TERM").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::path::Path::new(&format!("/proc/{pid}/status")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
    {
        assert!(Instant::now() < deadline, "wash dev did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        dev.stderr().contains("undeployed tally-dev"),
        "{}",
        dev.stderr()
    );
    assert!(
        get(&url).await.is_err(),
        "the app still answers after wash dev stopped"
    );
    assert!(
        !home.path().join("wash-up.pid").exists(),
        "the node is still up"
    );
}
