//! Bounds on what a control command may carry.
//!
//! Annotations travel in every heartbeat and inventory, links in every
//! host data document and link event, config in JetStream and to every
//! provider that reads it. Unbounded, one command could push those past the
//! server's max payload, or a provider's start past its stdin. So each is
//! checked when it arrives, and refused with a message that names the field
//! and the limit.

use std::collections::BTreeMap;

use crate::Link;
use crate::ctl::{ScaleComponentCommand, StartProviderCommand, UpdateComponentCommand};

/// How much a control command may carry. Every field is a host flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputLimits {
    /// The most annotations on one component or provider.
    pub max_annotations: usize,
    /// The longest annotation value, in bytes.
    pub max_annotation_bytes: usize,
    /// The most keys in one named config.
    pub max_config_keys: usize,
    /// The longest config value, in bytes.
    pub max_config_value_bytes: usize,
    /// The longest id, name, WIT name, config name or key, in bytes.
    pub max_field_bytes: usize,
    /// The most entries in a list: a link's interfaces or configs, a
    /// command's configs or allowed hosts.
    pub max_list_len: usize,
    /// The longest image or provider reference, in bytes.
    pub max_ref_bytes: usize,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits {
            max_annotations: 32,
            max_annotation_bytes: 1024,
            max_config_keys: 256,
            max_config_value_bytes: 64 * 1024,
            max_field_bytes: 256,
            max_list_len: 32,
            max_ref_bytes: 4096,
        }
    }
}

