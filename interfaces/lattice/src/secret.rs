//! Secrets: what a component or link is granted, and how a host fetches a
//! value from a secrets backend without it ever crossing NATS in the clear.
//!
//! **References.** A component is granted a secret by a *reference*: its
//! name as the component asks for it, the backend that holds it, and the
//! key there ([`SecretRef`]). A reference holds no value, so it is kept
//! like named config, under the name `SECRET_{name}` in
//! `CONFIGDATA_{lattice}`, and a scale command, a provider start or a link
//! lists it among its configs (wasmCloud 1.x does the same). A host sets
//! such names aside: they never reach `wasi:config`.
//!
//! **Fetching.** On `wasmcloud:secrets/store.get`, the host calls the
//! backend for the component: an RPC to `{lattice}.{backend}.rpc.`
//! [`BACKEND_GET`], signed as every call the host makes for a component
//! (see `trellis_claims::invocation`). Its body is a [`SecretRequest`],
//! MessagePack, naming the key, the component's claims JWT (the backend
//! checks it and keys its access rules by its subject) and the app, and
//! carrying the host's curve25519 public key. The reply is an
//! `Option<`[`SealedSecret`]`>`: the value sealed for that key, which only
//! that host can open, or `None` when the backend holds no such secret; a
//! refusal is an RPC error of kind `refused` that says why.
//!
//! **Administration.** `wash secrets` talks to the backend in JSON on
//! `trellis.secrets.v1.{lattice}.{backend}.{op}` ([`AdminOp`]): `xkey`
//! (the backend's public key), `put` (a value sealed for that key, with its
//! access rules), `list` (names, versions and rules, never values), `del`,
//! and `rotate-key`. Every reply is a [`crate::ctl::CtlResponse`].
//!
//! **Audit.** Every fetch, granted or refused, is a `secret_accessed`
//! event ([`SecretAccessed`]) that names the component, the secret and the
//! outcome, never the value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::NamedConfig;
use crate::error::LatticeError;
use crate::subject::check_token;
use crate::wit::WitFunction;

/// Named config whose name starts with this is a secret reference.
pub const SECRET_PREFIX: &str = "SECRET_";

/// The function a host calls on a backend to fetch a secret.
pub const BACKEND_GET: &str = "trellis:secrets/backend.get";

/// The backend id references name when they name none.
pub const DEFAULT_BACKEND: &str = "secrets-nats-kv";

/// The annotation wadm marks what it runs with: the name of its app, which
/// access rules may require.
pub const APP_ANNOTATION: &str = "wasmcloud.dev/appspec";

/// The most bytes one secret value may hold.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// The longest secret name, in bytes.
pub const MAX_SECRET_NAME_BYTES: usize = 256;

/// [`BACKEND_GET`] as a function name.
pub fn backend_get() -> WitFunction {
    WitFunction::parse(BACKEND_GET).unwrap_or_else(|_| unreachable!("BACKEND_GET parses"))
}

/// Whether named config `name` is a secret reference.
pub fn is_reference(name: &str) -> bool {
    name.starts_with(SECRET_PREFIX)
}

/// Checks a secret's name (or a key in a backend): it becomes a subject
/// token, a KV key and a config name, so it is letters, digits, `_` and
/// `-`, at most [`MAX_SECRET_NAME_BYTES`].
pub fn validate_secret_name(name: &str) -> Result<(), LatticeError> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_SECRET_NAME_BYTES {
        Some("is longer than 256 bytes")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Some("may hold only letters, digits, `_` and `-`")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(LatticeError::invalid_name("secret name", name, problem)),
        None => check_token("secret name", name),
    }
}

