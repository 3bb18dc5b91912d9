//! The two ways the client talks to hosts, kept apart from what it says.
//!
//! Most operations are one request and one reply ([`CtlClient::request`]).
//! A few ask everyone: `host.ping` and the auctions publish once with a
//! reply inbox and collect every answer until the client's gather window
//! elapses
//! ([`CtlClient::gather`]), because the client cannot know how many hosts
//! there are. Both turn NATS outcomes into [`ClientError`]s whose hints name
//! what is missing: a host, a specific host, or a call target.

use async_nats::{HeaderMap, Message, Request, RequestErrorKind, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::{ClientError, CtlClient};
use crate::ctl::{CtlResponse, from_json};
use crate::subject::CtlOperation;

/// Who a request is meant for, which decides what an unanswered request means.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Audience<'a> {
    /// Any host of the lattice (links, config, claims, pings, auctions).
    Lattice,
    /// One host, by id.
    Host(&'a str),
    /// Whatever serves a call target (a component or provider id).
    Target(&'a str),
}

impl<'a> Audience<'a> {
    /// The audience of a control operation.
    pub(crate) fn of(op: &'a CtlOperation) -> Self {
        op.host_id().map_or(Self::Lattice, Self::Host)
    }
}

impl CtlClient {
    /// Sends one control request and reads the reply envelope.
    ///
    /// `action` completes "the lattice refused to …" when the host answers
    /// `success: false`. Returns the reply data, which acknowledgements omit.
    pub(crate) async fn request<T: DeserializeOwned>(
        &self,
        op: &CtlOperation,
        action: impl Into<String>,
        body: Vec<u8>,
    ) -> Result<Option<T>, ClientError> {
        let subject = self.subjects.ctl(op)?;
        let reply = self.send(&subject, Audience::of(op), body, None).await?;
        let what = op.suffix()?;
        let payload = self.whole(&reply).await?;
        let envelope: CtlResponse<T> =
            from_json("control reply", &payload).map_err(|e| ClientError::decode(&what, e))?;
        if !envelope.success {
            return Err(ClientError::Refused {
                action: action.into(),
                message: envelope.message,
            });
        }
        Ok(envelope.response)
    }

    /// Like [`CtlClient::request`], for replies that must carry data.
    pub(crate) async fn fetch<T: DeserializeOwned>(
        &self,
        op: &CtlOperation,
        action: impl Into<String>,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        self.request(op, action, body).await?.ok_or_else(|| {
            let what = op.suffix().unwrap_or_default();
            ClientError::decode(what, "the reply says success but carries no `response`")
        })
    }

    /// Like [`CtlClient::request`], for acknowledgements: whatever data the
    /// reply carries is ignored, so hosts that add some still parse.
    pub(crate) async fn ack(
        &self,
        op: &CtlOperation,
        action: impl Into<String>,
        body: Vec<u8>,
    ) -> Result<(), ClientError> {
        self.request::<serde_json::Value>(op, action, body)
            .await
            .map(drop)
    }

    /// Publishes once and collects every reply until the gather window
    /// elapses.
    ///
    /// An empty lattice answers at once: the server reports that nobody
    /// listens, and the result is empty. Replies with `success: false` are
    /// hosts declining (e.g. not bidding) and are left out; a reply that
    /// does not decode fails the whole request rather than hiding a host.
    pub(crate) async fn gather<T: DeserializeOwned>(
        &self,
        op: &CtlOperation,
        body: Vec<u8>,
    ) -> Result<Vec<T>, ClientError> {
        let subject = self.subjects.ctl(op)?;
        let what = op.suffix()?;
        let inbox = self.nats.new_inbox();
        let mut replies = self
            .nats
            .subscribe(inbox.clone())
            .await
            .map_err(|e| ClientError::nats(format!("subscribing to {inbox}"))(e.into()))?;
        self.nats
            .publish_with_reply(subject.clone(), inbox, Bytes::from(body))
            .await
            .map_err(|e| ClientError::nats(format!("publishing to `{subject}`"))(e.into()))?;

        let deadline = tokio::time::Instant::now() + self.gather_window;
        let mut gathered = Vec::new();
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await {
            match message.status {
                Some(StatusCode::NO_RESPONDERS) => break,
                Some(status) if !status.is_success() => continue,
                _ => {}
            }
            let payload = self.whole(&message).await?;
            let envelope: CtlResponse<T> =
                from_json("control reply", &payload).map_err(|e| ClientError::decode(&what, e))?;
            if !envelope.success {
                continue;
            }
            let data = envelope.response.ok_or_else(|| {
                ClientError::decode(&what, "a reply says success but carries no `response`")
            })?;
            gathered.push(data);
        }
        Ok(gathered)
    }

    /// The whole payload of a reply: its own, or pulled when it was offered
    /// in chunks.
    pub(crate) async fn whole(&self, message: &Message) -> Result<Bytes, ClientError> {
        crate::chunk::payload_of(&self.nats, message, &crate::chunk::ChunkLimits::default())
            .await
            .map_err(|e| ClientError::nats("pulling a large reply".to_owned())(e.into()))
    }

    /// Sends a request and waits for one reply, turning NATS's outcomes
    /// into errors that say who did not answer.
    pub(crate) async fn send(
        &self,
        subject: &str,
        audience: Audience<'_>,
        body: Vec<u8>,
        headers: Option<HeaderMap>,
    ) -> Result<Message, ClientError> {
        let mut request = Request::new()
            .payload(Bytes::from(body))
            .timeout(Some(self.timeout));
        if let Some(headers) = headers {
            request = request.headers(headers);
        }
        self.nats
            .send_request(subject.to_owned(), request)
            .await
            .map_err(|err| match err.kind() {
                RequestErrorKind::NoResponders => ClientError::NoResponders {
                    subject: subject.to_owned(),
                    hint: self.no_responders_hint(audience),
                },
                RequestErrorKind::TimedOut => ClientError::Timeout {
                    waiting_for: format!("a reply on `{subject}`"),
                    timeout: self.timeout,
                    hint: self.timeout_hint(audience),
                },
                RequestErrorKind::Other => {
                    ClientError::nats(format!("sending a request to `{subject}`"))(err.into())
                }
            })
    }

    /// What to try when nobody subscribes to the subject.
    pub(crate) fn no_responders_hint(&self, audience: Audience<'_>) -> String {
        let lattice = self.subjects.lattice();
        match audience {
            Audience::Lattice | Audience::Host(_) => format!(
                "no host is running in lattice `{lattice}` on this NATS server; start one with \
                 `wash up`, or check --lattice and --nats-url"
            ),
            Audience::Target(target) => format!(
                "nothing serves `{target}` in lattice `{lattice}`; start it with `wash start \
                 component` and check its id with `wash get inventory`"
            ),
        }
    }

    /// What to try when a subscriber exists but did not answer in time.
    pub(crate) fn timeout_hint(&self, audience: Audience<'_>) -> String {
        match audience {
            Audience::Lattice => {
                "the hosts may be busy; retry with a longer timeout (--timeout-ms)".to_owned()
            }
            Audience::Host(host_id) => format!(
                "host {host_id} did not answer; check the id with `wash get hosts`, or retry with \
                 a longer timeout (--timeout-ms)"
            ),
            Audience::Target(target) => format!(
                "`{target}` may be busy or stuck; retry with a longer timeout (--timeout-ms)"
            ),
        }
    }
}
