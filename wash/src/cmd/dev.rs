//! `wash dev`: the inner loop of a component author. It builds and signs
//! the project (as `wash build`), starts a node if none answers (as
//! `wash up --detach`), and deploys the component through wadm with the
//! providers its world asks for: an http-server for
//! `wasi:http/incoming-handler`, keyvalue-sqlite for `wasi:keyvalue`,
//! messaging-nats for `wasmcloud:messaging` and `trellis:messaging`,
//! blobstore-fs for `wasi:blobstore`. Then
//! it watches the project's sources and, on each save, rebuilds and
//! deploys the new build as the app's next version. A build that fails
//! prints cargo's errors and the old build keeps serving.
//!
//! The swap is the host's image update (`component.update`'s path, driven
//! by wadm's scale with `allow_update`): the new image is compiled and
//! instantiated beside the old one, new calls go to it and calls in flight
//! finish on the old code, so no request fails across a save. Going through
//! wadm keeps the manifest and the lattice in agreement; an update sent to
//! the host directly would be rolled back by wadm's next reconcile.
//!
//! The generated manifest is written to `build/dev.yaml`, so what `wash dev`
//! runs can be deployed elsewhere as it is. On Ctrl-C the app is undeployed
//! and deleted, and a node `wash dev` started is stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use trellis_lattice::WitInterface;
use wadm::api::WadmClient;
use wadm::store::DeployStatus;

use super::app;
use super::build::{Built, Project};
use super::claims;
use super::lattice::LatticeArgs;
use crate::keystore::trellis_home;
use crate::output::Format;

/// How long a deploy of one build may take before wash dev reports it.
const DEPLOY_WAIT: Duration = Duration::from_secs(120);

/// How long a node that `wash dev` started has for wadm to answer.
const WADM_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct DevArgs {
    /// The project directory (holding Cargo.toml).
    #[arg(long, short = 'p', default_value = ".")]
    path: PathBuf,
    /// Where the http-server listens for the component (an HTTP component
    /// only).
    #[arg(long, default_value = "127.0.0.1:8000")]
    address: String,
    /// Milliseconds between looks at the sources for changes.
    #[arg(long = "poll-ms", default_value_t = 250)]
    poll_ms: u64,
    #[command(flatten)]
    lattice: LatticeArgs,
}

/// A capability provider `wash dev` can start, by what it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Provider {
    HttpServer,
    KeyvalueSqlite,
    MessagingNats,
    BlobstoreFs,
}

impl Provider {
    /// The executable's name, as cargo builds it.
    fn binary(self) -> &'static str {
        match self {
            Provider::HttpServer => "trellis-http-server",
            Provider::KeyvalueSqlite => "trellis-keyvalue-sqlite",
            Provider::MessagingNats => "trellis-messaging-nats",
            Provider::BlobstoreFs => "trellis-blobstore-fs",
        }
    }

    /// The name it has in the manifest and in its claims.
    fn name(self) -> &'static str {
        self.binary().trim_start_matches("trellis-")
    }

    /// The provider that serves an import of `interface`, if wash dev
    /// knows one.
    fn for_import(interface: &WitInterface) -> Option<Self> {
        match (interface.namespace.as_str(), interface.package.as_str()) {
            ("wasi", "keyvalue") => Some(Provider::KeyvalueSqlite),
            ("wasi", "blobstore") => Some(Provider::BlobstoreFs),
            ("wasmcloud" | "trellis", "messaging") => Some(Provider::MessagingNats),
            _ => None,
        }
    }

    /// The provider that drives an export named `export`, if any.
    fn for_export(export: &str) -> Option<(Self, WitInterface)> {
        let interface = WitInterface::parse(export).ok()?;
        let provider = match (
            interface.namespace.as_str(),
            interface.package.as_str(),
            interface.interface.as_str(),
        ) {
            ("wasi", "http", "incoming-handler") => Provider::HttpServer,
            ("wasmcloud" | "trellis", "messaging", "handler") => Provider::MessagingNats,
            _ => return None,
        };
        Some((provider, interface))
    }
}

