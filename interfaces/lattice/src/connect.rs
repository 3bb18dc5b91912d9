//! How every Trellis process reaches NATS (feature `client`).
//!
//! The host, wadm, `wash` and the provider SDK take the same connection
//! options, so a secured lattice is configured the same way everywhere:
//! one or more server URLs (comma separated, `nats://` or `tls://`), one
//! way to authenticate (a `.creds` file, an nkey seed file, or a user and
//! password), and TLS settings (a CA to trust, and a client certificate
//! and key for mutual TLS). [`NatsConnection`] holds them; with the `cli`
//! feature [`NatsArgs`] reads them from flags and `TRELLIS_NATS_*`
//! variables.
//!
//! [`NatsConnection::connect`] waits a bounded time for a server, and sorts
//! failures into the cases an operator acts on: nothing answers, the TLS
//! handshake failed (wrong CA, say), or the server refused the credentials.
//! Each message names the servers and the flag to fix. Once connected, a
//! subject the user's permissions forbid is logged with the same kind of
//! hint, because NATS reports it asynchronously, not to the call.
//!
//! ```
//! use trellis_lattice::connect::NatsConnection;
//!
//! let nats = NatsConnection::new("tls://a.example:4222, tls://b.example:4222");
//! assert_eq!(nats.server_list().len(), 2);
//! assert!(nats.wants_tls());
//! // No server at all is a mistake caught before connecting.
//! assert!(NatsConnection::new("").check().unwrap_err().to_string().contains("--nats-url"));
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, ServerAddr};
use thiserror::Error;

/// The NATS URL every process uses when none is given.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// How long to wait between attempts while no server answers yet.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Where NATS is and how to authenticate to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatsConnection {
    /// Server URLs, comma separated.
    pub urls: String,
    /// How to authenticate.
    pub auth: NatsAuth,
    /// A PEM file of CA certificates to trust for the server's certificate.
    pub tls_ca: Option<PathBuf>,
    /// A PEM client certificate and its private key, for servers that
    /// verify clients (mutual TLS).
    pub tls_client: Option<(PathBuf, PathBuf)>,
}

/// One way to authenticate to NATS.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials.
    #[default]
    Anonymous,
    /// A `.creds` file (user JWT and seed).
    CredsFile(PathBuf),
    /// A file holding an nkey user seed (`SU…`).
    NkeyFile(PathBuf),
    /// A user JWT and the seed that signs for it, as a host hands them to
    /// its providers.
    Jwt {
        /// The user JWT.
        jwt: String,
        /// Its seed.
        seed: String,
    },
    /// An nkey user seed (`SU…`), as a host hands it to its providers.
    Nkey(String),
    /// A user name and password.
    User {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsAuth::Anonymous => f.write_str("Anonymous"),
            NatsAuth::CredsFile(path) => f.debug_tuple("CredsFile").field(path).finish(),
            NatsAuth::NkeyFile(path) => f.debug_tuple("NkeyFile").field(path).finish(),
            NatsAuth::Jwt { .. } => f.write_str("Jwt(<redacted>)"),
            NatsAuth::Nkey(_) => f.write_str("Nkey(<redacted>)"),
            NatsAuth::User { user, .. } => write!(f, "User({user}, <redacted>)"),
        }
    }
}

