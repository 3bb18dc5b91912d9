//! The "host data" a host hands a provider process on start.
//!
//! A provider is a separate executable. The host starts it and writes one
//! line to its stdin: this document as JSON, base64-encoded (standard
//! alphabet, padded). From it the provider learns where NATS is and how to
//! authenticate, which lattice and id to serve, its merged config, the links
//! that already involve it, and how to log. Everything after that (new
//! links, shutdown, health checks) arrives over NATS.
//!
//! Field names are wasmCloud's `HostData` (wasmcloud-core `host.rs`) where
//! one exists: `lattice_rpc_prefix` is the lattice name, `provider_key` the
//! provider id, `lattice_rpc_url` the NATS URL.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::LatticeError;
use crate::link::Link;
use crate::rpc::DEFAULT_RPC_TIMEOUT_MS;

/// How verbosely a provider should log; the host passes on its own level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// The normal level.
    #[default]
    Info,
    /// Diagnostics.
    Debug,
    /// Everything.
    Trace,
    /// Only critical failures (wasi:logging's extra level).
    Critical,
}

/// Everything a provider needs to join the lattice.
///
/// Its `Debug` output leaves out the seed and password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostData {
    /// The id of the host that started the provider.
    #[serde(default)]
    pub host_id: String,
    /// The lattice name.
    #[serde(default)]
    pub lattice_rpc_prefix: String,
    /// The NATS server URL, e.g. `nats://127.0.0.1:4222`.
    #[serde(default)]
    pub lattice_rpc_url: String,
    /// A NATS user JWT, when the server uses decentralised auth.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub lattice_rpc_user_jwt: Option<String>,
    /// The NATS user seed that signs for that JWT.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub lattice_rpc_user_seed: Option<String>,
    /// A NATS user name, with [`HostData::lattice_rpc_password`]. A
    /// Trellis extension, as are the password and TLS fields.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub lattice_rpc_user: Option<String>,
    /// The password of that NATS user.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub lattice_rpc_password: Option<String>,
    /// A PEM file of CA certificates that signed the NATS server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lattice_rpc_tls_ca_file: Option<String>,
    /// A PEM client certificate for mutual TLS, with its key file below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lattice_rpc_tls_cert_file: Option<String>,
    /// The client certificate's PEM private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lattice_rpc_tls_key_file: Option<String>,
    /// The provider's lattice id (the target its links name).
    #[serde(default)]
    pub provider_key: String,
    /// The provider's merged named config.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Links that already target or originate from the provider.
    #[serde(default)]
    pub link_definitions: Vec<Link>,
    /// The level to log at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    /// How long the provider should wait for a call it makes, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_rpc_timeout_ms: Option<u64>,
    /// A directory the provider may keep files in (e.g. the default SQLite
    /// database), owned by the host. A Trellis extension; absent from
    /// wasmCloud's host data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    /// The lattice's cluster issuers (`C…` public keys): the provider
    /// acts for a component only on a call signed by one of them.
    #[serde(default)]
    pub cluster_issuers: Vec<String>,
    /// How old, in ms, a signed call may be; the default is 30 s. A Trellis
    /// extension, as is the next field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_window_ms: Option<u64>,
    /// Serve calls without checking their signatures. Only a host started
    /// with `--insecure-unsigned-invocations` sets it (for measuring what
    /// the check costs); any process on the lattice can then act for any
    /// component.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_invocation_check: bool,
    /// The largest payload the provider sends or accepts, in bytes (the
    /// host's `--max-body-mib`); 100 MiB when absent. A Trellis extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Where the provider should serve Prometheus metrics (`HOST:PORT`);
    /// absent, it serves none. A Trellis extension: the host scrapes it
    /// and serves it with its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
    /// The seed (`SX…`) of the curve25519 key the secrets of the
    /// provider's links are sealed for; the host makes one per provider. A
    /// Trellis extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_xkey_seed: Option<String>,
}

impl std::fmt::Debug for HostData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("HostData")
            .field("host_id", &self.host_id)
            .field("lattice_rpc_prefix", &self.lattice_rpc_prefix)
            .field("lattice_rpc_url", &self.lattice_rpc_url)
            .field(
                "lattice_rpc_user_jwt",
                &redacted(&self.lattice_rpc_user_jwt),
            )
            .field(
                "lattice_rpc_user_seed",
                &redacted(&self.lattice_rpc_user_seed),
            )
            .field("lattice_rpc_user", &self.lattice_rpc_user)
            .field(
                "lattice_rpc_password",
                &redacted(&self.lattice_rpc_password),
            )
            .field("lattice_rpc_tls_ca_file", &self.lattice_rpc_tls_ca_file)
            .field("lattice_rpc_tls_cert_file", &self.lattice_rpc_tls_cert_file)
            .field("lattice_rpc_tls_key_file", &self.lattice_rpc_tls_key_file)
            .field("provider_key", &self.provider_key)
            .field("config", &self.config)
            .field("link_definitions", &self.link_definitions)
            .field("log_level", &self.log_level)
            .field("default_rpc_timeout_ms", &self.default_rpc_timeout_ms)
            .field("data_dir", &self.data_dir)
            .field("cluster_issuers", &self.cluster_issuers)
            .field("invocation_window_ms", &self.invocation_window_ms)
            .field(
                "insecure_skip_invocation_check",
                &self.insecure_skip_invocation_check,
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .field("metrics_addr", &self.metrics_addr)
            .field("provider_xkey_seed", &redacted(&self.provider_xkey_seed))
            .finish()
    }
}

