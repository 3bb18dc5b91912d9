//! What a link's source config asks of its listener, read without I/O so
//! that a bad value fails the link put before anything is bound.

use std::collections::BTreeMap;
use std::time::Duration;

/// Where a link listens when its source config names no address.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8000";

/// Why a link's source config cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `address` is not `host:port`.
    #[error(
        "source config `address` is {value:?}; it must be host:port with a numeric port, \
         e.g. 127.0.0.1:8080"
    )]
    Address {
        /// The configured value.
        value: String,
    },
    /// `timeout_ms` is not a positive whole number.
    #[error(
        "source config `timeout_ms` is {value:?}; it must be a positive number of milliseconds"
    )]
    Timeout {
        /// The configured value.
        value: String,
    },
}

/// One listener's settings, from a link's source config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConfig {
    /// `host:port` to bind.
    pub address: String,
    /// How long a request waits for the component.
    pub timeout: Duration,
}

impl ListenConfig {
    /// Reads `address` (or `ADDRESS`) and `timeout_ms` from `source_config`,
    /// with `default_timeout` when no timeout is set.
    pub fn from_source_config(
        source_config: &BTreeMap<String, String>,
        default_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let address = source_config
            .get("address")
            .or_else(|| source_config.get("ADDRESS"))
            .map(|a| a.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
        if !is_host_port(&address) {
            return Err(ConfigError::Address { value: address });
        }
        let timeout = match source_config.get("timeout_ms") {
            None => default_timeout,
            Some(value) => match value.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(ConfigError::Timeout {
                        value: value.clone(),
                    });
                }
            },
        };
        Ok(ListenConfig { address, timeout })
    }
}

/// Whether `address` looks like `host:port` (IPv6 hosts in brackets); the
/// host itself is checked when it is resolved.
fn is_host_port(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && port.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use trellis_provider_sdk::testing::config_values as config;

    use super::*;

    #[test]
    fn no_config_listens_on_the_default_address_with_the_default_timeout() {
        let listen =
            ListenConfig::from_source_config(&config(&[]), Duration::from_secs(2)).unwrap();
        assert_eq!(listen.address, "127.0.0.1:8000");
        assert_eq!(listen.timeout, Duration::from_secs(2));
    }

    #[test]
    fn address_and_timeout_are_read_from_either_spelling() {
        let listen = ListenConfig::from_source_config(
            &config(&[("ADDRESS", "0.0.0.0:8080"), ("timeout_ms", "250")]),
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(listen.address, "0.0.0.0:8080");
        assert_eq!(listen.timeout, Duration::from_millis(250));
        let listen = ListenConfig::from_source_config(
            &config(&[("address", "[::1]:9000")]),
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(listen.address, "[::1]:9000");
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let err = ListenConfig::from_source_config(
            &config(&[("address", "8080")]),
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`address`"), "{err}");
        let err = ListenConfig::from_source_config(
            &config(&[("timeout_ms", "soon")]),
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`timeout_ms`"), "{err}");
    }
}
