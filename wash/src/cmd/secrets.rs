//! `wash secrets put|list|del|rotate-key`: values in a secrets backend
//! (`trellis-secrets-nats-kv`). A value is read from stdin or a file,
//! never from an argument, where shell history and `ps` would keep it; it
//! is sealed here for the backend's key before it leaves this process.
//! `list` shows names, versions and access rules, never values.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_claims::XKey;
use trellis_lattice::ctl::CtlResponse;
use trellis_lattice::secret::{
    AccessRule, AdminOp, BackendKey, DEFAULT_BACKEND, DeleteSecret, MAX_SECRET_BYTES, PutOutcome,
    PutSecret, RotateOutcome, SecretInfo, SecretValue,
};

use super::lattice::{LatticeArgs, list, print_columns};
use crate::output::{self, OutputArgs};

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Store secret NAME, replacing its value: read from stdin, or from
    /// --file. The bytes are kept exactly (`printf %s` avoids a newline).
    Put {
        /// The secret's name (letters, digits, `_` and `-`).
        name: String,
        /// Read the value from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Who may read it: a component's (M…) or provider's (V…) public
        /// key, or `*` for any signed one, optionally `@APP` for one app.
        /// Repeat for several. Nobody may read it without one.
        #[arg(long = "allow", value_name = "SUBJECT[@APP]")]
        allow: Vec<String>,
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
    /// List secrets: names, versions and who may read them.
    List {
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
    /// Delete secret NAME, with every stored copy of it.
    Del {
        /// The secret's name.
        name: String,
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
    /// Seal every value with a new key and retire the old one, online.
    RotateKey {
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        format: OutputArgs,
    },
}

/// Which backend, on which lattice.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// The backend's id.
    #[arg(long, env = "TRELLIS_SECRETS_BACKEND", default_value = DEFAULT_BACKEND)]
    pub backend: String,
    #[command(flatten)]
    pub lattice: LatticeArgs,
}

impl BackendArgs {
    /// Sends `op` with `body` and returns the backend's answer.
    async fn ask<T: DeserializeOwned>(
        &self,
        nats: &async_nats::Client,
        op: AdminOp,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let subject = op.subject(&self.lattice.lattice, &self.backend)?;
        let payload = serde_json::to_vec(body)?;
        let reply = tokio::time::timeout(
            self.lattice.timeout(),
            nats.request(subject, payload.into()),
        )
        .await;
        let no_backend = || {
            format!(
                "no secrets backend `{}` answers on lattice `{}`; start trellis-secrets-nats-kv \
                 (the README's Secrets section shows how)",
                self.backend, self.lattice.lattice
            )
        };
        let message = match reply {
            Ok(Ok(message)) => message,
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                bail!(no_backend())
            }
            Ok(Err(e)) => return Err(e).context(no_backend()),
            Err(_) => bail!(
                "secrets backend `{}` did not answer within {:?}",
                self.backend,
                self.lattice.timeout()
            ),
        };
        let response: CtlResponse<T> = serde_json::from_slice(&message.payload)
            .context("the backend's answer is not a control-interface reply")?;
        if !response.success {
            bail!("{}", response.message);
        }
        response
            .response
            .context("the backend's answer carries no result")
    }
}

/// What `del` reports.
#[derive(Serialize)]
struct Deleted<'a> {
    name: &'a str,
    action: &'static str,
}

