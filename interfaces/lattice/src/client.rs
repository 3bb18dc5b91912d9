//! A control-interface client: drive a lattice over NATS (feature `client`).
//!
//! Everything else in this crate is types without I/O; this module is the
//! one place that puts them on the wire for a *caller* of the control
//! interface (`wash`, wadm). It builds every subject with
//! [`crate::subject::Subjects`], every body with [`crate::ctl::to_json`],
//! and reads every reply as a [`crate::ctl::CtlResponse`], so a request here
//! is exactly what a wasmCloud-compatible host expects.
//!
//! Requests wait at most the client's timeout (2 s unless set with
//! [`CtlClient::with_timeout`]). Operations addressed to the whole lattice
//! that every host answers (`host.ping`, the auctions) publish once and
//! collect replies for the gather window (1 s unless set with
//! [`CtlClient::with_gather_window`]), then return whatever arrived.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use trellis_lattice::client::CtlClient;
//!
//! let nats = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let ctl = CtlClient::new(nats, "default")?.with_timeout(Duration::from_secs(1));
//! for host in ctl.ping_hosts().await? {
//!     println!("{} {}", host.id, host.friendly_name);
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod kv;
mod transport;

use std::time::Duration;

use async_nats::HeaderMap;
use futures::{Stream, StreamExt};

use crate::config::NamedConfig;
use crate::ctl::{
    ClaimsEntry, ComponentAuctionAck, ComponentAuctionRequest,
    DeleteInterfaceLinkDefinitionRequest, Host, HostInventory, HostLabel, ProviderAuctionAck,
    ProviderAuctionRequest, ScaleComponentCommand, StartProviderCommand, StopHostCommand,
    StopProviderCommand, UpdateComponentCommand, to_json,
};
use crate::error::LatticeError;
use crate::event::{CloudEvent, ComponentScaled, LatticeEvent};
use crate::link::Link;
use crate::rpc::CallHeaders;
use crate::subject::{CtlOperation, Subjects, validate_token};
use crate::wit::WitFunction;

pub use error::ClientError;
pub use kv::{Replicas, jetstream, open_kv_bucket};
use transport::Audience;

/// How long a request waits for its reply unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long scatter-gather requests (ping, auctions) collect replies by
/// default. Hosts answer in milliseconds; waiting the full request timeout
/// (which may be long, to cover a host compiling a component) would make
/// every `wash get hosts` slow.
pub const DEFAULT_GATHER_WINDOW: Duration = Duration::from_secs(1);

/// A control-interface client for one lattice, over one NATS connection.
///
/// Cheap to clone: the NATS client inside is a handle.
#[derive(Clone, Debug)]
pub struct CtlClient {
    nats: async_nats::Client,
    subjects: Subjects,
    timeout: Duration,
    gather_window: Duration,
}

impl CtlClient {
    /// A client for `lattice` on an established NATS connection; refuses
    /// lattice names that cannot be a subject token.
    pub fn new(nats: async_nats::Client, lattice: &str) -> Result<Self, LatticeError> {
        Ok(Self {
            nats,
            subjects: Subjects::new(lattice)?,
            timeout: DEFAULT_TIMEOUT,
            gather_window: DEFAULT_GATHER_WINDOW,
        })
    }

    /// Sets how long requests wait for a reply.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long scatter-gather requests (ping, auctions) collect
    /// replies.
    pub fn with_gather_window(mut self, window: Duration) -> Self {
        self.gather_window = window;
        self
    }

