//! `wash keys`: make identities and see the ones on disk.

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;
use trellis_claims::KeyKind;

use crate::keystore;
use crate::output::{self, Format, OutputArgs};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a key pair and print its public key and seed.
    Gen {
        /// account, component, provider, host or cluster.
        kind: KeyKind,
        /// Also save the seed as `<name>_<kind>.nk` in the key directory.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        format: OutputArgs,
    },
    /// List the keys saved in the key directory ($TRELLIS_HOME/keys).
    List {
        #[command(flatten)]
        format: OutputArgs,
    },
}

#[derive(Serialize)]
struct GeneratedKey {
    kind: String,
    public_key: String,
    seed: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
}

#[derive(Serialize)]
struct SavedKey {
    file: String,
    public_key: String,
}

pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Gen { kind, name, format } => generate(kind, name.as_deref(), format.output),
        KeysCommand::List { format } => list(format.output),
    }
}

fn generate(kind: KeyKind, name: Option<&str>, format: Format) -> anyhow::Result<()> {
    let pair = kind.generate();
    let path = match name {
        Some(name) => {
            let path = keystore::key_path(name, kind)?;
            keystore::save(&path, &pair)?;
            Some(path.display().to_string())
        }
        None => None,
    };
    let key = GeneratedKey {
        kind: kind.to_string(),
        public_key: pair.public_key(),
        seed: pair.seed().context("generated key has no seed")?,
        path,
    };
    let mut rows = vec![
        ("Public Key:", key.public_key.clone()),
        ("Seed:", key.seed.clone()),
    ];
    if let Some(path) = &key.path {
        rows.push(("Saved to:", path.clone()));
    }
    output::print(format, &key, &rows)
}

fn list(format: Format) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    for path in keystore::list()? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let public_key = trellis_claims::KeyPair::from_seed(text.trim())
            .map(|pair| pair.public_key())
            .unwrap_or_else(|e| format!("(unreadable: {e})"));
        keys.push(SavedKey {
            file: path.display().to_string(),
            public_key,
        });
    }
    let rows: Vec<(&str, String)> = keys
        .iter()
        .map(|k| (k.public_key.as_str(), k.file.clone()))
        .collect();
    output::print(format, &keys, &rows)
}
