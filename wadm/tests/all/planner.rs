//! Planning against hand-built lattices. Every test that changes the
//! lattice goes through `converge`, which applies the plan the way hosts
//! would and checks that planning again gives nothing to do.

use std::collections::BTreeMap;

use trellis_lattice::Link;
use trellis_lattice::ctl::{ScaleComponentCommand, StartProviderCommand};
use wadm::ownership::annotations_for;
use wadm::{Command, DataHome, Manifest, ObservedLattice, Plan, plan, plan_undeploy};

use crate::support::{
    app_component, app_provider, apply, component_spread, converge, example, example_text, fixture,
    host, lattice, provider_hosts, unmanaged_component,
};

fn manifest(yaml: &str) -> Manifest {
    Manifest::parse(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// `(host, instances)` pairs as the map `component_spread` returns.
fn spread(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(h, n)| ((*h).to_owned(), *n)).collect()
}

fn scales(plan: &Plan) -> Vec<&ScaleComponentCommand> {
    plan.commands
        .iter()
        .filter_map(|c| match c {
            Command::ScaleComponent(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn starts(plan: &Plan) -> Vec<&StartProviderCommand> {
    plan.commands
        .iter()
        .filter_map(|c| match c {
            Command::StartProvider(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn puts(plan: &Plan) -> Vec<&Link> {
    plan.commands
        .iter()
        .filter_map(|c| match c {
            Command::PutLink(l) => Some(l),
            _ => None,
        })
        .collect()
}

/// An app `shop` with one component `cart` and the given scaler trait.
fn shop(version: &str, image: &str, scaler: &str) -> Manifest {
    manifest(&format!(
        "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: shop
  annotations:
    version: {version}
spec:
  components:
    - name: cart
      type: component
      properties:
        image: {image}
      traits:
{scaler}"
    ))
}

const WEIGHTED: &str = "
        - type: spreadscaler
          properties:
            instances: 6
            spread:
              - name: east
                weight: 2
                requirements:
                  zone: east
              - name: west
                weight: 1
                requirements:
                  zone: west
";

#[test]
fn six_instances_at_weights_two_to_one_land_four_and_two() {
    let app = shop("v1", "file:///cart.wasm", WEIGHTED);
    let mut lattice = lattice([
        host("NEAST", &["zone=east"]),
        host("NWEST", &["zone=west"]),
        host("NPLAIN", &[]),
    ]);
    let first = converge(&app, &mut lattice);
    assert!(first.problems.is_empty(), "{:?}", first.problems);
    assert_eq!(
        component_spread(&lattice, "shop-cart"),
        spread(&[("NEAST", 4), ("NWEST", 2)])
    );
    for scale in scales(&first) {
        assert_eq!(scale.annotations, Some(annotations_for("shop")));
        assert_eq!(scale.component_ref, "file:///cart.wasm");
        assert!(!scale.allow_update);
    }
}

#[test]
fn a_spreads_share_is_divided_evenly_over_its_matching_hosts() {
    let app = shop("v1", "file:///cart.wasm", WEIGHTED);
    let mut lattice = lattice([
        host("NEAST1", &["zone=east"]),
        host("NEAST2", &["zone=east", "gpu=true"]),
        host("NWEST", &["zone=west"]),
    ]);
    converge(&app, &mut lattice);
    assert_eq!(
        component_spread(&lattice, "shop-cart"),
        spread(&[("NEAST1", 2), ("NEAST2", 2), ("NWEST", 2)])
    );
}

#[test]
fn requirements_no_host_satisfies_are_a_problem_and_no_command() {
    let scaler = "
        - type: spreadscaler
          properties:
            instances: 4
            spread:
              - name: east
                requirements:
                  zone: east
              - name: north
                requirements:
                  zone: north
";
    let app = shop("v1", "file:///cart.wasm", scaler);
    let mut lattice = lattice([host("NEAST", &["zone=east"]), host("NWEST", &["zone=west"])]);
    let first = converge(&app, &mut lattice);
    assert_eq!(
        first.problems,
        [
            "spreadscaler of `cart`, spread `north`: no alive host with labels zone=north to run it on"
        ]
    );
    assert_eq!(
        component_spread(&lattice, "shop-cart"),
        spread(&[("NEAST", 2)])
    );
    // The problem stays for status while nothing is left to do.
    let again = plan(&app, &lattice);
    assert!(again.is_empty());
    assert_eq!(again.problems, first.problems);
}

#[test]
fn daemonscaler_runs_on_every_matching_host() {
    let app = manifest(
        "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: telemetry
  annotations:
    version: v1
spec:
  components:
    - name: shipper
      type: component
      properties:
        image: file:///shipper.wasm
      traits:
        - type: daemonscaler
          properties:
            instances: 2
            spread:
              - name: workers
                requirements:
                  role: worker
    - name: agent
      type: capability
      properties:
        image: file:///agent
      traits:
        - type: daemonscaler
          properties:
            instances: 1
",
    );
    let mut lattice = lattice([
        host("N1", &["role=worker"]),
        host("N2", &["role=worker"]),
        host("N3", &["role=worker"]),
        host("NDB", &["role=database"]),
    ]);
    converge(&app, &mut lattice);
    assert_eq!(
        component_spread(&lattice, "telemetry-shipper"),
        spread(&[("N1", 2), ("N2", 2), ("N3", 2)])
    );
    assert_eq!(
        provider_hosts(&lattice, "telemetry-agent"),
        ["N1", "N2", "N3", "NDB"]
    );

    // A new worker gets its share; nothing else changes.
    lattice
        .hosts
        .insert("N4".into(), host("N4", &["role=worker"]));
    let joined = converge(&app, &mut lattice);
    assert_eq!(joined.commands.len(), 2, "{:#?}", joined.commands);
    assert!(
        scales(&joined)
            .iter()
            .all(|s| s.host_id == "N4" && s.max_instances == 2)
    );
    assert!(starts(&joined).iter().all(|s| s.host_id == "N4"));
}

/// The notes app: `api` linked to a keyvalue provider, behind a gateway.
fn notes(version: &str, api_image: &str, store_target: &str, store_link_name: &str) -> Manifest {
    manifest(&format!(
        "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: notes
  annotations:
    version: {version}
spec:
  components:
    - name: api
      type: component
      properties:
        image: {api_image}
      traits:
        - type: spreadscaler
          properties:
            instances: 4
        - type: link
          properties:
            name: {store_link_name}
            target: {store_target}
            namespace: wasi
            package: keyvalue
            interfaces: [store, atomics]
    - name: sqlite
      type: capability
      properties:
        image: file:///keyvalue-sqlite
      traits:
        - type: spreadscaler
          properties:
            instances: 1
    - name: redis
      type: capability
      properties:
        image: file:///keyvalue-redis
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"
    ))
}

#[test]
fn an_upgrade_swaps_the_image_in_place_one_host_at_a_time_and_puts_the_new_link_target() {
    let v1 = notes("v1", "file:///api-v1.wasm", "sqlite", "default");
    let mut lattice = lattice([host("NA", &[]), host("NB", &[])]);
    converge(&v1, &mut lattice);
    assert_eq!(
        component_spread(&lattice, "notes-api"),
        spread(&[("NA", 2), ("NB", 2)])
    );

    let v2 = notes("v2", "file:///api-v2.wasm", "redis", "default");
    let mut swapped = Vec::new();
    for round in 0..2 {
        let upgrade = plan(&v2, &lattice);
        let scales = scales(&upgrade);
        assert_eq!(scales.len(), 1, "round {round}: {:#?}", upgrade.commands);
        let scale = scales[0];
        assert_eq!(scale.component_ref, "file:///api-v2.wasm");
        assert_eq!(scale.max_instances, 2, "the placement stays");
        assert!(scale.allow_update, "an image change must allow the update");
        swapped.push(scale.host_id.clone());
        if round == 0 {
            assert!(
                upgrade
                    .waiting
                    .iter()
                    .any(|w| w.contains("NB") && w.contains("wait their turn")),
                "{:?}",
                upgrade.waiting
            );
            let links = puts(&upgrade);
            assert_eq!(links.len(), 1);
            assert_eq!(
                (links[0].source_id.as_str(), links[0].target.as_str()),
                ("notes-api", "notes-redis")
            );
            assert!(
                !upgrade
                    .commands
                    .iter()
                    .any(|c| matches!(c, Command::DeleteLink(_))),
                "a put replaces a link in the same slot: {:#?}",
                upgrade.commands
            );
        }
        apply(&mut lattice, &upgrade);
    }
    assert_eq!(swapped, ["NA", "NB"]);
    assert!(plan(&v2, &lattice).is_empty());
    assert_eq!(lattice.links.len(), 1);
}

#[test]
fn a_host_that_refuses_the_new_image_halts_the_rollout_there() {
    let v1 = notes("v1", "file:///api-v1.wasm", "sqlite", "default");
    let mut lattice = lattice([host("NA", &[]), host("NB", &[]), host("NC", &[])]);
    converge(&v1, &mut lattice);
    let v2 = notes("v2", "file:///api-v2.wasm", "sqlite", "default");
    // NA refuses: its swap never lands, however often it is planned.
    for _ in 0..3 {
        let upgrade = plan(&v2, &lattice);
        let swaps: Vec<&str> = scales(&upgrade)
            .iter()
            .map(|s| s.host_id.as_str())
            .collect();
        assert_eq!(swaps, ["NA"], "{:#?}", upgrade.commands);
    }
    let images: Vec<String> = lattice
        .hosts
        .values()
        .filter_map(|h| h.component("notes-api").map(|c| c.image_ref.clone()))
        .collect();
    assert_eq!(
        images, ["file:///api-v1.wasm"; 3],
        "the old image keeps serving"
    );
}

#[test]
fn max_unavailable_swaps_that_many_hosts_at_once_and_resizes_the_others_on_their_image() {
    let v1 = manifest(&notes_text("v1"));
    let mut lattice = lattice([host("NA", &[]), host("NB", &[]), host("NC", &[])]);
    converge(&v1, &mut lattice);
    // v2 swaps two at a time and grows from 4 instances to 6.
    let v2 = manifest(
        &notes_text("v2")
            .replace("file:///api.wasm", "file:///api-v2.wasm")
            .replace(
                "instances: 4",
                "instances: 6\n            maxUnavailable: 2",
            ),
    );
    let upgrade = plan(&v2, &lattice);
    let scales = scales(&upgrade);
    let swaps: Vec<&str> = scales
        .iter()
        .filter(|s| s.allow_update)
        .map(|s| s.host_id.as_str())
        .collect();
    assert_eq!(swaps.len(), 2, "{:#?}", upgrade.commands);
    let waiting: Vec<_> = scales.iter().filter(|s| !s.allow_update).collect();
    assert_eq!(waiting.len(), 1, "{:#?}", upgrade.commands);
    assert_eq!(
        waiting[0].component_ref, "file:///api.wasm",
        "resized on its old image"
    );
    assert_eq!(waiting[0].max_instances, 2);
}

#[test]
fn a_link_that_moves_to_another_slot_deletes_the_old_one() {
    let v1 = notes("v1", "file:///api.wasm", "sqlite", "default");
    let mut lattice = lattice([host("NA", &[])]);
    converge(&v1, &mut lattice);
    let v2 = notes("v2", "file:///api.wasm", "sqlite", "primary");
    let moved = converge(&v2, &mut lattice);
    assert_eq!(moved.commands.len(), 2, "{:#?}", moved.commands);
    assert!(matches!(&moved.commands[0], Command::PutLink(l) if l.name == "primary"));
    assert!(matches!(&moved.commands[1], Command::DeleteLink(d) if d.name == "default"));
}

#[test]
fn a_provider_whose_image_changes_is_restarted_on_the_same_host() {
    let mut lattice = lattice([host("NA", &[]), host("NB", &[])]);
    converge(&manifest(&notes_text("v1")), &mut lattice);
    let before = provider_hosts(&lattice, "notes-sqlite");
    let v2 = manifest(
        &notes_text("v2").replace("file:///keyvalue-sqlite\n", "file:///keyvalue-sqlite-2\n"),
    );
    let restart = converge(&v2, &mut lattice);
    assert!(
        matches!(&restart.commands[..], [Command::StopProvider(stop), Command::StartProvider(start)]
            if stop.host_id == start.host_id && start.provider_ref == "file:///keyvalue-sqlite-2"),
        "{:#?}",
        restart.commands
    );
    assert_eq!(provider_hosts(&lattice, "notes-sqlite"), before);
}

fn notes_text(version: &str) -> String {
    // The same text `notes` parses, for tests that edit it.
    format!(
        "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: notes
  annotations:
    version: {version}
spec:
  components:
    - name: api
      type: component
      properties:
        image: file:///api.wasm
      traits:
        - type: spreadscaler
          properties:
            instances: 4
        - type: link
          properties:
            target: sqlite
            namespace: wasi
            package: keyvalue
            interfaces: [store, atomics]
    - name: sqlite
      type: capability
      properties:
        image: file:///keyvalue-sqlite
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"
    )
}

#[test]
fn components_dropped_from_the_manifest_are_stopped() {
    let mut lattice = lattice([host("NA", &[])]);
    converge(
        &notes("v1", "file:///api.wasm", "sqlite", "default"),
        &mut lattice,
    );
    let v2 = manifest(&notes_text("v2"));
    let dropped = converge(&v2, &mut lattice);
    assert!(
        matches!(&dropped.commands[..], [Command::StopProvider(stop)] if stop.provider_id == "notes-redis"),
        "{:#?}",
        dropped.commands
    );
}

#[test]
fn undeploy_removes_only_the_apps_own_resources() {
    let mut lattice = lattice([host("NA", &[]), host("NB", &[])]);
    let notes_app = fixture("valid/links.yaml").unwrap();
    let blog = manifest(
        &notes_text("v1")
            .replace("name: notes", "name: blog")
            .replace("file:///api.wasm", "file:///blog.wasm"),
    );
    // Things nobody declared: a component, its link and its config.
    lattice
        .hosts
        .get_mut("NA")
        .unwrap()
        .components
        .push(unmanaged_component("tool", "file:///tool.wasm", 1));
    let tool_link = Link {
        source_id: "tool".into(),
        target: "blog-sqlite".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into()],
        ..Link::default()
    };
    lattice.links.push(tool_link.clone());
    lattice
        .configs
        .insert("notes-tool-settings".into(), BTreeMap::new());
    lattice
        .configs
        .insert("shared-redis-credentials".into(), BTreeMap::new());
    converge(&notes_app, &mut lattice);
    converge(&blog, &mut lattice);
    let untouched_blog = lattice.clone();

    let undeploy = plan_undeploy("notes", &lattice);
    for command in &undeploy.commands {
        let touches_notes = match command {
            Command::ScaleComponent(s) => {
                s.component_id.starts_with("notes-") && s.max_instances == 0
            }
            Command::StopProvider(s) => s.provider_id.starts_with("notes-"),
            Command::DeleteLink(d) => d.source_id.starts_with("notes-"),
            Command::DeleteConfig { name } => name.starts_with("notes/"),
            _ => false,
        };
        assert!(
            touches_notes,
            "undeploy touched something else: {command:?}"
        );
    }
    apply(&mut lattice, &undeploy);

    assert!(lattice.owned_ids("notes").is_empty());
    assert!(
        !lattice
            .links
            .iter()
            .any(|l| l.source_id.starts_with("notes-"))
    );
    assert!(!lattice.configs.keys().any(|k| k.starts_with("notes/")));
    // The other app, the unmanaged component, its link and unrelated config stay.
    assert!(plan(&blog, &lattice).is_empty());
    assert_eq!(lattice.owned_ids("blog"), untouched_blog.owned_ids("blog"));
    assert!(lattice.hosts["NA"].component("tool").is_some());
    assert!(lattice.links.contains(&tool_link));
    assert!(lattice.configs.contains_key("notes-tool-settings"));
    assert!(lattice.configs.contains_key("shared-redis-credentials"));
    assert!(
        plan_undeploy("notes", &lattice).is_empty(),
        "undeploy is idempotent"
    );
}

#[test]
fn a_lattice_that_matches_plans_to_nothing() {
    for (name, app) in [
        ("spreadscaler", fixture("valid/spreadscaler.yaml").unwrap()),
        ("daemonscaler", fixture("valid/daemonscaler.yaml").unwrap()),
        ("links", fixture("valid/links.yaml").unwrap()),
        ("dev", example("dev.yaml")),
        ("prod", example("prod.yaml")),
        ("registry", example("registry.yaml")),
    ] {
        let mut lattice = lattice([
            host("N1", &["region=eu", "role=ingest", "os=linux", "gpu=true"]),
            host("N2", &["region=us", "tier=edge"]),
            host("N3", &["region=eu", "gpu=true"]),
        ]);
        lattice
            .configs
            .insert("shared-redis-credentials".into(), BTreeMap::new());
        let first = converge(&app, &mut lattice);
        assert!(!first.is_empty(), "{name}: a fresh lattice needs work");
        assert!(first.problems.is_empty(), "{name}: {:?}", first.problems);
    }
}

#[test]
fn granted_secrets_become_references_the_component_and_link_list() {
    let app = fixture("valid/secrets.yaml").unwrap();
    let mut lattice = lattice([host("NA", &[])]);
    let first = converge(&app, &mut lattice);
    assert!(first.problems.is_empty(), "{:?}", first.problems);
    // The references are put, with no value in them.
    let reference = &lattice.configs["SECRET_shop/db_password"];
    assert_eq!(
        reference,
        &BTreeMap::from([
            ("name".to_string(), "db_password".to_string()),
            ("backend".to_string(), "secrets-nats-kv".to_string()),
            ("key".to_string(), "shop-db".to_string()),
            ("version".to_string(), "2".to_string()),
        ])
    );
    assert!(lattice.configs.contains_key("SECRET_shop/password"));
    // The component lists its own; the link's target config lists the link's.
    let scaled = first.commands.iter().find_map(|c| match c {
        Command::ScaleComponent(scale) if scale.component_id == "shop-checker" => Some(scale),
        _ => None,
    });
    assert_eq!(
        scaled.map(|s| s.config.clone()),
        Some(vec!["SECRET_shop/db_password".to_string()])
    );
    let link = first.commands.iter().find_map(|c| match c {
        Command::PutLink(link) => Some(link),
        _ => None,
    });
    assert_eq!(
        link.map(|l| l.target_config.clone()),
        Some(vec![
            "shop/redis-url".to_string(),
            "SECRET_shop/password".to_string()
        ])
    );
    // Undeployed, the references go with the app.
    let undeploy = plan_undeploy("shop", &lattice);
    assert!(
        undeploy.commands.iter().any(
            |c| matches!(c, Command::DeleteConfig { name } if name == "SECRET_shop/db_password")
        )
    );
}

#[test]
fn the_dev_app_spreads_over_two_hosts() {
    let dev = example("dev.yaml");
    let mut lattice = lattice([host("NA", &[]), host("NB", &[])]);
    let first = converge(&dev, &mut lattice);
    assert_eq!(
        component_spread(&lattice, "kv-counter"),
        spread(&[("NA", 32), ("NB", 32)])
    );
    // Each provider on one host, on different hosts.
    assert_eq!(provider_hosts(&lattice, "keyvalue-sqlite"), ["NA"]);
    assert_eq!(provider_hosts(&lattice, "http-server"), ["NB"]);
    assert!(
        matches!(&first.commands[0], Command::PutConfig { name, values }
        if name == "kv-counter/counter-http" && values["address"] == "127.0.0.1:8080")
    );
}

#[test]
fn dev_to_prod_moves_the_counter_link_without_deleting_it() {
    let mut lattice = lattice([host("NA", &[])]);
    converge(&example("dev.yaml"), &mut lattice);
    // Over the passes it takes (the link waits for Redis to run, SQLite
    // for the link to leave it), the slot is put again, never deleted.
    let prod = example("prod.yaml");
    let mut commands = Vec::new();
    loop {
        let next = plan(&prod, &lattice);
        if next.is_empty() {
            break;
        }
        apply(&mut lattice, &next);
        commands.extend(next.commands);
        assert!(commands.len() < 20, "{commands:#?}");
    }
    assert!(
        !commands.iter().any(|c| matches!(c, Command::DeleteLink(_))),
        "{commands:#?}"
    );
    let links: Vec<&Link> = commands
        .iter()
        .filter_map(|c| match c {
            Command::PutLink(link) => Some(link),
            _ => None,
        })
        .collect();
    assert_eq!(links.len(), 1, "{commands:#?}");
    assert_eq!(
        (links[0].target.as_str(), links[0].target_config.as_slice()),
        (
            "keyvalue-redis",
            &["kv-counter/counter-redis".to_owned()][..]
        )
    );
}

#[test]
fn commands_come_config_then_links_then_starts() {
    let app = fixture("valid/links.yaml").unwrap();
    let mut lattice = lattice([host("NA", &[])]);
    lattice
        .configs
        .insert("shared-redis-credentials".into(), BTreeMap::new());
    let first = converge(&app, &mut lattice);
    let rank = |c: &Command| match c {
        Command::PutConfig { .. } => 0,
        Command::PutLink(_) => 1,
        Command::StartProvider(_) | Command::ScaleComponent(_) => 2,
        other => panic!("unexpected {other:?}"),
    };
    let ranks: Vec<u8> = first.commands.iter().map(rank).collect();
    assert!(ranks.is_sorted(), "{:#?}", first.commands);
    assert_eq!(ranks.iter().filter(|r| **r == 0).count(), 3);
    assert_eq!(ranks.iter().filter(|r| **r == 1).count(), 3);
}

#[test]
fn a_host_that_disappears_has_its_share_placed_on_the_rest() {
    let mut lattice = lattice([host("NA", &[]), host("NB", &[]), host("NC", &[])]);
    let app = shop(
        "v1",
        "file:///cart.wasm",
        "
        - type: spreadscaler
          properties:
            instances: 6
",
    );
    converge(&app, &mut lattice);
    assert_eq!(
        component_spread(&lattice, "shop-cart"),
        spread(&[("NA", 2), ("NB", 2), ("NC", 2)])
    );

    lattice.hosts.get_mut("NB").unwrap().alive = false;
    let moved = converge(&app, &mut lattice);
    assert_eq!(scales(&moved).len(), 2, "{:#?}", moved.commands);
    assert!(
        scales(&moved)
            .iter()
            .all(|s| s.host_id != "NB" && s.max_instances == 3)
    );
    let alive: BTreeMap<String, u32> = component_spread(&lattice, "shop-cart")
        .into_iter()
        .filter(|(h, _)| h != "NB")
        .collect();
    assert_eq!(alive, spread(&[("NA", 3), ("NC", 3)]));
}

#[test]
fn a_provider_on_a_lost_host_starts_elsewhere() {
    let mut lattice = lattice([host("NA", &[]), host("NB", &[])]);
    let dev = example("dev.yaml");
    converge(&dev, &mut lattice);
    lattice.hosts.get_mut("NA").unwrap().alive = false;
    let moved = converge(&dev, &mut lattice);
    assert_eq!(starts(&moved).len(), 1);
    assert_eq!(starts(&moved)[0].provider_id, "keyvalue-sqlite");
    assert_eq!(starts(&moved)[0].host_id, "NB");
    assert_eq!(component_spread(&lattice, "kv-counter")["NB"], 64);
}

#[test]
fn placement_is_stable_when_nothing_changed() {
    let app = shop(
        "v1",
        "file:///cart.wasm",
        "
        - type: spreadscaler
          properties:
            instances: 5
",
    );
    // A spread wadm might not choose itself, but a valid one: keep it.
    let mut na = host("NA", &[]);
    na.components
        .push(app_component("shop", "shop-cart", "file:///cart.wasm", 2));
    let mut nb = host("NB", &[]);
    nb.components
        .push(app_component("shop", "shop-cart", "file:///cart.wasm", 3));
    let lattice = lattice([na, nb, host("NC", &[])]);
    let planned = plan(&app, &lattice);
    assert!(planned.is_empty(), "{:#?}", planned.commands);
}

#[test]
fn a_provider_stays_where_it_runs_even_if_another_host_is_emptier() {
    let dev = example("dev.yaml");
    let mut lattice = lattice([host("NA", &[]), host("NB", &[])]);
    lattice
        .hosts
        .get_mut("NB")
        .unwrap()
        .providers
        .push(app_provider(
            "kv-counter",
            "keyvalue-sqlite",
            "file://../build/trellis-keyvalue-sqlite",
        ));
    converge(&dev, &mut lattice);
    assert_eq!(provider_hosts(&lattice, "keyvalue-sqlite"), ["NB"]);
}

#[test]
fn a_host_running_the_same_id_for_someone_else_is_left_alone() {
    let app = shop(
        "v1",
        "file:///cart.wasm",
        "
        - type: spreadscaler
          properties:
            instances: 4
",
    );
    let mut na = host("NA", &[]);
    na.components.push(unmanaged_component(
        "shop-cart",
        "file:///hand-built.wasm",
        1,
    ));
    let mut shared = lattice([na, host("NB", &[])]);
    converge(&app, &mut shared);
    assert_eq!(
        shared.hosts["NA"].components,
        [unmanaged_component(
            "shop-cart",
            "file:///hand-built.wasm",
            1
        )]
    );
    assert_eq!(
        shared.hosts["NB"]
            .component("shop-cart")
            .unwrap()
            .max_instances,
        4
    );

    let mut only_na = host("NA", &[]);
    only_na.components.push(unmanaged_component(
        "shop-cart",
        "file:///hand-built.wasm",
        1,
    ));
    let blocked = plan(&app, &lattice([only_na]));
    assert!(blocked.is_empty());
    assert_eq!(
        blocked.problems,
        ["spreadscaler of `cart`: every alive host already runs `shop-cart` outside this app"]
    );
}

#[test]
fn config_is_put_under_the_app_prefix_updated_and_deleted_with_it() {
    let with_config = |values: &str| {
        manifest(&format!(
            "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: shop
spec:
  components:
    - name: cart
      type: component
      properties:
        image: file:///cart.wasm
        config:
{values}          - name: external-settings
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"
        ))
    };
    let mut lattice = lattice([host("NA", &[])]);
    let v1 = with_config(
        "          - name: cart-settings\n            properties:\n              currency: EUR\n",
    );
    let first = converge(&v1, &mut lattice);
    assert_eq!(
        first.problems,
        [
            "config `external-settings` used by `cart` does not exist; create it with `wash config put external-settings KEY=VALUE`"
        ]
    );
    assert_eq!(lattice.configs["shop/cart-settings"]["currency"], "EUR");
    assert_eq!(
        scales(&first)[0].config,
        ["shop/cart-settings", "external-settings"]
    );

    let v2 = with_config(
        "          - name: cart-settings\n            properties:\n              currency: USD\n",
    );
    let changed = converge(&v2, &mut lattice);
    assert!(
        matches!(&changed.commands[..], [Command::PutConfig { name, values }]
        if name == "shop/cart-settings" && values["currency"] == "USD")
    );

    lattice
        .configs
        .insert("external-settings".into(), BTreeMap::new());
    let v3 = with_config("");
    let removed = converge(&v3, &mut lattice);
    assert!(
        matches!(&removed.commands[..], [Command::DeleteConfig { name }] if name == "shop/cart-settings")
    );
    assert!(removed.problems.is_empty());
}

#[test]
fn a_component_scaled_to_zero_stops_but_its_links_are_put() {
    let mut lattice = lattice([host("NA", &[])]);
    let v1 = notes("v1", "file:///api.wasm", "sqlite", "default");
    converge(&v1, &mut lattice);
    let text = notes_text("v2").replace(
        "          properties:\n            instances: 4\n        - type: link",
        "          properties:\n            instances: 0\n        - type: link",
    );
    assert_ne!(text, notes_text("v2"));
    let stopped = manifest(&text);
    let after = converge(&stopped, &mut lattice);
    assert!(
        component_spread(&lattice, "notes-api").is_empty(),
        "{:#?}",
        after.commands
    );
    assert!(lattice.links.iter().any(|l| l.source_id == "notes-api"));
    assert!(after.problems.is_empty(), "{:?}", after.problems);
}

#[test]
fn a_provider_spread_wider_than_the_lattice_is_a_problem() {
    let app = manifest(&notes_text("v1").replace(
        "image: file:///keyvalue-sqlite\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: 1",
        "image: file:///keyvalue-sqlite\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: 3",
    ));
    let mut lattice = lattice([host("NA", &[]), host("NB", &[])]);
    let first = converge(&app, &mut lattice);
    assert_eq!(provider_hosts(&lattice, "notes-sqlite"), ["NA", "NB"]);
    assert_eq!(
        first.problems,
        [
            "spreadscaler of `sqlite`: wants 3 instances but only 2 hosts can run one (a host runs one process per provider)"
        ]
    );
}

#[test]
fn things_of_other_apps_do_not_count_as_ours() {
    let app = shop("v1", "file:///cart.wasm", WEIGHTED);
    let mut east = host("NEAST", &["zone=east"]);
    let other = app_component("blog", "blog-api", "file:///blog.wasm", 1);
    east.components.push(other.clone());
    let mut lattice: ObservedLattice = lattice([east, host("NWEST", &["zone=west"])]);
    converge(&app, &mut lattice);
    assert!(lattice.hosts["NEAST"].components.contains(&other));
}

#[test]
fn overlapping_spreads_give_each_host_to_the_first_spread_it_matches() {
    let scaler = "
        - type: spreadscaler
          properties:
            instances: 6
            spread:
              - name: east
                weight: 2
                requirements:
                  zone: east
              - name: anywhere
                weight: 1
";
    let app = shop("v1", "file:///cart.wasm", scaler);
    let mut both = lattice([host("NEAST", &["zone=east"]), host("NWEST", &["zone=west"])]);
    converge(&app, &mut both);
    assert_eq!(
        component_spread(&both, "shop-cart"),
        spread(&[("NEAST", 4), ("NWEST", 2)])
    );

    let only_east = plan(&app, &lattice([host("NEAST", &["zone=east"])]));
    assert_eq!(
        only_east.problems,
        [
            "spreadscaler of `cart`, spread `anywhere`: every alive host already serves an earlier spread"
        ]
    );
}

#[test]
fn scaling_down_takes_instances_from_the_fullest_hosts() {
    let scaled = |n: u32| {
        shop(
            "v1",
            "file:///cart.wasm",
            &format!(
                "        - type: spreadscaler\n          properties:\n            instances: {n}\n"
            ),
        )
    };
    let mut lattice = lattice([host("NA", &[]), host("NB", &[]), host("NC", &[])]);
    converge(&scaled(7), &mut lattice);
    assert_eq!(
        component_spread(&lattice, "shop-cart"),
        spread(&[("NA", 3), ("NB", 2), ("NC", 2)])
    );
    let down = converge(&scaled(2), &mut lattice);
    assert!(
        down.commands
            .iter()
            .all(|c| matches!(c, Command::ScaleComponent(s) if s.max_instances < 3))
    );
    assert_eq!(
        component_spread(&lattice, "shop-cart"),
        spread(&[("NA", 1), ("NB", 1)])
    );
    converge(&scaled(0), &mut lattice);
    assert!(component_spread(&lattice, "shop-cart").is_empty());
}

/// dev.yaml converged on NA and NB, with keyvalue-sqlite's data recorded
/// on the host that runs it.
fn dev_with_sqlite_data() -> (Manifest, ObservedLattice, String) {
    let dev = example("dev.yaml");
    let mut lattice = lattice([host("NA", &[]), host("NB", &[])]);
    converge(&dev, &mut lattice);
    let home = provider_hosts(&lattice, "keyvalue-sqlite")[0].clone();
    lattice.data_homes.insert(
        "keyvalue-sqlite".into(),
        DataHome {
            host_id: home.clone(),
            path: "/var/lib/trellis/providers/default/keyvalue-sqlite".into(),
        },
    );
    (dev, lattice, home)
}

#[test]
fn a_provider_with_local_data_is_not_moved_when_its_host_dies() {
    let (dev, mut lattice, home) = dev_with_sqlite_data();
    lattice.hosts.get_mut(&home).unwrap().alive = false;
    let plan = plan(&dev, &lattice);
    assert!(
        starts(&plan)
            .iter()
            .all(|s| s.provider_id != "keyvalue-sqlite"),
        "{:#?}",
        plan.commands
    );
    let problem = plan
        .problems
        .iter()
        .find(|p| p.contains("keyvalue-sqlite"))
        .unwrap_or_else(|| panic!("{:#?}", plan.problems));
    assert!(problem.contains(&home), "{problem}");
    assert!(
        problem.contains("/var/lib/trellis/providers/default/keyvalue-sqlite"),
        "{problem}"
    );
    assert!(problem.contains("localData: movable"), "{problem}");

    // Back: it runs there again, and nowhere else.
    lattice.hosts.get_mut(&home).unwrap().alive = true;
    lattice.hosts.get_mut(&home).unwrap().providers.clear();
    converge(&dev, &mut lattice);
    assert_eq!(provider_hosts(&lattice, "keyvalue-sqlite"), [home]);
}

#[test]
fn a_provider_marked_movable_starts_elsewhere_without_its_data() {
    let (_, mut lattice, home) = dev_with_sqlite_data();
    let movable = manifest(&example_text("dev.yaml").replace(
        "image: file://../build/trellis-keyvalue-sqlite",
        "image: file://../build/trellis-keyvalue-sqlite\n        localData: movable",
    ));
    assert!(movable.components.iter().any(|c| c.data_movable));
    lattice.hosts.get_mut(&home).unwrap().alive = false;
    let plan = plan(&movable, &lattice);
    let moved: Vec<&str> = starts(&plan)
        .iter()
        .filter(|s| s.provider_id == "keyvalue-sqlite")
        .map(|s| s.host_id.as_str())
        .collect();
    assert_eq!(moved.len(), 1, "{:#?}", plan.commands);
    assert_ne!(moved[0], home);
}

#[test]
fn a_provider_without_local_data_moves_freely() {
    let prod = example("prod.yaml");
    let mut lattice = lattice([host("NA", &[]), host("NB", &[])]);
    converge(&prod, &mut lattice);
    let first = provider_hosts(&lattice, "keyvalue-redis")[0].clone();
    lattice.hosts.get_mut(&first).unwrap().alive = false;
    let plan = plan(&prod, &lattice);
    assert!(plan.problems.is_empty(), "{:#?}", plan.problems);
    assert!(
        starts(&plan)
            .iter()
            .any(|s| s.provider_id == "keyvalue-redis" && s.host_id != first),
        "{:#?}",
        plan.commands
    );
}

#[test]
fn local_data_must_be_pinned_or_movable() {
    let text = example_text("dev.yaml").replace(
        "image: file://../build/trellis-keyvalue-sqlite",
        "image: file://../build/trellis-keyvalue-sqlite\n        localData: sometimes",
    );
    let err = Manifest::parse(&text).err().unwrap().to_string();
    assert!(
        err.contains("localData") && err.contains("`pinned`"),
        "{err}"
    );
}

#[test]
fn an_id_held_by_an_app_being_removed_is_waited_for_not_a_failure() {
    let mut lattice = lattice([host("NA", &[])]);
    let old = app_provider("old-counter", "keyvalue-sqlite", "file:///kv");
    lattice.hosts.get_mut("NA").unwrap().providers.push(old);
    let dev = example("dev.yaml");

    // While `old-counter` is still deployed, the id is someone else's.
    let blocked = plan(&dev, &lattice);
    assert!(
        blocked
            .problems
            .iter()
            .any(|p| p.contains("outside this app")),
        "{:?}",
        blocked.problems
    );

    // Once it is being undeployed, the new app waits for it to stop.
    lattice.retiring.insert("old-counter".into());
    let waiting = plan(&dev, &lattice);
    assert!(waiting.problems.is_empty(), "{:?}", waiting.problems);
    assert_eq!(
        waiting.waiting,
        [
            "spreadscaler of `kv`: waiting for `old-counter` to stop `keyvalue-sqlite`, which it is undeploying"
        ]
    );
    // What does not depend on that id goes ahead.
    assert!(!waiting.commands.is_empty());

    // Run by hand, the id never frees itself: still a problem.
    let by_hand = trellis_lattice::ctl::ProviderDescription {
        id: "keyvalue-sqlite".into(),
        ..Default::default()
    };
    lattice.hosts.get_mut("NA").unwrap().providers = vec![by_hand];
    assert!(!plan(&dev, &lattice).problems.is_empty());
}
