//! The host data document each provider process receives on stdin: the
//! host's own connection details plus what is particular to the provider.

use std::path::{Path, PathBuf};

use tracing::level_filters::LevelFilter;
use trellis_lattice::host_data::LogLevel;
use trellis_lattice::{HostData, Link};

use crate::config::HostConfig;

/// The parts of the host data that are the same for every provider.
#[derive(Clone, Debug)]
pub(crate) struct HostDataTemplate {
    host_id: String,
    lattice: String,
    nats_url: String,
    user_jwt: Option<String>,
    user_seed: Option<String>,
    log_level: LogLevel,
    rpc_timeout_ms: u64,
}

impl HostDataTemplate {
    /// Reads the host's settings; the NATS credentials file (if any) is
    /// read here and passed on as its JWT and seed.
    pub(crate) fn new(host_id: &str, config: &HostConfig) -> Self {
        let (user_jwt, user_seed) = match &config.nats_creds {
            Some(path) => read_credentials(path),
            None => (None, None),
        };
        HostDataTemplate {
            host_id: host_id.to_owned(),
            lattice: config.lattice.clone(),
            nats_url: config.nats_url.clone(),
            user_jwt,
            user_seed,
            log_level: log_level(LevelFilter::current()),
            rpc_timeout_ms: u64::try_from(config.call_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The document for one provider.
    pub(crate) fn for_provider(
        &self,
        provider_id: &str,
        config: trellis_lattice::config::NamedConfig,
        links: Vec<Link>,
        data_dir: PathBuf,
    ) -> HostData {
        HostData {
            host_id: self.host_id.clone(),
            lattice_rpc_prefix: self.lattice.clone(),
            lattice_rpc_url: self.nats_url.clone(),
            lattice_rpc_user_jwt: self.user_jwt.clone(),
            lattice_rpc_user_seed: self.user_seed.clone(),
            provider_key: provider_id.to_owned(),
            config,
            link_definitions: links,
            log_level: Some(self.log_level),
            default_rpc_timeout_ms: Some(self.rpc_timeout_ms),
            data_dir: Some(data_dir.display().to_string()),
        }
    }
}

/// The level the host logs at, which its providers adopt.
fn log_level(filter: LevelFilter) -> LogLevel {
    match filter.into_level() {
        Some(tracing::Level::TRACE) => LogLevel::Trace,
        Some(tracing::Level::DEBUG) => LogLevel::Debug,
        Some(tracing::Level::INFO) => LogLevel::Info,
        Some(tracing::Level::WARN) => LogLevel::Warn,
        Some(tracing::Level::ERROR) | None => LogLevel::Error,
    }
}

/// The user JWT and seed of a NATS `.creds` file. A file the host could
/// connect with but that does not parse here leaves providers without
/// credentials, which their own connection error will then report.
fn read_credentials(path: &Path) -> (Option<String>, Option<String>) {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_credentials(&text),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot read NATS credentials for providers");
            (None, None)
        }
    }
}

/// The first line after each `-----BEGIN …-----` marker of a `.creds` file.
fn parse_credentials(text: &str) -> (Option<String>, Option<String>) {
    let after = |marker: &str| {
        let mut lines = text.lines().map(str::trim);
        lines.find(|line| line.contains(marker))?;
        lines
            .find(|line| !line.is_empty())
            .filter(|line| !line.starts_with("---"))
            .map(str::to_owned)
    };
    (after("BEGIN NATS USER JWT"), after("BEGIN USER NKEY SEED"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_files_yield_jwt_and_seed() {
        let creds = "-----BEGIN NATS USER JWT-----\neyJ0eXAi.payload.sig\n------END NATS USER JWT------\n\n\
                     ************************* IMPORTANT *************************\n\
                     -----BEGIN USER NKEY SEED-----\nSUAXYZ\n------END USER NKEY SEED------\n";
        assert_eq!(
            parse_credentials(creds),
            (Some("eyJ0eXAi.payload.sig".into()), Some("SUAXYZ".into()))
        );
        assert_eq!(parse_credentials("nothing here"), (None, None));
    }

    #[test]
    fn providers_log_at_the_host_level() {
        assert_eq!(log_level(LevelFilter::DEBUG), LogLevel::Debug);
        assert_eq!(log_level(LevelFilter::OFF), LogLevel::Error);
    }

    #[test]
    fn host_data_names_the_lattice_the_provider_and_its_directory() {
        let config = HostConfig {
            lattice: "dev".into(),
            nats_url: "nats://127.0.0.1:4999".into(),
            ..HostConfig::default()
        };
        let data = HostDataTemplate::new("NHOST", &config).for_provider(
            "kv",
            [("path".to_owned(), "/x".to_owned())].into(),
            Vec::new(),
            PathBuf::from("/data/kv"),
        );
        assert_eq!(data.lattice_rpc_prefix, "dev");
        assert_eq!(data.lattice_rpc_url, "nats://127.0.0.1:4999");
        assert_eq!(data.provider_key, "kv");
        assert_eq!(data.host_id, "NHOST");
        assert_eq!(data.config["path"], "/x");
        assert_eq!(data.data_dir.as_deref(), Some("/data/kv"));
        assert_eq!(data.default_rpc_timeout_ms, Some(10_000));
    }
}
