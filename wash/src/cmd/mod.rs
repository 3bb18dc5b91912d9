//! One module per `wash` command group, plus [`lattice`]: the connection
//! options and table helpers the lattice commands share.

pub mod call;
pub mod claims;
pub mod component;
pub mod config;
pub mod get;
pub mod keys;
pub mod label;
pub mod lattice;
pub mod link;
pub mod up;
