//! The NATS server `wash up` starts on this machine, and its credentials.
//!
//! A server that `wash up` starts admits one user, `trellis`, with a fresh
//! random password each time, so another user of the same machine cannot
//! drive the node. The server's configuration and the credentials are
//! files under `$TRELLIS_HOME`, readable by their owner only; every later
//! `wash` command that is given no credentials of its own finds them there
//! for the URL they were made for. `wash down` removes them.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use trellis_lattice::connect::{NatsAuth, NatsConnection};

use crate::keystore::trellis_home;

/// The user a started server admits.
const USER: &str = "trellis";

/// What `wash up` wrote for the server it started.
#[derive(Debug, Serialize, Deserialize)]
pub struct LocalNats {
    url: String,
    user: String,
    password: String,
    #[serde(skip)]
    config: PathBuf,
}

impl LocalNats {
    /// Writes a server configuration for `host:port` with JetStream in
    /// `store`, and the credentials it admits.
    pub fn create(url: &str, host: &str, port: u16, store: &Path) -> anyhow::Result<Self> {
        let mut secret = [0u8; 24];
        rand::rng().fill_bytes(&mut secret);
        let password = data_encoding::HEXLOWER.encode(&secret);
        let home = trellis_home()?;
        let config = home.join("nats.conf");
        // The server reads a quoted string; paths and hosts are ours, but
        // quote them properly anyway.
        let quoted = |text: &str| serde_json::to_string(text).unwrap_or_default();
        let text = format!(
            "# Written by `wash up`; rewritten on every start.\n\
             listen: {listen}\n\
             jetstream {{ store_dir: {store} }}\n\
             authorization {{ user: {user}, password: {password} }}\n",
            listen = quoted(&format!("{host}:{port}")),
            store = quoted(&store.display().to_string()),
            user = quoted(USER),
            password = quoted(&password),
        );
        write_private(&config, text.as_bytes())?;
        let local = LocalNats {
            url: url.to_owned(),
            user: USER.to_owned(),
            password,
            config,
        };
        let json = serde_json::to_vec_pretty(&local).context("encoding the NATS credentials")?;
        write_private(&credentials_path()?, &json)?;
        Ok(local)
    }

    /// The credentials for `url`, if `wash up` started a server there.
    pub fn find(url: &str) -> Option<NatsConnection> {
        let path = credentials_path().ok()?;
        let text = std::fs::read(&path).ok()?;
        let local: LocalNats = serde_json::from_slice(&text).ok()?;
        (local.url == url).then(|| local.connection())
    }

    /// The server's configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// How to connect to the server.
    pub fn connection(&self) -> NatsConnection {
        NatsConnection {
            auth: NatsAuth::User {
                user: self.user.clone(),
                password: self.password.clone(),
            },
            ..NatsConnection::new(self.url.clone())
        }
    }

    /// Deletes the files, once the server has stopped.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.config);
        LocalNats::forget();
    }

    /// Deletes the credentials a stopped server left, so no later command
    /// offers them to whatever answers at that URL next.
    pub fn forget() {
        if let Ok(path) = credentials_path() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn credentials_path() -> anyhow::Result<PathBuf> {
    Ok(trellis_home()?.join("nats-credentials.json"))
}

/// Writes `bytes` to a file only its owner can read, replacing it.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}
