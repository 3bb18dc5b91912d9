#![allow(clippy::unwrap_used)]
//! wadm's tests, in one binary: manifests read from fixture files, and the
//! planner run against hand-built lattices (no NATS), and the store and API
//! against a private nats-server.

mod fuzz;
mod lease;
mod manifest;
mod plan_report;
mod planner;
mod simulation;
mod store;
mod support;