/// What the component needs: providers it calls (by the interfaces it
/// imports) and providers that call it (by what it exports).
#[derive(Debug, Default, PartialEq)]
struct Needs {
    /// Provider → the interfaces imported from it, grouped by package.
    calls: BTreeMap<Provider, Vec<WitInterface>>,
    /// Provider → the interface it calls on the component.
    called_by: BTreeMap<Provider, WitInterface>,
}

impl Needs {
    /// Reads the component's world from its bytes.
    fn of(component: &[u8]) -> anyhow::Result<Self> {
        let mut needs = Needs::default();
        let imports =
            trellis_host::lattice_imports(component).context("reading the component's imports")?;
        let mut unknown = Vec::new();
        for interface in imports {
            match Provider::for_import(&interface) {
                Some(provider) => needs.calls.entry(provider).or_default().push(interface),
                None => unknown.push(interface.to_string()),
            }
        }
        if !unknown.is_empty() {
            bail!(
                "wash dev has no provider to start for {}; deploy the component with a manifest that links it (wash app deploy)",
                unknown.join(", ")
            );
        }
        for export in
            trellis_host::component_exports(component).context("reading the component's exports")?
        {
            if let Some((provider, interface)) = Provider::for_export(&export) {
                needs.called_by.insert(provider, interface);
            }
        }
        Ok(needs)
    }

    fn providers(&self) -> Vec<Provider> {
        let mut all: Vec<Provider> = self
            .calls
            .keys()
            .chain(self.called_by.keys())
            .copied()
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// The manifest of the dev app: the component at `image`, and each
/// provider (at its image) linked as the component's world asks.
fn manifest(
    project: &Project,
    version: &str,
    image: &Path,
    needs: &Needs,
    providers: &BTreeMap<Provider, PathBuf>,
    address: &str,
) -> Value {
    let app = app_name(project);
    let mut component_links = Vec::new();
    for (provider, interfaces) in &needs.calls {
        let mut by_package: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for interface in interfaces {
            by_package
                .entry((interface.namespace.clone(), interface.package.clone()))
                .or_default()
                .push(interface.interface.clone());
        }
        for ((namespace, package), interfaces) in by_package {
            component_links.push(json!({
                "type": "link",
                "properties": {
                    "target": provider.name(),
                    "namespace": namespace,
                    "package": package,
                    "interfaces": interfaces,
                },
            }));
        }
    }
    let mut component_traits = vec![json!({
        "type": "spreadscaler",
        "properties": { "instances": 16 },
    })];
    component_traits.extend(component_links);
    let mut components = vec![json!({
        "name": project.name,
        "type": "component",
        "properties": { "image": file_url(image), "id": project.name },
        "traits": component_traits,
    })];
    for (provider, path) in providers {
        let mut traits = vec![json!({ "type": "spreadscaler", "properties": { "instances": 1 } })];
        if let Some(interface) = needs.called_by.get(provider) {
            let properties = match provider {
                Provider::HttpServer => json!({ "address": address }),
                _ => json!({ "subscriptions": format!("{}.>", project.name) }),
            };
            traits.push(json!({
                "type": "link",
                "properties": {
                    "target": project.name,
                    "namespace": interface.namespace,
                    "package": interface.package,
                    "interfaces": [interface.interface],
                    "source_config": [{
                        "name": format!("{app}-{}", provider.name()),
                        "properties": properties,
                    }],
                },
            }));
        }
        components.push(json!({
            "name": provider.name(),
            "type": "capability",
            "properties": {
                "image": file_url(path),
                "id": format!("{app}-{}", provider.name()),
            },
            "traits": traits,
        }));
    }
    json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {
            "name": app,
            "annotations": {
                "version": version,
                "description": format!("{} under wash dev", project.name),
            },
        },
        "spec": { "components": components },
    })
}

