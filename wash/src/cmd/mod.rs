//! One module per `wash` command group.

pub mod claims;
pub mod keys;
