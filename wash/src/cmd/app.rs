//! `wash app put|deploy|undeploy|delete|list|status|versions|validate|plan`:
//! applications through wadm's API.
//!
//! `plan FILE` (and `deploy FILE --dry-run`, `undeploy NAME --dry-run`)
//! shows what wadm would do to the lattice as it is now, grouped by host,
//! and changes nothing, as `terraform plan` or `kubectl diff` would.
//!
//! `validate` works offline. Every other command needs a wadm on the
//! lattice (`wash up` runs one). Before a manifest is sent, its relative
//! `file://` images are made absolute against the manifest's directory,
//! because wadm and the hosts resolve paths from wherever they run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_norway::Value;
use wadm::Manifest;
use wadm::api::WadmClient;
use wadm::store::DeployStatus;

use trellis_lattice::client::CtlClient;
use trellis_oci::RegistryArgs;

use super::imports;
use super::lattice::{LatticeArgs, print_columns};
use crate::output::{self, Format, OutputArgs};

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Store a new version of the manifest in FILE.
    Put(FileArgs),
    /// Deploy an app: a manifest FILE (put first) or a stored app's name.
    Deploy(DeployArgs),
    /// Show what deploying the manifest in FILE would do; changes nothing.
    Plan(FileArgs),
    /// Deploy the version of an app that was deployed before the current
    /// one (twice: back to where it was).
    Rollback(RollbackArgs),
    /// Stop running an app; its versions stay stored.
    Undeploy(UndeployArgs),
    /// Undeploy an app and forget all its versions.
    Delete(NameArgs),
    /// List stored apps with their versions and status.
    List(ListArgs),
    /// Show an app's status and why it is not deployed.
    Status(NameArgs),
    /// List an app's stored versions.
    Versions(NameArgs),
    /// Check a manifest FILE without a lattice: its fields, and that every
    /// import of its components is served by the host or one of its links.
    Validate {
        /// The manifest (YAML or JSON).
        file: PathBuf,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// The manifest (YAML or JSON).
    file: PathBuf,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A manifest file, or the name of a stored app.
    app: String,
    /// Which stored version to deploy (default: the newest).
    #[arg(long)]
    version: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
    /// Show the plan (as `wash app plan`) and change nothing.
    #[arg(long = "dry-run", conflicts_with_all = ["wait", "version"])]
    dry_run: bool,
    /// Where to read registry images from to check their imports.
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

/// `--wait` and how long it waits.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Show progress and wait until the app is deployed or failed.
    #[arg(long)]
    wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long = "wait-timeout-secs", default_value_t = 120)]
    wait_timeout_secs: u64,
}

