//! Auctions: asking the lattice which hosts could run something.
//!
//! A scheduler publishes a request on `component.auction` or
//! `provider.auction`, collects the acks for a moment, and then sends a
//! scale or start command to one of the bidders. A host bids when its
//! labels satisfy every constraint (see [`constraints_match`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Body of `component.auction`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentAuctionRequest {
    /// Where the component would be loaded from.
    #[serde(default)]
    pub component_ref: String,
    /// The id it would run under; hosts already running it do not bid.
    pub component_id: String,
    /// Labels a host must have, key and value exactly.
    #[serde(default)]
    pub constraints: BTreeMap<String, String>,
}

/// A host's bid in a component auction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentAuctionAck {
    /// The reference from the request.
    #[serde(default)]
    pub component_ref: String,
    /// The id from the request.
    #[serde(default)]
    pub component_id: String,
    /// The bidding host.
    #[serde(default)]
    pub host_id: String,
    /// The constraints from the request.
    #[serde(default)]
    pub constraints: BTreeMap<String, String>,
}

/// Body of `provider.auction`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderAuctionRequest {
    /// Where the provider would be loaded from.
    #[serde(default)]
    pub provider_ref: String,
    /// The id it would run under; hosts already running it do not bid.
    pub provider_id: String,
    /// Labels a host must have, key and value exactly.
    #[serde(default)]
    pub constraints: BTreeMap<String, String>,
}

/// A host's bid in a provider auction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderAuctionAck {
    /// The bidding host.
    #[serde(default)]
    pub host_id: String,
    /// The reference from the request.
    #[serde(default)]
    pub provider_ref: String,
    /// The id from the request.
    #[serde(default)]
    pub provider_id: String,
    /// The constraints from the request.
    #[serde(default)]
    pub constraints: BTreeMap<String, String>,
}

/// Whether a host with `labels` satisfies every auction constraint.
pub fn constraints_match(
    constraints: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    constraints
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn host_bids_only_when_every_constraint_matches() {
        let labels = map(&[("zone", "eu"), ("arch", "x86_64")]);
        assert!(constraints_match(&map(&[]), &labels));
        assert!(constraints_match(&map(&[("zone", "eu")]), &labels));
        assert!(!constraints_match(&map(&[("zone", "us")]), &labels));
        assert!(!constraints_match(&map(&[("gpu", "yes")]), &labels));
    }
}
