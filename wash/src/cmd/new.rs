//! `wash new NAME --template T`: a component project that builds as it is.
//!
//! The templates live in `wash/templates/` and are compiled into wash, with
//! the WIT packages they use (the same files the host is built against), so
//! a new project needs nothing but cargo and the wasm32-wasip2 target. Each
//! project is a Rust crate: `Cargo.toml`, `src/lib.rs`, and `wit/` holding
//! the project's world and its dependencies.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

/// A template `wash new` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// Answers HTTP requests with a greeting (wasi:http).
    HttpHello,
    /// Counts HTTP requests in a key-value bucket (wasi:http, wasi:keyvalue).
    KvCounter,
    /// Replies to NATS messages with their body (wasmcloud:messaging).
    MessagingEcho,
    /// Keeps files in a blob store (wasi:http, wasi:blobstore).
    Blobstore,
}

impl Template {
    /// The template's world and source, with `{{name}}` where the project
    /// name goes.
    fn files(self) -> (&'static str, &'static str) {
        match self {
            Template::HttpHello => (
                include_str!("../../templates/http-hello/world.wit"),
                include_str!("../../templates/http-hello/lib.rs"),
            ),
            Template::KvCounter => (
                include_str!("../../templates/kv-counter/world.wit"),
                include_str!("../../templates/kv-counter/lib.rs"),
            ),
            Template::MessagingEcho => (
                include_str!("../../templates/messaging-echo/world.wit"),
                include_str!("../../templates/messaging-echo/lib.rs"),
            ),
            Template::Blobstore => (
                include_str!("../../templates/blobstore/world.wit"),
                include_str!("../../templates/blobstore/lib.rs"),
            ),
        }
    }

    fn description(self) -> &'static str {
        match self {
            Template::HttpHello => "answers every HTTP request with a greeting",
            Template::KvCounter => "counts HTTP requests in a key-value bucket",
            Template::MessagingEcho => "replies to NATS messages with their body",
            Template::Blobstore => "keeps files in a blob store",
        }
    }
}

/// The WIT packages a project may depend on, as `wit/deps/` holds them:
/// every one the host serves, whichever the template imports, so that a
/// user can add an import without fetching anything.
const WIT_DEPS: &[(&str, &str)] = &[
    (
        "blobstore/blobstore.wit",
        include_str!("../../../interfaces/wit/deps/blobstore/blobstore.wit"),
    ),
    (
        "blobstore/container.wit",
        include_str!("../../../interfaces/wit/deps/blobstore/container.wit"),
    ),
    (
        "blobstore/types.wit",
        include_str!("../../../interfaces/wit/deps/blobstore/types.wit"),
    ),
    (
        "blobstore/world.wit",
        include_str!("../../../interfaces/wit/deps/blobstore/world.wit"),
    ),
    (
        "bus/lattice.wit",
        include_str!("../../../interfaces/wit/deps/bus/lattice.wit"),
    ),
    (
        "cli/cli.wit",
        include_str!("../../../interfaces/wit/deps/cli/cli.wit"),
    ),
    (
        "clocks/clocks.wit",
        include_str!("../../../interfaces/wit/deps/clocks/clocks.wit"),
    ),
    (
        "config/store.wit",
        include_str!("../../../interfaces/wit/deps/config/store.wit"),
    ),
    (
        "config/world.wit",
        include_str!("../../../interfaces/wit/deps/config/world.wit"),
    ),
    (
        "filesystem/filesystem.wit",
        include_str!("../../../interfaces/wit/deps/filesystem/filesystem.wit"),
    ),
    (
        "http/http.wit",
        include_str!("../../../interfaces/wit/deps/http/http.wit"),
    ),
    (
        "io/io.wit",
        include_str!("../../../interfaces/wit/deps/io/io.wit"),
    ),
    (
        "keyvalue/atomic.wit",
        include_str!("../../../interfaces/wit/deps/keyvalue/atomic.wit"),
    ),
    (
        "keyvalue/batch.wit",
        include_str!("../../../interfaces/wit/deps/keyvalue/batch.wit"),
    ),
    (
        "keyvalue/store.wit",
        include_str!("../../../interfaces/wit/deps/keyvalue/store.wit"),
    ),
    (
        "keyvalue/watch.wit",
        include_str!("../../../interfaces/wit/deps/keyvalue/watch.wit"),
    ),
    (
        "keyvalue/world.wit",
        include_str!("../../../interfaces/wit/deps/keyvalue/world.wit"),
    ),
    (
        "logging/logging.wit",
        include_str!("../../../interfaces/wit/deps/logging/logging.wit"),
    ),
    (
        "messaging/messaging.wit",
        include_str!("../../../interfaces/wit/deps/messaging/messaging.wit"),
    ),
    (
        "random/random.wit",
        include_str!("../../../interfaces/wit/deps/random/random.wit"),
    ),
    (
        "secrets/secrets.wit",
        include_str!("../../../interfaces/wit/deps/secrets/secrets.wit"),
    ),
    (
        "sockets/sockets.wit",
        include_str!("../../../interfaces/wit/deps/sockets/sockets.wit"),
    ),
    (
        "wasmcloud-messaging/messaging.wit",
        include_str!("../../../interfaces/wit/deps/wasmcloud-messaging/messaging.wit"),
    ),
];

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The project's name: its directory, crate and component name.
    name: String,
    /// What the project starts as.
    #[arg(long, short = 't', value_enum, default_value = "http-hello")]
    template: Template,
    /// Where to create the project directory [default: the current one].
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
}

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let parent = args.path.unwrap_or_else(|| PathBuf::from("."));
    let dir = parent.join(&args.name);
    write_project(&dir, &args.name, args.template)?;
    println!(
        "created {} ({}: {})",
        dir.display(),
        args.name,
        args.template.description()
    );
    println!("next:\n  cd {}\n  wash dev", dir.display());
    Ok(())
}