impl NatsAuth {
    /// The way to authenticate that the flags `{flag}-creds`,
    /// `{flag}-nkey`, `{flag}-user` and `{flag}-password` give, or why they
    /// contradict each other. `flag` is `--nats` for a process's own
    /// connection and `--provider-nats` for the credentials a host hands
    /// its providers, so each message names the flags the user typed.
    pub fn from_flags(
        flag: &str,
        creds: Option<PathBuf>,
        nkey: Option<PathBuf>,
        user: Option<String>,
        password: Option<String>,
    ) -> Result<Self, ConnectError> {
        Ok(match (creds, nkey, user, password) {
            (None, None, None, None) => NatsAuth::Anonymous,
            (Some(path), None, None, None) => NatsAuth::CredsFile(path),
            (None, Some(path), None, None) => NatsAuth::NkeyFile(path),
            (None, None, Some(user), Some(password)) => NatsAuth::User { user, password },
            (None, None, Some(_), None) | (None, None, None, Some(_)) => {
                return Err(ConnectError::Invalid(format!(
                    "{flag}-user and {flag}-password go together; give both or neither"
                )));
            }
            _ => {
                return Err(ConnectError::Invalid(format!(
                    "give one way to authenticate to NATS: {flag}-creds, {flag}-nkey, or {flag}-user with {flag}-password"
                )));
            }
        })
    }

    /// The same credentials with every file read: a `.creds` file becomes
    /// its JWT and seed, an nkey seed file its seed. This is the form a
    /// host hands its providers, whose host data carries values, not paths.
    pub fn resolve(&self) -> Result<NatsAuth, ConnectError> {
        match self {
            NatsAuth::CredsFile(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConnectError::ReadFile {
                        what: "credentials file",
                        path: path.clone(),
                        source,
                    })?;
                let (jwt, seed) = parse_credentials(&text).ok_or_else(|| {
                    ConnectError::Invalid(format!(
                        "{} is not a NATS credentials file: it needs a user JWT and a user seed",
                        path.display()
                    ))
                })?;
                Ok(NatsAuth::Jwt { jwt, seed })
            }
            NatsAuth::NkeyFile(path) => Ok(NatsAuth::Nkey(read_seed(path)?)),
            resolved => Ok(resolved.clone()),
        }
    }
}

/// Why a process could not connect to NATS.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The options contradict each other or a URL does not parse.
    #[error("{0}")]
    Invalid(String),
    /// A file the options name could not be read.
    #[error("reading the NATS {what} {path}: {source}")]
    ReadFile {
        /// Which option named it.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Nothing answered in time.
    #[error(
        "no NATS server answers at {servers} ({reason}); start one (`wash up`, or `nats-server -js`) or pass --nats-url"
    )]
    Unreachable {
        /// The servers tried.
        servers: String,
        /// The last failure.
        reason: String,
    },
    /// The TLS handshake failed.
    #[error("TLS with the NATS server at {servers} failed ({reason}); {hint}")]
    Tls {
        /// The servers tried.
        servers: String,
        /// What the TLS layer said.
        reason: String,
        /// What to check.
        hint: String,
    },
    /// The server refused the credentials.
    #[error("the NATS server at {servers} refused the credentials ({reason}); {hint}")]
    Refused {
        /// The servers tried.
        servers: String,
        /// What the server said.
        reason: String,
        /// Which credentials were offered and where to fix them.
        hint: String,
    },
}

impl NatsConnection {
    /// Options for `urls` with no authentication and no TLS settings.
    pub fn new(urls: impl Into<String>) -> Self {
        NatsConnection {
            urls: urls.into(),
            ..NatsConnection::default()
        }
    }

    /// The server URLs, trimmed, without empty entries.
    pub fn server_list(&self) -> Vec<&str> {
        self.urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect()
    }

    /// Checks that a server is named, before anything is read.
    pub fn check(&self) -> Result<(), ConnectError> {
        if self.server_list().is_empty() {
            return Err(ConnectError::Invalid(
                "no NATS server URL given; pass --nats-url nats://HOST:4222".to_owned(),
            ));
        }
        Ok(())
    }

    /// The parsed server addresses.
    pub fn server_addrs(&self) -> Result<Vec<ServerAddr>, ConnectError> {
        self.check()?;
        self.server_list()
            .into_iter()
            .map(|url| {
                url.parse::<ServerAddr>().map_err(|e| {
                    ConnectError::Invalid(format!(
                        "`{url}` is not a NATS server URL ({e}); use nats://HOST:PORT or tls://HOST:PORT"
                    ))
                })
            })
            .collect()
    }

