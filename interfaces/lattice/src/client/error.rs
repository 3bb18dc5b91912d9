//! Why a control-interface request produced no usable answer.
//!
//! The variants follow what the caller can do about it: fix the input
//! ([`ClientError::Invalid`]), start or find a host
//! ([`ClientError::NoResponders`]), wait longer or look at the host
//! ([`ClientError::Timeout`]), read what the host said
//! ([`ClientError::Refused`], [`ClientError::ScaleFailed`],
//! [`ClientError::ProviderStartFailed`]), or suspect a
//! version mismatch or the network ([`ClientError::Decode`],
//! [`ClientError::Nats`]). Every message ends with what to try next.

use std::time::Duration;

use thiserror::Error;

use crate::error::LatticeError;

/// Why a [`super::CtlClient`] call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// An id, name or link was refused before anything was sent.
    #[error("invalid request: {0}")]
    Invalid(#[from] LatticeError),

    /// Nobody subscribes to the subject: no host (or no component) is there.
    #[error("nobody is listening on `{subject}`; {hint}")]
    NoResponders {
        /// The subject the request went to.
        subject: String,
        /// What to try next.
        hint: String,
    },

    /// Something subscribes, but no answer came in time.
    #[error("timed out after {} ms waiting for {waiting_for}; {hint}", .timeout.as_millis())]
    Timeout {
        /// What was awaited, e.g. "a reply on `wasmbus.ctl.v1.default.link.get`".
        waiting_for: String,
        /// How long the client waited.
        timeout: Duration,
        /// What to try next.
        hint: String,
    },

    /// The host answered `success: false`.
    #[error("the lattice refused to {action}: {message}")]
    Refused {
        /// What was asked, e.g. "scale component `counter` on host NABC".
        action: String,
        /// The host's `message`, which says why.
        message: String,
    },

    /// The reply was not the JSON its operation promises.
    #[error(
        "could not read the reply to {what}: {problem}; the host may run an incompatible \
         version of the control interface"
    )]
    Decode {
        /// Which reply, e.g. "host.ping".
        what: String,
        /// What was wrong with it.
        problem: String,
    },

    /// A host acknowledged a scale command and then reported that it failed.
    #[error(
        "host {host_id} could not scale component `{component_id}`: {error}; fix the cause and \
         run the command again"
    )]
    ScaleFailed {
        /// The host that tried.
        host_id: String,
        /// The component it tried to scale.
        component_id: String,
        /// The host's reason.
        error: String,
    },

    /// A host accepted a provider start and then reported that it failed.
    #[error(
        "host {host_id} could not start provider `{provider_id}`: {error}; fix the cause and \
         run the command again"
    )]
    ProviderStartFailed {
        /// The host that tried.
        host_id: String,
        /// The provider it tried to start.
        provider_id: String,
        /// The host's reason.
        error: String,
    },

    /// The NATS connection failed underneath the request.
    #[error("NATS failed while {action}: {source}; check the connection to the NATS server")]
    Nats {
        /// What the client was doing, e.g. "publishing to `…host.ping`".
        action: String,
        /// The async-nats error.
        #[source]
        source: async_nats::Error,
    },
}

impl ClientError {
    /// Shorthand for wrapping an async-nats error with what was being done.
    pub(crate) fn nats(action: impl Into<String>) -> impl FnOnce(async_nats::Error) -> Self {
        let action = action.into();
        move |source| Self::Nats { action, source }
    }

    /// Shorthand for a reply that does not decode.
    pub(crate) fn decode(what: impl Into<String>, problem: impl ToString) -> Self {
        Self::Decode {
            what: what.into(),
            problem: problem.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_message_says_how_long_and_what_to_do() {
        let err = ClientError::Timeout {
            waiting_for: "a reply on `x`".into(),
            timeout: Duration::from_millis(1500),
            hint: "raise the timeout".into(),
        };
        assert_eq!(
            err.to_string(),
            "timed out after 1500 ms waiting for a reply on `x`; raise the timeout"
        );
    }

    #[test]
    fn refusal_carries_the_host_message() {
        let err = ClientError::Refused {
            action: "delete config `x`".into(),
            message: "no such config".into(),
        };
        assert_eq!(
            err.to_string(),
            "the lattice refused to delete config `x`: no such config"
        );
    }
}
