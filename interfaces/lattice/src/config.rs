//! Named config: string maps that components and providers read at run time.
//!
//! `wash config put NAME key=value…` stores a [`NamedConfig`] under `NAME`
//! in the `CONFIGDATA_{lattice}` bucket (via `config.put.{name}`); scale
//! and start commands and links then refer to configs by name, and the host
//! merges the named maps in order with [`merge`] before handing the result
//! to `wasi:config` or to a provider.
//!
//! The wire bodies are the map itself:
//!
//! | subject | body | reply |
//! |---|---|---|
//! | `config.put.{name}` | [`NamedConfig`] | `CtlResponse<()>` |
//! | `config.get.{name}` | none | `CtlResponse<NamedConfig>` |
//! | `config.del.{name}` | none | `CtlResponse<()>` |

use std::collections::BTreeMap;

use crate::error::LatticeError;
use crate::subject::check_token;

/// One named config: keys to values, ordered so output is stable.
pub type NamedConfig = BTreeMap<String, String>;

/// Checks a config name: it becomes a subject token and a KV key.
pub fn validate_config_name(name: &str) -> Result<(), LatticeError> {
    check_token("config name", name)
}

/// Merges configs in order; for a key present in several, the right-most
/// config wins (`foo {a:1,b:2}`, `bar {b:3}` gives `{a:1,b:3}`).
pub fn merge<'a>(configs: impl IntoIterator<Item = &'a NamedConfig>) -> NamedConfig {
    let mut merged = NamedConfig::new();
    for config in configs {
        merged.extend(config.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    merged
}

/// Parses `key=value` pairs as given on a command line into a config.
///
/// The value is everything after the first `=`, so values may contain `=`.
pub fn parse_pairs<'a>(
    pairs: impl IntoIterator<Item = &'a str>,
) -> Result<NamedConfig, LatticeError> {
    pairs
        .into_iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(LatticeError::invalid_name(
                "config entry",
                pair,
                "is not `key=value` with a non-empty key",
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[&str]) -> NamedConfig {
        parse_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn right_most_config_wins() {
        let foo = config(&["a=1", "b=2"]);
        let bar = config(&["b=3", "c=4"]);
        let baz = config(&["c=5", "d=6"]);
        assert_eq!(
            merge([&foo, &bar, &baz]),
            config(&["a=1", "b=3", "c=5", "d=6"])
        );
    }

    #[test]
    fn values_may_contain_equals_signs() {
        assert_eq!(config(&["url=redis://h?x=1"])["url"], "redis://h?x=1");
    }

    #[test]
    fn pairs_without_key_are_refused() {
        assert!(parse_pairs(["novalue"]).is_err());
        assert!(parse_pairs(["=x"]).is_err());
    }

    #[test]
    fn config_names_must_fit_a_subject() {
        assert!(validate_config_name("counter-bucket").is_ok());
        assert!(validate_config_name("a.b").is_err());
    }
}