    /// Whether these options ask for TLS.
    pub fn wants_tls(&self) -> bool {
        self.tls_ca.is_some()
            || self.tls_client.is_some()
            || self
                .server_list()
                .iter()
                .any(|url| url.starts_with("tls://"))
    }

    /// async-nats options carrying the authentication and TLS settings,
    /// and a callback that logs permission violations with a hint.
    pub async fn options(&self) -> Result<ConnectOptions, ConnectError> {
        self.check()?;
        // The URLs are tried in the order given, not shuffled: a process
        // lists its own machine's server first, so a cluster member's
        // death disturbs only the processes of that machine.
        let mut options = ConnectOptions::new()
            .event_callback(log_event)
            .retain_servers_order();
        options = match &self.auth {
            NatsAuth::Anonymous => options,
            NatsAuth::CredsFile(path) => {
                readable("credentials file", path)?;
                options
                    .credentials_file(path)
                    .await
                    .map_err(|source| ConnectError::ReadFile {
                        what: "credentials file",
                        path: path.clone(),
                        source,
                    })?
            }
            NatsAuth::NkeyFile(path) => options.nkey(read_seed(path)?),
            NatsAuth::Jwt { jwt, seed } => options
                .credentials(&credentials_text(jwt, seed))
                .map_err(|e| {
                    ConnectError::Invalid(format!("the NATS user JWT or seed is malformed: {e}"))
                })?,
            NatsAuth::Nkey(seed) => options.nkey(seed.clone()),
            NatsAuth::User { user, password } => {
                options.user_and_password(user.clone(), password.clone())
            }
        };
        if let Some(path) = &self.tls_ca {
            readable("TLS CA file", path)?;
            options = options.add_root_certificates(path.clone());
        }
        if let Some((cert, key)) = &self.tls_client {
            readable("TLS client certificate", cert)?;
            readable("TLS client key", key)?;
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.wants_tls() {
            options = options.require_tls(true);
        }
        Ok(options)
    }

    /// Connects, retrying while no server answers, for at most `wait`.
    ///
    /// `customize` adds the caller's own settings (a name, timeouts) to each
    /// attempt's options. TLS and credential failures end the wait at once:
    /// retrying cannot fix them.
    pub async fn connect(
        &self,
        customize: impl Fn(ConnectOptions) -> ConnectOptions,
        wait: Duration,
    ) -> Result<async_nats::Client, ConnectError> {
        let addrs = self.server_addrs()?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let options = customize(self.options().await?);
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let reason = match tokio::time::timeout(left, options.connect(addrs.clone())).await {
                Ok(Ok(client)) => return Ok(client),
                Ok(Err(err)) => match self.classify(&err) {
                    Some(fatal) => return Err(fatal),
                    None => err.to_string(),
                },
                Err(_) => format!("no answer within {wait:?}"),
            };
            if tokio::time::Instant::now() + RETRY_PAUSE >= deadline {
                return Err(ConnectError::Unreachable {
                    servers: self.servers(),
                    reason,
                });
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// The failures that retrying cannot fix, with their hints.
    fn classify(&self, err: &async_nats::ConnectError) -> Option<ConnectError> {
        let reason = err.to_string();
        let source = std::error::Error::source(err).map(ToString::to_string);
        let detail = source.map_or(reason.clone(), |s| format!("{reason}: {s}"));
        let tls_like = is_tls_failure(&detail);
        match err.kind() {
            ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                Some(ConnectError::Refused {
                    servers: self.servers(),
                    reason: detail,
                    hint: self.credentials_hint(),
                })
            }
            ConnectErrorKind::Tls => Some(self.tls_error(detail)),
            ConnectErrorKind::Io if tls_like => Some(self.tls_error(detail)),
            ConnectErrorKind::ServerParse => Some(ConnectError::Invalid(format!(
                "the NATS server list `{}` does not parse ({detail})",
                self.urls
            ))),
            _ => None,
        }
    }

    fn tls_error(&self, reason: String) -> ConnectError {
        // An alert we *received* is the server rejecting the handshake,
        // which with a valid server certificate means our client
        // certificate: missing, or not from a CA the server trusts.
        let rejected_by_server = reason.contains("received fatal alert");
        let hint = match (&self.tls_ca, &self.tls_client) {
            (_, None) if rejected_by_server => "the server requires a client certificate \
                 (mutual TLS): pass one its CA signed with --nats-tls-cert and --nats-tls-key"
                .to_owned(),
            (_, Some((cert, _))) if rejected_by_server => format!(
                "the server did not accept the client certificate {} (--nats-tls-cert); it must \
                 be signed by a CA the server trusts",
                cert.display()
            ),
            (Some(ca), _) => format!(
                "check that {} is the CA that signed the server's certificate (--nats-tls-ca), and that the URL's host name is in that certificate",
                ca.display()
            ),
            (None, _) => {
                "pass the CA that signed the server's certificate with --nats-tls-ca".to_owned()
            }
        };
        ConnectError::Tls {
            servers: self.servers(),
            reason,
            hint,
        }
    }

    fn credentials_hint(&self) -> String {
        match &self.auth {
            NatsAuth::CredsFile(path) => {
                format!("check the credentials file {} (--nats-creds)", path.display())
            }
            NatsAuth::NkeyFile(path) => {
                format!("check the nkey seed in {} (--nats-nkey)", path.display())
            }
            NatsAuth::User { user, .. } => {
                format!("check the password of NATS user `{user}` (--nats-user, --nats-password)")
            }
            NatsAuth::Jwt { .. } | NatsAuth::Nkey(_) => {
                "check the credentials the host hands its providers (--provider-nats-creds)".to_owned()
            }
            NatsAuth::Anonymous => "this server requires credentials: pass --nats-creds, --nats-nkey, or --nats-user with --nats-password".to_owned(),
        }
    }

    fn servers(&self) -> String {
        self.server_list().join(", ")
    }
}

/// Whether an I/O failure came from the TLS layer (rustls reports a bad
/// certificate as an I/O error).
fn is_tls_failure(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    ["certificate", "tls", "handshake", "unknownissuer"]
        .iter()
        .any(|needle| text.contains(needle))
}

fn readable(what: &'static str, path: &Path) -> Result<(), ConnectError> {
    std::fs::metadata(path)
        .map(drop)
        .map_err(|source| ConnectError::ReadFile {
            what,
            path: path.to_owned(),
            source,
        })
}

/// The first `SU…` seed in an nkey seed file.
fn read_seed(path: &Path) -> Result<String, ConnectError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConnectError::ReadFile {
        what: "nkey seed file",
        path: path.to_owned(),
        source,
    })?;
    text.split_whitespace()
        .find(|word| word.starts_with("SU"))
        .map(str::to_owned)
        .ok_or_else(|| {
            ConnectError::Invalid(format!(
                "{} holds no nkey user seed (a word starting `SU`); generate one with `nk -gen user`",
                path.display()
            ))
        })
}

