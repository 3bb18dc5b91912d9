use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use trellis_claims::XKey;
use trellis_claims::invocation::{
    DEFAULT_INVOCATION_WINDOW, Invocation, InvocationError, InvocationVerifier, now_ms,
};
use trellis_lattice::chunk::StreamOffer;
use trellis_lattice::http::{HttpRequest, HttpResponse, INCOMING_HANDLER};
use trellis_lattice::provider::ProviderLink;
use trellis_lattice::request::{self, Unanswered};
use trellis_lattice::rpc::{self, CallHeaders, RpcError, RpcErrorKind};
use trellis_lattice::secret::SecretValue;
use trellis_lattice::{HostData, Subjects, WitFunction};

use tracing::Instrument;
use trellis_telemetry::trace;

use crate::SdkError;
use crate::metrics::ProviderMetrics;

/// How long a provider waits for its NATS servers at start.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// A provider's connection to its lattice: who it is, its config, and the
/// means to call components. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProviderHandle {
    nats: async_nats::Client,
    subjects: Subjects,
    host_data: Arc<HostData>,
    /// `None` only when the host said not to check (see
    /// [`HostData::insecure_skip_invocation_check`]).
    verifier: Option<Arc<InvocationVerifier>>,
    metrics: Arc<ProviderMetrics>,
}

impl ProviderHandle {
    /// Connects to the NATS servers the host data names, with the
    /// credentials and TLS settings the host handed over.
    pub async fn connect(host_data: HostData) -> Result<Self, SdkError> {
        let name = format!("trellis-provider {}", host_data.provider_key);
        let nats = host_data
            .nats_connection()
            .connect(
                |options| {
                    options
                        .name(name.clone())
                        .connection_timeout(Duration::from_secs(5))
                },
                CONNECT_WAIT,
            )
            .await
            .map_err(|e| SdkError::Connect {
                url: host_data.lattice_rpc_url.clone(),
                message: e.to_string(),
            })?;
        Self::new(nats, host_data)
    }

    /// A handle on an existing connection (also how tests serve a provider
    /// in-process); checks the lattice name and provider id.
    pub fn new(nats: async_nats::Client, host_data: HostData) -> Result<Self, SdkError> {
        let subjects = Subjects::new(&host_data.lattice_rpc_prefix)?;
        trellis_lattice::subject::validate_token("provider id", &host_data.provider_key)?;
        let verifier = if host_data.insecure_skip_invocation_check {
            tracing::warn!(
                "the host asked this provider not to check invocation signatures: anyone on the \
                 lattice can act for any component"
            );
            None
        } else {
            let window = host_data
                .invocation_window_ms
                .map_or(DEFAULT_INVOCATION_WINDOW, Duration::from_millis);
            let verifier = InvocationVerifier::new(&host_data.cluster_issuers, window)
                .map_err(|e| SdkError::ClusterIssuers(e.to_string()))?;
            Some(Arc::new(verifier))
        };
        Ok(ProviderHandle {
            nats,
            subjects,
            metrics: Arc::new(ProviderMetrics::new(&host_data.provider_key)),
            host_data: Arc::new(host_data),
            verifier,
        })
    }

    /// Opens the secrets `link` carries (sealed for this provider by their
    /// backend) into its `secret_values`; the error says which could not
    /// be opened.
    pub fn open_secrets(&self, link: &mut ProviderLink) -> Result<(), String> {
        if link.secrets.is_empty() {
            return Ok(());
        }
        let Some(seed) = &self.host_data.provider_xkey_seed else {
            return Err(
                "the link carries secrets, but the host gave this provider no key to open them"
                    .into(),
            );
        };
        let key = XKey::from_seed(seed).map_err(|e| {
            format!("the host's key for this provider is not a curve25519 seed: {e}")
        })?;
        for (name, sealed) in &link.secrets {
            let sender = XKey::from_public_key(&sealed.sender_xkey).map_err(|e| {
                format!("secret `{name}`: the sender key is not a curve25519 key: {e}")
            })?;
            let plain = key
                .open(&sealed.sealed, &sender)
                .map_err(|_| format!("secret `{name}` was not sealed for this provider"))?;
            let value = SecretValue::decode(&plain).map_err(|e| format!("secret `{name}`: {e}"))?;
            link.secret_values.insert(name.clone(), value);
        }
        Ok(())
    }

    /// The provider's metrics, served at the host data's `metrics_addr`.
    pub fn metrics(&self) -> &ProviderMetrics {
        &self.metrics
    }

    /// Checks that `headers` prove the call to `subject` with `body` comes
    /// from a host of the lattice, for the component it names; the error
    /// is the reply to send instead of serving it. Also returns the
    /// introduction (this provider's pairing key) to send back in the
    /// [`rpc::INVOCATION_PEER_HEADER`] reply header, if the call was not
    /// sealed for this provider.
    pub fn check_invocation(
        &self,
        subject: &str,
        headers: &CallHeaders,
        body: &[u8],
    ) -> (Result<(), RpcError>, Option<&str>) {
        let Some(verifier) = &self.verifier else {
            return (Ok(()), None);
        };
        let call = Invocation {
            subject,
            source_id: &headers.source_id,
            link_name: &headers.link_name,
            body,
        };
        let outcome = verifier.verify(headers.invocation.as_deref(), &call, now_ms());
        let introduction = verifier.introduction(&outcome);
        let result = outcome.map(drop).map_err(|why| {
            // A seal for other receivers is routine: the host signs again.
            if matches!(why, InvocationError::Unpaired { .. }) {
                tracing::debug!(source = %headers.source_id, subject, "call sealed for other receivers");
            } else {
                tracing::warn!(
                    provider_id = %self.provider_id(),
                    source = %headers.source_id,
                    subject,
                    reason = %why,
                    "call refused"
                );
            }
            RpcError::new(
                RpcErrorKind::Refused,
                format!(
                    "provider `{}` refused a call made as `{}`: {why}",
                    self.provider_id(),
                    headers.source_id
                ),
            )
        });
        (result, introduction)
    }

