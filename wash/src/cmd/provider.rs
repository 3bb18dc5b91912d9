//! `wash start|stop provider`: run capability provider processes on hosts.
//!
//! A provider is an executable the host starts, signed by a claims JWT
//! beside it (`X.jwt`). Without `--host-id`, `start` holds a provider
//! auction and uses the first host that bids; `stop` looks for the one
//! host that runs the provider. Both wait until the host reports the
//! provider up (or gone), so a script can use it as soon as they return.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use trellis_lattice::client::CtlClient;
use trellis_lattice::ctl::{ProviderAuctionRequest, StartProviderCommand, StopProviderCommand};

use super::PlacementArgs;
use super::component::image_url;
use super::lattice::{LatticeArgs, parse_pairs};
use crate::output::{self, OutputArgs};

#[derive(Debug, Args)]
pub struct StartProviderArgs {
    /// The provider executable: a file path (sent as an absolute file://
    /// URL), its claims read from the same path plus `.jwt`; or a provider
    /// archive in a registry, `oci://registry/repo:tag` (the `oci://` may be
    /// left out), which carries its claims.
    provider_ref: String,
    /// The id the provider runs under in the lattice (the target links name).
    provider_id: String,
    #[command(flatten)]
    placement: PlacementArgs,
    /// A named config the provider reads (repeatable; later ones win).
    #[arg(long = "config", value_name = "NAME")]
    configs: Vec<String>,
    /// A tag reported back in inventory and events (`key=value`; repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

#[derive(Debug, Args)]
pub struct StopProviderArgs {
    /// The provider's lattice id.
    provider_id: String,
    /// The host running it [default: the one host whose inventory lists it].
    #[arg(long)]
    host_id: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

#[derive(Debug, Args)]
struct WaitArgs {
    /// How long to wait for the host to report the provider started or
    /// stopped, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    wait_timeout_ms: u64,
}

/// What these commands report, in both formats.
#[derive(Serialize)]
struct ProviderReport {
    host_id: String,
    provider_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_ref: Option<String>,
    status: &'static str,
}

pub async fn start(args: StartProviderArgs) -> anyhow::Result<()> {
    let provider_ref = image_url(&args.provider_ref)?;
    let ctl = args.lattice.connect().await?;
    let bidder = args
        .placement
        .host(|constraints| auction(&ctl, &provider_ref, &args.provider_id, constraints))
        .await?;
    let Some(host_id) = bidder else {
        return already_running(&ctl, args, provider_ref).await;
    };
    let annotations = parse_pairs("--annotation", &args.annotations)?;
    let command = StartProviderCommand {
        provider_id: args.provider_id,
        provider_ref,
        host_id,
        config: args.configs,
        annotations: (!annotations.is_empty()).then_some(annotations),
    };
    eprintln!(
        "asking host {} to start provider `{}` and waiting for it…",
        command.host_id, command.provider_id
    );
    ctl.start_provider_and_wait(&command, Duration::from_millis(args.wait.wait_timeout_ms))
        .await
        .with_context(|| {
            format!(
                "starting provider `{}` on host {}",
                command.provider_id, command.host_id
            )
        })?;
    report(
        args.format,
        ProviderReport {
            host_id: command.host_id,
            provider_id: command.provider_id,
            provider_ref: Some(command.provider_ref),
            status: "started",
        },
    )
}

/// Hosts that already run a provider id do not bid for it, so an auction
/// without bidders may mean "already running": then starting it again is a
/// no-op, and scripts can run twice.
async fn already_running(
    ctl: &CtlClient,
    args: StartProviderArgs,
    provider_ref: String,
) -> anyhow::Result<()> {
    let host_id = host_running(ctl, &args.provider_id)
        .await
        .with_context(|| {
            args.placement
                .no_bid(ctl.lattice(), &format!("provider `{}`", args.provider_id))
        })?;
    report(
        args.format,
        ProviderReport {
            host_id,
            provider_id: args.provider_id,
            provider_ref: Some(provider_ref),
            status: "already running",
        },
    )
}

pub async fn stop(args: StopProviderArgs) -> anyhow::Result<()> {
    let ctl = args.lattice.connect().await?;
    let host_id = match args.host_id {
        Some(host_id) => host_id,
        None => host_running(&ctl, &args.provider_id).await?,
    };
    let command = StopProviderCommand {
        host_id,
        provider_id: args.provider_id,
    };
    ctl.stop_provider_and_wait(&command, Duration::from_millis(args.wait.wait_timeout_ms))
        .await
        .with_context(|| {
            format!(
                "stopping provider `{}` on host {}",
                command.provider_id, command.host_id
            )
        })?;
    report(
        args.format,
        ProviderReport {
            host_id: command.host_id,
            provider_id: command.provider_id,
            provider_ref: None,
            status: "stopped",
        },
    )
}

fn report(format: OutputArgs, report: ProviderReport) -> anyhow::Result<()> {
    let mut rows = vec![
        ("Host", report.host_id.clone()),
        ("Provider", report.provider_id.clone()),
    ];
    if let Some(provider_ref) = &report.provider_ref {
        rows.push(("Reference", provider_ref.clone()));
    }
    rows.push(("Status", report.status.to_owned()));
    output::print(format.output, &report, &rows)
}

/// Holds an auction and returns the first bidder, if any.
async fn auction(
    ctl: &CtlClient,
    provider_ref: &str,
    provider_id: &str,
    constraints: BTreeMap<String, String>,
) -> anyhow::Result<Option<String>> {
    let request = ProviderAuctionRequest {
        provider_ref: provider_ref.to_owned(),
        provider_id: provider_id.to_owned(),
        constraints,
    };
    eprintln!("holding an auction for provider `{provider_id}`…");
    let acks = ctl
        .auction_provider(&request)
        .await
        .context("holding an auction for a host")?;
    Ok(acks.into_iter().next().map(|ack| ack.host_id))
}

/// The one host whose inventory lists `provider_id`.
async fn host_running(ctl: &CtlClient, provider_id: &str) -> anyhow::Result<String> {
    let inventories = ctl
        .get_hosts_inventories()
        .await
        .with_context(|| format!("looking for the host that runs provider `{provider_id}`"))?;
    let hosts: Vec<String> = inventories
        .into_iter()
        .filter(|inventory| inventory.providers.iter().any(|p| p.id == provider_id))
        .map(|inventory| inventory.host_id)
        .collect();
    match hosts.as_slice() {
        [host_id] => Ok(host_id.clone()),
        [] => bail!(
            "no host in lattice `{}` runs provider `{provider_id}`; see what runs where with \
             `wash get inventory`",
            ctl.lattice()
        ),
        several => bail!(
            "provider `{provider_id}` runs on {} hosts ({}); pass --host-id to pick one",
            several.len(),
            several.join(", ")
        ),
    }
}
