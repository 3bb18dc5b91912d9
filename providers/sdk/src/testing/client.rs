//! The host's side of one provider: the requests a host sends on the
//! provider's subjects, and the calls a component makes to it, each
//! answered the way the test will check it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use trellis_claims::invocation::{Invocation, now_ms};
use trellis_lattice::ctl::CtlResponse;
use trellis_lattice::keyvalue::{self, KvError, KvRequest, KvResponse};
use trellis_lattice::provider::{HealthCheckResponse, ShutdownRequest};
use trellis_lattice::rpc::{CallHeaders, RpcError};
use trellis_lattice::subject::ProviderOperation;
use trellis_lattice::{Link, Subjects, WitFunction};

use crate::ProviderLink;

/// How long one attempt of [`ProviderClient::wait_until_answering`] waits.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between two attempts.
const ATTEMPT_PAUSE: Duration = Duration::from_millis(20);

/// Talks to one provider as its host and its linked components do: link
/// puts and deletes, health checks, shutdown requests and calls.
///
/// It works the same whether the provider is served in-process or runs as
/// its own process. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProviderClient {
    nats: async_nats::Client,
    subjects: Subjects,
    provider_id: String,
}

impl ProviderClient {
    /// A client for provider `provider_id` on the lattice of `subjects`,
    /// sending on `nats`.
    pub fn new(nats: async_nats::Client, subjects: Subjects, provider_id: &str) -> Self {
        ProviderClient {
            nats,
            subjects,
            provider_id: provider_id.to_owned(),
        }
    }

    /// The connection requests go out on, for a test to play components or
    /// the outside world on the same lattice.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// The lattice's subjects.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The provider's id.
    pub fn provider_id(&self) -> &str {
        &self.provider_id
    }

    /// The subject a host sends `op` to this provider on.
    ///
    /// Panics if the provider id cannot be part of a subject.
    pub fn subject(&self, op: ProviderOperation) -> String {
        self.subjects
            .provider(&self.provider_id, op)
            .unwrap_or_else(|e| {
                panic!(
                    "no `{}` subject for `{}`: {e}",
                    op.as_str(),
                    self.provider_id
                )
            })
    }

    /// Sends `body` on the subject of `op` and decodes the JSON reply, for
    /// requests the other helpers do not spell, such as a malformed link.
    pub async fn request_json<T: DeserializeOwned>(
        &self,
        op: ProviderOperation,
        body: Vec<u8>,
    ) -> T {
        let subject = self.subject(op);
        let reply = self
            .nats
            .request(subject.clone(), body.into())
            .await
            .unwrap_or_else(|e| panic!("nothing answered the request on {subject}: {e}"));
        serde_json::from_slice(&reply.payload)
            .unwrap_or_else(|e| panic!("the reply on {subject} is not the expected JSON: {e}"))
    }

    /// Puts `link` as a host does, and returns the provider's answer.
    pub async fn put_link(&self, link: &ProviderLink) -> CtlResponse<()> {
        self.request_json(ProviderOperation::LinkPut, to_json(link))
            .await
    }

    /// Deletes `link` as a host does, and returns the provider's answer.
    pub async fn del_link(&self, link: &Link) -> CtlResponse<()> {
        self.request_json(ProviderOperation::LinkDel, to_json(link))
            .await
    }

    /// Asks for the provider's health.
    pub async fn health(&self) -> HealthCheckResponse {
        self.request_json(ProviderOperation::Health, Vec::new())
            .await
    }

    /// Asks for the provider's health until it answers, as a host does
    /// after starting it; panics if it does not answer `within`.
    pub async fn wait_until_answering(&self, within: Duration) -> HealthCheckResponse {
        let subject = self.subject(ProviderOperation::Health);
        let deadline = Instant::now() + within;
        loop {
            let request = self.nats.request(subject.clone(), Bytes::new());
            if let Ok(Ok(reply)) = tokio::time::timeout(ATTEMPT_TIMEOUT, request).await {
                return serde_json::from_slice(&reply.payload).unwrap_or_else(|e| {
                    panic!("the health reply on {subject} is not the expected JSON: {e}")
                });
            }
            assert!(
                Instant::now() < deadline,
                "the provider `{}` never answered on {subject} within {within:?}",
                self.provider_id
            );
            tokio::time::sleep(ATTEMPT_PAUSE).await;
        }
    }

