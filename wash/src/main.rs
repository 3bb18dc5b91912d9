//! `wash`, the Trellis command line.
//!
//! A thin layer: it parses arguments, calls the library crates and prints
//! the result, as a table for people or as JSON (`-o json`) for scripts.
//! Exit status is 0 on success and 1 on any failure, with the reason on
//! stderr.

mod cmd;
mod keystore;
mod output;

use clap::{Parser, Subcommand};

/// The Trellis command line.
#[derive(Debug, Parser)]
#[command(
    name = "wash",
    version,
    about = "Trellis: signed Wasm components on a NATS lattice"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate and list nkeys (account, component, provider, host, cluster).
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    /// Sign components and inspect their claims.
    #[command(subcommand)]
    Claims(cmd::claims::ClaimsCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(command) => cmd::keys::run(command),
        Command::Claims(command) => cmd::claims::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