pub async fn run(command: SecretsCommand) -> anyhow::Result<()> {
    match command {
        SecretsCommand::Put {
            name,
            file,
            allow,
            backend,
            format,
        } => {
            let allow = allow
                .iter()
                .map(|rule| AccessRule::parse(rule))
                .collect::<Result<Vec<_>, _>>()
                .context("--allow")?;
            let value = SecretValue::from_bytes(read_value(file.as_deref())?);
            let nats = backend.lattice.connect().await?.nats().clone();
            let key: BackendKey = backend.ask(&nats, AdminOp::Xkey, &()).await?;
            let recipient = XKey::from_public_key(&key.xkey)
                .map_err(|e| anyhow::anyhow!("the backend's key is not a curve25519 key: {e}"))?;
            // A key for this put only: its seed is gone when wash exits.
            let sender = XKey::new();
            let sealed = sender
                .seal(&value.encode()?, &recipient)
                .map_err(|e| anyhow::anyhow!("cannot seal the value: {e}"))?;
            let put = PutSecret {
                name: name.clone(),
                sender_xkey: sender.public_key(),
                sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
                allow: allow.clone(),
            };
            let outcome: PutOutcome = backend
                .ask(&nats, AdminOp::Put, &put)
                .await
                .with_context(|| format!("putting secret `{name}`"))?;
            if allow.is_empty() {
                eprintln!(
                    "note: no --allow rule, so nobody can read `{name}` yet; put it again with \
                     --allow SUBJECT[@APP]"
                );
            }
            let rules: Vec<String> = allow.iter().map(ToString::to_string).collect();
            output::print(
                format.output,
                &outcome,
                &[
                    ("Stored", outcome.name.clone()),
                    ("Version", outcome.version.to_string()),
                    ("Kind", value.kind().to_owned()),
                    ("Readable by", list(&rules)),
                ],
            )
        }
        SecretsCommand::List { backend, format } => {
            let nats = backend.lattice.connect().await?.nats().clone();
            let infos: Vec<SecretInfo> = backend.ask(&nats, AdminOp::List, &()).await?;
            let rows: Vec<Vec<String>> = infos
                .iter()
                .map(|info| {
                    let rules: Vec<String> = info.allow.iter().map(ToString::to_string).collect();
                    vec![
                        info.name.clone(),
                        info.version.to_string(),
                        info.kind.clone(),
                        list(&rules),
                    ]
                })
                .collect();
            print_columns(
                format.output,
                &infos,
                &["NAME", "VERSION", "KIND", "READABLE BY"],
                &rows,
            )
        }
        SecretsCommand::Del {
            name,
            backend,
            format,
        } => {
            let nats = backend.lattice.connect().await?.nats().clone();
            let del = DeleteSecret { name: name.clone() };
            let _: DeleteSecret = backend
                .ask(&nats, AdminOp::Del, &del)
                .await
                .with_context(|| format!("deleting secret `{name}`"))?;
            let report = Deleted {
                name: &name,
                action: "deleted",
            };
            output::print(format.output, &report, &[("Deleted", name.clone())])
        }
        SecretsCommand::RotateKey { backend, format } => {
            let nats = backend.lattice.connect().await?.nats().clone();
            let outcome: RotateOutcome = backend.ask(&nats, AdminOp::RotateKey, &()).await?;
            output::print(
                format.output,
                &outcome,
                &[
                    ("New key", outcome.xkey.clone()),
                    ("Retired", outcome.retired.clone()),
                    ("Re-sealed", outcome.resealed.to_string()),
                ],
            )
        }
    }
}

/// The value, from `file` or stdin, at most [`MAX_SECRET_BYTES`].
fn read_value(file: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    let mut value = Vec::new();
    let limit = MAX_SECRET_BYTES as u64 + 1;
    match file {
        Some(path) => {
            std::fs::File::open(path)
                .with_context(|| format!("opening {}", path.display()))?
                .take(limit)
                .read_to_end(&mut value)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("reading the value from stdin; end it with Ctrl-D");
            }
            stdin
                .lock()
                .take(limit)
                .read_to_end(&mut value)
                .context("reading the value from stdin")?;
        }
    }
    if value.len() > MAX_SECRET_BYTES {
        bail!("the value is larger than {MAX_SECRET_BYTES} bytes, the most a secret may hold");
    }
    if value.is_empty() {
        bail!("the value is empty; give it on stdin or with --file");
    }
    Ok(value)
}
