//! Publishing lattice events. Events are facts for observers (wadm,
//! `wash`, dashboards); losing one must never fail the operation that
//! caused it, so publish errors are logged, not returned.

use std::time::Duration;

use trellis_lattice::event::LatticeEvent;
use trellis_lattice::subject::Subjects;

/// How long publishing one event waits for it to reach the server. While
/// NATS is unreachable a flush would wait for the reconnect, and with it
/// whatever operation is publishing (a graceful stop, say).
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Publishes CloudEvents on `wasmbus.evt.{lattice}.{kind}` as this host.
#[derive(Clone)]
pub struct EventPublisher {
    nats: async_nats::Client,
    subjects: Subjects,
    host_id: String,
}

impl EventPublisher {
    /// A publisher whose events name `host_id` as their source.
    pub fn new(nats: async_nats::Client, subjects: Subjects, host_id: String) -> Self {
        EventPublisher {
            nats,
            subjects,
            host_id,
        }
    }

    /// Publishes `event` and flushes, so it is on the wire before the
    /// operation that caused it replies; waits at most [`FLUSH_WAIT`].
    pub async fn publish(&self, event: LatticeEvent) {
        let kind = event.kind();
        let bytes = match event
            .to_cloud_event(&self.host_id)
            .and_then(|e| e.to_json())
        {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(kind = kind.as_str(), error = %err, "cannot encode event");
                return;
            }
        };
        let subject = self.subjects.event(kind);
        // An event too large for one message (a heartbeat of a host running
        // very many components) is offered to its subscribers in chunks.
        let limits = trellis_lattice::chunk::ChunkLimits::default();
        let sent = trellis_lattice::chunk::broadcast(
            &self.nats,
            subject,
            async_nats::HeaderMap::new(),
            bytes.into(),
            &limits,
        )
        .await;
        if let Err(err) = sent {
            tracing::warn!(kind = kind.as_str(), error = %err, "cannot publish event");
            return;
        }
        if self.nats.connection_state() != async_nats::connection::State::Connected {
            tracing::warn!(
                kind = kind.as_str(),
                "the lattice is unreachable: the event waits in the NATS client for a reconnect"
            );
            return;
        }
        match tokio::time::timeout(FLUSH_WAIT, self.nats.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(kind = kind.as_str(), error = %err, "cannot flush event")
            }
            Err(_) => tracing::warn!(
                kind = kind.as_str(),
                "the lattice is unreachable: the event waits in the NATS client for a reconnect"
            ),
        }
    }
}
