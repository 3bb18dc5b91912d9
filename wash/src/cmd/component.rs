//! `wash start|scale|stop component`: run components on hosts.
//!
//! All three are one `component.scale` command with a different instance
//! limit (0 stops). Without `--host-id`, `start` holds an auction and uses
//! the first host that bids. The host acknowledges before the component
//! runs, so by default these commands then wait for the host's
//! `component_scaled` (or `component_scale_failed`) event; a script can
//! call the component as soon as `wash start component` returns.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use trellis_lattice::client::CtlClient;
use trellis_lattice::ctl::{ComponentAuctionRequest, ScaleComponentCommand};

use super::PlacementArgs;
use super::lattice::{LatticeArgs, parse_pairs};
use crate::output::{self, Format, OutputArgs};

#[derive(Debug, Subcommand)]
pub enum ScaleCommand {
    /// Change how many calls a running component may serve at once.
    Component(ScaleComponentArgs),
}

#[derive(Debug, Args)]
pub struct StartComponentArgs {
    /// The component: a .wasm file path (sent as an absolute file:// URL), or
    /// a registry reference, `oci://registry/repo:tag` (the `oci://` may be
    /// left out).
    image_ref: String,
    /// The id the component runs under in the lattice.
    component_id: String,
    #[command(flatten)]
    placement: PlacementArgs,
    #[command(flatten)]
    scale: ScaleOptions,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ScaleComponentArgs {
    /// The host running the component.
    host_id: String,
    /// The component's lattice id.
    component_id: String,
    /// The component: a .wasm file path (sent as an absolute file:// URL), or
    /// a registry reference, `oci://registry/repo:tag` (the `oci://` may be
    /// left out).
    image_ref: String,
    #[command(flatten)]
    scale: ScaleOptions,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

#[derive(Debug, Args)]
pub struct StopComponentArgs {
    /// The host running the component.
    host_id: String,
    /// The component's lattice id.
    component_id: String,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

/// What start and scale share besides the component.
#[derive(Debug, Args)]
struct ScaleOptions {
    /// How many calls the component may serve at once.
    #[arg(long, default_value_t = 1)]
    max_instances: u32,
    /// A tag reported back in inventory and events (`key=value`; repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// A host the component may reach over outgoing HTTP, as
    /// `[scheme://]host[:port]` (`https://api.example.com`,
    /// `*.example.com:443`); repeatable. Without it, none.
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
    /// A named config the component reads (repeatable; later ones win).
    #[arg(long = "config", value_name = "NAME")]
    configs: Vec<String>,
}

#[derive(Debug, Args)]
struct WaitArgs {
    /// Return once the host accepts the command, without waiting for it to
    /// report the component scaled.
    #[arg(long)]
    skip_wait: bool,
    /// How long to wait for the host to report the component scaled, in
    /// milliseconds.
    #[arg(long, default_value_t = 30_000)]
    wait_timeout_ms: u64,
}

/// What these commands report, in both formats.
#[derive(Serialize)]
struct Scaled {
    host_id: String,
    component_id: String,
    image_ref: String,
    max_instances: u32,
    /// Whether the host reported the result (false with `--skip-wait`).
    confirmed: bool,
}

pub async fn start(args: StartComponentArgs) -> anyhow::Result<()> {
    let image_ref = image_url(&args.image_ref)?;
    let ctl = args.lattice.connect().await?;
    let host_id = args
        .placement
        .host(|constraints| auction(&ctl, &image_ref, &args.component_id, constraints))
        .await?
        .ok_or_else(|| {
            anyhow!(
                args.placement
                    .no_bid(ctl.lattice(), &format!("`{}`", args.component_id))
            )
        })?;
    let command = scale_command(host_id, args.component_id, image_ref, &args.scale)?;
    send(&ctl, command, &args.wait, args.format.output).await
}

pub async fn scale(command: ScaleCommand) -> anyhow::Result<()> {
    let ScaleCommand::Component(args) = command;
    let image_ref = image_url(&args.image_ref)?;
    let ctl = args.lattice.connect().await?;
    let command = scale_command(args.host_id, args.component_id, image_ref, &args.scale)?;
    send(&ctl, command, &args.wait, args.format.output).await
}

pub async fn stop(args: StopComponentArgs) -> anyhow::Result<()> {
    let ctl = args.lattice.connect().await?;
    // The host knows the component by id; sending its current image too
    // keeps the command the same as a scale to 0 from wadm.
    let inventory = ctl
        .get_inventory(&args.host_id)
        .await
        .with_context(|| format!("looking up component `{}`", args.component_id))?;
    let Some(running) = inventory
        .components
        .into_iter()
        .find(|c| c.id == args.component_id)
    else {
        bail!(
            "host {} does not run component `{}`; see what it runs with `wash get inventory {}`",
            args.host_id,
            args.component_id,
            args.host_id
        );
    };
    let command = ScaleComponentCommand {
        component_ref: running.image_ref,
        component_id: args.component_id,
        annotations: running.annotations,
        max_instances: 0,
        host_id: args.host_id,
        ..Default::default()
    };
    send(&ctl, command, &args.wait, args.format.output).await
}

fn scale_command(
    host_id: String,
    component_id: String,
    component_ref: String,
    options: &ScaleOptions,
) -> anyhow::Result<ScaleComponentCommand> {
    let annotations = parse_pairs("--annotation", &options.annotations)?;
    // Checked here so a typo fails before anything is sent.
    trellis_lattice::grant::OutboundGrant::parse(&options.allowed_hosts)
        .context("checking --allowed-host")?;
    Ok(ScaleComponentCommand {
        component_ref,
        component_id,
        annotations: (!annotations.is_empty()).then_some(annotations),
        max_instances: options.max_instances,
        host_id,
        config: options.configs.clone(),
        allow_update: false,
        allowed_hosts: options.allowed_hosts.clone(),
    })
}

/// Holds an auction and returns the first bidder, if any.
async fn auction(
    ctl: &CtlClient,
    image_ref: &str,
    component_id: &str,
    constraints: BTreeMap<String, String>,
) -> anyhow::Result<Option<String>> {
    let request = ComponentAuctionRequest {
        component_ref: image_ref.to_owned(),
        component_id: component_id.to_owned(),
        constraints,
    };
    eprintln!("holding an auction for `{component_id}`…");
    let acks = ctl
        .auction_component(&request)
        .await
        .context("holding an auction for a host")?;
    Ok(acks.into_iter().next().map(|ack| ack.host_id))
}

async fn send(
    ctl: &CtlClient,
    command: ScaleComponentCommand,
    wait: &WaitArgs,
    format: Format,
) -> anyhow::Result<()> {
    let context = || {
        format!(
            "scaling component `{}` on host {}",
            command.component_id, command.host_id
        )
    };
    let confirmed = if wait.skip_wait {
        ctl.scale_component(&command).await.with_context(context)?;
        false
    } else {
        eprintln!(
            "asking host {} to scale `{}` to {} and waiting for it…",
            command.host_id, command.component_id, command.max_instances
        );
        let timeout = Duration::from_millis(wait.wait_timeout_ms);
        ctl.scale_component_and_wait(&command, timeout)
            .await
            .with_context(context)?;
        true
    };
    let report = Scaled {
        host_id: command.host_id,
        component_id: command.component_id,
        image_ref: command.component_ref,
        max_instances: command.max_instances,
        confirmed,
    };
    let rows = [
        ("Host", report.host_id.clone()),
        ("Component", report.component_id.clone()),
        ("Image", report.image_ref.clone()),
        ("Max Instances", report.max_instances.to_string()),
        (
            "Status",
            if confirmed { "scaled" } else { "accepted" }.to_owned(),
        ),
    ];
    output::print(format, &report, &rows)
}

/// Turns an image reference into what a host elsewhere can load: anything
/// with a scheme is sent as is; a registry reference written without one
/// (`127.0.0.1:5000/acme/counter:0.1.0`, as `wash push` accepts it) gets
/// `oci://`; a file path becomes an absolute `file://` URL. A relative path
/// only means something here, so it must exist here; an absolute one is
/// passed on unchecked, as the host may see another filesystem.
pub(crate) fn image_url(image_ref: &str) -> anyhow::Result<String> {
    if image_ref.contains("://") {
        return Ok(image_ref.to_owned());
    }
    let path = Path::new(image_ref);
    // A file whose name merely looks like a reference (`build.d/x.wasm`)
    // is still the file.
    if trellis_oci::is_oci_reference(image_ref) && !path.exists() {
        return Ok(format!("oci://{image_ref}"));
    }
    let absolute = std::path::absolute(path)
        .with_context(|| format!("making {image_ref} an absolute path"))?;
    if path.is_relative() && !absolute.is_file() {
        bail!(
            "{} is not a file; give a file path, a file:// URL or an oci:// registry reference",
            absolute.display()
        );
    }
    let text = absolute
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", absolute.display()))?;
    Ok(format!("file://{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_become_absolute_file_urls() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("echo.wasm");
        std::fs::write(&file, b"\0asm").unwrap();
        let url = image_url(file.to_str().unwrap()).unwrap();
        assert_eq!(url, format!("file://{}", file.display()));

        let cwd = std::env::current_dir().unwrap();
        let relative = Path::new("Cargo.toml");
        assert_eq!(
            image_url("Cargo.toml").unwrap(),
            format!("file://{}", cwd.join(relative).display())
        );
    }

    #[test]
    fn urls_pass_through_and_missing_files_are_refused() {
        assert_eq!(
            image_url("file:///srv/echo.wasm").unwrap(),
            "file:///srv/echo.wasm"
        );
        assert_eq!(
            image_url("/srv/elsewhere.wasm").unwrap(),
            "file:///srv/elsewhere.wasm"
        );
        let err = image_url("no/such/echo.wasm").unwrap_err().to_string();
        assert!(err.contains("is not a file"), "{err}");
    }

    #[test]
    fn registry_references_get_the_oci_scheme() {
        assert_eq!(
            image_url("127.0.0.1:5000/acme/counter:0.1.0").unwrap(),
            "oci://127.0.0.1:5000/acme/counter:0.1.0"
        );
        assert_eq!(
            image_url("oci://ghcr.io/acme/counter:0.1.0").unwrap(),
            "oci://ghcr.io/acme/counter:0.1.0"
        );
    }
}
