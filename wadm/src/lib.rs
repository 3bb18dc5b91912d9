//! wadm, the Trellis application reconciler: declared apps in, control
//! commands out.
//!
//! An application is an OAM manifest in wasmCloud's format (components,
//! providers, scalers and links). This crate is the pure core of wadm:
//!
//! - [`manifest`]: parse YAML or JSON, validate, and normalize into a
//!   typed [`Manifest`]; every problem names the path of its field.
//! - [`planner`]: compare a manifest with the [`ObservedLattice`] and
//!   return the ordered [`Command`]s that make the lattice run it
//!   ([`plan`]), or remove it ([`plan_undeploy`]). Planning a lattice that
//!   already matches gives no commands.
//! - [`ownership`]: the annotations and config names that mark what an
//!   app owns, so cleanup never touches anything else.
//!
//! Around that core, the parts that talk to NATS:
//!
//! - [`store`]: manifests, versions and status in JetStream KV.
//! - [`api`]: the request/reply API `wash app` drives, and its client.
//! - [`lease`]: which of several wadm processes acts on the lattice.
//! - [`observe`]: reading the lattice's hosts, links and config.
//! - [`reconciler`]: the loop that observes, plans and sends commands,
//!   through [`io::LatticeIo`]: NATS in the binary, and in [`sim`] a
//!   simulated lattice on a paused clock, which checks the loop's
//!   invariants under seeded churn (`cargo run -p wadm --example simulate`).
//!
//! YAML is read with `serde_norway`, the maintained fork of the archived
//! `serde_yaml`.
//!
//! ```
//! use trellis_lattice::ctl::HostInventory;
//! use wadm::{Command, Manifest, ObservedLattice, plan};
//!
//! let manifest = Manifest::parse(
//!     r#"
//! apiVersion: core.oam.dev/v1beta1
//! kind: Application
//! metadata:
//!   name: hello
//!   annotations:
//!     version: v1
//! spec:
//!   components:
//!     - name: greeter
//!       type: component
//!       properties:
//!         image: file:///greeter.wasm
//!       traits:
//!         - type: spreadscaler
//!           properties:
//!             instances: 4
//! "#,
//! )?;
//! let host = |id: &str| HostInventory { host_id: id.into(), ..Default::default() };
//! let lattice = ObservedLattice::from_inventories([host("NA"), host("NB")]);
//!
//! // Two instances on each of the two hosts.
//! let plan = plan(&manifest, &lattice);
//! assert_eq!(plan.commands.len(), 2);
//! for command in &plan.commands {
//!     let Command::ScaleComponent(scale) = command else { panic!("{command:?}") };
//!     assert_eq!((scale.component_id.as_str(), scale.max_instances), ("hello-greeter", 2));
//! }
//! # Ok::<(), wadm::ManifestError>(())
//! ```

pub mod api;
pub mod io;
pub mod lease;
pub mod manifest;
pub mod metrics;
pub mod observe;
pub mod ownership;
pub mod planner;
pub mod reconciler;
pub mod sim;
pub mod store;

pub use manifest::{Manifest, ManifestError, Problem};
pub use planner::{
    Command, DataHome, ObservedHost, ObservedLattice, Plan, PlanReport, plan, plan_undeploy,
};
