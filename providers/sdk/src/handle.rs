use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use trellis_lattice::http::{HttpRequest, HttpResponse, INCOMING_HANDLER};
use trellis_lattice::request::{self, Unanswered};
use trellis_lattice::rpc::{self, CallHeaders, RpcError, RpcErrorKind};
use trellis_lattice::{HostData, Subjects, WitFunction};

use crate::SdkError;

/// A provider's connection to its lattice: who it is, its config, and the
/// means to call components. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProviderHandle {
    nats: async_nats::Client,
    subjects: Subjects,
    host_data: Arc<HostData>,
}

impl ProviderHandle {
    /// Connects to the NATS server the host data names, with its credentials.
    pub async fn connect(host_data: HostData) -> Result<Self, SdkError> {
        let url = host_data.lattice_rpc_url.clone();
        let connect_error = |message: String| SdkError::Connect {
            url: url.clone(),
            message,
        };
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("trellis-provider {}", host_data.provider_key))
            .connection_timeout(Duration::from_secs(5));
        if let (Some(jwt), Some(seed)) = (
            &host_data.lattice_rpc_user_jwt,
            &host_data.lattice_rpc_user_seed,
        ) {
            options = options
                .credentials(&credentials_text(jwt, seed))
                .map_err(|e| connect_error(e.to_string()))?;
        }
        let nats = options
            .connect(url.as_str())
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        Self::new(nats, host_data)
    }

    /// A handle on an existing connection (also how tests serve a provider
    /// in-process); checks the lattice name and provider id.
    pub fn new(nats: async_nats::Client, host_data: HostData) -> Result<Self, SdkError> {
        let subjects = Subjects::new(&host_data.lattice_rpc_prefix)?;
        trellis_lattice::subject::validate_token("provider id", &host_data.provider_key)?;
        Ok(ProviderHandle {
            nats,
            subjects,
            host_data: Arc::new(host_data),
        })
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
        let subject = self
            .subjects
            .rpc(target, function)
            .map_err(|e| RpcError::new(RpcErrorKind::Refused, e.to_string()))?;
        let call = CallHeaders {
            source_id: self.provider_id().to_owned(),
            link_name: link_name.to_owned(),
            traceparent: None,
            tracestate: None,
        };
        let reply = request::call(
            &self.nats,
            subject,
            &call,
            body.into(),
            timeout,
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
        .await?;
        Ok(reply.payload)
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
        let function = WitFunction::parse(INCOMING_HANDLER)
            .map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))?;
        let body =
            rpc::encode(request).map_err(|e| RpcError::new(RpcErrorKind::Codec, e.to_string()))?;
        let reply = self
            .call(target, &function, link_name, body, timeout)
            .await?;
        rpc::decode_reply(&reply)
    }
}

/// The text of a NATS `.creds` file holding `jwt` and `seed`, the form
/// async-nats reads credentials in.
fn credentials_text(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}
