//! What the host asks of a running provider process, over NATS request and
//! reply on `wasmbus.rpc.{lattice}.{provider}.*` (see
//! `trellis_lattice::provider` for the bodies). These are the only
//! messages the host sends a provider after the host data on its stdin.

use std::time::Duration;

use async_nats::{Request, RequestErrorKind};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use trellis_lattice::Link;
use trellis_lattice::chunk::{self, ChunkLimits};
use trellis_lattice::ctl::{self, CtlResponse};
use trellis_lattice::provider::{HealthCheckResponse, ProviderLink, ShutdownRequest};
use trellis_lattice::subject::{ProviderOperation, Subjects};

use crate::HostError;

/// How long the host waits for a provider to answer a link or health
/// request. Providers answer these from memory (applying a link may open a
/// connection or a port), so a slow answer means a stuck provider.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request to a provider produced no usable answer. Each message is a
/// predicate about the provider ("is not listening …"), to follow its name.
#[derive(Debug, Error)]
pub(crate) enum ProviderRequestError {
    /// Nothing subscribes to the subject: the process is not listening (yet).
    #[error("is not listening on `{0}`")]
    NotListening(String),
    /// The provider listens but did not answer in time.
    #[error("did not answer on `{subject}` within {}", seconds(*.timeout))]
    Timeout {
        /// The subject asked on.
        subject: String,
        /// How long the host waited.
        timeout: Duration,
    },
    /// The answer is not what the protocol promises.
    #[error("answered on `{subject}` with something unreadable: {problem}")]
    Garbled {
        /// The subject asked on.
        subject: String,
        /// What was wrong with the answer.
        problem: String,
    },
    /// The provider answered and refused; the message is its own.
    #[error("refused: {0}")]
    Refused(String),
    /// NATS itself failed.
    #[error("could not be asked on `{subject}`: {problem}")]
    Nats {
        /// The subject asked on.
        subject: String,
        /// The NATS error.
        problem: String,
    },
}

/// `2 s`, `0.25 s`: durations as the host's messages print them.
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

/// The host's side of one provider's management subjects.
#[derive(Clone, Debug)]
pub(crate) struct ProviderControl {
    nats: async_nats::Client,
    subjects: Subjects,
    provider_id: String,
}

impl ProviderControl {
    /// Refuses a provider id that cannot be a subject token.
    pub(crate) fn new(
        nats: async_nats::Client,
        subjects: Subjects,
        provider_id: &str,
    ) -> Result<Self, HostError> {
        subjects.provider(provider_id, ProviderOperation::Health)?;
        Ok(ProviderControl {
            nats,
            subjects,
            provider_id: provider_id.to_owned(),
        })
    }

    /// Asks the provider how it is.
    pub(crate) async fn health(
        &self,
        timeout: Duration,
    ) -> Result<HealthCheckResponse, ProviderRequestError> {
        let (subject, reply) = self
            .request(ProviderOperation::Health, Bytes::new(), timeout)
            .await?;
        decode(&subject, &reply)
    }

    /// Hands the provider a link (with its config resolved) to apply.
    pub(crate) async fn put_link(&self, link: &ProviderLink) -> Result<(), ProviderRequestError> {
        self.ack(ProviderOperation::LinkPut, link).await
    }

    /// Tells the provider a link is gone.
    pub(crate) async fn delete_link(&self, link: &Link) -> Result<(), ProviderRequestError> {
        self.ack(ProviderOperation::LinkDel, link).await
    }

    /// Asks the process to stop; it answers before it exits.
    /// Whether the host's NATS connection is up, so a request can reach
    /// the provider at all.
    pub(crate) fn connected(&self) -> bool {
        self.nats.connection_state() == async_nats::connection::State::Connected
    }

    pub(crate) async fn shutdown(
        &self,
        host_id: &str,
        timeout: Duration,
    ) -> Result<(), ProviderRequestError> {
        let body = encode(&ShutdownRequest {
            host_id: host_id.to_owned(),
        });
        self.request(ProviderOperation::Shutdown, body, timeout)
            .await
            .map(drop)
    }

    async fn ack<T: Serialize>(
        &self,
        op: ProviderOperation,
        body: &T,
    ) -> Result<(), ProviderRequestError> {
        let (subject, reply) = self.request(op, encode(body), REQUEST_TIMEOUT).await?;
        let envelope: CtlResponse<serde_json::Value> = decode(&subject, &reply)?;
        if envelope.success {
            Ok(())
        } else {
            Err(ProviderRequestError::Refused(envelope.message))
        }
    }

    async fn request(
        &self,
        op: ProviderOperation,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(String, Bytes), ProviderRequestError> {
        let subject = self.subjects.provider(&self.provider_id, op).map_err(|e| {
            ProviderRequestError::Nats {
                subject: op.as_str().to_owned(),
                problem: e.to_string(),
            }
        })?;
        // A link put whose configs make it larger than one message is
        // offered in chunks; the provider pulls it.
        let nats_error = |e: &dyn std::fmt::Display| ProviderRequestError::Nats {
            subject: subject.clone(),
            problem: e.to_string(),
        };
        let mut request = Request::new().timeout(Some(timeout));
        if chunk::fits(&self.nats, body.len()) {
            request = request.payload(body);
        } else {
            let offer = chunk::offer(&self.nats, body, &ChunkLimits::default())
                .await
                .map_err(|e| nats_error(&e))?;
            let mut headers = async_nats::HeaderMap::new();
            for (name, value) in offer.to_pairs() {
                headers.insert(name, value.as_str());
            }
            request = request.headers(headers).payload(Bytes::new());
        }
        match self.nats.send_request(subject.clone(), request).await {
            Ok(reply) => Ok((subject, reply.payload)),
            Err(err) => Err(match err.kind() {
                RequestErrorKind::NoResponders => ProviderRequestError::NotListening(subject),
                RequestErrorKind::TimedOut => ProviderRequestError::Timeout { subject, timeout },
                RequestErrorKind::Other => ProviderRequestError::Nats {
                    subject,
                    problem: err.to_string(),
                },
            }),
        }
    }
}

/// The protocol's bodies are plain serde structs; encoding them cannot fail.
fn encode<T: Serialize>(body: &T) -> Bytes {
    ctl::to_json("provider request", body)
        .map(Bytes::from)
        .unwrap_or_default()
}

fn decode<T: DeserializeOwned>(subject: &str, reply: &[u8]) -> Result<T, ProviderRequestError> {
    serde_json::from_slice(reply).map_err(|e| ProviderRequestError::Garbled {
        subject: subject.to_owned(),
        problem: e.to_string(),
    })
}
