//! What a link's config asks for, read without I/O so that a bad value
//! fails the link put before anything connects or subscribes.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_nats::ServerAddr;

use crate::subject::{self, SubjectError};

/// Config key: comma-separated NATS servers to use instead of the lattice's.
pub const CLUSTER_URIS: &str = "cluster_uris";
/// Config key: comma-separated subjects a handler link subscribes to.
pub const SUBSCRIPTIONS: &str = "subscriptions";
/// Config key: a queue group for a handler link's subscriptions.
pub const QUEUE_GROUP: &str = "queue_group";
/// Config key: how long a delivery waits for the handler, in milliseconds.
pub const TIMEOUT_MS: &str = "timeout_ms";

/// Why a link's config cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A server in `cluster_uris` does not parse.
    #[error("config `cluster_uris` names {uri:?}, which is not a NATS server URL: {message}")]
    ClusterUri {
        /// The offending entry.
        uri: String,
        /// Why it does not parse.
        message: String,
    },
    /// A handler link subscribes to nothing.
    #[error(
        "source config `subscriptions` is missing or empty; set it to the comma-separated \
         subjects to deliver to the component, e.g. subscriptions=orders.>"
    )]
    NoSubscriptions,
    /// A subject in `subscriptions` is malformed.
    #[error("source config `subscriptions`: {0}")]
    Subject(#[from] SubjectError),
    /// `queue_group` is not a single token.
    #[error("source config `queue_group` is {0:?}; it must be a non-empty name without spaces")]
    QueueGroup(String),
    /// `timeout_ms` is not a positive whole number.
    #[error("source config `timeout_ms` is {0:?}; it must be a positive number of milliseconds")]
    Timeout(String),
}

/// The servers a link's side of the config names, or `None` for the
/// lattice's own connection.
pub fn cluster_uris(
    config: &BTreeMap<String, String>,
) -> Result<Option<Vec<ServerAddr>>, ConfigError> {
    let Some(value) = config.get(CLUSTER_URIS) else {
        return Ok(None);
    };
    let servers = list(value)
        .map(|uri| {
            ServerAddr::from_str(uri).map_err(|e| ConfigError::ClusterUri {
                uri: uri.to_owned(),
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((!servers.is_empty()).then_some(servers))
}

/// What a handler link (provider → component) subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerConfig {
    /// Subjects, each checked.
    pub subjects: Vec<String>,
    /// The queue group, when deliveries should spread over several
    /// provider processes rather than reach each.
    pub queue_group: Option<String>,
    /// How long a delivery waits for the component.
    pub timeout: Duration,
}

impl HandlerConfig {
    /// Reads `subscriptions`, `queue_group` and `timeout_ms` from a handler
    /// link's source config, with `default_timeout` when none is set.
    pub fn from_source_config(
        config: &BTreeMap<String, String>,
        default_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let subjects: Vec<String> = config
            .get(SUBSCRIPTIONS)
            .map(|v| list(v).map(str::to_owned).collect())
            .unwrap_or_default();
        if subjects.is_empty() {
            return Err(ConfigError::NoSubscriptions);
        }
        for subject in &subjects {
            subject::check_subscription(subject)?;
        }
        let queue_group = match config.get(QUEUE_GROUP).map(|q| q.trim()) {
            None | Some("") => None,
            Some(q) if q.chars().any(char::is_whitespace) => {
                return Err(ConfigError::QueueGroup(q.to_owned()));
            }
            Some(q) => Some(q.to_owned()),
        };
        let timeout = match config.get(TIMEOUT_MS) {
            None => default_timeout,
            Some(value) => match value.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => return Err(ConfigError::Timeout(value.clone())),
            },
        };
        Ok(HandlerConfig {
            subjects,
            queue_group,
            timeout,
        })
    }
}

/// The non-empty entries of a comma-separated value.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use trellis_provider_sdk::testing::config_values as config;

    use super::*;

    #[test]
    fn no_cluster_uris_means_the_lattice_connection() {
        assert_eq!(cluster_uris(&config(&[])).unwrap(), None);
        assert_eq!(
            cluster_uris(&config(&[("cluster_uris", " , ")])).unwrap(),
            None
        );
    }

    #[test]
    fn cluster_uris_are_a_comma_separated_list() {
        let servers = cluster_uris(&config(&[(
            "cluster_uris",
            "nats://127.0.0.1:4222, 127.0.0.1:5222",
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(servers.len(), 2);
        let err = cluster_uris(&config(&[("cluster_uris", "http://x:1")])).unwrap_err();
        assert!(err.to_string().contains("http://x:1"), "{err}");
    }

    #[test]
    fn handler_config_reads_subjects_group_and_timeout() {
        let handler = HandlerConfig::from_source_config(
            &config(&[
                ("subscriptions", "orders.>, audit"),
                ("queue_group", "workers"),
                ("timeout_ms", "500"),
            ]),
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(handler.subjects, ["orders.>", "audit"]);
        assert_eq!(handler.queue_group.as_deref(), Some("workers"));
        assert_eq!(handler.timeout, Duration::from_millis(500));
    }

    #[test]
    fn handler_config_refuses_no_subjects_and_bad_subjects() {
        let timeout = Duration::from_secs(2);
        assert_eq!(
            HandlerConfig::from_source_config(&config(&[]), timeout),
            Err(ConfigError::NoSubscriptions)
        );
        let err = HandlerConfig::from_source_config(&config(&[("subscriptions", "a..b")]), timeout)
            .unwrap_err();
        assert!(err.to_string().contains("`a..b`"), "{err}");
    }
}
