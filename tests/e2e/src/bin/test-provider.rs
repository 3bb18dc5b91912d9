//! A capability provider for the end-to-end tests that speaks the provider
//! protocol by hand (no SDK), so the host's supervisor is tested against
//! the wire contract itself.
//!
//! It reads its host data from stdin, answers health checks, accepts links
//! and refuses any whose source or target config carries `fail=<reason>`
//! (then reports itself unhealthy with that reason), stops on a shutdown
//! request naming its host or on stdin EOF. Config it understands:
//! `pid_file` (write the process id there) and `exit_with` (exit at once
//! with that status, after saying so on stderr).

use std::collections::BTreeMap;

use anyhow::Context;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use trellis_lattice::ctl::{self, CtlResponse};
use trellis_lattice::provider::{HealthCheckResponse, ProviderLink, ShutdownRequest};
use trellis_lattice::subject::ProviderOperation;
use trellis_lattice::{HostData, Link, Subjects};

#[tokio::main]
async fn main() {
    let status = match serve().await {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("test provider failed: {err:#}");
            1
        }
    };
    // Exit rather than return: the runtime would wait on its blocking read
    // of stdin, which the host keeps open for as long as the process runs.
    std::process::exit(status);
}

async fn serve() -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .await
        .context("reading host data")?;
    let data = HostData::decode(&line).context("decoding host data")?;
    if let Some(path) = data.config.get("pid_file") {
        std::fs::write(path, std::process::id().to_string()).context("writing the pid file")?;
    }
    if let Some(status) = data.config.get("exit_with") {
        eprintln!("test provider told to exit with {status}");
        std::process::exit(status.parse().unwrap_or(1));
    }
    let nats = async_nats::connect(&data.lattice_rpc_url).await?;
    let subjects = Subjects::new(&data.lattice_rpc_prefix)?;
    let mut subscriptions = Vec::new();
    for op in ProviderOperation::ALL {
        let subject = subjects.provider(&data.provider_key, op)?;
        let subscription = nats.subscribe(subject).await?;
        subscriptions.push(subscription.map(move |message| (op, message)));
    }
    let mut requests = futures::stream::select_all(subscriptions);
    eprintln!(
        "test provider `{}` serving lattice `{}` with {} links",
        data.provider_key,
        data.lattice_rpc_prefix,
        data.link_definitions.len()
    );

    // Link slot -> why that link cannot be served.
    let mut problems: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut rest = String::new();
        tokio::select! {
            read = stdin.read_line(&mut rest) => {
                if matches!(read, Ok(0) | Err(_)) {
                    eprintln!("stdin closed: the host is gone; exiting");
                    return Ok(());
                }
            }
            request = requests.next() => {
                let Some((op, message)) = request else { return Ok(()) };
                let Some(reply) = message.reply.clone() else { continue };
                let (body, exit) = answer(op, &message.payload, &data, &mut problems);
                let Some(body) = body else { continue };
                nats.publish(reply, body.into()).await?;
                if exit {
                    nats.flush().await?;
                    eprintln!("shutdown requested by the host; exiting");
                    return Ok(());
                }
            }
        }
    }
}

/// The reply to one request (none to a shutdown meant for the process of
/// another host), and whether to exit after sending it.
fn answer(
    op: ProviderOperation,
    body: &[u8],
    data: &HostData,
    problems: &mut BTreeMap<String, String>,
) -> (Option<Vec<u8>>, bool) {
    let reply = |body: Vec<u8>| (Some(body), false);
    match op {
        ProviderOperation::Health => {
            let health = HealthCheckResponse {
                healthy: problems.is_empty(),
                message: (!problems.is_empty())
                    .then(|| problems.values().cloned().collect::<Vec<_>>().join("; ")),
            };
            reply(serde_json::to_vec(&health).unwrap_or_default())
        }
        ProviderOperation::LinkPut => match serde_json::from_slice::<ProviderLink>(body) {
            Ok(put) => {
                let slot = slot(&put.link);
                let fail = put
                    .target_config_values
                    .get("fail")
                    .or_else(|| put.source_config_values.get("fail"));
                match fail {
                    Some(reason) => {
                        let problem = format!("link from `{}`: {reason}", put.link.source_id);
                        problems.insert(slot, problem.clone());
                        reply(ack(CtlResponse::error(problem)))
                    }
                    None => {
                        problems.remove(&slot);
                        reply(ack(CtlResponse::success("link applied")))
                    }
                }
            }
            Err(err) => reply(ack(CtlResponse::error(err.to_string()))),
        },
        ProviderOperation::LinkDel => match serde_json::from_slice::<Link>(body) {
            Ok(link) => {
                problems.remove(&slot(&link));
                reply(ack(CtlResponse::success("link removed")))
            }
            Err(err) => reply(ack(CtlResponse::error(err.to_string()))),
        },
        ProviderOperation::Shutdown => {
            let mine = serde_json::from_slice::<ShutdownRequest>(body)
                .is_ok_and(|request| request.host_id == data.host_id);
            if mine {
                (Some(ack(CtlResponse::success("shutting down"))), true)
            } else {
                (None, false)
            }
        }
    }
}

fn slot(link: &Link) -> String {
    format!(
        "{}/{}/{}:{}",
        link.source_id, link.name, link.wit_namespace, link.wit_package
    )
}

fn ack(response: CtlResponse<()>) -> Vec<u8> {
    ctl::to_json("provider reply", &response).unwrap_or_default()
}
