//! The error type of this crate (calls have their own,
//! [`crate::invocation::InvocationError`]). Every variant says what was wrong and,
//! where there is one, what to do about it, because these messages reach
//! operators through `wash` and through host events.

use thiserror::Error;

/// Why claims could not be produced, read or trusted.
#[derive(Debug, Error)]
pub enum ClaimsError {
    /// The bytes are not a WebAssembly module or component.
    #[error("not a WebAssembly module or component: {0}")]
    InvalidWasm(String),

    /// The artifact carries no claims at all.
    #[error(
        "the artifact is not signed (no `wasmcloud_jwt` section); sign it with `wash claims sign`, or run the host with --allow-unsigned for local development"
    )]
    NoClaims,

    /// The token is not a well-formed JWT of the expected shape.
    #[error("malformed claims token: {0}")]
    MalformedToken(String),

    /// The token names an algorithm other than Ed25519.
    #[error("unsupported token algorithm `{0}`: claims must be signed with Ed25519")]
    UnsupportedAlgorithm(String),

    /// The signature does not match the issuer's key.
    #[error(
        "the claims signature does not verify against issuer {issuer}: the token was altered or signed by another key"
    )]
    BadSignature {
        /// The issuer named in the token.
        issuer: String,
    },

    /// The code was changed after it was signed.
    #[error(
        "the module hash does not match its claims (expected {expected}, found {found}): the code was changed after signing; re-sign it or use the original artifact"
    )]
    HashMismatch {
        /// The hash recorded in the claims.
        expected: String,
        /// The hash of the code as it is now.
        found: String,
    },

    /// The claims expired.
    #[error("the claims expired at {exp} (unix seconds, now {now}); re-sign with a later expiry")]
    Expired {
        /// Expiry, seconds since the Unix epoch.
        exp: u64,
        /// The time of the check.
        now: u64,
    },

    /// The claims are not valid yet.
    #[error("the claims are not valid before {nbf} (unix seconds, now {now})")]
    NotYetValid {
        /// Not-before, seconds since the Unix epoch.
        nbf: u64,
        /// The time of the check.
        now: u64,
    },

    /// The issuer is not on the allow-list.
    #[error("issuer {issuer} is not allowed here; add it to --allowed-issuers to trust it")]
    IssuerNotAllowed {
        /// The issuer named in the token.
        issuer: String,
    },

    /// A key has the wrong role for where it is used.
    #[error("{role} must be a key of kind {expected} (prefix {prefix}), got `{found}`")]
    WrongKeyKind {
        /// Where the key was used (issuer, subject, …).
        role: &'static str,
        /// The kind of key that belongs there.
        expected: &'static str,
        /// The nkeys prefix that kind has.
        prefix: char,
        /// What was given instead (a public key, never a seed).
        found: String,
    },

    /// A key or seed could not be parsed.
    #[error("invalid key: {0}")]
    InvalidKey(String),

    /// Claims are missing the metadata section a component or provider needs.
    #[error("the token has no `wascap` metadata section")]
    MissingMetadata,

    /// A provider binary for the named target is not covered by the claims.
    #[error(
        "no signed hash for target `{target}` in the provider claims (signed targets: {signed})"
    )]
    UnknownTarget {
        /// The target triple asked for.
        target: String,
        /// The targets the claims cover, comma separated.
        signed: String,
    },
}