fn app_name(project: &Project) -> String {
    format!("{}-dev", project.name)
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The provider executable: beside this wash (as cargo and the release
/// archives place them), else on the PATH. It is copied under
/// `$TRELLIS_HOME/dev/providers` and signed there, so a later cargo build
/// cannot change the signed bytes.
fn signed_provider(provider: Provider) -> anyhow::Result<PathBuf> {
    let binary = provider.binary();
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(binary))
        .filter(|path| path.is_file());
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(binary))
                .find(|path| path.is_file())
        })
    };
    let Some(source) = beside.or_else(on_path) else {
        bail!(
            "the {} provider ({binary}) is neither beside wash nor on the PATH; build it (cargo build --release -p {binary}) or add its directory to the PATH",
            provider.name()
        );
    };
    let dir = trellis_home()?.join("dev").join("providers");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let copy = dir.join(binary);
    let bytes = std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    let claims = trellis_claims::provider_claims_path(&copy);
    let unchanged = std::fs::read(&copy).is_ok_and(|old| old == bytes) && claims.is_file();
    if !unchanged {
        // Written aside and renamed, so a host starting the old copy never
        // reads half a file.
        let partial = dir.join(format!(".{binary}.partial"));
        std::fs::write(&partial, &bytes)
            .with_context(|| format!("writing {}", partial.display()))?;
        set_executable(&partial)?;
        std::fs::rename(&partial, &copy)
            .with_context(|| format!("replacing {}", copy.display()))?;
        claims::sign_local_provider(&copy, provider.name())?;
    }
    Ok(copy)
}

fn set_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

/// A fingerprint of the project's sources: every file under `src/` and
/// `wit/`, plus `Cargo.toml` and `build.rs`, with its length and mtime.
fn sources_fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut found = Vec::new();
    let mut pending: Vec<PathBuf> = ["src", "wit", "Cargo.toml", "build.rs"]
        .iter()
        .map(|p| dir.join(p))
        .collect();
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                pending.extend(entries.flatten().map(|e| e.path()));
            }
        } else {
            found.push((path, meta.len(), meta.modified().ok()));
        }
    }
    found.sort();
    found
}

/// The node `wash dev` talks to, and whether it started it.
struct Node {
    wadm: WadmClient,
    started: bool,
}