impl WaitArgs {
    /// How long to wait for the outcome, if at all.
    fn timeout(&self) -> Option<Duration> {
        self.wait
            .then(|| Duration::from_secs(self.wait_timeout_secs))
    }
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The app's name.
    name: String,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

#[derive(Debug, Args)]
pub struct UndeployArgs {
    /// The app's name.
    name: String,
    /// Show what undeploying would stop and delete; change nothing.
    #[arg(long = "dry-run")]
    dry_run: bool,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// The app's name.
    name: String,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

/// What `undeploy` and `delete` report.
#[derive(Serialize)]
struct Changed<'a> {
    name: &'a str,
    action: &'static str,
}

pub async fn run(command: AppCommand) -> anyhow::Result<()> {
    match command {
        AppCommand::Validate { file, registry } => validate(&file, &registry).await,
        AppCommand::Put(args) => {
            let client = connect(&args.lattice).await?;
            let text = read_manifest(&args.file)?;
            let put = client.put(&text).await.context("putting the manifest")?;
            let state = if put.created {
                "stored"
            } else {
                "already stored"
            };
            output::print(
                args.format.output,
                &put,
                &[
                    ("name", put.name.clone()),
                    ("version", put.version.clone()),
                    ("state", state.into()),
                ],
            )
        }
        AppCommand::Deploy(args) if args.dry_run => {
            let path = Path::new(&args.app);
            if !path.is_file() {
                bail!(
                    "`--dry-run` plans a manifest file, and `{}` is not one; pass the file",
                    args.app
                );
            }
            plan(path, &args.lattice, args.format.output).await
        }
        AppCommand::Deploy(args) => deploy(args).await,
        AppCommand::Rollback(args) => {
            let client = connect(&args.lattice).await?;
            let deployed = client.rollback(&args.name).await?;
            report_deployed(&client, &deployed, args.wait.timeout(), args.format.output).await
        }
        AppCommand::Plan(args) => plan(&args.file, &args.lattice, args.format.output).await,
        AppCommand::Undeploy(args) if args.dry_run => {
            let client = connect(&args.lattice).await?;
            let report = client.plan_undeploy(&args.name).await?;
            print_plan(args.format.output, &report)
        }
        AppCommand::Undeploy(args) => {
            let client = connect(&args.lattice).await?;
            client.undeploy(&args.name).await?;
            changed(args.format.output, &args.name, "undeployed")
        }
        AppCommand::Delete(args) => {
            let client = connect(&args.lattice).await?;
            client.delete(&args.name).await?;
            changed(args.format.output, &args.name, "deleted")
        }
        AppCommand::List(args) => {
            let client = connect(&args.lattice).await?;
            let apps = client.list().await?;
            let rows: Vec<Vec<String>> = apps
                .iter()
                .map(|app| {
                    vec![
                        app.name.clone(),
                        app.latest_version.clone(),
                        app.deployed_version.clone().unwrap_or_else(|| "-".into()),
                        app.status
                            .as_ref()
                            .map_or("undeployed", |s| s.status.as_str())
                            .to_owned(),
                    ]
                })
                .collect();
            print_columns(
                args.format.output,
                &apps,
                &["NAME", "LATEST", "DEPLOYED", "STATUS"],
                &rows,
            )
        }
        AppCommand::Status(args) => {
            let client = connect(&args.lattice).await?;
            let report = client.status(&args.name).await?;
            output::print(
                args.format.output,
                &report,
                &[
                    ("name", report.name.clone()),
                    (
                        "version",
                        report
                            .deployed_version
                            .clone()
                            .unwrap_or_else(|| "-".into()),
                    ),
                    ("status", report.status.status.as_str().into()),
                    ("reasons", super::lattice::list(&report.status.reasons)),
                ],
            )
        }
        AppCommand::Versions(args) => {
            let client = connect(&args.lattice).await?;
            let versions = client.versions(&args.name).await?;
            let rows: Vec<Vec<String>> = versions
                .iter()
                .map(|v| {
                    vec![
                        v.version.clone(),
                        v.put_at.to_rfc3339(),
                        if v.deployed { "yes" } else { "" }.into(),
                    ]
                })
                .collect();
            print_columns(
                args.format.output,
                &versions,
                &["VERSION", "PUT AT", "DEPLOYED"],
                &rows,
            )
        }
    }
}

async fn validate(file: &Path, registry: &RegistryArgs) -> anyhow::Result<()> {
    let text = read_manifest(file)?;
    let manifest = Manifest::parse(&text)
        .map_err(|err| anyhow::anyhow!("{} is not a valid manifest: {err}", file.display()))?;
    let what = file.display().to_string();
    let unchecked = imports::refuse(imports::check(&manifest, &[], registry).await, &what)?;
    if !unchecked.is_empty() {
        bail!(
            "{what}: the imports of some components could not be checked:\n  {}",
            unchecked.join("\n  ")
        );
    }
    println!(
        "{}: `{}` version {} is valid, and every import of its components is served",
        file.display(),
        manifest.name,
        manifest.version
    );
    Ok(())
}

/// `wash app plan FILE`: what deploying it would do now.
async fn plan(file: &Path, lattice: &LatticeArgs, format: Format) -> anyhow::Result<()> {
    let text = read_manifest(file)?;
    let client = connect(lattice).await?;
    let report = client.plan(&text).await.context("planning the manifest")?;
    print_plan(format, &report)
}

fn print_plan(format: Format, report: &wadm::PlanReport) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(report)?),
        Format::Text => print!("{report}"),
    }
    Ok(())
}

