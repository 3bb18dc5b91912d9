//! Shared test plumbing: a control client and event waits.

use std::time::Duration;

use futures::StreamExt;
use trellis_lattice::client::CtlClient;
use trellis_lattice::ctl::ScaleComponentCommand;
use trellis_lattice::event::{CloudEvent, EventKind};

/// A control client on `lattice` with a timeout generous enough for a
/// debug-build host to compile a component.
pub async fn client(nats_url: &str, lattice: &str) -> CtlClient {
    let nats = async_nats::connect(nats_url).await.unwrap();
    CtlClient::new(nats, lattice)
        .unwrap()
        .with_timeout(Duration::from_secs(30))
}

/// A scale command for `component_id` running `image` on `host_id`.
pub fn scale_command(
    host_id: &str,
    component_id: &str,
    image: &str,
    max_instances: u32,
) -> ScaleComponentCommand {
    ScaleComponentCommand {
        component_id: component_id.into(),
        component_ref: image.into(),
        max_instances,
        host_id: host_id.into(),
        ..Default::default()
    }
}

/// Collects events of `kind` until `matches` accepts one, or panics after
/// `timeout`.
pub async fn wait_for_event(
    events: &mut (impl futures::Stream<Item = CloudEvent> + Unpin),
    kind: EventKind,
    timeout: Duration,
    matches: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let wait = async {
        while let Some(event) = events.next().await {
            if event.kind().ok() == Some(kind) && matches(&event.data) {
                return event.data;
            }
        }
        panic!("event stream ended before a {} event", kind.as_str());
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or_else(|_| panic!("no matching {} event within {timeout:?}", kind.as_str()))
}

/// The value of `key` in the Redis at `url`.
pub fn redis_get(url: &str, key: &str) -> Option<String> {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_connection().unwrap();
    redis::cmd("GET").arg(key).query(&mut connection).unwrap()
}

/// The counter's stored count in the Redis at `url` (0 before the first).
pub fn redis_count(url: &str) -> u64 {
    redis_get(url, "default:counter").map_or(0, |v| v.parse().unwrap())
}
