//! The host data document each provider process receives on stdin: the
//! host's own connection details plus what is particular to the provider.

use std::path::{Path, PathBuf};

use tracing::level_filters::LevelFilter;
use trellis_lattice::connect::NatsAuth;
use trellis_lattice::host_data::LogLevel;
use trellis_lattice::{HostData, Link};

use crate::config::HostConfig;

/// The parts of the host data that are the same for every provider.
#[derive(Clone, Debug)]
pub(crate) struct HostDataTemplate {
    host_id: String,
    lattice: String,
    nats_url: String,
    auth: ProviderAuth,
    tls_ca: Option<String>,
    tls_client: Option<(String, String)>,
    log_level: LogLevel,
    rpc_timeout_ms: u64,
}

/// The credentials fields of the host data.
#[derive(Clone, Debug, Default)]
struct ProviderAuth {
    user_jwt: Option<String>,
    user_seed: Option<String>,
    user: Option<String>,
    password: Option<String>,
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
        let display = |path: &PathBuf| path.display().to_string();
        HostDataTemplate {
            host_id: host_id.to_owned(),
            lattice: config.lattice.clone(),
            nats_url: config.nats.urls.clone(),
            auth: provider_auth(auth),
            tls_ca: config.nats.tls_ca.as_ref().map(display),
            tls_client: config
                .nats
                .tls_client
                .as_ref()
                .map(|(cert, key)| (display(cert), display(key))),
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
            lattice_rpc_user_jwt: self.auth.user_jwt.clone(),
            lattice_rpc_user_seed: self.auth.user_seed.clone(),
            lattice_rpc_user: self.auth.user.clone(),
            lattice_rpc_password: self.auth.password.clone(),
            lattice_rpc_tls_ca_file: self.tls_ca.clone(),
            lattice_rpc_tls_cert_file: self.tls_client.as_ref().map(|(cert, _)| cert.clone()),
            lattice_rpc_tls_key_file: self.tls_client.as_ref().map(|(_, key)| key.clone()),
            provider_key: provider_id.to_owned(),
            config,
            link_definitions: links,
            log_level: Some(self.log_level),
            default_rpc_timeout_ms: Some(self.rpc_timeout_ms),
            data_dir: Some(data_dir.display().to_string()),
        }
    }
}

/// The host data's credential fields for `auth`. A file that does not
/// parse here leaves providers without credentials, which their own
/// connection error will then report.
fn provider_auth(auth: &NatsAuth) -> ProviderAuth {
    match auth {
        NatsAuth::Anonymous => ProviderAuth::default(),
        NatsAuth::CredsFile(path) => {
            let (user_jwt, user_seed) = read_credentials(path);
            ProviderAuth {
                user_jwt,
                user_seed,
                ..ProviderAuth::default()
            }
        }
        NatsAuth::NkeyFile(path) => ProviderAuth {
            user_seed: read_seed(path),
            ..ProviderAuth::default()
        },
        NatsAuth::Jwt { jwt, seed } => ProviderAuth {
            user_jwt: Some(jwt.clone()),
            user_seed: Some(seed.clone()),
            ..ProviderAuth::default()
        },
        NatsAuth::Nkey(seed) => ProviderAuth {
            user_seed: Some(seed.clone()),
            ..ProviderAuth::default()
        },
        NatsAuth::User { user, password } => ProviderAuth {
            user: Some(user.clone()),
            password: Some(password.clone()),
            ..ProviderAuth::default()
        },
    }
}

/// The first `SU…` word of an nkey seed file.
fn read_seed(path: &Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .split_whitespace()
            .find(|word| word.starts_with("SU"))
            .map(str::to_owned),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot read the NATS nkey seed for providers");
            None
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

/// The user JWT and seed of a NATS `.creds` file.
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
    use trellis_lattice::connect::NatsConnection;

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
