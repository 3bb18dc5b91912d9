//! Test harness for providers, behind the `testing` feature: a private
//! lattice, a provider served on it, and the host's side of the protocol.
//!
//! A provider's tests want what a host does to a provider, without a host:
//! start a private `nats-server` ([`TestLattice`]), serve the provider
//! in-process exactly as its binary would ([`TestLattice::serve`], giving a
//! [`ServedProvider`]) or start the binary itself with host data on its
//! stdin ([`ProviderProcess`]), then put and delete links with their config
//! already resolved, ask for health and make calls as a component would
//! ([`ProviderClient`]). The builders [`link`], [`provider_link`] and
//! [`call_headers`] spell the messages, and [`keyvalue`] the requests of
//! `wasi:keyvalue`.
//!
//! Everything here is for tests, where a panic is how a failure is reported:
//! a helper that cannot do its job (no `nats-server`, a request nobody
//! answers, a reply that does not decode) panics with a message saying what
//! it was doing. What a test asserts on, such as the
//! [`CtlResponse`](trellis_lattice::ctl::CtlResponse) refusing a link or
//! the outcome of [`crate::serve`], is returned instead.
//!
//! ```no_run
//! use trellis_provider_sdk::testing::{self, TestLattice};
//! # use trellis_provider_sdk::{IncomingCall, Provider, ProviderLink, reply};
//! # use trellis_lattice::{Link, RpcError};
//! # struct Echo;
//! # impl Provider for Echo {
//! #     async fn link_put(&self, _link: &ProviderLink) -> Result<(), String> { Ok(()) }
//! #     async fn link_del(&self, _link: &Link) {}
//! #     async fn call(&self, call: IncomingCall) -> Result<Vec<u8>, RpcError> {
//! #         reply(&call.body.to_vec())
//! #     }
//! # }
//!
//! # async fn example() {
//! let lattice = TestLattice::start("test").await;
//! let handle = lattice.handle("echo", "NTESTHOST").await;
//! let echo = lattice.serve(handle, Echo).await;
//! let link = testing::link("component", "echo", "trellis", "echo", &["echo"]);
//! let put = echo.put_link(&testing::provider_link(link, &[], &[("greeting", "hi")])).await;
//! assert!(put.success, "{}", put.message);
//! assert!(echo.health().await.healthy);
//! echo.stop().await;
//! # }
//! ```

mod client;
pub mod keyvalue;
mod lattice;
mod process;

use std::collections::BTreeMap;
use std::sync::OnceLock;

pub use client::ProviderClient;
pub use lattice::{ServedProvider, TestLattice};
pub use process::ProviderProcess;
use trellis_claims::KeyKind;
use trellis_claims::invocation::InvocationSigner;
use trellis_lattice::rpc::CallHeaders;
use trellis_lattice::{HostData, Link};

use crate::ProviderLink;

/// The cluster key this test process's stand-in hosts sign calls with:
/// [`ProviderClient`] signs with it, and [`host_data`] trusts it.
pub fn cluster_signer() -> &'static InvocationSigner {
    static SIGNER: OnceLock<InvocationSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        InvocationSigner::new(KeyKind::Cluster.generate(), "NTESTHOST")
            .unwrap_or_else(|e| panic!("cannot make a cluster signer: {e}"))
    })
}

/// The host data a host would write for provider `provider_id`, started by
/// host `host_id` on `lattice` at `nats_url` (no credentials, no config;
/// calls signed by [`cluster_signer`] are trusted).
pub fn host_data(provider_id: &str, host_id: &str, lattice: &str, nats_url: &str) -> HostData {
    HostData {
        host_id: host_id.into(),
        lattice_rpc_prefix: lattice.into(),
        lattice_rpc_url: nats_url.into(),
        provider_key: provider_id.into(),
        cluster_issuers: vec![cluster_signer().issuer().to_owned()],
        ..HostData::default()
    }
}

/// A link named `default` from `source` to `target` for
/// `namespace:package/{interfaces}`, with no named config.
pub fn link(
    source: &str,
    target: &str,
    namespace: &str,
    package: &str,
    interfaces: &[&str],
) -> Link {
    Link {
        source_id: source.into(),
        target: target.into(),
        wit_namespace: namespace.into(),
        wit_package: package.into(),
        interfaces: interfaces.iter().map(|i| (*i).to_owned()).collect(),
        ..Link::default()
    }
}

/// `link` as a provider receives it, its source and target config already
/// resolved to these `(key, value)` pairs.
pub fn provider_link(
    link: Link,
    source_config: &[(&str, &str)],
    target_config: &[(&str, &str)],
) -> ProviderLink {
    ProviderLink {
        link,
        source_config_values: config_values(source_config),
        target_config_values: config_values(target_config),
        ..ProviderLink::default()
    }
}

/// Config values from `(key, value)` pairs; a later pair wins, as the
/// right-most named config does when a host merges them.
pub fn config_values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The headers of a call from `source_id` under link `link_name`, untraced.
pub fn call_headers(source_id: &str, link_name: &str) -> CallHeaders {
    CallHeaders {
        source_id: source_id.into(),
        link_name: link_name.into(),
        ..CallHeaders::default()
    }
}
