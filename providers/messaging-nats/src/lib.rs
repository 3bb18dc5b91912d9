//! The messaging-nats capability provider: `trellis:messaging` on NATS.
//!
//! It works in both directions, one link each way:
//!
//! - **Component → provider** (`trellis:messaging`, interface `consumer`):
//!   `consumer.publish(msg)` publishes (with `reply-to` when set) and
//!   `consumer.request(subject, body, timeout-ms)` waits for the first
//!   reply (a timeout of 0 means the host data's RPC timeout). Failures
//!   come back to the component as the function's `err` string: no
//!   responders, timed out, or an invalid subject.
//! - **Provider → component** (`trellis:messaging`, interface `handler`):
//!   the provider subscribes to the link's subjects and calls the
//!   component's `handler.handle-message` for every message. A handler
//!   error, a timeout or a missing component is logged and the
//!   subscription goes on. Deleting the link unsubscribes.
//!
//! Messages go through the lattice's own NATS connection unless the link
//! names other servers. Config keys, read from the provider's side of each
//! link (the target config of a consumer link, the source config of a
//! handler link):
//!
//! | key | link | meaning | default |
//! |---|---|---|---|
//! | `cluster_uris` | both | comma-separated NATS servers, e.g. `nats://10.0.0.5:4222` | the lattice's connection |
//! | `subscriptions` | handler | comma-separated subjects, wildcards allowed | required |
//! | `queue_group` | handler | queue group, to spread messages over several provider processes | none: each process gets every message |
//! | `timeout_ms` | handler | how long a delivery waits for the component | the host data's RPC timeout |
//!
//! ```text
//! $ wash config put orders subscriptions=orders.>
//! $ wash link put messaging-nats echo trellis messaging --interface handler --source-config orders
//! $ wash link put echo messaging-nats trellis messaging --interface consumer
//! ```
//!
//! The binary is [`MessagingProvider`] served by the SDK:
//!
//! ```no_run
//! use trellis_messaging_nats::MessagingProvider;
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     trellis_provider_sdk::run(|handle| async move { Ok(MessagingProvider::new(handle)) }).await
//! }
//! ```

mod broker;
pub mod config;
mod handler;
mod provider;
pub mod subject;

pub use provider::MessagingProvider;
