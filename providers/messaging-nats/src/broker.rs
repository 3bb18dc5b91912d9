//! A NATS connection as a component's broker: the lattice's own, or one
//! a link opened to the servers in its `cluster_uris`.

use std::time::Duration;

use async_nats::{RequestErrorKind, ServerAddr};
use trellis_lattice::messaging::BrokerMessage;

use crate::subject;

/// How long connecting to a link's `cluster_uris` may take before the link
/// fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes and requests for the components of one link. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Broker {
    client: async_nats::Client,
    /// Which servers, as people read it in messages.
    name: String,
    /// Whether the connection is the lattice's rather than the link's own.
    shared: bool,
}

impl Broker {
    /// The lattice's own connection.
    pub fn lattice(client: async_nats::Client) -> Self {
        Broker {
            client,
            name: "the lattice's NATS".to_owned(),
            shared: true,
        }
    }

    /// A broker on `servers` (from `cluster_uris`), or on the lattice's
    /// connection when there are none.
    pub async fn open(
        lattice: &async_nats::Client,
        servers: Option<Vec<ServerAddr>>,
        provider_id: &str,
    ) -> Result<Self, String> {
        let Some(servers) = servers else {
            return Ok(Broker::lattice(lattice.clone()));
        };
        // Scheme, host and port only: the URL may carry a password.
        let name = servers
            .iter()
            .map(|s| format!("{}://{}:{}", s.scheme(), s.host(), s.port()))
            .collect::<Vec<_>>()
            .join(",");
        let client = async_nats::ConnectOptions::new()
            .name(format!("trellis-messaging-nats {provider_id}"))
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(servers)
            .await
            .map_err(|e| {
                format!(
                    "cannot connect to NATS at {name} (config `cluster_uris`): {e}; check that \
                     the servers run and the URLs are right"
                )
            })?;
        Ok(Broker {
            client,
            name,
            shared: false,
        })
    }

    /// The connection, for subscribing.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Which servers this broker talks to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the link opened its own connection (`cluster_uris`).
    pub fn has_own_connection(&self) -> bool {
        !self.shared
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        is_connected(&self.client)
    }

    /// `consumer.publish`: sends `msg` without waiting for a reply.
    pub async fn publish(&self, msg: BrokerMessage) -> Result<(), String> {
        subject::check_publish(&msg.subject).map_err(|e| e.to_string())?;
        let body = msg.body.into();
        let sent = match msg.reply_to {
            Some(reply_to) => {
                subject::check_publish(&reply_to).map_err(|e| format!("reply-to: {e}"))?;
                self.client
                    .publish_with_reply(msg.subject.clone(), reply_to, body)
                    .await
            }
            None => self.client.publish(msg.subject.clone(), body).await,
        };
        sent.map_err(|e| format!("cannot publish on `{}` to {}: {e}", msg.subject, self.name))
    }

    /// `consumer.request`: publishes `body` on `subject` and returns the
    /// first reply within `timeout`.
    pub async fn request(
        &self,
        subject: String,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<BrokerMessage, String> {
        subject::check_publish(&subject).map_err(|e| e.to_string())?;
        let request = async_nats::Request::new()
            .payload(body.into())
            .timeout(Some(timeout));
        match self.client.send_request(subject.clone(), request).await {
            Ok(reply) => Ok(BrokerMessage {
                subject: reply.subject.to_string(),
                body: reply.payload.to_vec(),
                reply_to: reply.reply.map(|r| r.to_string()),
            }),
            Err(err) if err.kind() == RequestErrorKind::NoResponders => Err(format!(
                "no responders: nothing on {} subscribes to `{subject}`",
                self.name
            )),
            Err(err) if err.kind() == RequestErrorKind::TimedOut => Err(format!(
                "timed out: no reply on `{subject}` within {} ms",
                timeout.as_millis()
            )),
            Err(err) => Err(format!(
                "request on `{subject}` to {} failed: {err}",
                self.name
            )),
        }
    }
}

/// Whether `client` is connected right now.
pub(crate) fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}
