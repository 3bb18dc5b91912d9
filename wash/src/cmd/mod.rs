//! One module per `wash` command group, plus [`lattice`]: the connection
//! options and table helpers the lattice commands share, and [`registry`]:
//! what the commands that talk to OCI registries share. `start` and
//! `stop` cover components and providers, so they are dispatched here.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};

use lattice::parse_pairs;

pub mod app;
pub mod build;
pub mod call;
pub mod claims;
pub mod component;
pub mod config;
pub mod dev;
pub mod get;
pub mod imports;
pub mod keys;
pub mod label;
pub mod lattice;
pub mod link;
pub mod new;
pub mod provider;
pub mod pull;
pub mod push;
pub mod registry;
pub mod secrets;
pub mod ui;
pub mod up;

/// Whether `bytes` are WebAssembly (they open with `\0asm`). `push` and
/// `claims inspect` tell a component from a provider executable this way.
pub fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm")
}

/// Where `start component|provider` runs: a named host, or the first host
/// to bid in an auction limited by constraints.
#[derive(Debug, Args)]
pub struct PlacementArgs {
    /// The host to run it on [default: the first host to bid in an auction].
    #[arg(long)]
    pub host_id: Option<String>,
    /// Only hosts with this label may bid (`key=value`; repeatable).
    #[arg(
        long = "constraint",
        value_name = "KEY=VALUE",
        conflicts_with = "host_id"
    )]
    pub constraints: Vec<String>,
}

impl PlacementArgs {
    /// `--host-id` if given; otherwise what `auction`, held with the parsed
    /// `--constraint` pairs, returns: the first bidder, or `None` if no host
    /// bid.
    pub async fn host<F, Fut>(&self, auction: F) -> anyhow::Result<Option<String>>
    where
        F: FnOnce(BTreeMap<String, String>) -> Fut,
        Fut: Future<Output = anyhow::Result<Option<String>>>,
    {
        if let Some(host_id) = &self.host_id {
            return Ok(Some(host_id.clone()));
        }
        auction(parse_pairs("--constraint", &self.constraints)?).await
    }

    /// What to say when no host in `lattice` bid to run `what`.
    pub fn no_bid(&self, lattice: &str, what: &str) -> String {
        format!(
            "no host in lattice `{lattice}` bid to run {what}{}; check `wash get hosts`, or pass \
             --host-id",
            if self.constraints.is_empty() {
                ""
            } else {
                " with those constraints"
            }
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum StartCommand {
    /// Start a component on a host (chosen by auction if not given).
    Component(component::StartComponentArgs),
    /// Start a capability provider process on a host (chosen by auction if
    /// not given).
    Provider(provider::StartProviderArgs),
}

#[derive(Debug, Subcommand)]
pub enum StopCommand {
    /// Stop a component on a host (scale it to 0).
    Component(component::StopComponentArgs),
    /// Stop a capability provider process.
    Provider(provider::StopProviderArgs),
}

pub async fn start(command: StartCommand) -> anyhow::Result<()> {
    match command {
        StartCommand::Component(args) => component::start(args).await,
        StartCommand::Provider(args) => provider::start(args).await,
    }
}

pub async fn stop(command: StopCommand) -> anyhow::Result<()> {
    match command {
        StopCommand::Component(args) => component::stop(args).await,
        StopCommand::Provider(args) => provider::stop(args).await,
    }
}
