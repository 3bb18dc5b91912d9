//! The host library's error type. Messages travel back to operators in
//! control-interface replies and `component_scale_failed` events, so each
//! one says what failed and what to do.

use thiserror::Error;

/// Why a host operation failed.
#[derive(Debug, Error)]
pub enum HostError {
    /// The wasmtime engine could not be set up.
    #[error("wasmtime engine: {0}")]
    Engine(String),
    /// NATS could not be reached or refused an operation.
    #[error("NATS: {0}")]
    Nats(String),
    /// The lattice state store (JetStream KV) failed.
    #[error("lattice state (JetStream KV): {0}")]
    State(String),
    /// An image reference could not be read.
    #[error("cannot load `{reference}`: {reason}")]
    Fetch {
        /// The reference as given.
        reference: String,
        /// What went wrong.
        reason: String,
    },
    /// A registry reference could not be pulled; the message names the
    /// reference and which check failed.
    #[error(transparent)]
    Registry(#[from] trellis_oci::OciError),
    /// The claims policy refused the component.
    #[error("refused to run `{reference}`: {source}")]
    Refused {
        /// The reference as given.
        reference: String,
        /// The claims check that failed.
        source: trellis_claims::ClaimsError,
    },
    /// A provider has no claims and the host does not run unsigned code.
    #[error(
        "refused to run provider `{reference}`: it is not signed (no claims at {claims_path}); put \
         its signed claims JWT there, or run the host with --allow-unsigned for local development"
    )]
    ProviderUnsigned {
        /// The reference as given.
        reference: String,
        /// Where its claims were looked for.
        claims_path: String,
    },
    /// A provider process could not be started or did not come up.
    #[error("provider `{provider_id}` {reason}")]
    Provider {
        /// The provider's lattice id.
        provider_id: String,
        /// What went wrong, as a predicate: "exited with status 1 …".
        reason: String,
    },
    /// The bytes are not a component this host can run.
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    /// A request was malformed or impossible.
    #[error("{0}")]
    BadRequest(String),
    /// A wire-format error from the contracts crate.
    #[error(transparent)]
    Lattice(#[from] trellis_lattice::LatticeError),
}

impl HostError {
    pub(crate) fn engine(err: impl std::fmt::Display) -> Self {
        HostError::Engine(err.to_string())
    }

    pub(crate) fn nats(err: impl std::fmt::Display) -> Self {
        HostError::Nats(err.to_string())
    }

    pub(crate) fn state(err: impl std::fmt::Display) -> Self {
        HostError::State(err.to_string())
    }
}
