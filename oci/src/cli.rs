//! The registry flags shared by `trellis-host`, `wash up` and `wash
//! push|pull|claims inspect`, so every binary spells them the same way.

use crate::{Credentials, RegistryOptions};

/// Registry flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryArgs {
    /// A registry (host:port) to reach over plain HTTP, such as a local
    /// one; repeat or comma-separate for more. All others must use HTTPS.
    #[arg(
        long = "allow-insecure-registry",
        env = "TRELLIS_ALLOW_INSECURE_REGISTRY",
        value_delimiter = ',',
        value_name = "HOST:PORT"
    )]
    pub insecure: Vec<String>,
    /// Accept `:latest` and untagged registry references (refused by
    /// default: they are not reproducible).
    #[arg(long, env = "TRELLIS_ALLOW_LATEST")]
    pub allow_latest: bool,
}

impl RegistryArgs {
    /// The options these flags give, with credentials from the environment
    /// (see [`Credentials::from_env`]).
    pub fn options(&self) -> Result<RegistryOptions, String> {
        Ok(RegistryOptions {
            insecure: self.insecure.clone(),
            allow_latest: self.allow_latest,
            credentials: Credentials::from_env()?,
        })
    }
}
