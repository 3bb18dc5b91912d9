//! Checks that span components: unique names and ids, link targets that
//! exist, link slots used once, config defined one way.
//!
//! [`super::read`] records every name, id, link and config definition here
//! with the path it was read from, then calls [`CrossRefs::check`], so a
//! problem about a reference points at the reference.

use std::collections::BTreeMap;

use trellis_lattice::config::NamedConfig;

use super::document::one_of;
use super::error::Problem;

/// Everything one component can say about another, with its path.
#[derive(Default)]
pub(super) struct CrossRefs {
    names: Vec<(String, String)>,
    ids: Vec<(String, String)>,
    targets: Vec<(String, String)>,
    slots: Vec<(LinkSlot, String)>,
    configs: Vec<(String, NamedConfig, String)>,
    /// `policy.secret.wasmcloud.dev/v1alpha1` policies: name to backend.
    pub(super) secret_policies: BTreeMap<String, String>,
    /// Secrets granted, by name, with their reference and path: one name
    /// is one reference config in the app, so it must mean one secret.
    secrets: Vec<(String, NamedConfig, String)>,
}

/// What a link replaces when put: one per source, name and package.
#[derive(PartialEq, Eq)]
pub(super) struct LinkSlot {
    /// Index of the source component in `spec.components`.
    pub source: usize,
    pub name: String,
    pub namespace: String,
    pub package: String,
}

impl CrossRefs {
    pub(super) fn component(&mut self, name: &str, path: String) {
        self.names.push((name.to_owned(), path));
    }

    pub(super) fn id(&mut self, id: &str, path: String) {
        self.ids.push((id.to_owned(), path));
    }

    pub(super) fn link_target(&mut self, target: &str, path: String) {
        self.targets.push((target.to_owned(), path));
    }

    pub(super) fn link_slot(&mut self, slot: LinkSlot, path: String) {
        self.slots.push((slot, path));
    }

    pub(super) fn owned_config(&mut self, name: &str, values: &NamedConfig, path: String) {
        self.configs.push((name.to_owned(), values.clone(), path));
    }

    pub(super) fn secret(&mut self, name: &str, reference: NamedConfig, path: String) {
        self.secrets.push((name.to_owned(), reference, path));
    }

    /// The configs the manifest defines, by the name written in it.
    pub(super) fn owned_configs(&self) -> BTreeMap<String, NamedConfig> {
        self.configs
            .iter()
            .map(|(name, values, _)| (name.clone(), values.clone()))
            .collect()
    }

    /// Records a problem for every broken reference.
    pub(super) fn check(&self, problems: &mut Vec<Problem>) {
        duplicates(&self.names, problems, |name, first| {
            format!("duplicate component name `{name}`; the first is at `{first}`")
        });
        duplicates(&self.ids, problems, |id, first| {
            format!(
                "component id `{id}` is also the id of the component at `{first}`; \
                 ids must be unique, so set a different `properties.id`"
            )
        });
        self.check_targets(problems);
        self.check_slots(problems);
        self.check_configs(problems);
        self.check_secrets(problems);
    }

    fn check_targets(&self, problems: &mut Vec<Problem>) {
        let names: Vec<&str> = self.names.iter().map(|(n, _)| n.as_str()).collect();
        for (target, path) in &self.targets {
            if !names.contains(&target.as_str()) {
                problems.push(Problem::new(
                    path.clone(),
                    format!(
                        "no component named `{target}` in this manifest; expected {}",
                        one_of(&names)
                    ),
                ));
            }
        }
    }

    fn check_slots(&self, problems: &mut Vec<Problem>) {
        for (i, (slot, path)) in self.slots.iter().enumerate() {
            if let Some((_, first)) = self.slots[..i].iter().find(|(s, _)| s == slot) {
                problems.push(Problem::new(
                    path.clone(),
                    format!(
                        "the link at `{first}` already routes `{}:{}` under link name `{}` \
                         for this component, and one would replace the other; give one \
                         of them a different `name`",
                        slot.namespace, slot.package, slot.name
                    ),
                ));
            }
        }
    }

    fn check_secrets(&self, problems: &mut Vec<Problem>) {
        for (i, (name, reference, path)) in self.secrets.iter().enumerate() {
            let conflict = self.secrets[..i]
                .iter()
                .find(|(n, r, _)| n == name && r != reference);
            if let Some((_, _, first)) = conflict {
                problems.push(Problem::new(
                    path.clone(),
                    format!(
                        "secret `{name}` is already granted with another policy, key or version \
                         at `{first}`; one name is one secret in an app, so rename one of them"
                    ),
                ));
            }
        }
    }

    fn check_configs(&self, problems: &mut Vec<Problem>) {
        for (i, (name, values, path)) in self.configs.iter().enumerate() {
            let conflict = self.configs[..i]
                .iter()
                .find(|(n, v, _)| n == name && v != values);
            if let Some((_, _, first)) = conflict {
                problems.push(Problem::new(
                    path.clone(),
                    format!(
                        "config `{name}` is already defined with other properties at \
                         `{first}`; give one of them a different name"
                    ),
                ));
            }
        }
    }
}

/// Reports every entry whose key appeared before, naming the first one.
fn duplicates(
    entries: &[(String, String)],
    problems: &mut Vec<Problem>,
    message: impl Fn(&str, &str) -> String,
) {
    for (i, (key, path)) in entries.iter().enumerate() {
        if let Some((_, first)) = entries[..i].iter().find(|(k, _)| k == key) {
            problems.push(Problem::new(path.clone(), message(key, first)));
        }
    }
}
