//! A private lattice for one test, and a provider served on it in-process.
//!
//! The provider gets its own NATS connection and [`crate::serve`] runs in a
//! task, just as the provider's binary would run it; the test keeps a second
//! connection and plays the host through a [`ProviderClient`]. The lattice
//! (and its `nats-server`) lives as long as the provider served on it.

use std::ops::Deref;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use trellis_lattice::{HostData, Subjects};
use trellis_test_support::NatsServer;

use super::{ProviderClient, host_data};
use crate::{Provider, ProviderHandle, SdkError};

/// How long a provider served in-process may take to answer its first
/// health check, and to return once told to stop.
const SERVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A private `nats-server` for one test, and the host's connection to it.
pub struct TestLattice {
    nats: async_nats::Client,
    subjects: Subjects,
    server: NatsServer,
}

impl TestLattice {
    /// Starts a private `nats-server` for lattice `name` and connects to it.
    ///
    /// Panics if `nats-server` cannot be started or `name` is not a valid
    /// lattice name.
    pub async fn start(name: &str) -> Self {
        let subjects =
            Subjects::new(name).unwrap_or_else(|e| panic!("`{name}` is not a lattice name: {e}"));
        let server =
            NatsServer::start().unwrap_or_else(|e| panic!("cannot start nats-server: {e}"));
        let nats = connect(async_nats::ConnectOptions::new(), &server.url()).await;
        TestLattice {
            nats,
            subjects,
            server,
        }
    }

    /// The URL of the private `nats-server`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The host's connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// The lattice's subjects.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The host data host `host_id` would give provider `provider_id` here.
    pub fn host_data(&self, provider_id: &str, host_id: &str) -> HostData {
        host_data(provider_id, host_id, self.subjects.lattice(), &self.url())
    }

    /// A [`ProviderHandle`] for provider `provider_id` started by host
    /// `host_id`, on a connection of its own.
    pub async fn handle(&self, provider_id: &str, host_id: &str) -> ProviderHandle {
        self.handle_with(async_nats::ConnectOptions::new(), provider_id, host_id)
            .await
    }

    /// Like [`TestLattice::handle`], with the provider's connection made
    /// with `options` (a short request timeout, say).
    pub async fn handle_with(
        &self,
        options: async_nats::ConnectOptions,
        provider_id: &str,
        host_id: &str,
    ) -> ProviderHandle {
        let nats = connect(options, &self.url()).await;
        ProviderHandle::new(nats, self.host_data(provider_id, host_id))
            .unwrap_or_else(|e| panic!("cannot make a handle for `{provider_id}`: {e}"))
    }

    /// A client that talks to provider `provider_id` as the host does.
    pub fn provider(&self, provider_id: &str) -> ProviderClient {
        ProviderClient::new(self.nats.clone(), self.subjects.clone(), provider_id)
    }

    /// Serves `provider` on `handle` in a task, as its binary would, and
    /// returns once it answers health checks.
    pub async fn serve<P: Provider>(self, handle: ProviderHandle, provider: P) -> ServedProvider {
        let client = self.provider(handle.provider_id());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::serve(handle, provider, async move {
            let _ = stopped.await;
            "the test stopped it"
        }));
        client.wait_until_answering(SERVE_TIMEOUT).await;
        ServedProvider {
            client,
            stop: Some(stop),
            task,
            lattice: self,
        }
    }
}

async fn connect(options: async_nats::ConnectOptions, url: &str) -> async_nats::Client {
    options
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test's nats-server at {url}: {e}"))
}

/// A provider served in-process on its own [`TestLattice`].
///
/// It dereferences to the [`ProviderClient`] that talks to it, so a test
/// puts links and asks for health on the served provider itself.
pub struct ServedProvider {
    client: ProviderClient,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), SdkError>>,
    lattice: TestLattice,
}

impl ServedProvider {
    /// The lattice it is served on.
    pub fn lattice(&self) -> &TestLattice {
        &self.lattice
    }

    /// Whether [`crate::serve`] is still running.
    pub fn is_serving(&self) -> bool {
        !self.task.is_finished()
    }

    /// Resolves the future that stops [`crate::serve`], as a signal would,
    /// and waits for it to return; panics if it fails or does not return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(err) = self.wait_until_stopped(SERVE_TIMEOUT).await {
            panic!("serve failed: {err}");
        }
    }

    /// Waits for [`crate::serve`] to return by itself (after a shutdown
    /// request, say) and returns its outcome; panics if it does not return
    /// `within`.
    pub async fn wait_until_stopped(mut self, within: Duration) -> Result<(), SdkError> {
        tokio::time::timeout(within, &mut self.task)
            .await
            .unwrap_or_else(|_| panic!("serve did not return within {within:?}"))
            .unwrap_or_else(|e| panic!("the task running serve failed: {e}"))
    }
}

impl Deref for ServedProvider {
    type Target = ProviderClient;

    fn deref(&self) -> &ProviderClient {
        &self.client
    }
}