    /// The lattice this client talks to.
    pub fn lattice(&self) -> &str {
        self.subjects.lattice()
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The underlying NATS connection, for anything this client does not cover.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// Every host that answers a ping within the timeout, sorted by id.
    pub async fn ping_hosts(&self) -> Result<Vec<Host>, ClientError> {
        let mut hosts: Vec<Host> = self.gather(&CtlOperation::HostPing, Vec::new()).await?;
        hosts.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(hosts)
    }

    /// What one host runs.
    pub async fn get_inventory(&self, host_id: &str) -> Result<HostInventory, ClientError> {
        let op = CtlOperation::HostGet {
            host_id: host_id.to_owned(),
        };
        self.fetch(
            &op,
            format!("report the inventory of host {host_id}"),
            Vec::new(),
        )
        .await
    }

    /// What every host runs: a ping, then each answering host's inventory,
    /// sorted by host id.
    pub async fn get_hosts_inventories(&self) -> Result<Vec<HostInventory>, ClientError> {
        let hosts = self.ping_hosts().await?;
        let requests = hosts.iter().map(|host| self.get_inventory(&host.id));
        futures::future::join_all(requests)
            .await
            .into_iter()
            .collect()
    }

    /// Starts, scales or (with `max_instances` 0) stops a component on
    /// `command.host_id`. The host acknowledges before the work is done;
    /// see [`CtlClient::scale_component_and_wait`].
    pub async fn scale_component(
        &self,
        command: &ScaleComponentCommand,
    ) -> Result<(), ClientError> {
        validate_token("component id", &command.component_id)?;
        let op = CtlOperation::ComponentScale {
            host_id: command.host_id.clone(),
        };
        let action = format!(
            "scale component `{}` to {} on host {}",
            command.component_id, command.max_instances, command.host_id
        );
        self.ack(&op, action, to_json("scale command", command)?)
            .await
    }

    /// Sends a scale command and waits up to `wait` for the host to report
    /// the result as a `component_scaled` (returned) or
    /// `component_scale_failed` ([`ClientError::ScaleFailed`]) event.
    pub async fn scale_component_and_wait(
        &self,
        command: &ScaleComponentCommand,
        wait: Duration,
    ) -> Result<ComponentScaled, ClientError> {
        // Subscribe first so the event cannot slip past between ack and wait.
        let mut events = self.subscribe_events().await?;
        self.scale_component(command).await?;
        let deadline = tokio::time::Instant::now() + wait;
        let is_ours = |host_id: &str, component_id: &str| {
            host_id == command.host_id && component_id == command.component_id
        };
        let settled = until_event(&mut events, deadline, |event| match event {
            LatticeEvent::ComponentScaled(scaled)
                if is_ours(&scaled.host_id, &scaled.component_id) =>
            {
                Some(Ok(scaled))
            }
            LatticeEvent::ComponentScaleFailed(failed)
                if is_ours(&failed.host_id, &failed.component_id) =>
            {
                Some(Err(ClientError::ScaleFailed {
                    host_id: failed.host_id,
                    component_id: failed.component_id,
                    error: failed.error,
                }))
            }
            _ => None,
        })
        .await;
        if let Some(result) = settled {
            return result;
        }
        Err(ClientError::Timeout {
            waiting_for: format!(
                "host {} to report component `{}` scaled",
                command.host_id, command.component_id
            ),
            timeout: wait,
            hint: format!(
                "the host accepted the command but published no component_scaled event; check \
                 `wash get inventory {}`, or wait longer",
                command.host_id
            ),
        })
    }

    /// Swaps a running component's image on `command.host_id`.
    pub async fn update_component(
        &self,
        command: &UpdateComponentCommand,
    ) -> Result<(), ClientError> {
        validate_token("component id", &command.component_id)?;
        let op = CtlOperation::ComponentUpdate {
            host_id: command.host_id.clone(),
        };
        let action = format!(
            "update component `{}` on host {} to {}",
            command.component_id, command.host_id, command.new_component_ref
        );
        self.ack(&op, action, to_json("update command", command)?)
            .await
    }

    /// Asks which hosts could run a component; acks in arrival order.
    pub async fn auction_component(
        &self,
        request: &ComponentAuctionRequest,
    ) -> Result<Vec<ComponentAuctionAck>, ClientError> {
        let body = to_json("component auction", request)?;
        self.gather(&CtlOperation::ComponentAuction, body).await
    }

    /// Asks which hosts could run a provider; acks in arrival order.
    pub async fn auction_provider(
        &self,
        request: &ProviderAuctionRequest,
    ) -> Result<Vec<ProviderAuctionAck>, ClientError> {
        let body = to_json("provider auction", request)?;
        self.gather(&CtlOperation::ProviderAuction, body).await
    }

    /// Starts a provider process on `command.host_id`. A Trellis host
    /// answers once the provider is up (or could not be started), which
    /// may take longer than a plain request; see
    /// [`CtlClient::start_provider_and_wait`].
    pub async fn start_provider(&self, command: &StartProviderCommand) -> Result<(), ClientError> {
        validate_token("provider id", &command.provider_id)?;
        let op = CtlOperation::ProviderStart {
            host_id: command.host_id.clone(),
        };
        let action = format!(
            "start provider `{}` on host {}",
            command.provider_id, command.host_id
        );
        self.ack(&op, action, to_json("start provider command", command)?)
            .await
    }

    /// Starts a provider and waits up to `wait` until it runs: the host's
    /// `provider_started` event, or the provider listed in the host's
    /// inventory (when it ran already). A `provider_start_failed` event
    /// ends the wait with [`ClientError::ProviderStartFailed`].
    pub async fn start_provider_and_wait(
        &self,
        command: &StartProviderCommand,
        wait: Duration,
    ) -> Result<(), ClientError> {
        let mut events = self.subscribe_events().await?;
        let deadline = tokio::time::Instant::now() + wait;
        // The reply may come only once the provider is up.
        self.clone()
            .with_timeout(wait.max(self.timeout))
            .start_provider(command)
            .await?;
        if self
            .runs_provider(&command.host_id, &command.provider_id)
            .await?
        {
            return Ok(());
        }
        let is_ours = |host_id: &str, provider_id: &str| {
            host_id == command.host_id && provider_id == command.provider_id
        };
        let settled = until_event(&mut events, deadline, |event| match event {
            LatticeEvent::ProviderStarted(started)
                if is_ours(&started.host_id, &started.provider_id) =>
            {
                Some(Ok(()))
            }
            LatticeEvent::ProviderStartFailed(failed)
                if is_ours(&failed.host_id, &failed.provider_id) =>
            {
                Some(Err(ClientError::ProviderStartFailed {
                    host_id: failed.host_id,
                    provider_id: failed.provider_id,
                    error: failed.error,
                }))
            }
            _ => None,
        })
        .await;
        if let Some(result) = settled {
            return result;
        }
        Err(ClientError::Timeout {
            waiting_for: format!(
                "host {} to report provider `{}` started",
                command.host_id, command.provider_id
            ),
            timeout: wait,
            hint: format!(
                "the host accepted the command but published no provider_started event; check \
                 `wash get inventory {}`, or wait longer",
                command.host_id
            ),
        })
    }

    /// Stops a provider and waits up to `wait` until its process is gone:
    /// the host's `provider_stopped` event, or the provider absent from the
    /// host's inventory.
    pub async fn stop_provider_and_wait(
        &self,
        command: &StopProviderCommand,
        wait: Duration,
    ) -> Result<(), ClientError> {
        let mut events = self.subscribe_events().await?;
        let deadline = tokio::time::Instant::now() + wait;
        // The reply may come only once the process has exited.
        self.clone()
            .with_timeout(wait.max(self.timeout))
            .stop_provider(command)
            .await?;
        if !self
            .runs_provider(&command.host_id, &command.provider_id)
            .await?
        {
            return Ok(());
        }
        let settled = until_event(&mut events, deadline, |event| match event {
            LatticeEvent::ProviderStopped(stopped)
                if stopped.host_id == command.host_id
                    && stopped.provider_id == command.provider_id =>
            {
                Some(Ok(()))
            }
            _ => None,
        })
        .await;
        if let Some(result) = settled {
            return result;
        }
        Err(ClientError::Timeout {
            waiting_for: format!(
                "host {} to report provider `{}` stopped",
                command.host_id, command.provider_id
            ),
            timeout: wait,
            hint: format!(
                "check `wash get inventory {}`, or wait longer",
                command.host_id
            ),
        })
    }

    async fn runs_provider(&self, host_id: &str, provider_id: &str) -> Result<bool, ClientError> {
        let inventory = self.get_inventory(host_id).await?;
        Ok(inventory.providers.iter().any(|p| p.id == provider_id))
    }

    /// Stops a provider process on `command.host_id`. A Trellis host
    /// answers once the process has exited, which may take the provider's
    /// shutdown grace period; see [`CtlClient::stop_provider_and_wait`].
    pub async fn stop_provider(&self, command: &StopProviderCommand) -> Result<(), ClientError> {
        let op = CtlOperation::ProviderStop {
            host_id: command.host_id.clone(),
        };
        let action = format!(
            "stop provider `{}` on host {}",
            command.provider_id, command.host_id
        );
        self.ack(&op, action, to_json("stop provider command", command)?)
            .await
    }

    /// Stops a host, giving in-flight calls up to `drain` to finish (the
    /// host's default if `None`). The wire field counts whole seconds, so
    /// `drain` is rounded up.
    pub async fn stop_host(
        &self,
        host_id: &str,
        drain: Option<Duration>,
    ) -> Result<(), ClientError> {
        let command = StopHostCommand {
            host_id: host_id.to_owned(),
            timeout: drain.map(|d| d.as_millis().div_ceil(1000) as u64),
        };
        let op = CtlOperation::HostStop {
            host_id: host_id.to_owned(),
        };
        self.ack(
            &op,
            format!("stop host {host_id}"),
            to_json("stop host command", &command)?,
        )
        .await
    }

    /// Puts a link, replacing any in the same slot; refuses incomplete links
    /// before sending.
    pub async fn put_link(&self, link: &Link) -> Result<(), ClientError> {
        link.validate()?;
        let action = format!(
            "put link `{}` from `{}` to `{}` for {}:{}",
            link.name, link.source_id, link.target, link.wit_namespace, link.wit_package
        );
        self.ack(&CtlOperation::LinkPut, action, to_json("link", link)?)
            .await
    }

    /// Deletes the link in one slot.
    pub async fn delete_link(
        &self,
        request: &DeleteInterfaceLinkDefinitionRequest,
    ) -> Result<(), ClientError> {
        let action = format!(
            "delete link `{}` from `{}` for {}:{}",
            request.name, request.source_id, request.wit_namespace, request.wit_package
        );
        let body = to_json("link delete request", request)?;
        self.ack(&CtlOperation::LinkDel, action, body).await
    }

    /// Every link in the lattice.
    pub async fn get_links(&self) -> Result<Vec<Link>, ClientError> {
        let links = self
            .request(&CtlOperation::LinkGet, "list links", Vec::new())
            .await?;
        Ok(links.unwrap_or_default())
    }

    /// The claims of everything running, as wasmCloud-style flat maps
    /// (read them with [`crate::ctl::ClaimsSummary::from_entry`]).
    pub async fn get_claims(&self) -> Result<Vec<ClaimsEntry>, ClientError> {
        let claims = self
            .request(&CtlOperation::ClaimsGet, "list claims", Vec::new())
            .await?;
        Ok(claims.unwrap_or_default())
    }

    /// Sets label `key=value` on a host.
    pub async fn put_label(
        &self,
        host_id: &str,
        key: &str,
        value: &str,
    ) -> Result<(), ClientError> {
        let label = HostLabel {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        let op = CtlOperation::LabelPut {
            host_id: host_id.to_owned(),
        };
        let shown: String = value.chars().take(40).collect();
        let cut = if shown.len() < value.len() { "…" } else { "" };
        let action = format!("label host {host_id} with {key}={shown}{cut}");
        self.ack(&op, action, to_json("host label", &label)?).await
    }

    /// Removes label `key` from a host.
    pub async fn delete_label(&self, host_id: &str, key: &str) -> Result<(), ClientError> {
        let label = HostLabel {
            key: key.to_owned(),
            value: String::new(),
        };
        let op = CtlOperation::LabelDel {
            host_id: host_id.to_owned(),
        };
        let action = format!("remove label `{key}` from host {host_id}");
        self.ack(&op, action, to_json("host label", &label)?).await
    }

    /// Stores named config `name`, replacing any with that name.
    pub async fn put_config(&self, name: &str, config: &NamedConfig) -> Result<(), ClientError> {
        let op = CtlOperation::ConfigPut {
            name: name.to_owned(),
        };
        let body = to_json("named config", config)?;
        self.ack(&op, format!("put config `{name}`"), body).await
    }

    /// Named config `name`, or `None` if the lattice has none by that name.
    pub async fn get_config(&self, name: &str) -> Result<Option<NamedConfig>, ClientError> {
        let op = CtlOperation::ConfigGet {
            name: name.to_owned(),
        };
        self.request(&op, format!("get config `{name}`"), Vec::new())
            .await
    }

    /// Deletes named config `name`.
    pub async fn delete_config(&self, name: &str) -> Result<(), ClientError> {
        let op = CtlOperation::ConfigDel {
            name: name.to_owned(),
        };
        self.ack(&op, format!("delete config `{name}`"), Vec::new())
            .await
    }

    /// Every lattice event from now on. Messages on the event subjects that
    /// are not CloudEvents JSON are skipped; decode the payload with
    /// [`CloudEvent::parse`].
    pub async fn subscribe_events(
        &self,
    ) -> Result<impl Stream<Item = CloudEvent> + Send + Unpin + 'static, ClientError> {
        let subject = self.subjects.events_wildcard();
        let subscriber = self
            .nats
            .subscribe(subject.clone())
            .await
            .map_err(|e| ClientError::nats(format!("subscribing to `{subject}`"))(e.into()))?;
        // A flush waits for the server's PONG, so the server holds the
        // subscription before this returns. Events caused by something
        // other than this connection (a provider killed by a signal, say)
        // would otherwise race the SUB still in the write buffer.
        self.nats
            .flush()
            .await
            .map_err(|e| ClientError::nats(format!("subscribing to `{subject}`"))(e.into()))?;
        // An event too large for one message is offered in chunks.
        let nats = self.nats.clone();
        Ok(Box::pin(subscriber.filter_map(move |message| {
            let nats = nats.clone();
            async move {
                let limits = crate::chunk::ChunkLimits::default();
                let payload = crate::chunk::payload_of(&nats, &message, &limits)
                    .await
                    .ok()?;
                CloudEvent::from_json(&payload).ok()
            }
        })))
    }

    /// Calls `function` on `target` with an already-encoded body and returns
    /// the raw reply; decode it with [`crate::rpc::decode_reply`].
    pub async fn call(
        &self,
        target: &str,
        function: &WitFunction,
        body: Vec<u8>,
        headers: &CallHeaders,
    ) -> Result<Vec<u8>, ClientError> {
        let subject = self.subjects.rpc(target, function)?;
        let mut map = HeaderMap::new();
        for (name, value) in headers.to_pairs() {
            map.insert(name, value);
        }
        let reply = self
            .send(&subject, Audience::Target(target), body, Some(map))
            .await?;
        Ok(reply.payload.to_vec())
    }
}

/// Reads `events` until `decide` settles a wait or `deadline` passes
/// (`None`). `decide` sees every event that parses and returns `Some` to
/// end the wait with that result.
async fn until_event<T>(
    events: &mut (impl Stream<Item = CloudEvent> + Unpin),
    deadline: tokio::time::Instant,
    mut decide: impl FnMut(LatticeEvent) -> Option<Result<T, ClientError>>,
) -> Option<Result<T, ClientError>> {
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await {
        if let Ok(event) = event.parse()
            && let Some(result) = decide(event)
        {
            return Some(result);
        }
    }
    None
}
