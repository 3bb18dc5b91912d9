//! The host data document each provider process receives on stdin: the
//! host's own connection details plus what is particular to the provider.

use std::path::PathBuf;

use tracing::level_filters::LevelFilter;
use trellis_lattice::connect::{NatsAuth, NatsConnection};
use trellis_lattice::host_data::LogLevel;
use trellis_lattice::{HostData, Link};

use crate::config::HostConfig;

/// The parts of the host data that are the same for every provider.
#[derive(Clone, Debug)]
pub(crate) struct HostDataTemplate {
    host_id: String,
    lattice: String,
    /// The host's URLs and TLS files, with the providers' credentials
    /// read once, here, at start.
    connection: NatsConnection,
    log_level: LogLevel,
    rpc_timeout_ms: u64,
    cluster_issuers: Vec<String>,
    invocation_window_ms: u64,
    skip_invocation_check: bool,
    max_body_bytes: u64,
}

impl HostDataTemplate {
    /// Reads the host's settings. Providers get the host's URLs and TLS
    /// files, and `--provider-nats-*` credentials if given, else the
    /// host's own; files are read here and passed on as their contents.
    pub(crate) fn new(host_id: &str, config: &HostConfig) -> Self {
        let auth = config
            .provider_nats_auth
            .as_ref()
            .unwrap_or(&config.nats.auth);
        let auth = auth.resolve().unwrap_or_else(|err| {
            tracing::warn!(error = %err, "cannot read the NATS credentials for providers");
            NatsAuth::Anonymous
        });
        HostDataTemplate {
            host_id: host_id.to_owned(),
            lattice: config.lattice.clone(),
            connection: NatsConnection {
                auth,
                ..config.nats.clone()
            },
            log_level: log_level(LevelFilter::current()),
            rpc_timeout_ms: millis(config.call_timeout),
            cluster_issuers: config.cluster_issuers.clone(),
            invocation_window_ms: millis(config.invocation_window),
            skip_invocation_check: config.insecure_unsigned_invocations,
            max_body_bytes: config.max_body_bytes,
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
            provider_key: provider_id.to_owned(),
            config,
            link_definitions: links,
            log_level: Some(self.log_level),
            default_rpc_timeout_ms: Some(self.rpc_timeout_ms),
            data_dir: Some(data_dir.display().to_string()),
            cluster_issuers: self.cluster_issuers.clone(),
            invocation_window_ms: Some(self.invocation_window_ms),
            insecure_skip_invocation_check: self.skip_invocation_check,
            max_body_bytes: Some(self.max_body_bytes),
            ..HostData::from_connection(&self.connection)
        }
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_get_their_own_credentials_when_the_host_is_given_them() {
        let host_auth = NatsAuth::User {
            user: "host".into(),
            password: "h".into(),
        };
        let config = HostConfig {
            nats: NatsConnection {
                auth: host_auth.clone(),
                ..NatsConnection::new("nats://127.0.0.1:4222")
            },
            ..HostConfig::default()
        };
        let own = HostDataTemplate::new("N", &config).for_provider(
            "p",
            Default::default(),
            Vec::new(),
            PathBuf::new(),
        );
        assert_eq!(own.lattice_rpc_user.as_deref(), Some("host"));
        let config = HostConfig {
            provider_nats_auth: Some(NatsAuth::User {
                user: "provider".into(),
                password: "p".into(),
            }),
            ..config
        };
        let given = HostDataTemplate::new("N", &config).for_provider(
            "p",
            Default::default(),
            Vec::new(),
            PathBuf::new(),
        );
        assert_eq!(given.lattice_rpc_user.as_deref(), Some("provider"));
        assert_eq!(given.lattice_rpc_password.as_deref(), Some("p"));
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
            nats: NatsConnection {
                tls_ca: Some("/etc/trellis/ca.pem".into()),
                ..NatsConnection::new("tls://127.0.0.1:4999")
            },
            ..HostConfig::default()
        };
        let data = HostDataTemplate::new("NHOST", &config).for_provider(
            "kv",
            [("path".to_owned(), "/x".to_owned())].into(),
            Vec::new(),
            PathBuf::from("/data/kv"),
        );
        assert_eq!(data.lattice_rpc_prefix, "dev");
        assert_eq!(data.lattice_rpc_url, "tls://127.0.0.1:4999");
        assert_eq!(
            data.lattice_rpc_tls_ca_file.as_deref(),
            Some("/etc/trellis/ca.pem")
        );
        assert_eq!(data.provider_key, "kv");
        assert_eq!(data.host_id, "NHOST");
        assert_eq!(data.config["path"], "/x");
        assert_eq!(data.data_dir.as_deref(), Some("/data/kv"));
        assert_eq!(data.default_rpc_timeout_ms, Some(10_000));
    }
}
