//! `wash config put|get|del`: named config that components, providers and
//! links refer to by name.

use anyhow::{Context, bail};
use clap::Subcommand;
use serde::Serialize;
use trellis_lattice::config::NamedConfig;

use super::lattice::{LatticeArgs, parse_pairs};
use crate::output::{self, OutputArgs};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Store config NAME, replacing any config by that name.
    Put {
        /// The config's name.
        name: String,
        /// Entries as `key=value` (the value may contain `=`).
        #[arg(value_name = "KEY=VALUE")]
        entries: Vec<String>,
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
    /// Show config NAME.
    Get {
        /// The config's name.
        name: String,
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
    /// Delete config NAME.
    Del {
        /// The config's name.
        name: String,
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
}

/// What `put` and `del` report.
#[derive(Serialize)]
struct Changed<'a> {
    name: &'a str,
    action: &'static str,
}

pub async fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Put {
            name,
            entries,
            lattice,
            format,
        } => {
            let config = parse_pairs("config entries", &entries)?;
            let ctl = lattice.connect().await?;
            ctl.put_config(&name, &config)
                .await
                .with_context(|| format!("putting config `{name}`"))?;
            print_config(format, &config)
        }
        ConfigCommand::Get {
            name,
            lattice,
            format,
        } => {
            let ctl = lattice.connect().await?;
            let config = ctl
                .get_config(&name)
                .await
                .with_context(|| format!("getting config `{name}`"))?;
            match config {
                Some(config) => print_config(format, &config),
                None => bail!(
                    "lattice `{}` has no config named `{name}`; store one with `wash config put \
                     {name} key=value`",
                    ctl.lattice()
                ),
            }
        }
        ConfigCommand::Del {
            name,
            lattice,
            format,
        } => {
            let ctl = lattice.connect().await?;
            ctl.delete_config(&name)
                .await
                .with_context(|| format!("deleting config `{name}`"))?;
            let report = Changed {
                name: &name,
                action: "deleted",
            };
            output::print(format.output, &report, &[("Deleted", name.clone())])
        }
    }
}

fn print_config(format: OutputArgs, config: &NamedConfig) -> anyhow::Result<()> {
    let rows: Vec<(&str, String)> = config
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    output::print(format.output, config, &rows)
}