/// One secret granted to a component or a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    /// The name the component asks `wasmcloud:secrets/store.get` for.
    pub name: String,
    /// The backend (its lattice id) that holds it.
    pub backend: String,
    /// The secret's name in that backend.
    pub key: String,
    /// A version to pin, if any; the current value otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl SecretRef {
    /// The named config this reference is kept under when nothing else
    /// names it (wadm names the ones it puts after their app, and records
    /// the name in the config's `name`).
    pub fn config_name(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.name)
    }

    /// The reference as the named config it is kept as.
    pub fn to_config(&self) -> NamedConfig {
        let mut config = NamedConfig::new();
        config.insert("name".into(), self.name.clone());
        config.insert("backend".into(), self.backend.clone());
        config.insert("key".into(), self.key.clone());
        if let Some(version) = self.version {
            config.insert("version".into(), version.to_string());
        }
        config
    }

    /// Reads the reference kept as named config `config_name`
    /// (`SECRET_…`). Its `name` defaults to what follows the prefix, its
    /// `key` to the name, and its `backend` to [`DEFAULT_BACKEND`].
    pub fn from_config(config_name: &str, config: &NamedConfig) -> Result<Self, LatticeError> {
        let invalid =
            |problem: String| LatticeError::invalid_name("secret reference", config_name, problem);
        let suffix = config_name
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| invalid(format!("does not start with `{SECRET_PREFIX}`")))?;
        let name = config.get("name").map_or(suffix, String::as_str);
        validate_secret_name(name)?;
        let key = config.get("key").map_or(name, String::as_str).to_owned();
        validate_secret_name(&key)?;
        let backend = config
            .get("backend")
            .map_or(DEFAULT_BACKEND, String::as_str)
            .to_owned();
        check_token("secret backend", &backend)?;
        let version =
            match config.get("version") {
                None => None,
                Some(v) => Some(v.parse().map_err(|_| {
                    invalid(format!("has version `{v}`, which is not a whole number"))
                })?),
            };
        if let Some(unknown) = config
            .keys()
            .find(|k| !["name", "backend", "key", "version"].contains(&k.as_str()))
        {
            return Err(invalid(format!(
                "has key `{unknown}`; a reference holds only `name`, `backend`, `key` and \
                 `version`"
            )));
        }
        Ok(SecretRef {
            name: name.to_owned(),
            backend,
            key,
            version,
        })
    }
}

/// The secrets granted to one component or link, by the name it asks for.
pub type SecretRefs = BTreeMap<String, SecretRef>;

/// What a host asks a backend for, on a component's (or provider's)
/// behalf. MessagePack; the field names are the contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRequest {
    /// The secret's name in the backend.
    pub key: String,
    /// The version wanted, if pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The claims JWT of the component or provider the host asks for;
    /// `None` when it runs unsigned (a development host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_jwt: Option<String>,
    /// The app (wadm's `app.oam.io/name` annotation) it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The curve25519 public key (`X…`) the reply is sealed for.
    pub reply_xkey: String,
}

/// A backend's answer: the value, sealed for the request's `reply_xkey`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// The version the value is.
    pub version: u64,
    /// The public key (`X…`) that sealed it.
    pub sender_xkey: String,
    /// The sealed MessagePack of a [`SecretValue`].
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// A secret's value: text or bytes, as `wasmcloud:secrets` has it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretValue {
    /// Text.
    String(String),
    /// Bytes.
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
}

impl SecretValue {
    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SecretValue::String(s) => s.as_bytes(),
            SecretValue::Bytes(b) => b,
        }
    }

    /// `string` or `bytes`.
    pub fn kind(&self) -> &'static str {
        match self {
            SecretValue::String(_) => "string",
            SecretValue::Bytes(_) => "bytes",
        }
    }

    /// Text when the bytes are UTF-8, bytes otherwise.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(text) => SecretValue::String(text),
            Err(e) => SecretValue::Bytes(e.into_bytes()),
        }
    }

    /// The MessagePack that is sealed.
    pub fn encode(&self) -> Result<Vec<u8>, LatticeError> {
        Ok(rmp_serde::to_vec_named(self)?)
    }

    /// Reads what [`SecretValue::encode`] wrote. The error never quotes
    /// `bytes`, which may hold the value.
    pub fn decode(bytes: &[u8]) -> Result<Self, LatticeError> {
        rmp_serde::from_slice(bytes).map_err(|_| LatticeError::SecretValueMalformed)
    }
}

/// Never the value: a debug print of a secret shows its kind and size.
impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretValue({}, {} bytes)",
            self.kind(),
            self.as_bytes().len()
        )
    }
}

/// Who may read a secret: a claims subject (`M…` for a component, `V…`
/// for a provider, or `*` for any signed one), optionally only within one
/// app. A backend refuses everyone its rules do not name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccessRule {
    /// The claims subject, or `*`.
    pub subject: String,
    /// The app it must belong to; any app when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

