//! `wash get`: what the lattice is running, read through the control interface.

use anyhow::Context;
use clap::Subcommand;
use trellis_lattice::Link;
use trellis_lattice::client::CtlClient;
use trellis_lattice::ctl::{ClaimsSummary, Host, HostInventory};

use super::lattice::{LatticeArgs, cell, columns, list, pairs, print_columns};
use crate::output::{Format, OutputArgs};

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// List the hosts that answer a ping.
    Hosts {
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
    /// Show what a host runs (every host if no id is given).
    Inventory {
        /// The host to ask [default: all hosts].
        host_id: Option<String>,
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
    /// List the links of the lattice.
    Links {
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
    /// List the claims of everything running.
    Claims {
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
    /// Print lattice events as they happen, one per line (`-o json`: the
    /// CloudEvents envelope), until Ctrl-C.
    Events(EventsArgs),
}

pub async fn run(command: GetCommand) -> anyhow::Result<()> {
    match command {
        GetCommand::Hosts { lattice, format } => {
            hosts(&lattice.connect().await?, format.output).await
        }
        GetCommand::Inventory {
            host_id,
            lattice,
            format,
        } => inventory(&lattice.connect().await?, host_id.as_deref(), format.output).await,
        GetCommand::Links { lattice, format } => {
            links(&lattice.connect().await?, format.output).await
        }
        GetCommand::Claims { lattice, format } => {
            claims(&lattice.connect().await?, format.output).await
        }
        GetCommand::Events(args) => events(args).await,
    }
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Keep printing as events arrive (the only mode: events are not
    /// stored, so there is nothing to list without it). Accepted for
    /// kubectl's muscle memory.
    #[arg(long, short = 'w')]
    watch: bool,
    /// Only events of this type (`component_scaled`, `host_heartbeat`, …);
    /// repeat for more [default: every type].
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    format: OutputArgs,
}

/// How much of an event's data a text line shows.
const EVENT_DATA_CHARS: usize = 160;

async fn events(args: EventsArgs) -> anyhow::Result<()> {
    use futures::StreamExt;
    use trellis_lattice::event::{CloudEvent, EventKind};
    for ty in &args.types {
        if EventKind::from_name(ty).is_none() {
            anyhow::bail!(
                "`{ty}` is not a lattice event type; use one of host_started, host_stopped, host_heartbeat, component_scaled, component_scale_failed, provider_started, provider_start_failed, provider_stopped, health_check_passed, health_check_failed, linkdef_set, linkdef_deleted, config_set, config_deleted"
            );
        }
    }
    let ctl = args.lattice.connect().await?;
    let subjects = trellis_lattice::subject::Subjects::new(ctl.lattice())?;
    let mut subscription = ctl
        .nats()
        .subscribe(subjects.events_wildcard())
        .await
        .context("subscribing to the lattice's events")?;
    // Subscribed once the server has seen the subscription, so a script
    // that acts after this line sees what follows.
    ctl.nats()
        .flush()
        .await
        .context("subscribing to the lattice's events")?;
    eprintln!(
        "watching events on lattice `{}` (Ctrl-C stops)",
        ctl.lattice()
    );
    let mut printed = 0u64;
    let stop = trellis_host::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let message = tokio::select! {
            () = &mut stop => return Ok(()),
            message = subscription.next() => message,
        };
        let Some(message) = message else {
            anyhow::bail!("the NATS connection closed");
        };
        let Ok(event) = CloudEvent::from_json(&message.payload) else {
            continue;
        };
        let kind = event.ty.rsplit('.').next().unwrap_or(&event.ty).to_owned();
        if !args.types.is_empty() && !args.types.contains(&kind) {
            continue;
        }
        match args.format.output {
            Format::Json => println!("{}", serde_json::to_string(&event)?),
            Format::Text => {
                let time = event.time.map(|t| t.format("%H:%M:%S%.3f").to_string());
                let mut data = serde_json::to_string(&event.data)?;
                if data.chars().count() > EVENT_DATA_CHARS {
                    data = data.chars().take(EVENT_DATA_CHARS).collect::<String>() + "…";
                }
                println!(
                    "{}  {kind:<22}  {}  {data}",
                    time.as_deref().unwrap_or("-"),
                    event.source
                );
            }
        }
        printed += 1;
        if args.count.is_some_and(|n| printed >= n) {
            return Ok(());
        }
    }
}

async fn hosts(ctl: &CtlClient, format: Format) -> anyhow::Result<()> {
    let hosts = ctl.ping_hosts().await.context("pinging hosts")?;
    if hosts.is_empty() {
        eprintln!("no host answered in lattice `{}`", ctl.lattice());
    }
    match format {
        Format::Json => crate::output::print(format, &hosts, &[]),
        Format::Text => {
            print!("{}", render_hosts(&hosts));
            Ok(())
        }
    }
}

/// The `wash get hosts` table.
fn render_hosts(hosts: &[Host]) -> String {
    let rows: Vec<Vec<String>> = hosts.iter().map(host_row).collect();
    columns(&["HOST ID", "NAME", "LABELS", "UPTIME", "VERSION"], &rows)
}

fn host_row(host: &Host) -> Vec<String> {
    vec![
        host.id.clone(),
        host.friendly_name.clone(),
        pairs(&host.labels),
        host.uptime_human
            .clone()
            .unwrap_or_else(|| format!("{}s", host.uptime_seconds)),
        host.version.clone().unwrap_or_else(|| "-".into()),
    ]
}

async fn inventory(ctl: &CtlClient, host_id: Option<&str>, format: Format) -> anyhow::Result<()> {
    let inventories = match host_id {
        Some(host_id) => vec![
            ctl.get_inventory(host_id)
                .await
                .with_context(|| format!("getting the inventory of host {host_id}"))?,
        ],
        None => ctl
            .get_hosts_inventories()
            .await
            .context("getting the inventories of all hosts")?,
    };
    if format == Format::Json {
        return crate::output::print(format, &inventories, &[]);
    }
    if inventories.is_empty() {
        eprintln!("no host answered in lattice `{}`", ctl.lattice());
    }
    for (i, inventory) in inventories.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print!("{}", render_inventory(inventory));
    }
    Ok(())
}

/// One host's `wash get inventory` text.
fn render_inventory(inventory: &HostInventory) -> String {
    let mut text = format!(
        "Host {} ({})\nLabels: {}\n\n",
        cell(&inventory.host_id),
        cell(&inventory.friendly_name),
        cell(&pairs(&inventory.labels))
    );
    let components: Vec<Vec<String>> = inventory
        .components
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                c.image_ref.clone(),
                c.max_instances.to_string(),
                c.annotations.as_ref().map_or("-".into(), pairs),
            ]
        })
        .collect();
    text.push_str(&columns(
        &["COMPONENT ID", "IMAGE", "MAX INSTANCES", "ANNOTATIONS"],
        &components,
    ));
    if inventory.providers.is_empty() {
        return text;
    }
    text.push('\n');
    let providers: Vec<Vec<String>> = inventory
        .providers
        .iter()
        .map(|p| {
            vec![
                p.id.clone(),
                p.image_ref.clone().unwrap_or_else(|| "-".into()),
                p.name.clone().unwrap_or_else(|| "-".into()),
                p.annotations.as_ref().map_or("-".into(), pairs),
            ]
        })
        .collect();
    text.push_str(&columns(
        &["PROVIDER ID", "IMAGE", "NAME", "ANNOTATIONS"],
        &providers,
    ));
    text
}

