//! One TCP listener serving HTTP/1.1 for one link.
//!
//! Binding happens in [`Listener::bind`], before the link put is answered,
//! so the host learns straight away that a port is taken. Accepting and
//! serving then run on tasks that watch a stop channel: [`Listener::stop`]
//! closes the listening socket (freeing the port before it returns) and
//! lets open connections finish the request in hand.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::forward::{Forwarder, Route};

/// How long to wait after a failed `accept` (e.g. out of file descriptors)
/// before trying again, so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How many ports above a taken one to try when suggesting a free one.
const SUGGESTION_RANGE: u16 = 10;

/// A bound address and the task serving it.
pub(crate) struct Listener {
    address: String,
    route: Arc<RwLock<Route>>,
    stop: watch::Sender<()>,
    task: JoinHandle<()>,
}

impl Listener {
    /// Binds `address` and starts serving `route`; the error says why the
    /// address cannot be used and, for a taken port, suggests a free one.
    pub async fn bind(
        address: &str,
        route: Route,
        handle: trellis_provider_sdk::ProviderHandle,
    ) -> Result<Self, String> {
        let socket = TcpListener::bind(address)
            .await
            .map_err(|e| bind_error(address, &e))?;
        let local = socket
            .local_addr()
            .map_or_else(|_| address.to_owned(), |a| a.to_string());
        tracing::info!(address = %local, component = %route.component, "listening");
        let route = Arc::new(RwLock::new(route));
        let forwarder = Forwarder {
            handle,
            route: Arc::clone(&route),
        };
        let (stop, stopped) = watch::channel(());
        let task = tokio::spawn(accept_loop(socket, forwarder, stopped));
        Ok(Listener {
            address: address.to_owned(),
            route,
            stop,
            task,
        })
    }

    /// The address as the link configured it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends later requests along `route`.
    pub fn set_route(&self, route: Route) {
        *self.route.write().unwrap_or_else(|p| p.into_inner()) = route;
    }

    /// Whether the accept loop still runs.
    pub fn is_serving(&self) -> bool {
        !self.task.is_finished()
    }

    /// Closes the listening socket and waits until the port is free; open
    /// connections finish their current request and close.
    pub async fn stop(self) {
        let Listener {
            address,
            stop,
            task,
            ..
        } = self;
        drop(stop);
        if let Err(err) = task.await {
            tracing::warn!(address, error = %err, "listener task ended abnormally");
        }
        tracing::info!(address, "stopped listening");
    }
}

async fn accept_loop(socket: TcpListener, forwarder: Forwarder, mut stopped: watch::Receiver<()>) {
    loop {
        let accepted = tokio::select! {
            // The sender is only ever dropped, never sent on: any wake-up
            // means stop.
            _ = stopped.changed() => return,
            accepted = socket.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                tokio::spawn(serve_connection(stream, forwarder.clone(), stopped.clone()));
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    forwarder: Forwarder,
    mut stopped: watch::Receiver<()>,
) {
    let service = service_fn(move |request| {
        let forwarder = forwarder.clone();
        async move { Ok::<_, Infallible>(forwarder.respond(request).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stopped.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

fn bind_error(address: &str, err: &std::io::Error) -> String {
    if err.kind() != std::io::ErrorKind::AddrInUse {
        return format!(
            "cannot listen on {address}: {err}; set the link's source config `address` to an \
             address of this machine, e.g. 127.0.0.1:8080"
        );
    }
    let suggestion = free_neighbour(address)
        .map(|free| format!(", e.g. {free}"))
        .unwrap_or_default();
    format!(
        "cannot listen on {address}: the address is already in use (by another process or \
         another link); set the link's source config `address` to a free one{suggestion}"
    )
}

/// A port just above the taken one that could be bound a moment ago.
fn free_neighbour(address: &str) -> Option<SocketAddr> {
    let taken: SocketAddr = address.parse().ok()?;
    (1..=SUGGESTION_RANGE)
        .filter_map(|step| taken.port().checked_add(step))
        .map(|port| SocketAddr::new(taken.ip(), port))
        .find(|candidate| std::net::TcpListener::bind(candidate).is_ok())
}
