//! How wadm marks what it owns, so it never touches anything else.
//!
//! Everything wadm starts carries the annotations of [`annotations_for`]:
//! `wasmcloud.dev/managed-by: wadm` and `wasmcloud.dev/appspec: <app>`, the
//! keys wasmCloud's wadm uses. Cleanup (scale to 0, stop, link and config
//! deletion) only ever looks at components and providers annotated with
//! the app's name, links whose source is one of them, and config under the
//! app's prefix.
//!
//! There is deliberately no version annotation: a host that is asked to
//! rescale a running component with the same image keeps its original
//! annotations, so a version stamp would go stale and make the planner
//! issue the same command forever. Old versions' leftovers are recognised
//! by id instead: an owned thing whose id the deployed manifest no longer
//! declares is removed.
//!
//! Config that a manifest defines (an entry with `properties`) is put under
//! [`owned_config_name`], `{app}/{name}`. App names may not contain `/`, so
//! two apps can never write the same config, and everything under `{app}/`
//! is known to be the app's when it is undeployed.

use std::collections::BTreeMap;

/// Annotation key naming who manages a component or provider.
pub const MANAGED_BY_ANNOTATION: &str = "wasmcloud.dev/managed-by";
/// The value of [`MANAGED_BY_ANNOTATION`] on everything wadm starts.
pub const MANAGED_BY_WADM: &str = "wadm";
/// Annotation key naming the application a component or provider belongs to.
pub const APP_ANNOTATION: &str = "wasmcloud.dev/appspec";

/// The annotations put on every component and provider that `app` runs.
pub fn annotations_for(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_ANNOTATION.to_owned(), MANAGED_BY_WADM.to_owned()),
        (APP_ANNOTATION.to_owned(), app.to_owned()),
    ])
}

/// Whether annotations from an inventory mark the thing as `app`'s.
pub fn is_owned_by(annotations: Option<&BTreeMap<String, String>>, app: &str) -> bool {
    annotations.is_some_and(|a| {
        a.get(MANAGED_BY_ANNOTATION).map(String::as_str) == Some(MANAGED_BY_WADM)
            && a.get(APP_ANNOTATION).map(String::as_str) == Some(app)
    })
}

/// The app whose wadm-managed thing carries these annotations, if any.
pub fn owner_app(annotations: Option<&BTreeMap<String, String>>) -> Option<&str> {
    annotations
        .filter(|a| a.get(MANAGED_BY_ANNOTATION).map(String::as_str) == Some(MANAGED_BY_WADM))
        .and_then(|a| a.get(APP_ANNOTATION))
        .map(String::as_str)
}

/// The lattice name of config `name` defined by the manifest of `app`.
pub fn owned_config_name(app: &str, name: &str) -> String {
    format!("{app}/{name}")
}

/// Whether a lattice config name is one that `app`'s manifests define:
/// config, or the reference to a secret they grant.
pub fn is_owned_config(app: &str, config_name: &str) -> bool {
    let name = config_name
        .strip_prefix(trellis_lattice::secret::SECRET_PREFIX)
        .unwrap_or(config_name);
    name.strip_prefix(app)
        .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_means_managed_by_wadm_for_this_app() {
        let ours = annotations_for("shop");
        assert!(is_owned_by(Some(&ours), "shop"));
        assert!(!is_owned_by(Some(&ours), "shop2"));
        assert!(!is_owned_by(None, "shop"));
        let by_hand = BTreeMap::from([(APP_ANNOTATION.to_owned(), "shop".to_owned())]);
        assert!(!is_owned_by(Some(&by_hand), "shop"));
        assert_eq!(owner_app(Some(&ours)), Some("shop"));
        assert_eq!(owner_app(Some(&by_hand)), None);
    }

    #[test]
    fn config_prefix_does_not_match_apps_sharing_a_prefix() {
        let name = owned_config_name("shop", "db");
        assert_eq!(name, "shop/db");
        assert!(is_owned_config("shop", &name));
        assert!(!is_owned_config("sho", &name));
        assert!(!is_owned_config("shop", "shop-db"));
        assert!(!is_owned_config("shop-2", &name));
    }
}
