//! OCI distribution for Trellis artifacts.
//!
//! Teams ship signed components and provider archives through OCI
//! registries, and hosts run them by reference
//! (`oci://registry.example:5000/acme/counter:0.1.0`). This crate holds
//! both sides of that contract:
//!
//! - [`artifact`]: the media types, annotations and config document a
//!   Trellis artifact carries (what `wash push` writes and hosts read);
//! - [`Registry`]: push and pull over the OCI distribution API, with
//!   credentials, plain-HTTP opt-in per registry and the `:latest` policy;
//! - [`ArtifactCache`]: what a host uses. It pulls a reference once, keeps
//!   the blobs by digest under the host's data directory, and remembers who
//!   signed each tag so a tag that later points at differently signed
//!   content is refused.
//!
//! Verifying claims against a host's policy stays with the host; this crate
//! only checks that content matches its digest and that claims are present
//! and well signed.

pub mod artifact;
mod cache;
#[cfg(feature = "cli")]
mod cli;
mod credentials;
mod error;
mod reference;
mod registry;

pub use artifact::Signer;
pub use artifact::{Artifact, ArtifactKind};
pub use cache::{ArtifactCache, Fetched, Pin};
#[cfg(feature = "cli")]
pub use cli::RegistryArgs;
pub use credentials::Credentials;
pub use error::{OciError, ReplacedTag};
pub use reference::{ArtifactRef, is_oci_reference};
pub use registry::{Inspected, Registry, RegistryOptions};
