//! What every command that drives a lattice shares: the connection options
//! (`--nats-url`, `--nats-creds`, `--lattice`, `--timeout-ms`), connecting
//! with a bounded wait, the tokio runtime those commands run on, and
//! multi-column tables for listings.
//!
//! Keys and claims work offline and stay synchronous; only these commands
//! need async, so `main` hands them to [`block_on`].

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::ConnectErrorKind;
use clap::Args;
use serde::Serialize;
use trellis_lattice::client::CtlClient;

use crate::output::{self, Format};

/// Where the lattice is and how long to wait for it.
#[derive(Debug, Clone, Args)]
pub struct LatticeArgs {
    /// NATS server of the lattice.
    #[arg(
        long = "nats-url",
        env = "TRELLIS_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// NATS credentials file (.creds), if the server wants one.
    #[arg(long = "nats-creds", env = "TRELLIS_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
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

    /// Connects to NATS, waiting at most the timeout, and returns a
    /// control-interface client for the lattice.
    pub async fn connect(&self) -> anyhow::Result<CtlClient> {
        let url = &self.nats_url;
        let timeout = self.timeout();
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(timeout)
            .request_timeout(Some(timeout));
        if let Some(creds) = &self.nats_creds {
            options = options
                .credentials_file(creds)
                .await
                .with_context(|| format!("reading NATS credentials {}", creds.display()))?;
        }
        let nats = match tokio::time::timeout(timeout, options.connect(url.as_str())).await {
            Ok(Ok(nats)) => nats,
            Ok(Err(err)) => match err.kind() {
                // The cause goes in parentheses, not as a source: async-nats
                // repeats the io error in its own message, so a chain would
                // print it twice.
                ConnectErrorKind::Io | ConnectErrorKind::TimedOut | ConnectErrorKind::Dns => {
                    bail!("{} ({err})", no_server(url));
                }
                ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                    return Err(err).with_context(|| {
                        format!("NATS at {url} refused the credentials; check --nats-creds")
                    });
                }
                _ => return Err(err).with_context(|| format!("connecting to NATS at {url}")),
            },
            Err(_elapsed) => bail!(
                "{} (no answer within {} ms)",
                no_server(url),
                self.timeout_ms
            ),
        };
        let client = CtlClient::new(nats, &self.lattice).context("checking --lattice")?;
        Ok(client.with_timeout(timeout))
    }
}

fn no_server(url: &str) -> String {
    format!("no NATS server at {url}; start one with `wash up` or pass --nats-url")
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

/// Renders a header and rows as columns separated by two spaces.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let all = || std::iter::once(&header).chain(rows);
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
                .enumerate()
                .map(|(i, width)| format!("{:<width$}", row.get(i).map_or("", String::as_str)))
                .collect();
            format!("{}\n", line.join("  ").trim_end())
        })
        .collect()
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
