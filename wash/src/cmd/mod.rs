//! One module per `wash` command group, plus [`lattice`]: the connection
//! options and table helpers the lattice commands share, and [`registry`]:
//! what the commands that talk to OCI registries share. `start` and
//! `stop` cover components and providers, so they are dispatched here.

use clap::Subcommand;

pub mod app;
pub mod call;
pub mod claims;
pub mod component;
pub mod config;
pub mod get;
pub mod keys;
pub mod label;
pub mod lattice;
pub mod link;
pub mod provider;
pub mod pull;
pub mod push;
pub mod registry;
pub mod up;

/// Whether `bytes` are WebAssembly (they open with `\0asm`). `push` and
/// `claims inspect` tell a component from a provider executable this way.
pub fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm")
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
