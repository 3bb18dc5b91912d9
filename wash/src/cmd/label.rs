//! `wash label`: put or delete a host label, which auctions and spread
//! scalers match against.

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use super::lattice::LatticeArgs;
use crate::output::{self, OutputArgs};

#[derive(Debug, Args)]
pub struct LabelArgs {
    /// The host to label.
    host_id: String,
    /// `key=value` to put, or `key` with --delete.
    #[arg(value_name = "KEY=VALUE")]
    label: String,
    /// Delete the label instead of putting it.
    #[arg(long)]
    delete: bool,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

/// What `wash label` reports.
#[derive(Serialize)]
struct Labelled {
    host_id: String,
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    action: &'static str,
}

pub async fn run(args: LabelArgs) -> anyhow::Result<()> {
    let report = if args.delete {
        let key = args
            .label
            .split_once('=')
            .map_or(args.label.as_str(), |(key, _)| key);
        Labelled {
            host_id: args.host_id,
            key: key.to_owned(),
            value: None,
            action: "deleted",
        }
    } else {
        let Some((key, value)) = args.label.split_once('=') else {
            bail!(
                "label {:?} is not `key=value`; to delete a label pass `key --delete`",
                args.label
            );
        };
        Labelled {
            host_id: args.host_id,
            key: key.to_owned(),
            value: Some(value.to_owned()),
            action: "put",
        }
    };
    if report.key.is_empty() {
        bail!("label {:?} has an empty key", args.label);
    }
    let ctl = args.lattice.connect().await?;
    match &report.value {
        Some(value) => ctl.put_label(&report.host_id, &report.key, value).await,
        None => ctl.delete_label(&report.host_id, &report.key).await,
    }
    .with_context(|| format!("labelling host {}", report.host_id))?;
    let rows = [
        ("Host", report.host_id.clone()),
        (
            if args.delete { "Deleted" } else { "Label" },
            match &report.value {
                Some(value) => format!("{}={value}", report.key),
                None => report.key.clone(),
            },
        ),
    ];
    output::print(args.format.output, &report, &rows)
}
