#![allow(clippy::unwrap_used)]
//! wadm's tests, in one binary: manifests read from fixture files, and the
//! planner run against hand-built lattices (no NATS anywhere).

mod manifest;
mod planner;
mod support;
