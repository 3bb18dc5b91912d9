//! What can be wrong with a manifest, and where.
//!
//! Every problem carries the path of the field it is about, written the way
//! a reader finds it in the file (`spec.components[1].traits[0].properties.instances`),
//! so `wash app validate` can print a list a person can act on line by line.

use std::fmt;

use thiserror::Error;

/// One thing wrong (or, for warnings, doubtful) in a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: a dotted path with list indices, e.g. `spec.components[1].name`;
    /// empty for the document as a whole.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a manifest was refused.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The text is not YAML or JSON at all; the message has line and column.
    #[error("the manifest is not valid {format}: {message}")]
    Syntax {
        /// `YAML` or `JSON`.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// The document parsed but does not describe a valid application.
    #[error("the manifest is invalid:\n{}", list(problems))]
    Invalid {
        /// Every problem found: field problems in document order, then
        /// problems with references between components.
        problems: Vec<Problem>,
    },
}

impl ManifestError {
    /// The problems of an invalid manifest (none for a syntax error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ManifestError::Syntax { .. } => &[],
            ManifestError::Invalid { problems } => problems,
        }
    }
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}
