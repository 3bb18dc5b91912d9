//! End-to-end tests of the host: real `trellis-host` processes and the real
//! `wash` against a private `nats-server`, running signed components built
//! from `examples/`. One test binary, one module per concern.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod capabilities;
mod cluster;
mod common;
mod compat;
mod devloop;
mod failover;
mod hostile;
mod hosts;
mod isolation;
mod limits;
mod links;
mod observe;
mod oci;
mod policy;
mod providers;
mod secrets;
mod security;
mod state;
mod ui;
mod wadm;
