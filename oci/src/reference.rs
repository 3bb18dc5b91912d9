//! Telling registry references from file paths, and the `:latest` policy.

use std::fmt;
use std::str::FromStr;

use oci_client::Reference;

use crate::OciError;

/// The scheme that marks a reference as a registry one beyond doubt.
const SCHEME: &str = "oci://";

/// Whether `text` names an artifact in a registry rather than a file.
///
/// `oci://…` always does. Without the scheme, a reference whose first
/// segment is a registry address (it has a `.` or a `:`, like
/// `ghcr.io/acme/hello:0.1.0` or `localhost:5000/hello:1`, or is
/// `localhost`) does too, as wasmCloud and `docker` read them. Paths
/// (`/…`, `./…`, `file://…`) and bare file names never do.
pub fn is_oci_reference(text: &str) -> bool {
    if text.starts_with(SCHEME) {
        return true;
    }
    if text.starts_with('/') || text.starts_with('.') || text.contains("://") {
        return false;
    }
    match text.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}

/// A parsed registry reference, keeping the text it was given so messages
/// quote what the user wrote.
#[derive(Debug, Clone)]
pub struct ArtifactRef {
    original: String,
    reference: Reference,
}

impl ArtifactRef {
    /// Parses `text` (with or without `oci://`). A reference with neither a
    /// tag nor a digest means `:latest`; it and an explicit `:latest` are
    /// refused unless `allow_latest`.
    pub fn parse(text: &str, allow_latest: bool) -> Result<Self, OciError> {
        let bare = text.strip_prefix(SCHEME).unwrap_or(text);
        let reference = Reference::from_str(bare).map_err(|e| OciError::InvalidReference {
            reference: text.to_owned(),
            reason: e.to_string(),
        })?;
        let parsed = ArtifactRef {
            original: text.to_owned(),
            reference,
        };
        if !allow_latest && parsed.is_latest() {
            return Err(OciError::LatestRefused {
                reference: text.to_owned(),
            });
        }
        Ok(parsed)
    }

    /// Whether this names whatever `latest` points at.
    pub fn is_latest(&self) -> bool {
        self.reference.digest().is_none() && self.reference.tag().is_none_or(|t| t == "latest")
    }

    /// The text as given.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// `host[:port]` of the registry.
    pub fn registry(&self) -> &str {
        self.reference.resolve_registry()
    }

    /// The repository within the registry, e.g. `acme/counter`.
    pub fn repository(&self) -> &str {
        self.reference.repository()
    }

    /// The tag, if the reference names one.
    pub fn tag(&self) -> Option<&str> {
        self.reference.tag()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// This reference pinned to `digest`, as text a host accepts.
    pub fn pinned(&self, digest: &str) -> String {
        format!(
            "{SCHEME}{}/{}@{digest}",
            self.reference.registry(),
            self.reference.repository()
        )
    }

    pub(crate) fn oci(&self) -> &Reference {
        &self.reference
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn registry_references_are_told_from_paths() {
        for reference in [
            "oci://localhost:5000/hello:1",
            "oci://hello:1",
            "ghcr.io/acme/hello:0.1.0",
            "localhost:5000/hello:1",
            "localhost/hello:1",
            "127.0.0.1:5000/acme/hello@sha256:0000",
        ] {
            assert!(is_oci_reference(reference), "{reference}");
        }
        for path in [
            "/tmp/hello.wasm",
            "./build/hello.wasm",
            "../build/hello.wasm",
            "file:///tmp/hello.wasm",
            "hello.wasm",
            "build/hello.wasm",
        ] {
            assert!(!is_oci_reference(path), "{path}");
        }
    }

    #[test]
    fn latest_is_refused_unless_allowed() {
        for text in [
            "oci://localhost:5000/hello",
            "oci://localhost:5000/hello:latest",
        ] {
            let err = ArtifactRef::parse(text, false).unwrap_err();
            assert!(matches!(err, OciError::LatestRefused { .. }), "{err}");
            assert!(err.to_string().contains("--allow-latest"), "{err}");
            assert!(ArtifactRef::parse(text, true).unwrap().is_latest());
        }
        let versioned = ArtifactRef::parse("oci://localhost:5000/hello:0.1.0", false).unwrap();
        assert!(!versioned.is_latest());
        let digest = format!("oci://localhost:5000/hello@sha256:{}", "ab".repeat(32));
        assert!(!ArtifactRef::parse(&digest, false).unwrap().is_latest());
    }

    #[test]
    fn parts_and_pinning() {
        let r = ArtifactRef::parse("oci://127.0.0.1:5000/acme/counter:0.2.0", false).unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "acme/counter");
        assert_eq!(r.tag(), Some("0.2.0"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.as_str(), "oci://127.0.0.1:5000/acme/counter:0.2.0");
        let digest = format!("sha256:{}", "cd".repeat(32));
        assert_eq!(
            r.pinned(&digest),
            format!("oci://127.0.0.1:5000/acme/counter@{digest}")
        );
    }

    #[test]
    fn malformed_references_name_the_problem() {
        let err = ArtifactRef::parse("oci://localhost:5000/Upper/Case:1", false).unwrap_err();
        assert!(matches!(err, OciError::InvalidReference { .. }), "{err}");
        assert!(err.to_string().contains("Upper/Case"), "{err}");
    }
}