async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let ctl = args.lattice.connect().await?;
    let client = wadm_client(&ctl, &args.lattice);
    let path = Path::new(&args.app);
    let (name, version) = if path.is_file() {
        let text = read_manifest(path)?;
        check_imports(&text, path, &ctl, &args.registry).await?;
        let put = client.put(&text).await.context("putting the manifest")?;
        if args.version.is_some() && args.version.as_deref() != Some(put.version.as_str()) {
            bail!(
                "--version {} does not match the manifest's version {}",
                args.version.unwrap_or_default(),
                put.version
            );
        }
        // The file's own version, even when it was put before: deploying
        // dev.yaml after prod.yaml must go back to dev, not to the latest.
        (put.name, Some(put.version))
    } else {
        (args.app.clone(), args.version.clone())
    };
    let deployed = client.deploy(&name, version.as_deref()).await?;
    report_deployed(&client, &deployed, args.wait.timeout(), args.format.output).await
}

/// Refuses a manifest whose components import what nothing would serve,
/// given the links already in the lattice. An image wash cannot read (a
/// registry only the hosts reach) is not checked, with a warning.
async fn check_imports(
    text: &str,
    path: &Path,
    ctl: &CtlClient,
    registry: &RegistryArgs,
) -> anyhow::Result<()> {
    // A manifest that does not parse is refused by wadm, with its reasons.
    let Ok(manifest) = Manifest::parse(text) else {
        return Ok(());
    };
    // With no host up, nothing answers for the links; what they would
    // cover is unknown, so what the manifest leaves open is only a warning.
    let links = ctl.get_links().await;
    let check = imports::check(&manifest, links.as_deref().unwrap_or_default(), registry).await;
    let what = path.display().to_string();
    let unchecked = match links {
        Ok(_) => imports::refuse(check, &what)?,
        Err(err) => {
            eprintln!(
                "warning: cannot read the lattice's links ({err}), so these are not refused:"
            );
            check.problems.into_iter().chain(check.unchecked).collect()
        }
    };
    for warning in unchecked {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

/// Prints what was deployed; with `wait`, waits (that long at most) until
/// it is deployed or failed, and fails unless it deployed.
async fn report_deployed(
    client: &WadmClient,
    deployed: &wadm::api::Deployed,
    wait: Option<Duration>,
    format: Format,
) -> anyhow::Result<()> {
    let Some(timeout) = wait else {
        return output::print(
            format,
            deployed,
            &[
                ("name", deployed.name.clone()),
                ("version", deployed.version.clone()),
                ("status", "deploying".into()),
            ],
        );
    };
    let name = &deployed.name;
    let report = wait_for_outcome(client, name, &deployed.version, timeout, format).await?;
    let status = report.status.status;
    output::print(
        format,
        &report,
        &[
            ("name", report.name.clone()),
            ("version", deployed.version.clone()),
            ("status", status.as_str().into()),
            ("reasons", super::lattice::list(&report.status.reasons)),
        ],
    )?;
    if status != DeployStatus::Deployed {
        bail!("`{name}` did not deploy");
    }
    Ok(())
}

/// Polls the app's status until it settles on `version` as deployed or
/// failed, printing each change to stderr (for people) as it happens.
pub(crate) async fn wait_for_outcome(
    client: &WadmClient,
    name: &str,
    version: &str,
    timeout: Duration,
    format: Format,
) -> anyhow::Result<wadm::api::StatusReport> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        let report = client.status(name).await?;
        let current = (report.status.status, report.status.reasons.clone());
        if last.as_ref() != Some(&current) && format == Format::Text {
            eprintln!("{name}: {}", report.status.status.as_str());
            for reason in &report.status.reasons {
                eprintln!("  {reason}");
            }
        }
        last = Some(current);
        let settled = report.status.version.as_deref() == Some(version)
            && matches!(
                report.status.status,
                DeployStatus::Deployed | DeployStatus::Failed
            );
        if settled {
            return Ok(report);
        }
        if Instant::now() > deadline {
            bail!(
                "`{name}` was still {} after {} s; `wash app status {name}` shows progress",
                report.status.status.as_str(),
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn changed(format: Format, name: &str, action: &'static str) -> anyhow::Result<()> {
    output::print(
        format,
        &Changed { name, action },
        &[("name", name.into()), ("action", action.into())],
    )
}

async fn connect(lattice: &LatticeArgs) -> anyhow::Result<WadmClient> {
    Ok(wadm_client(&lattice.connect().await?, lattice))
}

/// wadm's API over the connection `ctl` already has.
fn wadm_client(ctl: &CtlClient, lattice: &LatticeArgs) -> WadmClient {
    WadmClient::new(ctl.nats().clone(), &lattice.lattice, lattice.timeout())
}

/// The manifest in `file`, with relative `file://` images made absolute.
fn read_manifest(file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading manifest {}", file.display()))?;
    let dir = file
        .canonicalize()
        .with_context(|| format!("resolving {}", file.display()))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    resolve_file_images(&text, &dir)
}

/// `text` with every relative `file://` image under `spec.components`
/// resolved against `dir`. Text without relative images is returned as is,
/// so the stored manifest keeps its comments and layout.
fn resolve_file_images(text: &str, dir: &Path) -> anyhow::Result<String> {
    let is_json = text.trim_start().starts_with('{');
    let mut document: Value = serde_norway::from_str(text).context("reading the manifest")?;
    let mut changed = false;
    let components = document
        .get_mut("spec")
        .and_then(|spec| spec.get_mut("components"))
        .and_then(Value::as_sequence_mut);
    for component in components.into_iter().flatten() {
        let Some(image) = component
            .get_mut("properties")
            .and_then(|p| p.get_mut("image"))
        else {
            continue;
        };
        let Some(path) = image.as_str().and_then(|i| i.strip_prefix("file://")) else {
            continue;
        };
        if Path::new(path).is_absolute() {
            continue;
        }
        let absolute = normalize(&dir.join(path));
        *image = Value::String(format!("file://{}", absolute.display()));
        changed = true;
    }
    if !changed {
        return Ok(text.to_owned());
    }
    if is_json {
        Ok(serde_json::to_string_pretty(&document)?)
    } else {
        Ok(serde_norway::to_string(&document)?)
    }
}

/// `path` with `.` and `..` resolved lexically, so hosts report
/// `/app/build/x.wasm` rather than `/app/manifests/../build/x.wasm`. The
/// file system is not consulted: a missing file is the host's error to
/// report.
fn normalize(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_file_images_are_resolved_against_the_manifest_directory() {
        let text = "apiVersion: core.oam.dev/v1beta1\nspec:\n  components:\n    - name: a\n      \
                    properties:\n        image: file://../build/a.wasm\n    - name: b\n      \
                    properties:\n        image: file:///abs/b.wasm\n    - name: c\n      \
                    properties:\n        image: ghcr.io/x/c:1\n";
        let resolved = resolve_file_images(text, Path::new("/work/manifests")).unwrap();
        assert!(resolved.contains("file:///work/build/a.wasm"), "{resolved}");
        assert!(resolved.contains("file:///abs/b.wasm"), "{resolved}");
        assert!(resolved.contains("ghcr.io/x/c:1"), "{resolved}");
    }

    #[test]
    fn manifests_without_relative_images_are_sent_unchanged() {
        let text =
            "# keep me\nspec:\n  components:\n    - properties:\n        image: file:///a.wasm\n";
        assert_eq!(resolve_file_images(text, Path::new("/x")).unwrap(), text);
    }
}
