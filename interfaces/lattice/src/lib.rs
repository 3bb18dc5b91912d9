//! Trellis wire contracts: everything two parts of a lattice must agree on.
//!
//! Hosts, providers, wadm and `wash` never share memory, only NATS. This
//! crate is the whole of what crosses it, as plain types and pure
//! functions with no I/O:
//!
//! - [`subject`]: every NATS subject and JetStream bucket name, validated.
//! - [`ctl`]: control-interface request and reply JSON (wasmCloud ctl v1
//!   compatible), wrapped in [`ctl::CtlResponse`].
//! - [`event`]: CloudEvents published on `wasmbus.evt.{lattice}.{kind}`.
//! - [`link`] and [`config`]: the lattice state that routes calls.
//! - [`rpc`]: the MessagePack codec, headers and error reply of calls.
//! - [`host_data`]: the document a host hands a provider on stdin, and
//!   [`provider`]: what they say afterwards (links, health, shutdown).
//! - [`keyvalue`] and [`messaging`]: the capability contracts providers serve.
//! - [`http`]: HTTP requests and responses as they cross the lattice, and
//!   [`grant`]: which hosts a component may reach with outgoing HTTP.
//! - [`secret`]: secret references, the backend protocol and its audit
//!   event.
//! - [`wit`]: WIT interface and function names as links and subjects use them.
//! - [`chunk`]: how a payload larger than one NATS message crosses, pulled
//!   in chunks; with feature `client`, both sides of the transfer.
//! - `client` (feature `client`): an async control-interface client over
//!   NATS for `wash` and wadm, and `request` (feature `client`): one RPC
//!   call sent and answered over NATS, shared by the host and the provider
//!   SDK, and `connect` (feature `client`): the NATS connection options
//!   every process takes (URLs, credentials, TLS). These, and `chunk`'s
//!   transfers, are the only parts here that do I/O, with [`nats_server`],
//!   which picks the newest `nats-server` executable for `wash up` and
//!   the tests.
//!
//! ```
//! use trellis_lattice::ctl::{CtlResponse, ScaleComponentCommand};
//! use trellis_lattice::subject::{CtlOperation, Subjects};
//! use trellis_lattice::wit::WitFunction;
//!
//! let subjects = Subjects::new("default")?;
//!
//! // Ask host NABC to run two instances of a component.
//! let op = CtlOperation::ComponentScale { host_id: "NABC".into() };
//! assert_eq!(subjects.ctl(&op)?, "wasmbus.ctl.v1.default.component.scale.NABC");
//! let body = ScaleComponentCommand {
//!     component_id: "counter".into(),
//!     component_ref: "file:///counter.wasm".into(),
//!     max_instances: 2,
//!     host_id: "NABC".into(),
//!     ..Default::default()
//! };
//! let json = trellis_lattice::ctl::to_json("scale command", &body)?;
//! assert!(String::from_utf8_lossy(&json).contains(r#""count":2"#));
//!
//! // The host acknowledges with the standard envelope.
//! let reply = CtlResponse::success("scaling counter");
//! assert!(reply.into_result()?.is_none());
//!
//! // A call from the counter to its key-value store.
//! let get = WitFunction::parse("wasi:keyvalue/store.get")?;
//! let subject = subjects.rpc("kv-sqlite", &get)?;
//! assert_eq!(subject, "default.kv-sqlite.rpc.wasi:keyvalue/store.get");
//! assert_eq!(subjects.parse_rpc(&subject)?.target, "kv-sqlite");
//!
//! // Ids that would change the subject are refused.
//! assert!(subjects.rpc("kv.sqlite", &get).is_err());
//! # Ok::<(), trellis_lattice::LatticeError>(())
//! ```

pub mod blobstore;
pub mod chunk;
#[cfg(feature = "client")]
pub mod client;
pub mod config;
#[cfg(feature = "client")]
pub mod connect;
pub mod ctl;
pub mod error;
pub mod event;
pub mod grant;
pub mod host_data;
pub mod http;
pub mod keyvalue;
pub mod link;
pub mod messaging;
pub mod nats_server;
pub mod provider;
#[cfg(feature = "client")]
pub mod request;
pub mod rpc;
pub mod secret;
pub mod subject;
pub mod wit;

pub use error::LatticeError;
pub use event::{CloudEvent, EventKind, LatticeEvent};
pub use host_data::HostData;
pub use link::Link;
pub use rpc::RpcError;
pub use subject::Subjects;
pub use wit::{WitFunction, WitInterface};
