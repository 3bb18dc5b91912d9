//! Test-only support shared by every Trellis test that needs real services.
//!
//! Tests never touch the machine's shared NATS (4222) or Redis (6379): each
//! one starts its own private server on a free loopback port, in a temporary
//! directory, and the server is killed when the handle is dropped. Example
//! components are built from `examples/` on first use, so a test runs real
//! code, not a fixture checked into the tree.
//!
//! ```no_run
//! let nats = trellis_test_support::NatsServer::start().expect("nats-server");
//! println!("connect to {}", nats.url());
//! ```

mod binaries;
mod cluster;
mod examples;
mod otlp;
mod process;
mod registry;
mod secure;
mod services;

pub use binaries::workspace_binary;
pub use cluster::NatsCluster;
pub use examples::{
    example_component, example_js_component, examples_dir, trapping_at_start, workspace_root,
};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use process::{SupportError, free_port};
pub use registry::{REGISTRY_PASSWORD, REGISTRY_USER, RegistryServer};
pub use secure::{Role, SecuredNats, TestCa};
pub use services::{NatsServer, RedisServer, nats_server_binary};
