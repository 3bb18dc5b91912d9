//! Test helpers: fixtures, hand-built lattices, and a model host that
//! applies a plan the way real hosts would, so tests can check that
//! planning again after applying gives nothing to do.

use std::collections::BTreeMap;
use std::path::PathBuf;

use trellis_lattice::ctl::{ComponentDescription, ProviderDescription};
use wadm::ownership::annotations_for;
use wadm::{Command, Manifest, ManifestError, ObservedHost, ObservedLattice, Plan, plan};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text of `tests/fixtures/{name}`.
pub fn fixture_text(name: &str) -> String {
    let path = crate_dir().join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture, parsed and validated.
pub fn fixture(name: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(&fixture_text(name))
}

/// One of the repository's example manifests.
pub fn example(name: &str) -> Manifest {
    let text = example_text(name);
    Manifest::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The text of the example manifest `name`.
pub fn example_text(name: &str) -> String {
    let path = crate_dir().join("../examples/manifests").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An alive host with labels given as `key=value`.
pub fn host(id: &str, labels: &[&str]) -> ObservedHost {
    ObservedHost {
        id: id.to_owned(),
        labels: labels
            .iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        alive: true,
        ..ObservedHost::default()
    }
}

/// A lattice of these hosts and nothing else.
pub fn lattice(hosts: impl IntoIterator<Item = ObservedHost>) -> ObservedLattice {
    ObservedLattice {
        hosts: hosts.into_iter().map(|h| (h.id.clone(), h)).collect(),
        ..ObservedLattice::default()
    }
}

/// A component someone started by hand (no annotations).
pub fn unmanaged_component(id: &str, image: &str, max: u32) -> ComponentDescription {
    ComponentDescription {
        id: id.to_owned(),
        image_ref: image.to_owned(),
        max_instances: max,
        ..ComponentDescription::default()
    }
}

/// A component annotated as belonging to `app`.
pub fn app_component(app: &str, id: &str, image: &str, max: u32) -> ComponentDescription {
    ComponentDescription {
        annotations: Some(annotations_for(app)),
        ..unmanaged_component(id, image, max)
    }
}

/// A provider annotated as belonging to `app`.
pub fn app_provider(app: &str, id: &str, image: &str) -> ProviderDescription {
    ProviderDescription {
        id: id.to_owned(),
        image_ref: Some(image.to_owned()),
        annotations: Some(annotations_for(app)),
        ..ProviderDescription::default()
    }
}

/// Applies the commands as hosts and the lattice state would. Like a real
/// host, a rescale with the same image keeps the annotations the component
/// was started with, and starting a provider that runs changes nothing.
pub fn apply(lattice: &mut ObservedLattice, plan: &Plan) {
    for command in &plan.commands {
        match command {
            Command::PutConfig { name, values } => {
                lattice.configs.insert(name.clone(), values.clone());
            }
            Command::DeleteConfig { name } => {
                lattice.configs.remove(name);
            }
            Command::PutLink(link) => {
                lattice.links.retain(|l| !l.same_slot(link));
                lattice.links.push(link.clone());
            }
            Command::DeleteLink(request) => lattice.links.retain(|l| !l.is_deleted_by(request)),
            Command::ScaleComponent(cmd) => {
                let host = alive_host(lattice, &cmd.host_id);
                let existing = host
                    .components
                    .iter()
                    .position(|c| c.id == cmd.component_id);
                match existing {
                    Some(i) if cmd.max_instances == 0 => {
                        host.components.remove(i);
                    }
                    Some(i) => {
                        let running = &mut host.components[i];
                        if running.image_ref != cmd.component_ref {
                            assert!(
                                cmd.allow_update,
                                "image change without allow_update: {cmd:?}"
                            );
                            running.image_ref = cmd.component_ref.clone();
                            running.annotations = cmd.annotations.clone();
                        }
                        running.max_instances = cmd.max_instances;
                    }
                    None if cmd.max_instances == 0 => {}
                    None => host.components.push(ComponentDescription {
                        id: cmd.component_id.clone(),
                        image_ref: cmd.component_ref.clone(),
                        annotations: cmd.annotations.clone(),
                        max_instances: cmd.max_instances,
                        ..ComponentDescription::default()
                    }),
                }
            }
            Command::StartProvider(cmd) => {
                let host = alive_host(lattice, &cmd.host_id);
                if !host.providers.iter().any(|p| p.id == cmd.provider_id) {
                    host.providers.push(ProviderDescription {
                        id: cmd.provider_id.clone(),
                        image_ref: Some(cmd.provider_ref.clone()),
                        annotations: cmd.annotations.clone(),
                        ..ProviderDescription::default()
                    });
                }
            }
            Command::StopProvider(cmd) => {
                let host = alive_host(lattice, &cmd.host_id);
                host.providers.retain(|p| p.id != cmd.provider_id);
            }
        }
    }
}

fn alive_host<'a>(lattice: &'a mut ObservedLattice, id: &str) -> &'a mut ObservedHost {
    let host = lattice
        .hosts
        .get_mut(id)
        .unwrap_or_else(|| panic!("command for unknown host {id}"));
    assert!(host.alive, "command sent to dead host {id}");
    host
}

/// Plans, applies, and checks that planning again gives nothing to do.
/// Returns the first plan.
pub fn converge(manifest: &Manifest, lattice: &mut ObservedLattice) -> Plan {
    let first = plan(manifest, lattice);
    apply(lattice, &first);
    let again = plan(manifest, lattice);
    assert!(
        again.is_empty(),
        "planning again after applying should give nothing to do, got {:#?}",
        again.commands
    );
    first
}

/// Instances of component `id` per host, as observed.
pub fn component_spread(lattice: &ObservedLattice, id: &str) -> BTreeMap<String, u32> {
    lattice
        .hosts
        .values()
        .filter_map(|h| h.component(id).map(|c| (h.id.clone(), c.max_instances)))
        .collect()
}

/// Hosts running provider `id`, as observed.
pub fn provider_hosts(lattice: &ObservedLattice, id: &str) -> Vec<String> {
    lattice
        .hosts
        .values()
        .filter(|h| h.provider(id).is_some())
        .map(|h| h.id.clone())
        .collect()
}
