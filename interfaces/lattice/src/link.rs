//! Links: which target serves a component's import.
//!
//! A link says "calls from `source_id` to `wit_namespace:wit_package/{interfaces}`
//! under link `name` go to `target`". Links are lattice state: `wash` or
//! wadm puts them over the control interface, hosts keep them in JetStream
//! KV, and the host consults them on every outgoing call. The JSON shape is
//! wasmCloud's `Link` (control interface 3.x), so their tooling can put
//! links on a Trellis lattice.
//!
//! A link is identified by `(source_id, name, wit_namespace, wit_package)`:
//! putting a link with the same four replaces the old one, whatever its
//! target or interfaces.

use serde::{Deserialize, Serialize};

use crate::error::LatticeError;
use crate::subject::check_token;
use crate::wit::{WitInterface, check_wit_part};

/// The link name used when none is given.
pub const DEFAULT_LINK_NAME: &str = "default";

/// Serde default for link names.
pub(crate) fn default_link_name() -> String {
    DEFAULT_LINK_NAME.to_owned()
}

/// One link definition, as put with `link.put` and listed by `link.get`.
///
/// `Link::default()` has the name `default` and everything else empty.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Link {
    /// The component (or provider) whose imports this link serves.
    pub source_id: String,
    /// The component or provider id that receives the calls.
    pub target: String,
    /// The link name; lets one source use several targets for one interface.
    #[serde(default = "default_link_name")]
    pub name: String,
    /// `wasi` in `wasi:keyvalue/store`.
    pub wit_namespace: String,
    /// `keyvalue` in `wasi:keyvalue/store`.
    pub wit_package: String,
    /// The interfaces of the package this link routes, e.g. `["store", "atomics"]`.
    pub interfaces: Vec<String>,
    /// Named configs given to the source for this link.
    #[serde(default)]
    pub source_config: Vec<String>,
    /// Named configs given to the target for this link.
    #[serde(default)]
    pub target_config: Vec<String>,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            source_id: String::new(),
            target: String::new(),
            name: default_link_name(),
            wit_namespace: String::new(),
            wit_package: String::new(),
            interfaces: Vec::new(),
            source_config: Vec::new(),
            target_config: Vec::new(),
        }
    }
}

impl Link {
    /// Checks that the link is complete and that every id fits in a subject.
    pub fn validate(&self) -> Result<(), LatticeError> {
        let invalid = |problem: String| LatticeError::InvalidLink {
            source_id: self.source_id.clone(),
            problem,
        };
        let field = |name: &'static str, result: Result<(), LatticeError>| {
            result.map_err(|e| invalid(format!("field `{name}`: {e}")))
        };
        field("source_id", check_token("source id", &self.source_id))?;
        field("target", check_token("link target", &self.target))?;
        field("name", check_token("link name", &self.name))?;
        field(
            "wit_namespace",
            check_wit_part("WIT namespace", &self.wit_namespace),
        )?;
        field(
            "wit_package",
            check_wit_part("WIT package", &self.wit_package),
        )?;
        if self.interfaces.is_empty() {
            return Err(invalid(
                "field `interfaces` is empty; name at least one interface of the package".into(),
            ));
        }
        for interface in &self.interfaces {
            field("interfaces", check_wit_part("WIT interface", interface))?;
        }
        for config in self.source_config.iter().chain(&self.target_config) {
            field(
                "source_config/target_config",
                check_token("config name", config),
            )?;
        }
        Ok(())
    }

    /// Whether a call by `source_id` under link `link_name` to `interface`
    /// goes through this link.
    pub fn routes(&self, source_id: &str, link_name: &str, interface: &WitInterface) -> bool {
        self.source_id == source_id
            && self.name == link_name
            && self.wit_namespace == interface.namespace
            && self.wit_package == interface.package
            && self.interfaces.contains(&interface.interface)
    }

    /// Whether `other` occupies the same slot, so putting it replaces `self`.
    pub fn same_slot(&self, other: &Link) -> bool {
        self.source_id == other.source_id
            && self.name == other.name
            && self.wit_namespace == other.wit_namespace
            && self.wit_package == other.wit_package
    }

    /// Whether this link is the one a `link.del` request names.
    pub fn is_deleted_by(
        &self,
        request: &crate::ctl::DeleteInterfaceLinkDefinitionRequest,
    ) -> bool {
        self.source_id == request.source_id
            && self.name == request.name
            && self.wit_namespace == request.wit_namespace
            && self.wit_package == request.wit_package
    }

    /// The interfaces this link routes, as full WIT names.
    pub fn wit_interfaces(&self) -> Result<Vec<WitInterface>, LatticeError> {
        self.interfaces
            .iter()
            .map(|i| WitInterface::new(&self.wit_namespace, &self.wit_package, i))
            .collect()
    }

    /// Whether the link concerns `id`, as source or target; a provider is
    /// told about exactly these links.
    pub fn involves(&self, id: &str) -> bool {
        self.source_id == id || self.target == id
    }
}

