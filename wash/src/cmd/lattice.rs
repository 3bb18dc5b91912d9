//! What every command that drives a lattice shares: the connection options
//! (`--nats-url`, credentials and TLS, `--lattice`, `--timeout-ms`),
//! connecting with a bounded wait, the tokio runtime those commands run on,
//! and multi-column tables for listings. Given no credentials, a command
//! uses the ones `wash up` wrote for a server it started at that URL.
//!
//! Keys and claims work offline and stay synchronous; only these commands
//! need async, so `main` hands them to [`block_on`].

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use trellis_lattice::client::CtlClient;
use trellis_lattice::connect::{NatsArgs, NatsAuth, NatsConnection};

use crate::local_nats::LocalNats;
use crate::output::{self, Format};

/// Where the lattice is and how long to wait for it.
#[derive(Debug, Clone, Args)]
pub struct LatticeArgs {
    /// The NATS servers of the lattice and how to authenticate.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Lattice name: the subject prefix that separates lattices on one NATS.
    #[arg(long, env = "TRELLIS_LATTICE", default_value = "default")]
    pub lattice: String,
    /// How long to wait for NATS and for replies, in milliseconds (listings
    /// of all hosts collect answers for one second).
    #[arg(
        long = "timeout-ms",
        env = "TRELLIS_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub timeout_ms: u64,
}

impl LatticeArgs {
    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The connection the flags describe; with no credentials given, the
    /// ones `wash up` wrote for a server it started at this URL.
    pub fn connection(&self) -> anyhow::Result<NatsConnection> {
        let given = self.nats.connection()?;
        if given.auth != NatsAuth::Anonymous {
            return Ok(given);
        }
        Ok(match LocalNats::find(&given.urls) {
            Some(local) => NatsConnection {
                tls_ca: given.tls_ca,
                tls_client: given.tls_client,
                ..local
            },
            None => given,
        })
    }

    /// Connects to NATS, waiting at most the timeout, and returns a
    /// control-interface client for the lattice.
    pub async fn connect(&self) -> anyhow::Result<CtlClient> {
        let timeout = self.timeout();
        let nats = self
            .connection()?
            .connect(
                |options| {
                    options
                        .connection_timeout(timeout)
                        .request_timeout(Some(timeout))
                },
                timeout,
            )
            .await?;
        let client = CtlClient::new(nats, &self.lattice).context("checking --lattice")?;
        Ok(client.with_timeout(timeout))
    }
}

/// Runs a lattice or registry command to completion on a single-threaded
/// runtime.
pub fn block_on<T>(command: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(command)
}

/// Prints `value` as JSON, or `rows` under `header` as aligned columns.
pub fn print_columns<T: Serialize>(
    format: Format,
    value: &T,
    header: &[&str],
    rows: &[Vec<String>],
) -> anyhow::Result<()> {
    match format {
        Format::Json => output::print(format, value, &[]),
        Format::Text => {
            print!("{}", columns(header, rows));
            Ok(())
        }
    }
}

/// The most characters of one cell a table shows; `-o json` has the rest.
pub const MAX_CELL_CHARS: usize = 120;

/// Renders a header and rows as columns separated by two spaces. Cells are
/// cut at [`MAX_CELL_CHARS`] (ending in `…`) and control characters shown
/// as spaces, so whatever a host reports cannot break the layout.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let shown = |row: &[String]| -> Vec<String> {
        (0..header.len())
            .map(|i| cell(row.get(i).map_or("", String::as_str)))
            .collect()
    };
    let header: Vec<String> = header.iter().map(|h| cell(h)).collect();
    let rows: Vec<Vec<String>> = rows.iter().map(|row| shown(row)).collect();
    let all = || std::iter::once(&header).chain(&rows);
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            all()
                .map(|row| row.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    all()
        .map(|row| {
            let line: Vec<String> = widths
                .iter()
                .zip(row)
                .map(|(width, text)| {
                    // Padded by hand: format!'s width is capped at u16::MAX.
                    let pad = width.saturating_sub(text.chars().count());
                    format!("{text}{}", " ".repeat(pad))
                })
                .collect();
            format!("{}\n", line.join("  ").trim_end())
        })
        .collect()
}

/// One cell as a table shows it.
pub fn cell(text: &str) -> String {
    let clean = |c: char| if c.is_control() { ' ' } else { c };
    if text.chars().count() <= MAX_CELL_CHARS {
        return text.chars().map(clean).collect();
    }
    let mut cut: String = text.chars().take(MAX_CELL_CHARS - 1).map(clean).collect();
    cut.push('…');
    cut
}

/// `k=v, k=v`, or `-` when empty.
pub fn pairs<'a>(map: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let joined: Vec<String> = map.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if joined.is_empty() {
        "-".into()
    } else {
        joined.join(", ")
    }
}

/// Items joined by `, `, or `-` when there are none.
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

/// Parses `key=value` pairs from the command line into a map.
pub fn parse_pairs(
    what: &str,
    values: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    trellis_lattice::config::parse_pairs(values.iter().map(String::as_str))
        .with_context(|| format!("reading {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_under_the_header() {
        let text = columns(
            &["ID", "NAME"],
            &[
                vec!["NA".into(), "one".into()],
                vec!["NLONG".into(), "".into()],
            ],
        );
        assert_eq!(text, "ID     NAME\nNA     one\nNLONG\n");
    }
}