/// The first few characters of `text`, to name it in a message without
/// repeating all of a hostile value.
fn shown(text: &str) -> String {
    let mut cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

impl InputLimits {
    fn field(&self, what: &str, value: &str) -> Result<(), String> {
        if value.len() > self.max_field_bytes {
            return Err(format!(
                "{what} `{}` is {} bytes long; at most {} are allowed (--max-field-bytes)",
                shown(value),
                value.len(),
                self.max_field_bytes
            ));
        }
        Ok(())
    }

    fn list<'a>(
        &self,
        what: &str,
        items: impl ExactSizeIterator<Item = &'a String>,
    ) -> Result<(), String> {
        if items.len() > self.max_list_len {
            return Err(format!(
                "{what} has {} entries; at most {} are allowed (--max-list-len)",
                items.len(),
                self.max_list_len
            ));
        }
        for item in items {
            self.field(what, item)?;
        }
        Ok(())
    }

    fn reference(&self, what: &str, value: &str) -> Result<(), String> {
        if value.len() > self.max_ref_bytes {
            return Err(format!(
                "{what} `{}` is {} bytes long; at most {} are allowed (--max-ref-bytes)",
                shown(value),
                value.len(),
                self.max_ref_bytes
            ));
        }
        Ok(())
    }

    /// Checks annotations: how many, key length, value length.
    pub fn check_annotations(&self, annotations: &BTreeMap<String, String>) -> Result<(), String> {
        if annotations.len() > self.max_annotations {
            return Err(format!(
                "{} annotations given; at most {} are allowed (--max-annotations)",
                annotations.len(),
                self.max_annotations
            ));
        }
        for (key, value) in annotations {
            if key.trim().is_empty() {
                return Err("an annotation key must not be empty".into());
            }
            self.field("annotation key", key)?;
            if value.len() > self.max_annotation_bytes {
                return Err(format!(
                    "annotation `{}` is {} bytes long; at most {} are allowed \
                     (--max-annotation-bytes)",
                    shown(key),
                    value.len(),
                    self.max_annotation_bytes
                ));
            }
        }
        Ok(())
    }

    /// Checks a named config before it is stored.
    pub fn check_config(
        &self,
        name: &str,
        values: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        self.field("config name", name)?;
        if values.len() > self.max_config_keys {
            return Err(format!(
                "config `{}` has {} keys; at most {} are allowed (--max-config-keys)",
                shown(name),
                values.len(),
                self.max_config_keys
            ));
        }
        for (key, value) in values {
            if key.is_empty() {
                return Err(format!("config `{}` has an empty key", shown(name)));
            }
            self.field("config key", key)?;
            if value.len() > self.max_config_value_bytes {
                return Err(format!(
                    "config `{}` key `{}` holds {} bytes; at most {} are allowed \
                     (--max-config-value-bytes)",
                    shown(name),
                    shown(key),
                    value.len(),
                    self.max_config_value_bytes
                ));
            }
        }
        Ok(())
    }

    /// Checks every field of a link.
    pub fn check_link(&self, link: &Link) -> Result<(), String> {
        self.field("the link's source", &link.source_id)?;
        self.field("the link's target", &link.target)?;
        self.field("the link name", &link.name)?;
        self.field("the WIT namespace", &link.wit_namespace)?;
        self.field("the WIT package", &link.wit_package)?;
        self.list("the link's interfaces", link.interfaces.iter())?;
        self.list("the link's source config", link.source_config.iter())?;
        self.list("the link's target config", link.target_config.iter())
    }

    /// Checks a scale command.
    pub fn check_scale(&self, command: &ScaleComponentCommand) -> Result<(), String> {
        self.field("the component id", &command.component_id)?;
        self.reference("the component reference", &command.component_ref)?;
        self.list("the component's config", command.config.iter())?;
        self.list("the allowed hosts", command.allowed_hosts.iter())?;
        command
            .annotations
            .as_ref()
            .map_or(Ok(()), |a| self.check_annotations(a))
    }

    /// Checks an update command.
    pub fn check_update(&self, command: &UpdateComponentCommand) -> Result<(), String> {
        self.field("the component id", &command.component_id)?;
        self.reference("the component reference", &command.new_component_ref)?;
        command
            .annotations
            .as_ref()
            .map_or(Ok(()), |a| self.check_annotations(a))
    }

    /// Checks a provider start.
    pub fn check_provider_start(&self, command: &StartProviderCommand) -> Result<(), String> {
        self.field("the provider id", &command.provider_id)?;
        self.reference("the provider reference", &command.provider_ref)?;
        self.list("the provider's config", command.config.iter())?;
        command
            .annotations
            .as_ref()
            .map_or(Ok(()), |a| self.check_annotations(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn annotations_are_bounded_in_number_and_length() {
        let limits = InputLimits::default();
        let fine = map(&[("wasmcloud.dev/managed-by", "wadm".into())]);
        assert!(limits.check_annotations(&fine).is_ok());
        let bomb = map(&[("app", "v".repeat(600 * 1024))]);
        let err = limits.check_annotations(&bomb).unwrap_err();
        assert!(err.contains("--max-annotation-bytes"), "{err}");
        assert!(!err.contains(&"v".repeat(100)), "the value is not repeated");
        let many: BTreeMap<String, String> =
            (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        let err = limits.check_annotations(&many).unwrap_err();
        assert!(err.contains("at most 32"), "{err}");
        let empty = map(&[(" ", String::new())]);
        assert!(limits.check_annotations(&empty).is_err());
        let long_key = map(&[(&*"k".repeat(300), String::new())]);
        assert!(
            limits
                .check_annotations(&long_key)
                .unwrap_err()
                .contains("--max-field-bytes")
        );
    }

    #[test]
    fn config_is_bounded_in_keys_and_values() {
        let limits = InputLimits::default();
        // A PEM certificate, newlines and all, is a fine value.
        let pem = map(&[("ca", "-----BEGIN CERTIFICATE-----\nMII…\n".into())]);
        assert!(limits.check_config("tls", &pem).is_ok());
        let big = map(&[("blob", "x".repeat(64 * 1024 + 1))]);
        assert!(
            limits
                .check_config("c", &big)
                .unwrap_err()
                .contains("--max-config-value-bytes")
        );
        let many: BTreeMap<String, String> =
            (0..257).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(
            limits
                .check_config("c", &many)
                .unwrap_err()
                .contains("--max-config-keys")
        );
        assert!(limits.check_config("c", &map(&[("", "v".into())])).is_err());
        assert!(
            limits
                .check_config(&"n".repeat(257), &BTreeMap::new())
                .is_err()
        );
    }

    #[test]
    fn every_field_of_a_link_is_bounded() {
        let limits = InputLimits::default();
        let link = Link {
            source_id: "http-server".into(),
            target: "hello".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            interfaces: vec!["incoming-handler".into()],
            source_config: vec!["web".into()],
            target_config: Vec::new(),
        };
        assert!(limits.check_link(&link).is_ok());
        let long = "x".repeat(257);
        let cases = [
            Link {
                name: long.clone(),
                ..link.clone()
            },
            Link {
                wit_package: long.clone(),
                ..link.clone()
            },
            Link {
                interfaces: vec![long.clone()],
                ..link.clone()
            },
            Link {
                source_config: (0..33).map(|i| i.to_string()).collect(),
                ..link.clone()
            },
        ];
        for bad in cases {
            assert!(limits.check_link(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commands_are_checked_field_by_field() {
        let limits = InputLimits::default();
        let scale = ScaleComponentCommand {
            component_id: "hello".into(),
            component_ref: "ghcr.io/x/hello:1".into(),
            max_instances: 1,
            ..Default::default()
        };
        assert!(limits.check_scale(&scale).is_ok());
        let long_ref = ScaleComponentCommand {
            component_ref: "r".repeat(5000),
            ..scale.clone()
        };
        assert!(
            limits
                .check_scale(&long_ref)
                .unwrap_err()
                .contains("--max-ref-bytes")
        );
        let hosts = ScaleComponentCommand {
            allowed_hosts: (0..33).map(|i| format!("h{i}.example.com")).collect(),
            ..scale
        };
        assert!(limits.check_scale(&hosts).is_err());
        let start = StartProviderCommand {
            provider_id: "p".repeat(300),
            ..Default::default()
        };
        assert!(limits.check_provider_start(&start).is_err());
        let update = UpdateComponentCommand {
            component_id: "hello".into(),
            new_component_ref: "ref".into(),
            annotations: Some((0..40).map(|i| (i.to_string(), String::new())).collect()),
            ..Default::default()
        };
        assert!(limits.check_update(&update).is_err());
    }
}