/// The user JWT and seed of a `.creds` document: the first line after each
/// `-----BEGIN …-----` marker.
fn parse_credentials(text: &str) -> Option<(String, String)> {
    let after = |marker: &str| {
        let mut lines = text.lines().map(str::trim);
        lines.find(|line| line.contains(marker))?;
        lines
            .find(|line| !line.is_empty())
            .filter(|line| !line.starts_with("---"))
            .map(str::to_owned)
    };
    Some((
        after("BEGIN NATS USER JWT")?,
        after("BEGIN USER NKEY SEED")?,
    ))
}

/// A `.creds` document for a JWT and seed, as async-nats parses them.
fn credentials_text(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

async fn log_event(event: async_nats::Event) {
    match event {
        async_nats::Event::ServerError(err) => {
            let text = err.to_string();
            if text.to_ascii_lowercase().contains("permissions violation") {
                tracing::error!(
                    error = %text,
                    "NATS refused a subject: this process's NATS user lacks the permission; grant it in the server's configuration (see deploy/nats/README.md)"
                );
            } else {
                tracing::warn!(error = %text, "NATS server error");
            }
        }
        async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS; reconnecting"),
        async_nats::Event::Connected => tracing::debug!("connected to NATS"),
        other => tracing::debug!(event = %other, "NATS connection event"),
    }
}

/// The connection flags, with their `TRELLIS_NATS_*` variables (feature `cli`).
#[cfg(feature = "cli")]
#[derive(Clone, Debug, clap::Args)]
pub struct NatsArgs {
    /// NATS server URLs, comma separated (`nats://` or `tls://`).
    #[arg(long = "nats-url", env = "TRELLIS_NATS_URL", default_value = DEFAULT_NATS_URL)]
    pub nats_url: String,
    /// A NATS credentials file (.creds).
    #[arg(long = "nats-creds", env = "TRELLIS_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// A file holding a NATS nkey user seed (SU…).
    #[arg(long = "nats-nkey", env = "TRELLIS_NATS_NKEY")]
    pub nats_nkey: Option<PathBuf>,
    /// A NATS user name (with --nats-password).
    #[arg(long = "nats-user", env = "TRELLIS_NATS_USER")]
    pub nats_user: Option<String>,
    /// The NATS user's password.
    #[arg(
        long = "nats-password",
        env = "TRELLIS_NATS_PASSWORD",
        hide_env_values = true
    )]
    pub nats_password: Option<String>,
    /// A PEM file of CA certificates that signed the server's certificate.
    #[arg(long = "nats-tls-ca", env = "TRELLIS_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// A PEM client certificate, for mutual TLS (with --nats-tls-key).
    #[arg(long = "nats-tls-cert", env = "TRELLIS_NATS_TLS_CERT")]
    pub nats_tls_cert: Option<PathBuf>,
    /// The client certificate's PEM private key.
    #[arg(long = "nats-tls-key", env = "TRELLIS_NATS_TLS_KEY")]
    pub nats_tls_key: Option<PathBuf>,
}