/// Lists links; shared with `wash link get`.
pub async fn links(ctl: &CtlClient, format: Format) -> anyhow::Result<()> {
    let links = ctl.get_links().await.context("listing links")?;
    let rows: Vec<Vec<String>> = links.iter().map(link_row).collect();
    print_columns(
        format,
        &links,
        &[
            "SOURCE",
            "TARGET",
            "NAME",
            "INTERFACES",
            "SOURCE CONFIG",
            "TARGET CONFIG",
        ],
        &rows,
    )
}

fn link_row(link: &Link) -> Vec<String> {
    vec![
        link.source_id.clone(),
        link.target.clone(),
        link.name.clone(),
        format!(
            "{}:{}/{{{}}}",
            link.wit_namespace,
            link.wit_package,
            link.interfaces.join(",")
        ),
        list(&link.source_config),
        list(&link.target_config),
    ]
}

async fn claims(ctl: &CtlClient, format: Format) -> anyhow::Result<()> {
    let entries = ctl.get_claims().await.context("listing claims")?;
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            let claims = ClaimsSummary::from_entry(entry);
            vec![
                claims.subject,
                claims.name,
                claims.issuer,
                claims.version,
                claims.revision,
            ]
        })
        .collect();
    // JSON keeps wasmCloud's flat maps, so scripts written for it still work.
    print_columns(
        format,
        &entries,
        &["SUBJECT", "NAME", "ISSUER", "VERSION", "REVISION"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use trellis_lattice::ctl::{ComponentDescription, ProviderDescription};

    use super::*;
    use crate::cmd::lattice::MAX_CELL_CHARS;

    /// Any text a host might send: short and odd (control characters, wide
    /// and combining characters), or very long.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
            1 => (0usize..200_000).prop_map(|n| "x".repeat(n)),
        ]
    }

    fn map() -> impl Strategy<Value = BTreeMap<String, String>> {
        proptest::collection::btree_map(text(), text(), 0..6)
    }

    prop_compose! {
        fn host()(
            id in text(), friendly_name in text(), labels in map(),
            version in proptest::option::of(text()), uptime_seconds in any::<u64>(),
            uptime_human in proptest::option::of(text()),
        ) -> Host {
            Host { id, friendly_name, labels, version, uptime_seconds, uptime_human, ..Host::default() }
        }
    }

    prop_compose! {
        fn inventory()(
            host_id in text(), friendly_name in text(), labels in map(),
            components in proptest::collection::vec((text(), text(), any::<u32>(), proptest::option::of(map())), 0..4),
            providers in proptest::collection::vec((text(), proptest::option::of(text()), proptest::option::of(text())), 0..4),
        ) -> HostInventory {
            HostInventory {
                host_id,
                friendly_name,
                labels,
                components: components.into_iter().map(|(id, image_ref, max_instances, annotations)| ComponentDescription {
                    id, image_ref, max_instances, annotations, ..ComponentDescription::default()
                }).collect(),
                providers: providers.into_iter().map(|(id, image_ref, name)| ProviderDescription {
                    id, image_ref, name, ..ProviderDescription::default()
                }).collect(),
                ..HostInventory::default()
            }
        }
    }

    /// No line is longer than the cells it can hold, whatever came in.
    fn bounded(text: &str, columns: usize) {
        let limit = columns * (MAX_CELL_CHARS + 2) + 40;
        for line in text.lines() {
            assert!(
                line.chars().count() <= limit,
                "a line of {} chars",
                line.chars().count()
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_hosts_print_without_panicking(hosts in proptest::collection::vec(host(), 0..5)) {
            let text = render_hosts(&hosts);
            prop_assert_eq!(text.lines().count(), hosts.len() + 1);
            bounded(&text, 5);
        }

        #[test]
        fn any_inventory_prints_without_panicking(inventory in inventory()) {
            bounded(&render_inventory(&inventory), 4);
        }
    }
}
