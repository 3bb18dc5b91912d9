//! What can go wrong between a host or `wash` and a registry. Each message
//! names the reference, says which check failed and what to do, because it
//! travels back to the operator in a control reply or a failed-start event.

use thiserror::Error;

/// Why pushing, pulling or caching an artifact failed.
#[derive(Debug, Error)]
pub enum OciError {
    /// The text is not an OCI reference.
    #[error("`{reference}` is not a valid OCI reference: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `:latest` (or untagged) reference while `--allow-latest` is off.
    #[error(
        "refusing `{reference}`: `latest` is not reproducible (the tag can point at different \
         content tomorrow); name a version tag or a digest (`@sha256:…`), or pass \
         --allow-latest"
    )]
    LatestRefused {
        /// The reference as given.
        reference: String,
    },
    /// The registry could not be reached at all.
    #[error(
        "cannot reach registry `{registry}` for `{reference}`: {reason}; check the address and \
         that the registry is running (a plain-HTTP registry needs --allow-insecure-registry \
         {registry})"
    )]
    Unreachable {
        /// The reference as given.
        reference: String,
        /// `host[:port]`.
        registry: String,
        /// The transport error.
        reason: String,
    },
    /// The registry refused our credentials, or asked for some.
    #[error(
        "registry `{registry}` refused access to `{reference}`; set TRELLIS_REGISTRY_USER and \
         TRELLIS_REGISTRY_PASSWORD, or log in so that ~/.docker/config.json holds credentials \
         for it"
    )]
    Unauthorized {
        /// The reference as given.
        reference: String,
        /// `host[:port]`.
        registry: String,
    },
    /// The registry has no such repository, tag or digest.
    #[error("`{reference}` was not found in the registry: {reason}")]
    NotFound {
        /// The reference as given.
        reference: String,
        /// The registry's words.
        reason: String,
    },
    /// Content did not hash to the digest that names it.
    #[error(
        "digest mismatch for `{reference}`: expected {expected}, the registry sent content \
         hashing to {actual}; the registry's copy is corrupt or was tampered with, so nothing \
         from it was used"
    )]
    DigestMismatch {
        /// The reference as given.
        reference: String,
        /// The digest the manifest or reference names.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A tag this host pulled before now points at content with a
    /// different signer.
    #[error(transparent)]
    ReplacedTag(Box<ReplacedTag>),
    /// The artifact is of the other kind (a provider where a component was
    /// asked for, say), or not a Trellis artifact at all.
    #[error("`{reference}` is {found}, not {expected}")]
    WrongKind {
        /// The reference as given.
        reference: String,
        /// What the caller needed.
        expected: String,
        /// What the registry holds.
        found: String,
    },
    /// A provider archive without an executable for this machine.
    #[error(
        "provider archive `{reference}` has no executable for target `{target}` (it has: \
         {available}); push one built for {target}"
    )]
    NoTarget {
        /// The reference as given.
        reference: String,
        /// The target asked for.
        target: String,
        /// The targets the archive holds.
        available: String,
    },
    /// The artifact's manifest, config or claims are malformed.
    #[error("`{reference}` is not a valid Trellis artifact: {reason}")]
    InvalidArtifact {
        /// The reference (or file) as given.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// Any other registry failure.
    #[error("registry error for `{reference}`: {reason}")]
    Registry {
        /// The reference as given.
        reference: String,
        /// The error.
        reason: String,
    },
    /// The local cache could not be read or written.
    #[error("artifact cache at {path}: {reason}")]
    Cache {
        /// The file or folder involved.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

/// The details of [`OciError::ReplacedTag`], boxed to keep the error small.
#[derive(Debug, Error)]
#[error(
    "tag `{reference}` was replaced by a differently signed artifact: it was {old_digest} \
     signed by {old_signer}, it is now {new_digest} signed by {new_signer}; nothing was \
     started. If the new publisher is intended, deploy it by digest \
     (`…@{new_digest}`) or remove {pin_path} on this host"
)]
pub struct ReplacedTag {
    /// The reference as given.
    pub reference: String,
    /// What the tag pointed at when this host first pulled it.
    pub old_digest: String,
    /// Who signed that.
    pub old_signer: String,
    /// What the tag points at now.
    pub new_digest: String,
    /// Who signed the new content.
    pub new_signer: String,
    /// The file that records the first signer.
    pub pin_path: String,
}