/// Connects to the lattice; with no host answering, starts a node on this
/// machine as `wash up --detach` would, and waits for its wadm.
async fn ensure_node(lattice: &LatticeArgs) -> anyhow::Result<Node> {
    let hosts = match lattice.connect().await {
        Ok(ctl) => ctl.ping_hosts().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let started = hosts.is_empty();
    if started {
        eprintln!("no host answers on the lattice; starting a node (wash up --detach)");
        let exe = std::env::current_exe().context("locating the wash executable")?;
        let connection = lattice.nats.connection()?;
        // Its summary repeats the node's log; only a failure is worth
        // showing, and `wash up` puts that on stderr.
        let status = std::process::Command::new(exe)
            .args(["up", "--detach", "--nats-url", &connection.urls])
            .args(["--lattice", &lattice.lattice])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .context("running wash up --detach")?;
        if !status.success() {
            bail!("wash up could not start a node (its errors are above)");
        }
        eprintln!(
            "node up; `wash down` stops it (log: {})",
            trellis_home()?.join("wash-up.log").display()
        );
    }
    let ctl = lattice.connect().await?;
    let wadm = WadmClient::new(ctl.nats().clone(), &lattice.lattice, lattice.timeout());
    let since = Instant::now();
    while let Err(err) = wadm.list().await {
        if since.elapsed() > WADM_WAIT {
            bail!(
                "no wadm answers on lattice `{}` ({err}); run one (wash up runs one beside its host)",
                lattice.lattice
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Node { wadm, started })
}

/// The session: what it deployed so far.
struct Session {
    project: Project,
    address: String,
    node: Node,
    providers: Option<(Needs, BTreeMap<Provider, PathBuf>)>,
    /// Builds deployed, oldest first; only the last two are kept on disk
    /// (the running one and the one it replaced).
    images: Vec<PathBuf>,
    /// The unsigned bytes deployed last, so a save that changes nothing
    /// (a comment, a touch) is not deployed again.
    current: Option<Vec<u8>>,
}

impl Session {
    /// Deploys `signed` as the app's next version and waits until it runs.
    async fn deploy(&mut self, built: Built) -> anyhow::Result<bool> {
        let Built { wasm, signed } = built;
        if self.current.as_deref() == Some(wasm.as_slice()) {
            return Ok(false);
        }
        let first = self.providers.is_none();
        if first {
            let needs = Needs::of(&signed)?;
            let mut paths = BTreeMap::new();
            for provider in needs.providers() {
                paths.insert(provider, signed_provider(provider)?);
            }
            self.providers = Some((needs, paths));
        }
        let Some((needs, providers)) = &self.providers else {
            return Ok(false);
        };
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let version = format!("dev-{stamp}");
        let dir = self.project.dir.join("build").join("dev");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // A new path per build: the image reference is how wadm and the
        // hosts see that the component changed.
        let image = dir.join(format!("{}-{stamp}_s.wasm", self.project.name));
        std::fs::write(&image, &signed).with_context(|| format!("writing {}", image.display()))?;
        let manifest = manifest(
            &self.project,
            &version,
            &image,
            needs,
            providers,
            &self.address,
        );
        let yaml = serde_norway::to_string(&manifest).context("writing the manifest")?;
        let manifest_path = self.project.dir.join("build").join("dev.yaml");
        std::fs::write(&manifest_path, &yaml)
            .with_context(|| format!("writing {}", manifest_path.display()))?;
        let wadm = &self.node.wadm;
        let put = wadm.put(&yaml).await.context("putting the dev manifest")?;
        wadm.deploy(&put.name, Some(&put.version))
            .await
            .context("deploying the dev manifest")?;
        let report =
            app::wait_for_outcome(wadm, &put.name, &put.version, DEPLOY_WAIT, Format::Text).await?;
        if report.status.status != DeployStatus::Deployed {
            bail!(
                "the new build did not deploy: {}",
                report.status.reasons.join("; ")
            );
        }
        self.current = Some(wasm);
        self.images.push(image);
        while self.images.len() > 2 {
            let old = self.images.remove(0);
            let _ = std::fs::remove_file(old);
        }
        if first {
            self.announce();
        }
        Ok(true)
    }

    /// Where to reach the component, printed once it first runs.
    fn announce(&self) {
        let Some((needs, _)) = &self.providers else {
            return;
        };
        for provider in needs.called_by.keys() {
            match provider {
                Provider::HttpServer => println!("serving http://{}/", self.address),
                _ => println!(
                    "subscribed to {}.> (try: nats req {}.hello hi)",
                    self.project.name, self.project.name
                ),
            }
        }
        println!(
            "watching {} for changes (Ctrl-C stops)",
            self.project.dir.display()
        );
    }

    /// Undeploys and forgets the app; stops the node if wash dev started it.
    async fn finish(self) {
        let name = app_name(&self.project);
        let _ = self.node.wadm.undeploy(&name).await;
        let _ = self.node.wadm.delete(&name).await;
        eprintln!("undeployed {name}");
        if self.node.started
            && let Ok(exe) = std::env::current_exe()
        {
            let _ = std::process::Command::new(exe)
                .arg("down")
                .stdin(std::process::Stdio::null())
                .status();
        }
    }
}

/// Builds and signs off the async runtime, so a Ctrl-C during a long
/// build is still heard.
async fn build(project: &Project) -> anyhow::Result<Built> {
    let project = project.clone();
    tokio::task::spawn_blocking(move || project.build_signed())
        .await
        .context("the build task failed")?
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let project = Project::load(&args.path)?;
    eprintln!("building {} {}", project.name, project.version);
    let first = build(&project).await;
    let node = ensure_node(&args.lattice).await?;
    let mut session = Session {
        project,
        address: args.address,
        node,
        providers: None,
        images: Vec::new(),
        current: None,
    };
    let poll = Duration::from_millis(args.poll_ms.max(20));
    let mut seen = sources_fingerprint(&session.project.dir);
    let mut pending = Some((first, Instant::now(), Duration::ZERO));
    let stop = trellis_host::shutdown_signal();
    tokio::pin!(stop);
    loop {
        if let Some((built, seen_at, build_time)) = pending.take() {
            match built {
                Ok(built) => match session.deploy(built).await {
                    Ok(true) if session.images.len() > 1 => println!(
                        "updated {}: the new build serves {:.1} s after the save (build {:.1} s, swap {:.1} s)",
                        session.project.name,
                        seen_at.elapsed().as_secs_f64(),
                        build_time.as_secs_f64(),
                        (seen_at.elapsed().saturating_sub(build_time)).as_secs_f64()
                    ),
                    Ok(_) => {}
                    Err(err) => eprintln!("error: {err:#}\nwaiting for the next change"),
                },
                Err(err) => eprintln!("error: {err:#}\nwaiting for the next change"),
            }
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(poll) => {}
        }
        let now = sources_fingerprint(&session.project.dir);
        // Taken before the build, so a save during it starts another.
        if now != seen {
            seen = now;
            eprintln!("change seen; rebuilding {}", session.project.name);
            let seen_at = Instant::now();
            tokio::select! {
                () = &mut stop => break,
                built = build(&session.project) => pending = Some((built, seen_at, seen_at.elapsed())),
            }
        }
    }
    session.finish().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interface(name: &str) -> WitInterface {
        WitInterface::parse(name).unwrap()
    }

    #[test]
    fn exports_and_imports_pick_the_providers_that_serve_them() {
        assert_eq!(
            Provider::for_export("wasi:http/incoming-handler@0.2.12").map(|(p, _)| p),
            Some(Provider::HttpServer)
        );
        assert_eq!(
            Provider::for_export("wasmcloud:messaging/handler@0.2.0").map(|(p, _)| p),
            Some(Provider::MessagingNats)
        );
        assert_eq!(Provider::for_export("wasi:cli/run@0.2.0"), None);
        assert_eq!(
            Provider::for_import(&interface("wasi:keyvalue/atomics@0.2.0-draft")),
            Some(Provider::KeyvalueSqlite)
        );
        assert_eq!(
            Provider::for_import(&interface("wasi:blobstore/container@0.2.0-draft")),
            Some(Provider::BlobstoreFs)
        );
        assert_eq!(
            Provider::for_import(&interface("wasi:filesystem/types@0.2.0")),
            None
        );
    }

    #[test]
    fn the_manifest_links_each_provider_the_way_the_world_asks() {
        let project = Project {
            dir: PathBuf::from("/p/counter"),
            name: "counter".into(),
            version: "0.1.0".into(),
            manifest: PathBuf::from("/p/counter/Cargo.toml"),
        };
        let mut needs = Needs::default();
        needs.calls.insert(
            Provider::KeyvalueSqlite,
            vec![
                interface("wasi:keyvalue/store"),
                interface("wasi:keyvalue/atomics"),
            ],
        );
        needs.called_by.insert(
            Provider::HttpServer,
            interface("wasi:http/incoming-handler"),
        );
        let providers: BTreeMap<Provider, PathBuf> = needs
            .providers()
            .into_iter()
            .map(|p| {
                (
                    p,
                    PathBuf::from(format!("/home/.trellis/dev/{}", p.binary())),
                )
            })
            .collect();
        let value = manifest(
            &project,
            "dev-1",
            Path::new("/p/counter/build/dev/counter-1_s.wasm"),
            &needs,
            &providers,
            "127.0.0.1:8000",
        );
        let text = serde_json::to_string(&value).unwrap();
        let parsed = wadm::Manifest::parse(&text).unwrap();
        assert_eq!(parsed.name, "counter-dev");
        assert_eq!(parsed.version, "dev-1");
        assert_eq!(parsed.components.len(), 3);
        let links = &value["spec"]["components"][0]["traits"][1]["properties"];
        assert_eq!(links["target"], "keyvalue-sqlite");
        assert_eq!(links["interfaces"], json!(["store", "atomics"]));
        let http = &value["spec"]["components"][1];
        assert_eq!(http["properties"]["id"], "counter-dev-http-server");
        assert_eq!(
            http["traits"][1]["properties"]["source_config"][0]["properties"]["address"],
            "127.0.0.1:8000"
        );
    }

    #[test]
    fn a_saved_file_changes_the_fingerprint_and_target_files_do_not() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("src")).unwrap();
        std::fs::create_dir_all(tmp.path().join("target")).unwrap();
        std::fs::write(tmp.path().join("src/lib.rs"), "a").unwrap();
        let before = sources_fingerprint(tmp.path());
        std::fs::write(tmp.path().join("target/out"), "x").unwrap();
        assert_eq!(sources_fingerprint(tmp.path()), before);
        std::fs::write(tmp.path().join("src/lib.rs"), "ab").unwrap();
        assert_ne!(sources_fingerprint(tmp.path()), before);
    }
}
