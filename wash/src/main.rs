//! `wash`, the Trellis command line.
//!
//! A thin layer: it parses arguments, calls the library crates and prints
//! the result, as a table for people or as JSON (`-o json`) for scripts.
//! Exit status is 0 on success and 1 on any failure, with the reason on
//! stderr.

mod cmd;
mod keystore;
mod local_nats;
mod output;

use clap::{Parser, Subcommand};
use cmd::lattice::block_on;

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
    /// Sign components and providers; inspect claims of files or registry
    /// references.
    #[command(subcommand)]
    Claims(cmd::claims::ClaimsCommand),
    /// Show hosts, inventories, links and claims of a lattice.
    #[command(subcommand)]
    Get(cmd::get::GetCommand),
    /// Start a component or a provider.
    #[command(subcommand)]
    Start(cmd::StartCommand),
    /// Scale a running component.
    #[command(subcommand)]
    Scale(cmd::component::ScaleCommand),
    /// Stop a component or a provider.
    #[command(subcommand)]
    Stop(cmd::StopCommand),
    /// Put, delete and list links.
    #[command(subcommand)]
    Link(cmd::link::LinkCommand),
    /// Put, show and delete named config.
    #[command(subcommand)]
    Config(cmd::config::ConfigCommand),
    /// Store, list and delete secrets, and rotate their sealing key.
    #[command(subcommand)]
    Secrets(cmd::secrets::SecretsCommand),
    /// Put or delete a host label.
    Label(cmd::label::LabelArgs),
    /// Call a function of a running component.
    Call(cmd::call::CallArgs),
    /// Put, deploy and inspect applications (through wadm).
    #[command(subcommand)]
    App(cmd::app::AppCommand),
    /// Push a signed component or provider to an OCI registry.
    Push(cmd::push::PushArgs),
    /// Pull a component or provider from an OCI registry and verify it.
    Pull(cmd::pull::PullArgs),
    /// Create a component project from a template.
    New(cmd::new::NewArgs),
    /// Build a component project for wasm32-wasip2 and sign it.
    Build(cmd::build::BuildArgs),
    /// Build, run and hot-swap a component project on each save.
    Dev(cmd::dev::DevArgs),
    /// Serve a dashboard of the lattice in the browser.
    Ui(cmd::ui::UiArgs),
    /// Start a node on this machine: NATS (if none answers) and a host.
    Up(cmd::up::UpArgs),
    /// Stop the node `wash up --detach` started.
    Down(cmd::up::DownArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `up` logs like a host; every other command only reports errors that
    // arrive outside its own result, such as a NATS permissions violation.
    let _telemetry = (!matches!(cli.command, Command::Up(_))).then(|| {
        trellis_telemetry::init(&trellis_telemetry::Service {
            name: "wash",
            filter_var: "TRELLIS_LOG",
            default_filter: "error",
            timestamps: false,
        })
    });
    let result = match cli.command {
        Command::Keys(command) => cmd::keys::run(command),
        Command::Claims(command) => cmd::claims::run(command),
        Command::Get(command) => block_on(cmd::get::run(command)),
        Command::Ui(args) => block_on(cmd::ui::run(args)),
        Command::Start(command) => block_on(cmd::start(command)),
        Command::Scale(command) => block_on(cmd::component::scale(command)),
        Command::Stop(command) => block_on(cmd::stop(command)),
        Command::Link(command) => block_on(cmd::link::run(command)),
        Command::Config(command) => block_on(cmd::config::run(command)),
        Command::Secrets(command) => block_on(cmd::secrets::run(command)),
        Command::Label(args) => block_on(cmd::label::run(args)),
        Command::Call(args) => block_on(cmd::call::run(args)),
        Command::App(command) => block_on(cmd::app::run(command)),
        Command::Push(args) => block_on(cmd::push::run(args)),
        Command::Pull(args) => block_on(cmd::pull::run(args)),
        Command::New(args) => cmd::new::run(args),
        Command::Build(args) => cmd::build::run(args),
        Command::Dev(args) => block_on(cmd::dev::run(args)),
        Command::Up(args) => cmd::up::up(args),
        Command::Down(args) => cmd::up::down(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