impl AccessRule {
    /// Reads `SUBJECT` or `SUBJECT@APP`, as `wash secrets put --allow` takes it.
    pub fn parse(text: &str) -> Result<Self, LatticeError> {
        let (subject, app) = match text.split_once('@') {
            Some((subject, app)) => (subject, Some(app.to_owned())),
            None => (text, None),
        };
        let valid_subject = subject == "*"
            || (subject.len() == 56
                && (subject.starts_with('M') || subject.starts_with('V'))
                && subject
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        if !valid_subject {
            return Err(LatticeError::invalid_name(
                "access rule",
                text,
                "does not name a component (`M…`) or provider (`V…`) public key, or `*`; \
                 `wash claims inspect` shows a component's",
            ));
        }
        if app.as_deref().is_some_and(str::is_empty) {
            return Err(LatticeError::invalid_name(
                "access rule",
                text,
                "names an empty app after `@`",
            ));
        }
        Ok(AccessRule {
            subject: subject.to_owned(),
            app,
        })
    }

    /// Whether the rule lets `subject` (if signed) in `app` read.
    pub fn allows(&self, subject: Option<&str>, app: Option<&str>) -> bool {
        let subject_ok = match subject {
            Some(subject) => self.subject == "*" || self.subject == subject,
            None => false,
        };
        let app_ok = self.app.as_deref().is_none_or(|want| app == Some(want));
        subject_ok && app_ok
    }
}

impl std::fmt::Display for AccessRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.app {
            Some(app) => write!(f, "{}@{app}", self.subject),
            None => f.write_str(&self.subject),
        }
    }
}

/// The administration operations a backend answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminOp {
    /// The backend's public key, to seal a `put` for.
    Xkey,
    /// Store a value.
    Put,
    /// Names, versions and rules.
    List,
    /// Delete a secret.
    Del,
    /// Re-seal every value under a new key and retire the old one.
    RotateKey,
}

impl AdminOp {
    /// Every operation.
    pub const ALL: [Self; 5] = [
        Self::Xkey,
        Self::Put,
        Self::List,
        Self::Del,
        Self::RotateKey,
    ];

    /// The subject suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Xkey => "xkey",
            Self::Put => "put",
            Self::List => "list",
            Self::Del => "del",
            Self::RotateKey => "rotate-key",
        }
    }

    /// `trellis.secrets.v1.{lattice}.{backend}.{op}`.
    pub fn subject(self, lattice: &str, backend: &str) -> Result<String, LatticeError> {
        check_token("lattice", lattice)?;
        check_token("secret backend", backend)?;
        Ok(format!(
            "trellis.secrets.v1.{lattice}.{backend}.{}",
            self.as_str()
        ))
    }
}

/// Reply to `xkey`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendKey {
    /// The backend's current public key (`X…`).
    pub xkey: String,
}

/// Body of `put`: the value sealed for the backend's key by a one-time key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutSecret {
    /// The secret's name.
    pub name: String,
    /// The one-time public key (`X…`) that sealed it.
    pub sender_xkey: String,
    /// The sealed MessagePack of a [`SecretValue`], base64 (standard).
    pub sealed: String,
    /// Who may read it; nobody when empty.
    #[serde(default)]
    pub allow: Vec<AccessRule>,
}

/// Body of `del`, and its reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSecret {
    /// The secret's name.
    pub name: String,
}

/// One secret as `list` shows it: never the value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    /// The secret's name.
    pub name: String,
    /// Its current version; each put makes a new one.
    pub version: u64,
    /// `string` or `bytes`.
    pub kind: String,
    /// Who may read it.
    #[serde(default)]
    pub allow: Vec<AccessRule>,
    /// The public key it is sealed under at rest.
    pub sealed_with: String,
}

/// Reply to `put`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutOutcome {
    /// The secret's name.
    pub name: String,
    /// The version the put made.
    pub version: u64,
}

/// Reply to `rotate-key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateOutcome {
    /// The new public key.
    pub xkey: String,
    /// The key it replaced, now retired.
    pub retired: String,
    /// How many values were re-sealed.
    pub resealed: usize,
}