impl HostData {
    /// How the provider connects: the URLs, the credentials the host
    /// handed over (a JWT and seed, a bare nkey seed, or a user and
    /// password), and the TLS files (feature `client`).
    #[cfg(feature = "client")]
    pub fn nats_connection(&self) -> crate::connect::NatsConnection {
        use crate::connect::{NatsAuth, NatsConnection};
        let auth = match (
            &self.lattice_rpc_user_jwt,
            &self.lattice_rpc_user_seed,
            &self.lattice_rpc_user,
            &self.lattice_rpc_password,
        ) {
            (Some(jwt), Some(seed), _, _) => NatsAuth::Jwt {
                jwt: jwt.clone(),
                seed: seed.clone(),
            },
            (None, Some(seed), _, _) => NatsAuth::Nkey(seed.clone()),
            (_, _, Some(user), Some(password)) => NatsAuth::User {
                user: user.clone(),
                password: password.clone(),
            },
            _ => NatsAuth::Anonymous,
        };
        let tls_client = match (
            &self.lattice_rpc_tls_cert_file,
            &self.lattice_rpc_tls_key_file,
        ) {
            (Some(cert), Some(key)) => Some((cert.into(), key.into())),
            _ => None,
        };
        NatsConnection {
            urls: self.lattice_rpc_url.clone(),
            auth,
            tls_ca: self.lattice_rpc_tls_ca_file.as_ref().map(Into::into),
            tls_client,
        }
    }

    /// Host data whose connection fields say `connection`, the inverse of
    /// [`HostData::nats_connection`] (feature `client`); the rest is
    /// empty. File credentials are read here ([`NatsAuth::resolve`]),
    /// since a provider gets values, not paths; a file that cannot be read
    /// is logged and leaves the provider without credentials, so its own
    /// connection error names the server.
    ///
    /// [`NatsAuth::resolve`]: crate::connect::NatsAuth::resolve
    #[cfg(feature = "client")]
    pub fn from_connection(connection: &crate::connect::NatsConnection) -> Self {
        use crate::connect::NatsAuth;
        let auth = connection.auth.resolve().unwrap_or_else(|err| {
            tracing::warn!(error = %err, "cannot hand NATS credentials to providers");
            NatsAuth::Anonymous
        });
        let path = |p: &std::path::PathBuf| p.display().to_string();
        let mut data = HostData {
            lattice_rpc_url: connection.urls.clone(),
            lattice_rpc_tls_ca_file: connection.tls_ca.as_ref().map(path),
            lattice_rpc_tls_cert_file: connection.tls_client.as_ref().map(|(cert, _)| path(cert)),
            lattice_rpc_tls_key_file: connection.tls_client.as_ref().map(|(_, key)| path(key)),
            ..HostData::default()
        };
        match auth {
            NatsAuth::Jwt { jwt, seed } => {
                data.lattice_rpc_user_jwt = Some(jwt);
                data.lattice_rpc_user_seed = Some(seed);
            }
            NatsAuth::Nkey(seed) => data.lattice_rpc_user_seed = Some(seed),
            NatsAuth::User { user, password } => {
                data.lattice_rpc_user = Some(user);
                data.lattice_rpc_password = Some(password);
            }
            // `resolve` leaves no file behind.
            NatsAuth::Anonymous | NatsAuth::CredsFile(_) | NatsAuth::NkeyFile(_) => {}
        }
        data
    }

    /// The bounds on the payloads the provider sends and accepts.
    pub fn chunk_limits(&self) -> crate::chunk::ChunkLimits {
        crate::chunk::ChunkLimits {
            max_body: self
                .max_body_bytes
                .unwrap_or(crate::chunk::DEFAULT_MAX_BODY_BYTES),
            ..crate::chunk::ChunkLimits::default()
        }
    }

    /// The line the host writes to the provider's stdin (no newline).
    pub fn encode(&self) -> Result<String, LatticeError> {
        let json = serde_json::to_vec(self).map_err(|e| LatticeError::json("host data", e))?;
        Ok(STANDARD.encode(json))
    }

