//! `wash link put|del|get`: which target serves a component's imports.

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;
use trellis_lattice::Link;
use trellis_lattice::ctl::DeleteInterfaceLinkDefinitionRequest;
use trellis_lattice::link::DEFAULT_LINK_NAME;

use super::lattice::{LatticeArgs, list};
use crate::output::{self, OutputArgs};

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Route SOURCE_ID's calls to WIT_NAMESPACE:WIT_PACKAGE/{interfaces} to TARGET.
    Put {
        /// The component (or provider) whose imports the link serves.
        source_id: String,
        /// The component or provider that receives the calls.
        target: String,
        /// `wasi` in `wasi:keyvalue/store`.
        wit_namespace: String,
        /// `keyvalue` in `wasi:keyvalue/store`.
        wit_package: String,
        /// An interface of the package, e.g. `store` (repeatable).
        #[arg(long = "interface", required = true)]
        interfaces: Vec<String>,
        /// The link name, to give one source several targets for a package.
        #[arg(long, default_value = DEFAULT_LINK_NAME)]
        link_name: String,
        /// A named config given to the source for this link (repeatable).
        #[arg(long = "source-config", value_name = "NAME")]
        source_config: Vec<String>,
        /// A named config given to the target for this link (repeatable).
        #[arg(long = "target-config", value_name = "NAME")]
        target_config: Vec<String>,
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
    /// Delete SOURCE_ID's link for WIT_NAMESPACE:WIT_PACKAGE.
    Del {
        /// The link's source.
        source_id: String,
        /// `wasi` in `wasi:keyvalue/store`.
        wit_namespace: String,
        /// `keyvalue` in `wasi:keyvalue/store`.
        wit_package: String,
        /// The link name.
        #[arg(long, default_value = DEFAULT_LINK_NAME)]
        link_name: String,
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
    /// List the links of the lattice.
    Get {
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
}

/// What `link del` reports.
#[derive(Serialize)]
struct Deleted {
    deleted: DeleteInterfaceLinkDefinitionRequest,
}

pub async fn run(command: LinkCommand) -> anyhow::Result<()> {
    match command {
        LinkCommand::Put {
            source_id,
            target,
            wit_namespace,
            wit_package,
            interfaces,
            link_name,
            source_config,
            target_config,
            lattice,
            format,
        } => {
            let link = Link {
                source_id,
                target,
                name: link_name,
                wit_namespace,
                wit_package,
                interfaces,
                source_config,
                target_config,
            };
            let ctl = lattice.connect().await?;
            ctl.put_link(&link).await.context("putting the link")?;
            let rows = [
                ("Source", link.source_id.clone()),
                ("Target", link.target.clone()),
                ("Name", link.name.clone()),
                (
                    "Interfaces",
                    format!(
                        "{}:{}/{{{}}}",
                        link.wit_namespace,
                        link.wit_package,
                        link.interfaces.join(",")
                    ),
                ),
                ("Source Config", list(&link.source_config)),
                ("Target Config", list(&link.target_config)),
            ];
            output::print(format.output, &link, &rows)
        }
        LinkCommand::Del {
            source_id,
            wit_namespace,
            wit_package,
            link_name,
            lattice,
            format,
        } => {
            let request = DeleteInterfaceLinkDefinitionRequest {
                source_id,
                name: link_name,
                wit_namespace,
                wit_package,
            };
            let ctl = lattice.connect().await?;
            ctl.delete_link(&request)
                .await
                .context("deleting the link")?;
            let rows = [(
                "Deleted",
                format!(
                    "link `{}` from `{}` for {}:{}",
                    request.name, request.source_id, request.wit_namespace, request.wit_package
                ),
            )];
            output::print(format.output, &Deleted { deleted: request }, &rows)
        }
        LinkCommand::Get { lattice, format } => {
            super::get::links(&lattice.connect().await?, format.output).await
        }
    }
}