/// `secret_accessed`: one fetch, granted or refused. Never the value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretAccessed {
    /// The secret's name in the backend.
    pub secret: String,
    /// The backend asked (or that would have been).
    #[serde(default)]
    pub backend: String,
    /// The component or provider id the fetch was for.
    pub entity_id: String,
    /// Its claims subject, if signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The host that asked.
    #[serde(default)]
    pub host_id: String,
    /// Its app, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Whether the value was given.
    pub allowed: bool,
    /// Why not, when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SUBJECT: &str = "MBCFOPM6JW2APJLXJD3Z5O4CN7CPYJ2B4FTKLJUR5YR5MITIU7HD3WD5";

    #[test]
    fn a_reference_round_trips_through_named_config() {
        let reference = SecretRef {
            name: "db_password".into(),
            backend: "vault".into(),
            key: "prod-db".into(),
            version: Some(3),
        };
        let config = reference.to_config();
        assert_eq!(reference.config_name(), "SECRET_db_password");
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            json!({"name": "db_password", "backend": "vault", "key": "prod-db", "version": "3"})
        );
        assert_eq!(
            SecretRef::from_config("SECRET_db_password", &config).unwrap(),
            reference
        );
        // Kept under another config name, it keeps its own name.
        assert_eq!(
            SecretRef::from_config("SECRET_shop-db", &config).unwrap(),
            reference
        );
    }

    #[test]
    fn a_bare_reference_defaults_its_key_and_backend() {
        let reference = SecretRef::from_config("SECRET_token", &NamedConfig::new()).unwrap();
        assert_eq!(reference.key, "token");
        assert_eq!(reference.backend, DEFAULT_BACKEND);
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        let mut config = NamedConfig::new();
        config.insert("value".into(), "hunter2".into());
        let err = SecretRef::from_config("SECRET_x", &config)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`value`"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = SecretRef::from_config("plain", &NamedConfig::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("SECRET_"), "{err}");
        assert!(validate_secret_name("a.b").is_err());
        assert!(validate_secret_name("").is_err());
        assert!(validate_secret_name(&"x".repeat(257)).is_err());
    }

    #[test]
    fn the_request_and_reply_are_pinned() {
        let request = SecretRequest {
            key: "db".into(),
            version: None,
            entity_jwt: Some("eyJ0".into()),
            app: Some("shop".into()),
            reply_xkey: "XHOST".into(),
        };
        let bytes = rmp_serde::to_vec_named(&request).unwrap();
        let value: rmpv::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(
            value.to_string(),
            r#"{"key": "db", "entity_jwt": "eyJ0", "app": "shop", "reply_xkey": "XHOST"}"#
        );
        let reply = SealedSecret {
            version: 2,
            sender_xkey: "XBACKEND".into(),
            sealed: vec![1, 2],
        };
        let bytes = rmp_serde::to_vec_named(&reply).unwrap();
        let value: rmpv::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(
            value.to_string(),
            r#"{"version": 2, "sender_xkey": "XBACKEND", "sealed": [1, 2]}"#
        );
        let value = SecretValue::String("s".into()).encode().unwrap();
        assert_eq!(SecretValue::decode(&value).unwrap().as_bytes(), b"s");
        // Something else sealed in its place is refused without being quoted.
        let other = rmp_serde::to_vec("hunter2").unwrap();
        let err = SecretValue::decode(&other).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let fixed = LatticeError::SecretValueMalformed.to_string();
        assert_eq!(
            SecretValue::decode(b"hunter2").unwrap_err().to_string(),
            fixed
        );
    }

    #[test]
    fn a_value_never_prints() {
        let value = SecretValue::String("hunter2".into());
        assert_eq!(format!("{value:?}"), "SecretValue(string, 7 bytes)");
        assert_eq!(SecretValue::from_bytes(vec![0xff]).kind(), "bytes");
    }

    #[test]
    fn rules_name_a_subject_and_maybe_an_app() {
        let rule = AccessRule::parse(&format!("{SUBJECT}@shop")).unwrap();
        assert!(rule.allows(Some(SUBJECT), Some("shop")));
        assert!(!rule.allows(Some(SUBJECT), Some("other")));
        assert!(!rule.allows(Some(SUBJECT), None));
        assert!(!rule.allows(None, Some("shop")));
        let any = AccessRule::parse("*").unwrap();
        assert!(any.allows(Some(SUBJECT), None));
        assert!(!any.allows(None, None), "unsigned code is never `*`");
        assert_eq!(rule.to_string(), format!("{SUBJECT}@shop"));
        assert!(AccessRule::parse("counter").is_err());
        assert!(AccessRule::parse(&format!("{SUBJECT}@")).is_err());
    }

    #[test]
    fn admin_subjects_are_pinned() {
        let subjects: Vec<String> = AdminOp::ALL
            .iter()
            .map(|op| op.subject("default", "secrets-nats-kv").unwrap())
            .collect();
        assert_eq!(
            subjects,
            [
                "trellis.secrets.v1.default.secrets-nats-kv.xkey",
                "trellis.secrets.v1.default.secrets-nats-kv.put",
                "trellis.secrets.v1.default.secrets-nats-kv.list",
                "trellis.secrets.v1.default.secrets-nats-kv.del",
                "trellis.secrets.v1.default.secrets-nats-kv.rotate-key",
            ]
        );
        assert!(AdminOp::Put.subject("default", "a.b").is_err());
    }

    #[test]
    fn the_audit_event_carries_no_value_field() {
        let event = SecretAccessed {
            secret: "db".into(),
            backend: "secrets-nats-kv".into(),
            entity_id: "counter".into(),
            subject: Some(SUBJECT.into()),
            host_id: "NHOST".into(),
            app: None,
            allowed: false,
            reason: Some("no rule".into()),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({
                "secret": "db", "backend": "secrets-nats-kv", "entity_id": "counter",
                "subject": SUBJECT, "host_id": "NHOST", "allowed": false, "reason": "no rule"
            })
        );
    }
}
