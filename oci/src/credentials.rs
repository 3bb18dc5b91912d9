//! Registry credentials: from the environment, or from a Docker-style
//! `config.json`, since that is where `docker login` (and most CI
//! systems) already put them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

/// Username and password per registry, plus an optional pair for any
/// registry.
#[derive(Clone, Default)]
pub struct Credentials {
    any: Option<(String, String)>,
    by_registry: BTreeMap<String, (String, String)>,
}

/// Names registries and users only: configs are logged, passwords must not be.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("any", &self.any.as_ref().map(|(user, _)| user))
            .field(
                "by_registry",
                &self
                    .by_registry
                    .iter()
                    .map(|(registry, (user, _))| (registry, user))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// `TRELLIS_REGISTRY_USER` / `TRELLIS_REGISTRY_PASSWORD`: credentials used
/// for every registry, or only for `TRELLIS_REGISTRY` when that is set.
pub const ENV_USER: &str = "TRELLIS_REGISTRY_USER";
/// See [`ENV_USER`].
pub const ENV_PASSWORD: &str = "TRELLIS_REGISTRY_PASSWORD";
/// See [`ENV_USER`].
pub const ENV_REGISTRY: &str = "TRELLIS_REGISTRY";
/// A Docker-style config file to read instead of `~/.docker/config.json`.
pub const ENV_CONFIG: &str = "TRELLIS_REGISTRY_CONFIG";

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl Credentials {
    /// No credentials: every registry is accessed anonymously.
    pub fn anonymous() -> Self {
        Credentials::default()
    }

    /// Credentials for `registry` (`host[:port]`).
    pub fn with(mut self, registry: &str, username: &str, password: &str) -> Self {
        self.by_registry.insert(
            registry.to_owned(),
            (username.to_owned(), password.to_owned()),
        );
        self
    }

    /// What this process's environment provides: the `TRELLIS_REGISTRY_*`
    /// variables first, then the Docker config file (`TRELLIS_REGISTRY_CONFIG`,
    /// else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
    /// A config file that does not exist is no error; one that cannot be
    /// read is reported, as it means credentials the user expects are
    /// missing.
    pub fn from_env() -> Result<Self, String> {
        let mut credentials = match config_path() {
            Some(path) if path.exists() => Credentials::from_docker_config(&path)?,
            _ => Credentials::default(),
        };
        if let (Ok(user), Ok(password)) = (std::env::var(ENV_USER), std::env::var(ENV_PASSWORD)) {
            match std::env::var(ENV_REGISTRY) {
                Ok(registry) if !registry.is_empty() => {
                    credentials = credentials.with(&registry, &user, &password);
                }
                _ => credentials.any = Some((user, password)),
            }
        }
        Ok(credentials)
    }

    /// Reads the `auths` section of a Docker config file: either `auth`
    /// (base64 of `user:password`) or `username` and `password`.
    /// Credential helpers (`credsStore`) are not consulted.
    pub fn from_docker_config(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading registry credentials {}: {e}", path.display()))?;
        Credentials::parse_docker_config(&text)
            .map_err(|e| format!("registry credentials {}: {e}", path.display()))
    }

    fn parse_docker_config(text: &str) -> Result<Self, String> {
        let config: DockerConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut credentials = Credentials::default();
        for (server, auth) in config.auths {
            let registry = registry_key(&server);
            let pair = match (auth.auth, auth.username, auth.password) {
                (_, Some(user), Some(password)) => (user, password),
                (Some(encoded), _, _) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(encoded.trim())
                        .map_err(|e| format!("`auths.{server}.auth` is not base64: {e}"))?;
                    let text = String::from_utf8(decoded)
                        .map_err(|_| format!("`auths.{server}.auth` is not UTF-8"))?;
                    let (user, password) = text.split_once(':').ok_or_else(|| {
                        format!("`auths.{server}.auth` is not base64 of `user:password`")
                    })?;
                    (user.to_owned(), password.to_owned())
                }
                _ => continue,
            };
            credentials.by_registry.insert(registry, pair);
        }
        Ok(credentials)
    }

    /// The authentication to use for `registry`.
    pub fn auth_for(&self, registry: &str) -> RegistryAuth {
        match self.by_registry.get(registry).or(self.any.as_ref()) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

/// Docker config keys may be URLs (`https://index.docker.io/v1/`); the
/// registry is their host part.
fn registry_key(server: &str) -> String {
    let without_scheme = server.split_once("://").map_or(server, |(_, rest)| rest);
    without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_owned()
}

fn config_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(ENV_CONFIG) {
        return Some(PathBuf::from(path));
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn basic(auth: RegistryAuth) -> Option<(String, String)> {
        match auth {
            RegistryAuth::Basic(user, password) => Some((user, password)),
            _ => None,
        }
    }

    #[test]
    fn docker_config_auth_and_username_forms_are_read() {
        let text = r#"{
            "auths": {
                "registry.example:5000": {"auth": "YWxpY2U6czNjcmV0"},
                "https://ghcr.io/v2/": {"username": "bob", "password": "hunter2"},
                "helper-only.example": {}
            },
            "credsStore": "desktop"
        }"#;
        let credentials = Credentials::parse_docker_config(text).unwrap();
        assert_eq!(
            basic(credentials.auth_for("registry.example:5000")),
            Some(("alice".into(), "s3cret".into()))
        );
        assert_eq!(
            basic(credentials.auth_for("ghcr.io")),
            Some(("bob".into(), "hunter2".into()))
        );
        assert!(matches!(
            credentials.auth_for("helper-only.example"),
            RegistryAuth::Anonymous
        ));
        assert!(matches!(
            credentials.auth_for("elsewhere.example"),
            RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn a_bad_auth_entry_names_the_registry() {
        let err = Credentials::parse_docker_config(r#"{"auths": {"r.example": {"auth": "!!"}}}"#)
            .unwrap_err();
        assert!(err.contains("auths.r.example.auth"), "{err}");
        let err = Credentials::parse_docker_config(
            r#"{"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}}"#,
        )
        .unwrap_err();
        assert!(err.contains("user:password"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let credentials = Credentials::anonymous().with("a.example", "alice", "s3cret");
        let shown = format!("{credentials:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn a_registry_specific_pair_wins_over_the_any_registry_pair() {
        let mut credentials = Credentials::anonymous().with("a.example", "a", "pa");
        credentials.any = Some(("any".into(), "pany".into()));
        assert_eq!(
            basic(credentials.auth_for("a.example")),
            Some(("a".into(), "pa".into()))
        );
        assert_eq!(
            basic(credentials.auth_for("b.example")),
            Some(("any".into(), "pany".into()))
        );
    }
}