#[cfg(feature = "cli")]
impl NatsArgs {
    /// The connection these flags describe, or why they contradict each
    /// other.
    pub fn connection(&self) -> Result<NatsConnection, ConnectError> {
        let invalid = |message: &str| Err(ConnectError::Invalid(message.to_owned()));
        let auth = NatsAuth::from_flags(
            "--nats",
            self.nats_creds.clone(),
            self.nats_nkey.clone(),
            self.nats_user.clone(),
            self.nats_password.clone(),
        )?;
        let tls_client = match (&self.nats_tls_cert, &self.nats_tls_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => {
                return invalid(
                    "--nats-tls-cert and --nats-tls-key go together (a client certificate and its key); give both or neither",
                );
            }
        };
        let connection = NatsConnection {
            urls: self.nats_url.clone(),
            auth,
            tls_ca: self.nats_tls_ca.clone(),
            tls_client,
        };
        connection.check()?;
        Ok(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_urls_are_split_and_trimmed() {
        let nats = NatsConnection::new(" nats://a:4222 ,tls://b:4222,, ");
        assert_eq!(nats.server_list(), ["nats://a:4222", "tls://b:4222"]);
        assert_eq!(nats.server_addrs().unwrap().len(), 2);
        assert!(nats.wants_tls());
        assert!(!NatsConnection::new("nats://a:4222").wants_tls());
    }

    #[test]
    fn a_connection_needs_a_server() {
        let message = NatsConnection::new(" , ").check().unwrap_err().to_string();
        assert!(message.contains("--nats-url"), "{message}");
    }

    #[test]
    fn a_bad_url_is_named() {
        let message = NatsConnection::new("nats://a:4222,http://[::")
            .server_addrs()
            .unwrap_err()
            .to_string();
        assert!(message.contains("`http://[::`"), "{message}");
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let nats = NatsConnection {
            auth: NatsAuth::User {
                user: "ops".into(),
                password: "hunter2".into(),
            },
            ..NatsConnection::new("nats://a:4222")
        };
        let text = format!("{nats:?}");
        assert!(!text.contains("hunter2") && text.contains("ops"), "{text}");
        let text = format!("{:?}", NatsAuth::Nkey("SUASECRET".into()));
        assert!(!text.contains("SUASECRET"), "{text}");
    }

    #[test]
    fn seed_files_yield_the_user_seed() {
        let dir = std::env::temp_dir().join(format!("trellis-seed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("user.nk");
        std::fs::write(&path, "# a comment\nSUAEXAMPLE\n").unwrap();
        assert_eq!(read_seed(&path).unwrap(), "SUAEXAMPLE");
        std::fs::write(&path, "nothing").unwrap();
        assert!(
            read_seed(&path)
                .unwrap_err()
                .to_string()
                .contains("nk -gen user")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flags_name_the_prefix_the_user_typed() {
        let both = NatsAuth::from_flags(
            "--provider-nats",
            Some("a.creds".into()),
            Some("a.nk".into()),
            None,
            None,
        );
        let message = both.unwrap_err().to_string();
        assert!(
            message.contains("--provider-nats-creds, --provider-nats-nkey"),
            "{message}"
        );
        let half = NatsAuth::from_flags("--nats", None, None, Some("ops".into()), None);
        let message = half.unwrap_err().to_string();
        assert!(
            message.contains("--nats-user and --nats-password"),
            "{message}"
        );
        let user =
            NatsAuth::from_flags("--nats", None, None, Some("ops".into()), Some("pw".into()));
        assert_eq!(
            user.unwrap(),
            NatsAuth::User {
                user: "ops".into(),
                password: "pw".into()
            }
        );
    }

    #[test]
    fn credentials_files_resolve_to_their_jwt_and_seed() {
        let creds = "-----BEGIN NATS USER JWT-----\neyJ0eXAi.payload.sig\n------END NATS USER JWT------\n\n\
                     ************************* IMPORTANT *************************\n\
                     -----BEGIN USER NKEY SEED-----\nSUAXYZ\n------END USER NKEY SEED------\n";
        assert_eq!(
            parse_credentials(creds),
            Some(("eyJ0eXAi.payload.sig".into(), "SUAXYZ".into()))
        );
        assert_eq!(parse_credentials("nothing here"), None);
        let dir = std::env::temp_dir().join(format!("trellis-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("user.creds");
        std::fs::write(&path, creds).unwrap();
        assert_eq!(
            NatsAuth::CredsFile(path.clone()).resolve().unwrap(),
            NatsAuth::Jwt {
                jwt: "eyJ0eXAi.payload.sig".into(),
                seed: "SUAXYZ".into()
            }
        );
        std::fs::write(&path, "not credentials").unwrap();
        let message = NatsAuth::CredsFile(path).resolve().unwrap_err().to_string();
        assert!(message.contains("not a NATS credentials file"), "{message}");
        let seed = dir.join("user.nk");
        std::fs::write(&seed, "SUASEED\n").unwrap();
        assert_eq!(
            NatsAuth::NkeyFile(seed).resolve().unwrap(),
            NatsAuth::Nkey("SUASEED".into())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tls_failures_are_told_apart_from_unreachable_servers() {
        assert!(is_tls_failure("invalid peer certificate: UnknownIssuer"));
        assert!(!is_tls_failure("Connection refused (os error 111)"));
    }
}