/// Finds the link that routes a call, if any: the lookup a host does for
/// every outgoing call of a component.
pub fn find_route<'a>(
    links: impl IntoIterator<Item = &'a Link>,
    source_id: &str,
    link_name: &str,
    interface: &WitInterface,
) -> Option<&'a Link> {
    links
        .into_iter()
        .find(|link| link.routes(source_id, link_name, interface))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::DeleteInterfaceLinkDefinitionRequest;

    fn kv_link() -> Link {
        Link {
            source_id: "counter".into(),
            target: "kv-sqlite".into(),
            name: DEFAULT_LINK_NAME.into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: vec!["store".into(), "atomics".into()],
            source_config: vec![],
            target_config: vec!["counter-bucket".into()],
        }
    }

    fn store() -> WitInterface {
        WitInterface::parse("wasi:keyvalue/store@0.2.0-draft").unwrap()
    }

    #[test]
    fn complete_link_is_valid() {
        kv_link().validate().unwrap();
    }

    #[test]
    fn link_without_interfaces_is_refused() {
        let link = Link {
            interfaces: vec![],
            ..kv_link()
        };
        let err = link.validate().unwrap_err().to_string();
        assert!(err.contains("`interfaces` is empty"), "{err}");
    }

    #[test]
    fn link_with_empty_or_dotted_ids_is_refused_naming_the_field() {
        for (link, field) in [
            (
                Link {
                    source_id: String::new(),
                    ..kv_link()
                },
                "source_id",
            ),
            (
                Link {
                    target: "kv.sqlite".into(),
                    ..kv_link()
                },
                "target",
            ),
            (
                Link {
                    name: String::new(),
                    ..kv_link()
                },
                "name",
            ),
            (
                Link {
                    wit_namespace: "wa:si".into(),
                    ..kv_link()
                },
                "wit_namespace",
            ),
            (
                Link {
                    wit_package: String::new(),
                    ..kv_link()
                },
                "wit_package",
            ),
            (
                Link {
                    interfaces: vec!["st ore".into()],
                    ..kv_link()
                },
                "interfaces",
            ),
            (
                Link {
                    target_config: vec!["a.b".into()],
                    ..kv_link()
                },
                "target_config",
            ),
        ] {
            let err = link.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn link_routes_its_interfaces_for_its_source_and_name_only() {
        let link = kv_link();
        assert!(link.routes("counter", "default", &store()));
        let atomics = WitInterface::parse("wasi:keyvalue/atomics").unwrap();
        assert!(link.routes("counter", "default", &atomics));
        let batch = WitInterface::parse("wasi:keyvalue/batch").unwrap();
        assert!(!link.routes("counter", "default", &batch));
        assert!(!link.routes("other", "default", &store()));
        assert!(!link.routes("counter", "cache", &store()));
        let other_pkg = WitInterface::parse("wasi:blobstore/store").unwrap();
        assert!(!link.routes("counter", "default", &other_pkg));
    }

    #[test]
    fn find_route_picks_the_link_for_the_link_name() {
        let cache = Link {
            name: "cache".into(),
            target: "kv-redis".into(),
            ..kv_link()
        };
        let links = [kv_link(), cache];
        let found = find_route(&links, "counter", "cache", &store()).unwrap();
        assert_eq!(found.target, "kv-redis");
        assert!(find_route(&links, "nobody", "default", &store()).is_none());
    }

    #[test]
    fn same_slot_ignores_target_and_interfaces() {
        let moved = Link {
            target: "kv-redis".into(),
            interfaces: vec!["store".into()],
            ..kv_link()
        };
        assert!(kv_link().same_slot(&moved));
        let renamed = Link {
            name: "cache".into(),
            ..kv_link()
        };
        assert!(!kv_link().same_slot(&renamed));
    }

    #[test]
    fn delete_request_matches_its_link() {
        let request = DeleteInterfaceLinkDefinitionRequest {
            source_id: "counter".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
        };
        assert!(kv_link().is_deleted_by(&request));
        assert!(kv_link().involves("kv-sqlite"));
        assert!(kv_link().involves("counter"));
        assert!(!kv_link().involves("http"));
    }

    #[test]
    fn default_link_is_named_default() {
        assert_eq!(Link::default().name, DEFAULT_LINK_NAME);
    }

    #[test]
    fn missing_name_and_configs_take_their_defaults() {
        let json = r#"{"source_id":"a","target":"b","wit_namespace":"wasi",
                       "wit_package":"keyvalue","interfaces":["store"]}"#;
        let link: Link = serde_json::from_str(json).unwrap();
        assert_eq!(link.name, "default");
        assert!(link.source_config.is_empty() && link.target_config.is_empty());
    }

    #[test]
    fn wit_interfaces_lists_full_names() {
        let names: Vec<String> = kv_link()
            .wit_interfaces()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["wasi:keyvalue/store", "wasi:keyvalue/atomics"]);
    }
}