    /// Subscribes to `subject` on this connection, to play a component the
    /// provider calls or the world it publishes to; returns once the server
    /// has the subscription, so nothing published after is missed.
    pub async fn subscribe(&self, subject: &str) -> async_nats::Subscriber {
        let subscriber = self
            .nats
            .subscribe(subject.to_owned())
            .await
            .unwrap_or_else(|e| panic!("cannot subscribe to {subject}: {e}"));
        self.flush().await;
        subscriber
    }

    /// Asks the provider processes of host `host_id` (every host, if empty)
    /// to stop, without waiting for an answer: a process that is not
    /// addressed stays silent. Use [`ProviderClient::request_json`] with
    /// [`ProviderOperation::Shutdown`] to wait for the answer.
    pub async fn request_shutdown(&self, host_id: &str) {
        let subject = self.subject(ProviderOperation::Shutdown);
        let body = to_json(&ShutdownRequest {
            host_id: host_id.into(),
        });
        self.nats
            .publish(subject.clone(), body.into())
            .await
            .unwrap_or_else(|e| panic!("cannot publish on {subject}: {e}"));
        self.flush().await;
    }

    /// Waits until the server has seen everything sent so far.
    async fn flush(&self) {
        self.nats
            .flush()
            .await
            .unwrap_or_else(|e| panic!("cannot flush the connection to NATS: {e}"));
    }

    /// Calls `function` on the provider with `headers` and an encoded
    /// `body`, as a host does for a component; returns the reply body. The
    /// call is signed with [`super::cluster_signer`] unless `headers`
    /// already carry an invocation token.
    pub async fn call(
        &self,
        function: &WitFunction,
        headers: &CallHeaders,
        body: Vec<u8>,
    ) -> Bytes {
        let subject = self.rpc_subject(function);
        let mut headers = headers.clone();
        if headers.invocation.is_none() {
            let call = Invocation {
                subject: &subject,
                source_id: &headers.source_id,
                link_name: &headers.link_name,
                body: &body,
            };
            let token = super::cluster_signer()
                .sign(&call, now_ms())
                .unwrap_or_else(|e| panic!("cannot sign a call: {e}"));
            headers.invocation = Some(token);
        }
        self.send(subject, &headers, body).await
    }

    /// Calls `function` with exactly `headers`, adding no signature: how a
    /// test plays a caller that is not a host.
    pub async fn call_unsigned(
        &self,
        function: &WitFunction,
        headers: &CallHeaders,
        body: Vec<u8>,
    ) -> Bytes {
        self.send(self.rpc_subject(function), headers, body).await
    }

    async fn send(&self, subject: String, headers: &CallHeaders, body: Vec<u8>) -> Bytes {
        let mut map = async_nats::HeaderMap::new();
        for (name, value) in headers.to_pairs() {
            map.insert(name, value.as_str());
        }
        self.nats
            .request_with_headers(subject.clone(), map, body.into())
            .await
            .unwrap_or_else(|e| panic!("nothing answered the call on {subject}: {e}"))
            .payload
    }

    /// The subject calls of `function` to the provider go to.
    pub fn rpc_subject(&self, function: &WitFunction) -> String {
        self.subjects
            .rpc(&self.provider_id, function)
            .unwrap_or_else(|e| panic!("no subject for {function}: {e}"))
    }

    /// Makes a `wasi:keyvalue` call with `headers`: the outer `Err` is a
    /// transport failure such as a refused call, the inner one the store's.
    pub async fn call_keyvalue(
        &self,
        headers: &CallHeaders,
        request: &KvRequest,
    ) -> Result<Result<KvResponse, KvError>, RpcError> {
        let body = request
            .encode()
            .unwrap_or_else(|e| panic!("cannot encode {}: {e}", request.function()));
        let reply = self.call(&request.function(), headers, body).await;
        keyvalue::decode_reply(request, &reply)
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|e| panic!("cannot encode a request as JSON: {e}"))
}