/// A name that is a valid crate name and file name, so `wash build` finds
/// the artifact cargo makes from it.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !starts_well || !rest_ok || name.len() > 64 || name.ends_with('-') {
        bail!(
            "`{name}` is not a usable project name: use lowercase letters, digits and dashes, \
             starting with a letter (at most 64), e.g. `hello-api`"
        );
    }
    Ok(())
}

/// Writes the project into `dir`, which must not exist yet.
fn write_project(dir: &Path, name: &str, template: Template) -> anyhow::Result<()> {
    if dir.exists() {
        bail!(
            "{} already exists; pick another name or remove it",
            dir.display()
        );
    }
    let (world, source) = template.files();
    let mut files: Vec<(PathBuf, String)> = vec![
        ("Cargo.toml".into(), cargo_toml(name)),
        (".gitignore".into(), "/target\n/build\n".into()),
        ("src/lib.rs".into(), source.replace("{{name}}", name)),
        ("wit/world.wit".into(), world.replace("{{name}}", name)),
    ];
    for (path, text) in WIT_DEPS {
        files.push((Path::new("wit/deps").join(path), (*text).to_owned()));
    }
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = "0.63"

# Components cross the lattice: keep them small. No LTO, so that the
# rebuilds of `wash dev` stay quick.
[profile.release]
opt-level = "s"
strip = true
panic = "abort"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wit_dependency_the_host_has_is_embedded() {
        let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interfaces/wit/deps");
        let mut on_disk = Vec::new();
        for package in std::fs::read_dir(&deps).unwrap() {
            let package = package.unwrap().path();
            for file in std::fs::read_dir(&package).unwrap() {
                let file = file.unwrap().path();
                let relative = file.strip_prefix(&deps).unwrap();
                on_disk.push(relative.to_string_lossy().into_owned());
            }
        }
        on_disk.sort();
        let embedded: Vec<String> = WIT_DEPS.iter().map(|(p, _)| (*p).to_owned()).collect();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn names_that_cargo_or_the_shell_would_trip_on_are_refused() {
        for good in ["hello", "hello-api", "a1"] {
            check_name(good).unwrap();
        }
        for bad in ["", "Hello", "1st", "a_b", "a/b", "../x", "x-", "a b"] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains("lowercase letters"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_project_is_written_once_with_its_name_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hello-api");
        write_project(&dir, "hello-api", Template::HttpHello).unwrap();
        let source = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(source.contains("Hello from hello-api!"));
        assert!(!source.contains("{{name}}"));
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"hello-api\""));
        assert!(dir.join("wit/deps/http/http.wit").is_file());
        let err = write_project(&dir, "hello-api", Template::KvCounter)
            .unwrap_err()
            .to_string();
        assert!(err.contains("already exists"), "{err}");
    }
}
