//! A secured NATS for tests: a certificate authority made for the test, and
//! a server started from `deploy/nats/lattice.conf` with TLS and one user
//! per role, exactly as an operator would run it.
//!
//! Certificates come from the `openssl` command line tool (Debian's
//! `openssl` package), so no TLS code of our own decides what a valid
//! certificate is.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::examples::workspace_root;
use crate::process::SupportError;
use crate::services::NatsServer;

/// A throwaway CA that issues certificates for `localhost` and `127.0.0.1`.
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    /// Makes a new CA (an EC P-256 key and a self-signed certificate).
    pub fn new(name: &str) -> Result<Self, SupportError> {
        let dir = tempfile::Builder::new()
            .prefix("trellis-ca-")
            .tempdir()
            .map_err(SupportError::io("creating a temp dir for a test CA"))?;
        // A self-signed certificate straight from the request.
        new_key(
            dir.path(),
            "ca-key.pem",
            "ca.pem",
            name,
            &["-x509", "-days", "2"],
        )?;
        Ok(TestCa { dir })
    }

    /// The CA certificate (PEM), what clients pass as `--nats-tls-ca`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a certificate for `localhost` and `127.0.0.1` named `name`,
    /// and returns its certificate and key files.
    pub fn issue(&self, name: &str) -> Result<(PathBuf, PathBuf), SupportError> {
        let dir = self.dir.path();
        let ext = dir.join(format!("{name}.ext"));
        std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
            .map_err(SupportError::io("writing a certificate extension file"))?;
        let (key, csr, cert) = (
            format!("{name}-key.pem"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        new_key(dir, &key, &csr, name, &[])?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                &ext.display().to_string(),
            ],
        )?;
        Ok((dir.join(cert), dir.join(key)))
    }
}

/// `openssl req` for a new EC P-256 key in `key` and, in `out`, a request
/// (or with `-x509` in `extra`, a self-signed certificate) for `CN=name`.
fn new_key(
    dir: &Path,
    key: &str,
    out: &str,
    name: &str,
    extra: &[&str],
) -> Result<(), SupportError> {
    let subject = format!("/CN={name}");
    let mut args = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        out,
        "-subj",
        &subject,
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args)
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), SupportError> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(SupportError::io(
            "running openssl (Debian: apt-get install openssl)",
        ))?;
    if output.status.success() {
        return Ok(());
    }
    Err(SupportError::Io {
        what: format!("openssl {}", args.join(" ")),
        source: std::io::Error::other(String::from_utf8_lossy(&output.stderr).into_owned()),
    })
}

/// The roles of `deploy/nats/lattice.conf`, each a NATS user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// trellis-host.
    Host,
    /// Provider processes.
    Provider,
    /// wadm.
    Wadm,
    /// wash, driven by a person.
    Operator,
    /// The secrets backend.
    Secrets,
}

impl Role {
    /// The NATS user name.
    pub fn user(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Provider => "provider",
            Role::Wadm => "wadm",
            Role::Operator => "operator",
            Role::Secrets => "secrets",
        }
    }

    fn password_variable(self) -> &'static str {
        match self {
            Role::Host => "TRELLIS_HOST_PASSWORD",
            Role::Provider => "TRELLIS_PROVIDER_PASSWORD",
            Role::Wadm => "TRELLIS_WADM_PASSWORD",
            Role::Operator => "TRELLIS_OPERATOR_PASSWORD",
            Role::Secrets => "TRELLIS_SECRETS_PASSWORD",
        }
    }

    /// The password a [`SecuredNats`] gives this role.
    pub fn password(self) -> String {
        format!("{}-secret-{}", self.user(), std::process::id())
    }
}

/// A nats-server started from `deploy/nats/lattice.conf`, with TLS from a
/// [`TestCa`], killed on drop.
pub struct SecuredNats {
    server: NatsServer,
    ca: TestCa,
}

impl SecuredNats {
    /// Makes a CA and a server certificate, and starts the server.
    pub fn start() -> Result<Self, SupportError> {
        SecuredNats::start_with(false)
    }

    /// Like [`SecuredNats::start`], with client certificates required
    /// (mutual TLS): the deploy configuration with `verify: true` added to
    /// its `tls` block, as its comment tells an operator to do.
    pub fn start_mutual() -> Result<Self, SupportError> {
        SecuredNats::start_with(true)
    }

    fn start_with(mutual: bool) -> Result<Self, SupportError> {
        let ca = TestCa::new("trellis-test-ca")?;
        let (cert, key) = ca.issue("nats-server")?;
        let mut config = workspace_root().join("deploy/nats/lattice.conf");
        if mutual {
            let text = std::fs::read_to_string(&config)
                .map_err(SupportError::io("reading deploy/nats/lattice.conf"))?;
            let tls = "  timeout: 5\n}";
            if !text.contains(tls) {
                return Err(SupportError::Io {
                    what: "adding `verify: true` to deploy/nats/lattice.conf".into(),
                    source: std::io::Error::other("its tls block no longer ends in `timeout: 5`"),
                });
            }
            let mutual_config = ca.dir.path().join("lattice-mtls.conf");
            std::fs::write(
                &mutual_config,
                text.replace(tls, "  timeout: 5\n  verify: true\n}"),
            )
            .map_err(SupportError::io("writing the mutual-TLS configuration"))?;
            // The copy includes the roles from beside it.
            std::fs::copy(
                workspace_root().join("deploy/nats/roles.conf"),
                ca.dir.path().join("roles.conf"),
            )
            .map_err(SupportError::io("copying deploy/nats/roles.conf"))?;
            config = mutual_config;
        }
        let (cert, key, ca_file) = (
            cert.display().to_string(),
            key.display().to_string(),
            ca.ca_file().display().to_string(),
        );
        let passwords: Vec<(&str, String)> = [
            Role::Host,
            Role::Provider,
            Role::Wadm,
            Role::Operator,
            Role::Secrets,
        ]
        .iter()
        .map(|role| (role.password_variable(), role.password()))
        .collect();
        let mut env: Vec<(&str, &str)> = vec![
            ("TRELLIS_NATS_TLS_CERT", &cert),
            ("TRELLIS_NATS_TLS_KEY", &key),
            ("TRELLIS_NATS_TLS_CA", &ca_file),
        ];
        env.extend(passwords.iter().map(|(k, v)| (*k, v.as_str())));
        let server = NatsServer::start_with_config(&config, &env)?;
        Ok(SecuredNats { server, ca })
    }

    /// `tls://localhost:{port}`.
    pub fn url(&self) -> String {
        format!("tls://localhost:{}", self.server.port())
    }

    /// The CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.ca.ca_file()
    }

    /// The CA, to issue client certificates from.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The server, for its port and log.
    pub fn server(&self) -> &NatsServer {
        &self.server
    }

    /// The flags that connect a Trellis process as `role`: URL, CA, user
    /// and password.
    pub fn args(&self, role: Role) -> Vec<String> {
        vec![
            "--nats-url".into(),
            self.url(),
            "--nats-tls-ca".into(),
            self.ca_file().display().to_string(),
            "--nats-user".into(),
            role.user().into(),
            "--nats-password".into(),
            role.password(),
        ]
    }
}