    /// Reads what the host wrote; surrounding whitespace and newlines are ignored.
    pub fn decode(text: &str) -> Result<Self, LatticeError> {
        let json = STANDARD
            .decode(text.trim())
            .map_err(|source| LatticeError::HostDataBase64 { source })?;
        serde_json::from_slice(&json).map_err(|e| LatticeError::json("host data", e))
    }

    /// The RPC timeout to use, falling back to the lattice default.
    pub fn rpc_timeout_ms(&self) -> u64 {
        self.default_rpc_timeout_ms
            .unwrap_or(DEFAULT_RPC_TIMEOUT_MS)
    }
}

/// wasmCloud hosts send `""` for "no credentials"; read that as `None`.
fn empty_as_none<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(de)?;
    Ok(value.filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HostData {
        HostData {
            host_id: "NHOST".into(),
            lattice_rpc_prefix: "default".into(),
            lattice_rpc_url: "nats://127.0.0.1:4222".into(),
            provider_key: "kv-sqlite".into(),
            config: [("path".to_string(), "/tmp/kv.db".to_string())].into(),
            log_level: Some(LogLevel::Debug),
            ..Default::default()
        }
    }

    #[test]
    fn encoded_host_data_decodes_to_the_same_value() {
        let data = sample();
        assert_eq!(HostData::decode(&data.encode().unwrap()).unwrap(), data);
    }

    #[test]
    fn decode_ignores_surrounding_whitespace_and_newlines() {
        let line = format!("  {}\r\n", sample().encode().unwrap());
        assert_eq!(HostData::decode(&line).unwrap(), sample());
    }

    #[test]
    fn non_base64_input_says_what_the_host_must_send() {
        let err = HostData::decode("{not base64}").unwrap_err().to_string();
        assert!(err.contains("base64-encoded JSON"), "{err}");
    }

    #[test]
    fn base64_of_non_json_is_a_json_error() {
        let err = HostData::decode(&STANDARD.encode("hello")).unwrap_err();
        assert!(matches!(
            err,
            LatticeError::Json {
                what: "host data",
                ..
            }
        ));
    }

    #[test]
    fn empty_credentials_from_wasmcloud_read_as_none() {
        let json = r#"{"lattice_rpc_user_jwt":"","lattice_rpc_user_seed":"","provider_key":"p"}"#;
        let data = HostData::decode(&STANDARD.encode(json)).unwrap();
        assert_eq!(data.lattice_rpc_user_jwt, None);
        assert_eq!(data.lattice_rpc_user_seed, None);
    }

    #[test]
    fn debug_output_hides_seeds_and_passwords() {
        let data = HostData {
            lattice_rpc_user_seed: Some("SUASECRETSEED".into()),
            lattice_rpc_password: Some("hunter2".into()),
            ..sample()
        };
        let text = format!("{data:?}");
        assert!(
            !text.contains("SUASECRETSEED") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[cfg(feature = "client")]
    #[test]
    fn connections_survive_the_trip_through_host_data() {
        use crate::connect::{NatsAuth, NatsConnection};
        let base = NatsConnection {
            tls_ca: Some("/ca.pem".into()),
            tls_client: Some(("/c.pem".into(), "/k.pem".into())),
            ..NatsConnection::new("tls://a:4222,tls://b:4222")
        };
        for auth in [
            NatsAuth::Anonymous,
            NatsAuth::Nkey("SUAX".into()),
            NatsAuth::Jwt {
                jwt: "eyJ.x.y".into(),
                seed: "SUAX".into(),
            },
            NatsAuth::User {
                user: "provider".into(),
                password: "pw".into(),
            },
        ] {
            let connection = NatsConnection {
                auth,
                ..base.clone()
            };
            let data = HostData::from_connection(&connection);
            assert_eq!(data.nats_connection(), connection);
        }
    }

    #[cfg(feature = "client")]
    #[test]
    fn providers_connect_with_what_the_host_handed_over() {
        use crate::connect::NatsAuth;
        let data = HostData {
            lattice_rpc_user: Some("provider".into()),
            lattice_rpc_password: Some("pw".into()),
            lattice_rpc_tls_ca_file: Some("/ca.pem".into()),
            ..sample()
        };
        let nats = data.nats_connection();
        assert!(matches!(nats.auth, NatsAuth::User { ref user, .. } if user == "provider"));
        assert_eq!(
            nats.tls_ca.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        let seed_only = HostData {
            lattice_rpc_user_seed: Some("SUAX".into()),
            ..sample()
        };
        assert_eq!(
            seed_only.nats_connection().auth,
            NatsAuth::Nkey("SUAX".into())
        );
    }

    #[test]
    fn timeout_falls_back_to_the_default() {
        assert_eq!(sample().rpc_timeout_ms(), DEFAULT_RPC_TIMEOUT_MS);
        let data = HostData {
            default_rpc_timeout_ms: Some(500),
            ..sample()
        };
        assert_eq!(data.rpc_timeout_ms(), 500);
    }
}
