use trellis_lattice::LatticeError;

/// Why a provider process could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// stdin closed before the host wrote anything.
    #[error(
        "no host data on stdin: a provider is started by a Trellis host (`wash start provider`), \
         or by hand with its host data in TRELLIS_HOST_DATA"
    )]
    NoHostData,
    /// stdin could not be read.
    #[error("cannot read host data from stdin: {0}")]
    Stdin(#[source] std::io::Error),
    /// The host data did not decode, or names an invalid lattice or id.
    #[error("bad host data: {0}")]
    HostData(#[from] LatticeError),
    /// The host data's cluster issuers cannot be used to check calls.
    #[error(
        "bad host data: cluster_issuers: {0}; the host lists the lattice's cluster keys there, so \
         a provider started by hand needs them too"
    )]
    ClusterIssuers(String),
    /// NATS did not accept the connection.
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect {
        /// The URL from the host data.
        url: String,
        /// What async-nats said.
        message: String,
    },
    /// A subscription could not be made.
    #[error("cannot subscribe to {subject}: {message}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// What async-nats said.
        message: String,
    },
    /// The provider's own constructor failed.
    #[error("the provider could not be built: {0}")]
    Build(String),
}