    /// The provider's lattice id.
    pub fn provider_id(&self) -> &str {
        &self.host_data.provider_key
    }

    /// The host that started the provider.
    pub fn host_id(&self) -> &str {
        &self.host_data.host_id
    }

    /// The provider's own merged config (not its links').
    pub fn config(&self) -> &BTreeMap<String, String> {
        &self.host_data.config
    }

    /// Everything the host said at start.
    pub fn host_data(&self) -> &HostData {
        &self.host_data
    }

    /// The directory the host set aside for this provider's files, if any.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.host_data.data_dir.as_ref().map(PathBuf::from)
    }

    /// The NATS connection (for providers whose contract is NATS itself).
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// The lattice's subjects.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// How long a call waits for its reply unless told otherwise.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.host_data.rpc_timeout_ms())
    }

    /// Calls `function` on `target` with an encoded `body` under link
    /// `link_name`, waiting at most `timeout`; returns the reply body, to be
    /// decoded with [`rpc::decode_reply`].
    pub async fn call(
        &self,
        target: &str,
        function: &WitFunction,
        link_name: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, RpcError> {
        self.call_with(target, function, link_name, &[], body, timeout)
            .await
            .map(|reply| reply.payload)
    }

    /// [`ProviderHandle::call`] with `extra` headers; returns the whole
    /// reply message.
    async fn call_with(
        &self,
        target: &str,
        function: &WitFunction,
        link_name: &str,
        extra: &[(&'static str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<async_nats::Message, RpcError> {
        let subject = self
            .subjects
            .rpc(target, function)
            .map_err(|e| RpcError::new(RpcErrorKind::Refused, e.to_string()))?;
        // A child of whatever the provider is doing (http-server's request):
        // the host's invocation continues this trace.
        let (span, context) = trace::call_span(function, target, link_name);
        let call = CallHeaders {
            source_id: self.provider_id().to_owned(),
            link_name: link_name.to_owned(),
            traceparent: context.traceparent,
            tracestate: context.tracestate,
            ..CallHeaders::default()
        };
        request::call_with(
            &self.nats,
            subject,
            &call,
            extra,
            body.into(),
            timeout,
            &self.host_data.chunk_limits(),
            |why| match why {
                Unanswered::Elapsed => {
                    format!("`{target}` did not answer {function} within {timeout:?}")
                }
                Unanswered::NoResponders => {
                    format!("no running instance of `{target}` on the lattice serves {function}")
                }
                Unanswered::TimedOut => format!("`{target}` did not answer {function} in time"),
            },
        )
        .instrument(span)
        .await
    }

    /// Sends an HTTP request to component `target`'s
    /// `wasi:http/incoming-handler` and returns its response.
    pub async fn call_http(
        &self,
        target: &str,
        link_name: &str,
        request: &HttpRequest,
        timeout: Duration,
    ) -> Result<HttpResponse, RpcError> {
        let (mut response, streamed) = self
            .call_http_streaming(target, link_name, request, None, timeout)
            .await?;
        if let Some(offer) = streamed {
            use futures::TryStreamExt;
            let limits = self.host_data.chunk_limits();
            let chunks: Vec<Bytes> =
                trellis_lattice::chunk::fetch_stream(&self.nats, offer, &limits)
                    .try_collect()
                    .await
                    .map_err(RpcError::from)?;
            response.body = chunks.concat();
        }
        Ok(response)
    }

    /// Like [`ProviderHandle::call_http`], with the request's body (left
    /// out of `request`) streamed from `body`, if given, as the component
    /// reads it; and the response's body, when it is large, left out of
    /// the response and streamed from the offer returned beside it.
    pub async fn call_http_streaming(
        &self,
        target: &str,
        link_name: &str,
        request: &HttpRequest,
        body: Option<&StreamOffer>,
        timeout: Duration,
    ) -> Result<(HttpResponse, Option<StreamOffer>), RpcError> {
        let function = WitFunction::parse(INCOMING_HANDLER)
            .map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))?;
        let encoded =
            rpc::encode(request).map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))?;
        let extra: Vec<(&'static str, String)> =
            body.map(|b| b.to_pairs().to_vec()).unwrap_or_default();
        let reply = self
            .call_with(target, &function, link_name, &extra, encoded, timeout)
            .await?;
        let response = rpc::decode_reply(&reply.payload)?;
        let streamed = StreamOffer::from_lookup(|name| {
            reply
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        })
        .transpose()
        .map_err(RpcError::from)?;
        Ok((response, streamed))
    }
}
