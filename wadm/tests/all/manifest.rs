//! Reading manifests: valid fixtures become the expected model, invalid
//! ones are refused with every problem named by its path.

use std::collections::BTreeMap;

use wadm::manifest::{ComponentKind, ConfigRef, ScalerKind, UNVERSIONED_PREFIX};
use wadm::{Manifest, ManifestError};

use crate::support::{example, fixture, fixture_text};

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The problems of an invalid fixture, as `path: message` lines.
fn problems_of(name: &str) -> Vec<String> {
    match fixture(name) {
        Ok(m) => panic!("{name} should be refused, but parsed as {m:#?}"),
        Err(err) => {
            assert!(!err.problems().is_empty(), "{name}: {err}");
            err.problems().iter().map(ToString::to_string).collect()
        }
    }
}

fn assert_problem(problems: &[String], path: &str, words: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{path}: ")) && p.contains(words)),
        "expected a problem at `{path}` mentioning {words:?}, got {problems:#?}"
    );
}

#[test]
fn every_valid_fixture_parses() {
    for name in [
        "valid/spreadscaler.yaml",
        "valid/daemonscaler.yaml",
        "valid/links.yaml",
        "valid/links-nested.yaml",
        "valid/links.json",
        "valid/secrets.yaml",
    ] {
        fixture(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn example_manifests_parse_and_validate() {
    for name in ["dev.yaml", "prod.yaml", "registry.yaml"] {
        let manifest = example(name);
        assert_eq!(manifest.name, "kv-counter");
    }
    let dev = example("dev.yaml");
    assert_eq!(dev.version, "v0.1.0");
    assert_eq!(dev.component("kv").unwrap().id, "keyvalue-sqlite");
    let prod = example("prod.yaml");
    assert_eq!(prod.component("kv").unwrap().id, "keyvalue-redis");
}

#[test]
fn spreadscaler_fixture_reads_weights_requirements_and_defaults() {
    let m = fixture("valid/spreadscaler.yaml").unwrap();
    assert_eq!(m.version, "v1.2.0");
    assert_eq!(
        m.description.as_deref(),
        Some("Spread placement by label and weight")
    );
    assert_eq!(m.labels, map(&[("team", "retail")]));

    let catalog = m.component("catalog").unwrap();
    assert_eq!(catalog.id, "storefront-catalog");
    assert_eq!(catalog.kind, ComponentKind::Component);
    let scaler = &catalog.scaler;
    assert_eq!((scaler.kind, scaler.instances), (ScalerKind::Spread, 12));
    let spreads: Vec<(&str, u32)> = scaler
        .spread
        .iter()
        .map(|s| (s.name.as_str(), s.weight))
        .collect();
    assert_eq!(spreads, [("europe", 75), ("americas", 25), ("anywhere", 0)]);
    assert_eq!(
        scaler.spread[1].requirements,
        map(&[("region", "us"), ("tier", "edge")])
    );

    let thumbnails = m.component("thumbnails").unwrap();
    assert_eq!(thumbnails.id, "thumbnailer");
    assert_eq!(thumbnails.kind, ComponentKind::Capability);
    // `replicas` is accepted for `instances`; weight defaults to 100.
    let scaler = &thumbnails.scaler;
    assert_eq!(scaler.instances, 2);
    assert_eq!(scaler.spread[0].weight, 100);
    assert_eq!(scaler.spread[0].requirements, map(&[("gpu", "true")]));
    // YAML numbers in config become text.
    assert_eq!(
        thumbnails.config,
        [ConfigRef::Owned {
            name: "thumbnail-sizes".into(),
            values: map(&[("small", "64"), ("large", "512")]),
        }]
    );

    // `actor` is the old name of `component`; no spread means everywhere.
    let search = m.component("search").unwrap();
    assert_eq!(search.kind, ComponentKind::Component);
    assert!(search.scaler.spread.is_empty());
}

#[test]
fn daemonscaler_fixture_reads_per_host_instances_and_requirements() {
    let m = fixture("valid/daemonscaler.yaml").unwrap();
    assert_eq!(m.version, "2024.06");
    let shipper = m.component("shipper").unwrap();
    assert_eq!(shipper.id, "log-shipper");
    let scaler = &shipper.scaler;
    assert_eq!((scaler.kind, scaler.instances), (ScalerKind::Daemon, 2));
    assert_eq!(
        scaler.spread[0].requirements,
        map(&[("os", "linux"), ("role", "ingest")])
    );
    let agent = &m.component("agent").unwrap().scaler;
    assert_eq!(agent.kind, ScalerKind::Daemon);
    assert!(agent.spread.is_empty());
}

#[test]
fn links_fixture_reads_names_targets_and_config() {
    let m = fixture("valid/links.yaml").unwrap();
    let api = m.component("api").unwrap();
    assert_eq!(api.links.len(), 2);
    let store = &api.links[0];
    assert_eq!(store.name, "default");
    assert_eq!(store.target, "store");
    assert_eq!(
        (store.namespace.as_str(), store.package.as_str()),
        ("wasi", "keyvalue")
    );
    assert_eq!(store.interfaces, ["store", "atomics"]);
    assert_eq!(
        store.target_config,
        [ConfigRef::Owned {
            name: "notes-bucket".into(),
            values: map(&[("bucket", "notes")]),
        }]
    );
    let cache = &api.links[1];
    assert_eq!(cache.name, "cache");
    assert_eq!(
        cache.target_config,
        [ConfigRef::External {
            name: "shared-redis-credentials".into()
        }]
    );
    let gateway = &m.component("gateway").unwrap().links[0];
    assert_eq!(gateway.target, "api");
    assert_eq!(
        gateway.source_config[0].lattice_name("notes"),
        "notes/listen",
        "config the manifest defines lives under the app's prefix"
    );
    assert_eq!(
        cache.target_config[0].lattice_name("notes"),
        "shared-redis-credentials"
    );
}

#[test]
fn both_link_shapes_and_json_read_into_the_same_model() {
    let flat = fixture("valid/links.yaml").unwrap();
    let nested = fixture("valid/links-nested.yaml").unwrap();
    let json = fixture("valid/links.json").unwrap();
    assert_eq!(flat, nested);
    assert_eq!(flat, json);
}

#[test]
fn wrong_api_version_is_refused_at_its_field() {
    let problems = problems_of("invalid/wrong-api-version.yaml");
    assert_eq!(
        problems,
        ["apiVersion: expected `core.oam.dev/v1beta1`, found `core.oam.dev/v1alpha1`"]
    );
}

#[test]
fn duplicate_component_names_point_at_the_second_and_the_first() {
    let problems = problems_of("invalid/duplicate-component.yaml");
    assert_problem(
        &problems,
        "spec.components[2].name",
        "duplicate component name `greeter`; the first is at `spec.components[0].name`",
    );
}

#[test]
fn link_to_a_missing_component_names_the_target_field() {
    let problems = problems_of("invalid/missing-link-target.yaml");
    assert_eq!(
        problems,
        [
            "spec.components[0].traits[1].properties.target: no component named `kv` in this \
          manifest; expected `greeter` or `store`"
        ]
    );
}

#[test]
fn negative_instances_name_the_field_and_the_expected_range() {
    let problems = problems_of("invalid/negative-instances.yaml");
    assert_eq!(
        problems,
        [
            "spec.components[1].traits[0].properties.instances: expected a whole number from 0 \
          to 4294967295, found a number (-1)"
        ]
    );
}

#[test]
fn unknown_field_is_refused_with_the_fields_that_are_allowed() {
    let problems = problems_of("invalid/unknown-field.yaml");
    assert_eq!(
        problems,
        [
            "spec.components[0].properties.replicas: unknown field; expected one of `image`, \
          `id`, `config`, `secrets`, `allowedHosts` or `localData`"
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let problems = problems_of("invalid/many-problems.yaml");
    let expected = [
        ("kind", "expected `Application`, found `App`"),
        ("metadata.name", "invalid application name \"my.app\""),
        ("metadata.annotations.version", "`latest` is reserved"),
        ("spec.components[0].properties.image", "is empty"),
        (
            "spec.components[0].traits[0].type",
            "unknown trait type `autoscaler`",
        ),
        (
            "spec.components[0].traits[1].properties.instances",
            "found a number (2.5)",
        ),
        (
            "spec.components[0].traits[2].properties.interfaces",
            "is empty",
        ),
        (
            "spec.components[0].traits[2].properties.target.name",
            "no component named `nowhere`",
        ),
        (
            "spec.components[1].type",
            "expected `component` or `capability`, found `provider`",
        ),
        (
            "spec.components[1].traits[0].properties.spread",
            "every spread has weight 0",
        ),
    ];
    for (path, words) in expected {
        assert_problem(&problems, path, words);
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}

#[test]
fn the_error_message_lists_every_problem() {
    let err = fixture("invalid/many-problems.yaml").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("the manifest is invalid:\n  - "), "{text}");
    assert_eq!(text.lines().count(), 1 + err.problems().len(), "{text}");
}

const MINIMAL: &str = "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: hello
spec:
  components:
    - name: greeter
      type: component
      properties:
        image: file:///greeter.wasm
      traits:
        - type: spreadscaler
          properties:
            instances: 1
";

#[test]
fn a_manifest_without_version_gets_a_content_hash() {
    let a = Manifest::parse(MINIMAL).unwrap();
    let again = Manifest::parse(&format!("# same content, other text\n{MINIMAL}")).unwrap();
    let changed = Manifest::parse(&MINIMAL.replace("instances: 1", "instances: 2")).unwrap();
    assert!(a.version.starts_with(UNVERSIONED_PREFIX), "{}", a.version);
    assert_eq!(a.version.len(), UNVERSIONED_PREFIX.len() + 12);
    assert_eq!(a.version, again.version);
    assert_ne!(a.version, changed.version);
}

#[test]
fn a_component_or_capability_without_scaler_is_refused() {
    let text = MINIMAL.replace(
        "      traits:\n        - type: spreadscaler\n          properties:\n            instances: 1\n",
        "",
    );
    let err = Manifest::parse(&text).unwrap_err();
    let problems = match &err {
        ManifestError::Invalid { problems } => problems,
        other => panic!("{other}"),
    };
    assert_eq!(problems.len(), 1, "{err}");
    assert_eq!(problems[0].path, "spec.components[0].traits");
    assert!(
        problems[0]
            .message
            .contains("`greeter` has no spreadscaler")
            && problems[0].message.contains("run nowhere"),
        "{err}"
    );
    let stopped = MINIMAL.replace("instances: 1", "instances: 0");
    assert_eq!(
        Manifest::parse(&stopped)
            .unwrap()
            .component("greeter")
            .unwrap()
            .scaler
            .instances,
        0
    );
}

#[test]
fn two_scalers_on_one_component_are_refused() {
    let text = format!(
        "{MINIMAL}        - type: daemonscaler\n          properties:\n            instances: 1\n"
    );
    let err = Manifest::parse(&text).unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_problem(
        &problems,
        "spec.components[0].traits[1].type",
        "a component takes one scaler, and `spec.components[0].traits[0]`",
    );
}

#[test]
fn a_bare_config_reference_to_a_defined_config_uses_the_definition() {
    let text = MINIMAL.replace(
        "        image: file:///greeter.wasm\n",
        "        image: file:///greeter.wasm\n        config:\n          - name: shared\n          - name: shared\n            properties:\n              greeting: hi\n",
    );
    let m = Manifest::parse(&text).unwrap();
    let expected = ConfigRef::Owned {
        name: "shared".into(),
        values: map(&[("greeting", "hi")]),
    };
    assert_eq!(
        m.component("greeter").unwrap().config,
        [expected.clone(), expected]
    );
}

#[test]
fn one_config_name_with_two_different_definitions_is_refused() {
    let text = MINIMAL.replace(
        "        image: file:///greeter.wasm\n",
        "        image: file:///greeter.wasm\n        config:\n          - name: c\n            properties: {a: '1'}\n          - name: c\n            properties: {a: '2'}\n",
    );
    let err = Manifest::parse(&text).unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_problem(
        &problems,
        "spec.components[0].properties.config[1]",
        "config `c` is already defined with other properties at `spec.components[0].properties.config[0]`",
    );
}

#[test]
fn two_links_in_one_slot_are_refused() {
    let link = "        - type: link\n          properties:\n            target: greeter\n            namespace: wasi\n            package: keyvalue\n            interfaces: [store]\n";
    let text = format!("{MINIMAL}{link}{link}");
    let err = Manifest::parse(&text).unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_problem(
        &problems,
        "spec.components[0].traits[2]",
        "already routes `wasi:keyvalue` under link name `default`",
    );
}

#[test]
fn target_config_given_twice_is_refused() {
    let link = "        - type: link\n          properties:\n            target: {name: greeter, config: [{name: a}]}\n            target_config: [{name: b}]\n            namespace: wasi\n            package: keyvalue\n            interfaces: [store]\n";
    let err = Manifest::parse(&format!("{MINIMAL}{link}")).unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_problem(
        &problems,
        "spec.components[0].traits[1].properties.target_config",
        "also given in `target.config`",
    );
}

#[test]
fn ids_that_collide_are_refused() {
    let text = format!(
        "{MINIMAL}    - name: other\n      type: component\n      properties:\n        image: file:///other.wasm\n        id: hello-greeter\n"
    );
    let err = Manifest::parse(&text).unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_problem(
        &problems,
        "spec.components[1]",
        "component id `hello-greeter` is also the id of the component at `spec.components[0]`",
    );
}

#[test]
fn secrets_are_granted_by_reference_through_a_policy() {
    use trellis_lattice::secret::SecretRef;
    let manifest = fixture("valid/secrets.yaml").unwrap();
    let checker = manifest.component("checker").unwrap();
    assert_eq!(
        checker.config,
        [ConfigRef::Secret {
            reference: SecretRef {
                name: "db_password".into(),
                backend: "secrets-nats-kv".into(),
                key: "shop-db".into(),
                version: Some(2),
            }
        }]
    );
    assert_eq!(
        checker.config[0].lattice_name("shop"),
        "SECRET_shop/db_password"
    );
    let link = &checker.links[0];
    assert!(matches!(
        &link.target_config[..],
        [ConfigRef::Owned { name, .. }, ConfigRef::Secret { reference }]
            if name == "redis-url" && reference.key == "redis_password"
    ));
}

#[test]
fn one_name_is_one_secret_in_an_app() {
    let text = fixture_text("valid/secrets.yaml").replace("key: redis_password", "key: other");
    let text = text.replace("- name: password", "- name: db_password");
    let err = Manifest::parse(&text).unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_problem(
        &problems,
        "spec.components[0].traits[1].properties.target.secrets[0]",
        "secret `db_password` is already granted",
    );
}

#[test]
fn a_secret_must_name_a_defined_policy_and_carry_no_field() {
    let text = MINIMAL.replace(
        "        image: file:///greeter.wasm\n",
        "        image: file:///greeter.wasm\n        secrets:\n          - name: token\n            properties:\n              policy: nowhere\n              key: api-token\n              field: inner\n",
    );
    let err = Manifest::parse(&text).unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_problem(
        &problems,
        "spec.components[0].properties.secrets[0].properties.policy",
        "`spec.policies` does not define",
    );
    assert_problem(
        &problems,
        "spec.components[0].properties.secrets[0].properties.field",
        "unknown field",
    );
}

#[test]
fn text_that_is_not_yaml_is_a_syntax_error_with_a_location() {
    let err = Manifest::parse("apiVersion: [unclosed\n").unwrap_err();
    let ManifestError::Syntax { format, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*format, "YAML");
    assert!(message.contains("line"), "{message}");
    let err = Manifest::parse("{\"apiVersion\": }").unwrap_err();
    assert!(
        matches!(err, ManifestError::Syntax { format: "JSON", .. }),
        "{err:?}"
    );
}

#[test]
fn a_document_that_is_not_a_map_says_what_was_expected() {
    let err = Manifest::parse("- just\n- a list\n").unwrap_err();
    assert_eq!(err.problems()[0].message, "expected a map, found a list");
}

/// A one-component manifest whose properties end with `extra`.
fn fetch_app(extra: &str) -> String {
    format!(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: fetch\n  annotations:\n    version: v1\nspec:\n  components:\n    - name: fetch\n      type: component\n      properties:\n        image: file:///fetch.wasm\n{extra}      traits:\n        - type: spreadscaler\n          properties:\n            instances: 1\n"
    )
}

#[test]
fn allowed_hosts_grant_outbound_http_and_bad_entries_are_named() {
    let manifest = Manifest::parse(&fetch_app(
        "        allowedHosts:\n          - https://api.example.com\n          - \"*.example.com:443\"\n",
    ))
    .unwrap();
    assert_eq!(
        manifest.components[0].allowed_hosts,
        ["https://api.example.com", "*.example.com:443"]
    );
    assert!(
        Manifest::parse(&fetch_app("")).unwrap().components[0]
            .allowed_hosts
            .is_empty()
    );
    let err = Manifest::parse(&fetch_app("        allowedHosts: [\"ftp://x\"]\n")).unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_problem(
        &problems,
        "spec.components[0].properties.allowedHosts",
        "not a valid allowed host",
    );
}

#[test]
fn max_unavailable_defaults_to_one_and_zero_is_refused() {
    let default = Manifest::parse(MINIMAL).unwrap();
    assert_eq!(default.components[0].scaler.max_unavailable, 1);
    let two = Manifest::parse(&MINIMAL.replace(
        "instances: 1",
        "instances: 1\n            maxUnavailable: 2",
    ))
    .unwrap();
    assert_eq!(two.components[0].scaler.max_unavailable, 2);
    let err = Manifest::parse(&MINIMAL.replace(
        "instances: 1",
        "instances: 1\n            maxUnavailable: 0",
    ))
    .unwrap_err();
    let ManifestError::Invalid { problems } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        problems[0].path,
        "spec.components[0].traits[0].properties.maxUnavailable"
    );
    assert!(
        problems[0].message.contains("would never upgrade a host"),
        "{err}"
    );
}
