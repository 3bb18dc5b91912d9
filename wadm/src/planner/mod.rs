//! The planner: what to do so that the lattice runs a manifest.
//!
//! [`plan`] compares a validated [`Manifest`] with an [`ObservedLattice`]
//! and returns the control commands that close the gap, as a pure
//! function: no I/O, no clock, the same answer for the same input. The
//! reconcile loop sends the commands, watches events, observes again and
//! plans again; a lattice that already matches plans to nothing, so
//! planning is safe to repeat at any time.
//!
//! A [`Plan`]'s commands come in this order:
//! 1. config puts, because scale, start and link commands name config;
//! 2. link puts, because links are lattice state that hosts and providers
//!    read when things start (a starting provider receives its links), so
//!    they may exist before their ends do;
//! 3. starts, scale-ups and image upgrades (a provider whose image changed
//!    is stopped and started again on the same host, in that order);
//! 4. scale-downs and stops, after the new capacity is asked for;
//! 5. link deletes, for link slots the manifest no longer declares (a link
//!    whose target changed is simply put again: a put replaces its slot);
//! 6. config deletes, once nothing is started with that config any more.
//!
//! Ownership rules are in [`crate::ownership`], placement rules in the
//! private `placement` module. What the inventories do not show (the config
//! names a running component or provider was started with) is not
//! compared: changing only those takes effect at the next image change.

mod observed;
mod placement;
mod report;

use std::collections::{BTreeMap, BTreeSet};

use trellis_lattice::Link;
use trellis_lattice::config::NamedConfig;
use trellis_lattice::ctl::{
    ComponentDescription, DeleteInterfaceLinkDefinitionRequest, ScaleComponentCommand,
    StartProviderCommand, StopProviderCommand,
};

use crate::manifest::{Component, ComponentKind, ConfigRef, Manifest};
use crate::ownership::{annotations_for, is_owned_by, is_owned_config};

pub use observed::{DataHome, ObservedHost, ObservedLattice};
use placement::{Load, Placement};
pub use report::{Instances, PlanAction, PlanReport, Step, StepKind};

/// One control-interface command, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `config.put.{name}`.
    PutConfig {
        /// The lattice config name.
        name: String,
        /// Its keys and values.
        values: NamedConfig,
    },
    /// `link.put`.
    PutLink(Link),
    /// `component.scale.{host}`: start, rescale, upgrade (`allow_update`) or
    /// stop (`max_instances` 0).
    ScaleComponent(ScaleComponentCommand),
    /// `provider.start.{host}`.
    StartProvider(StartProviderCommand),
    /// `provider.stop.{host}`.
    StopProvider(StopProviderCommand),
    /// `link.del`.
    DeleteLink(DeleteInterfaceLinkDefinitionRequest),
    /// `config.del.{name}`.
    DeleteConfig {
        /// The lattice config name.
        name: String,
    },
}

impl Command {
    /// The kind of command, as metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::PutConfig { .. } => "config_put",
            Command::PutLink(_) => "link_put",
            Command::ScaleComponent(_) => "component_scale",
            Command::StartProvider(_) => "provider_start",
            Command::StopProvider(_) => "provider_stop",
            Command::DeleteLink(_) => "link_delete",
            Command::DeleteConfig { .. } => "config_delete",
        }
    }
}

impl Command {
    /// The host a command is for; `None` for lattice-wide ones (config
    /// and links).
    pub fn host_id(&self) -> Option<&str> {
        match self {
            Self::ScaleComponent(scale) => Some(&scale.host_id),
            Self::StartProvider(start) => Some(&start.host_id),
            Self::StopProvider(stop) => Some(&stop.host_id),
            Self::PutConfig { .. }
            | Self::DeleteConfig { .. }
            | Self::PutLink(_)
            | Self::DeleteLink(_) => None,
        }
    }
}

/// What to do, in order, and what cannot be done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Commands to send, in the order given.
    pub commands: Vec<Command>,
    /// Why the app cannot fully run as declared (unsatisfiable spreads,
    /// missing config), for the app's status: it is `failed`.
    pub problems: Vec<String>,
    /// What the app waits for that will pass by itself (another app's copy
    /// of an id it needs, being removed): it is `reconciling`.
    pub waiting: Vec<String>,
}

impl Plan {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

/// The plan's sections, concatenated in the order documented above.
#[derive(Default)]
struct Sections {
    config_puts: Vec<Command>,
    link_puts: Vec<Command>,
    starts: Vec<Command>,
    stops: Vec<Command>,
    link_deletes: Vec<Command>,
    config_deletes: Vec<Command>,
    notes: Notes,
}

/// Problems and waits found while planning.
#[derive(Default)]
struct Notes {
    problems: Vec<String>,
    waiting: Vec<String>,
}

impl Sections {
    fn into_plan(self) -> Plan {
        let commands = [
            self.config_puts,
            self.link_puts,
            self.starts,
            self.stops,
            self.link_deletes,
            self.config_deletes,
        ]
        .into_iter()
        .flatten()
        .collect();
        Plan {
            commands,
            problems: self.notes.problems,
            waiting: self.notes.waiting,
        }
    }
}

/// The commands that make `lattice` run `manifest`, and what stands in the way.
pub fn plan(manifest: &Manifest, lattice: &ObservedLattice) -> Plan {
    let app = manifest.name.as_str();
    let mut sections = Sections::default();
    plan_configs(manifest, lattice, &mut sections);
    plan_links(manifest, lattice, &mut sections);
    let mut load = Load::observed(app, lattice);
    for component in &manifest.components {
        let placement = placement::place(component, app, lattice, &mut load, &mut sections.notes);
        match component.kind {
            ComponentKind::Component => {
                reconcile_component(app, component, &placement, lattice, &mut sections);
            }
            ComponentKind::Capability => {
                reconcile_provider(app, component, &placement, lattice, &mut sections);
            }
        }
    }
    let declared = |kind: ComponentKind| -> BTreeSet<&str> {
        manifest
            .components
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.id.as_str())
            .collect()
    };
    remove_owned(
        app,
        lattice,
        &declared(ComponentKind::Component),
        &declared(ComponentKind::Capability),
        Removal::WhileServing,
        &mut sections,
    );
    sections.into_plan()
}

/// The commands that remove everything `app` runs: its components and
/// providers (by annotation), links from them or naming its config, and its
/// config. Nothing unannotated or of another app is touched.
pub fn plan_undeploy(app: &str, lattice: &ObservedLattice) -> Plan {
    let mut sections = Sections::default();
    remove_owned(
        app,
        lattice,
        &BTreeSet::new(),
        &BTreeSet::new(),
        Removal::All,
        &mut sections,
    );
    let owned: BTreeSet<&str> = lattice.owned_ids(app).into_iter().collect();
    let uses_app_config = |link: &Link| {
        link.source_config
            .iter()
            .chain(&link.target_config)
            .any(|name| is_owned_config(app, name))
    };
    for link in &lattice.links {
        if owned.contains(link.source_id.as_str()) || uses_app_config(link) {
            sections.link_deletes.push(delete_link(link));
        }
    }
    for name in lattice.configs.keys().filter(|n| is_owned_config(app, n)) {
        sections
            .config_deletes
            .push(Command::DeleteConfig { name: name.clone() });
    }
    sections.into_plan()
}

/// Every config reference of a component, with its links' configs.
fn config_refs(component: &Component) -> impl Iterator<Item = &ConfigRef> {
    component.config.iter().chain(
        component
            .links
            .iter()
            .flat_map(|l| l.source_config.iter().chain(&l.target_config)),
    )
}

fn plan_configs(manifest: &Manifest, lattice: &ObservedLattice, sections: &mut Sections) {
    let app = manifest.name.as_str();
    let mut wanted: BTreeMap<String, NamedConfig> = BTreeMap::new();
    let mut missing: BTreeMap<String, &str> = BTreeMap::new();
    for component in &manifest.components {
        for config in config_refs(component) {
            let name = config.lattice_name(app);
            match config {
                ConfigRef::Owned { values, .. } => {
                    wanted.insert(name, values.clone());
                }
                ConfigRef::Secret { reference } => {
                    wanted.insert(name, reference.to_config());
                }
                ConfigRef::External { .. } if !lattice.configs.contains_key(&name) => {
                    missing.entry(name).or_insert(&component.name);
                }
                ConfigRef::External { .. } => {}
            }
        }
    }
    for (name, values) in &wanted {
        if lattice.configs.get(name) != Some(values) {
            sections.config_puts.push(Command::PutConfig {
                name: name.clone(),
                values: values.clone(),
            });
        }
    }
    for (name, user) in missing {
        sections.notes.problems.push(format!(
            "config `{name}` used by `{user}` does not exist; create it with \
             `wash config put {name} KEY=VALUE`"
        ));
    }
    for name in lattice.configs.keys() {
        if is_owned_config(app, name) && !wanted.contains_key(name) {
            sections
                .config_deletes
                .push(Command::DeleteConfig { name: name.clone() });
        }
    }
}

/// The links a manifest declares, as the lattice stores them.
fn declared_links(manifest: &Manifest, problems: &mut Vec<String>) -> Vec<Link> {
    let app = manifest.name.as_str();
    let names = |refs: &[ConfigRef]| refs.iter().map(|c| c.lattice_name(app)).collect();
    let mut links = Vec::new();
    for source in &manifest.components {
        for link in &source.links {
            let Some(target) = manifest.component(&link.target) else {
                problems.push(format!(
                    "link `{}` of `{}` targets `{}`, which the manifest does not declare",
                    link.name, source.name, link.target
                ));
                continue;
            };
            links.push(Link {
                source_id: source.id.clone(),
                target: target.id.clone(),
                name: link.name.clone(),
                wit_namespace: link.namespace.clone(),
                wit_package: link.package.clone(),
                interfaces: link.interfaces.clone(),
                source_config: names(&link.source_config),
                target_config: names(&link.target_config),
            });
        }
    }
    links
}

fn plan_links(manifest: &Manifest, lattice: &ObservedLattice, sections: &mut Sections) {
    let declared = declared_links(manifest, &mut sections.notes.problems);
    let providers: BTreeSet<&str> = manifest
        .components
        .iter()
        .filter(|c| c.kind == ComponentKind::Capability)
        .map(|c| c.id.as_str())
        .collect();
    let running = |id: &str| lattice.alive_hosts().any(|h| h.provider(id).is_some());
    for link in &declared {
        if lattice.links.contains(link) {
            continue;
        }
        // A link moving to a provider of this app that does not run yet
        // stays where it is until it does: calls keep reaching the old
        // target meanwhile, instead of failing against nothing.
        let moving_from = lattice
            .links
            .iter()
            .find(|l| l.same_slot(link) && l.target != link.target);
        if let Some(old) = moving_from
            && providers.contains(link.target.as_str())
            && !running(&link.target)
        {
            sections.notes.waiting.push(format!(
                "keeping `{}`'s link on `{}` until `{}` runs",
                link.source_id, old.target, link.target
            ));
            continue;
        }
        sections.link_puts.push(Command::PutLink(link.clone()));
    }
    let mut sources: BTreeSet<&str> = lattice.owned_ids(&manifest.name).into_iter().collect();
    sources.extend(manifest.components.iter().map(|c| c.id.as_str()));
    for link in &lattice.links {
        let ours = sources.contains(link.source_id.as_str());
        if ours && !declared.iter().any(|d| d.same_slot(link)) {
            sections.link_deletes.push(delete_link(link));
        }
    }
}

fn delete_link(link: &Link) -> Command {
    Command::DeleteLink(DeleteInterfaceLinkDefinitionRequest {
        source_id: link.source_id.clone(),
        name: link.name.clone(),
        wit_namespace: link.wit_namespace.clone(),
        wit_package: link.wit_package.clone(),
    })
}

fn reconcile_component(
    app: &str,
    component: &Component,
    placement: &Placement,
    lattice: &ObservedLattice,
    sections: &mut Sections,
) {
    let scale = |host_id: &str, image: &str, count: u32, allow_update: bool| {
        Command::ScaleComponent(ScaleComponentCommand {
            component_ref: image.to_owned(),
            component_id: component.id.clone(),
            annotations: Some(annotations_for(app)),
            max_instances: count,
            host_id: host_id.to_owned(),
            config: component
                .config
                .iter()
                .map(|c| c.lattice_name(app))
                .collect(),
            allow_update,
            allowed_hosts: component.allowed_hosts.clone(),
        })
    };
    // A new image rolls over the hosts a few at a time (in host order, so
    // every pass picks the same ones): the next ones swap once these run
    // it. A host that refuses it keeps the old image and its place at the
    // front, so the rollout halts there and the other hosts keep serving
    // the old version.
    let mut swaps_left = usize::try_from(component.scaler.max_unavailable).unwrap_or(usize::MAX);
    let mut turn_waiting = Vec::new();
    for host in lattice.alive_hosts() {
        let want = placement.get(&host.id).copied().unwrap_or(0);
        let running = host
            .component(&component.id)
            .filter(|c| is_owned_by(c.annotations.as_ref(), app));
        let Some(running) = running else {
            if want > 0 {
                sections
                    .starts
                    .push(scale(&host.id, &component.image, want, false));
            }
            continue;
        };
        if want == 0 {
            sections.stops.push(scale_to_zero(app, &host.id, running));
        } else if running.image_ref != component.image && swaps_left > 0 {
            // The host swaps the image in place, in-flight calls finishing
            // on the old code.
            swaps_left -= 1;
            sections
                .starts
                .push(scale(&host.id, &component.image, want, true));
        } else if running.image_ref != component.image {
            // Waiting for its turn: only its count changes, on the old image.
            turn_waiting.push(host.id.as_str());
            if want != running.max_instances {
                let resize = scale(&host.id, &running.image_ref, want, false);
                if want > running.max_instances {
                    sections.starts.push(resize);
                } else {
                    sections.stops.push(resize);
                }
            }
        } else if want > running.max_instances {
            sections
                .starts
                .push(scale(&host.id, &component.image, want, false));
        } else if want < running.max_instances {
            sections
                .stops
                .push(scale(&host.id, &component.image, want, false));
        }
    }
    if !turn_waiting.is_empty() {
        sections.notes.waiting.push(format!(
            "rolling `{}` out to {}, {} host(s) at a time: {} still run the old image and wait \
             their turn",
            component.name,
            component.image,
            component.scaler.max_unavailable,
            turn_waiting.join(", ")
        ));
    }
}

fn reconcile_provider(
    app: &str,
    component: &Component,
    placement: &Placement,
    lattice: &ObservedLattice,
    sections: &mut Sections,
) {
    let start = |host_id: &str| {
        Command::StartProvider(StartProviderCommand {
            provider_id: component.id.clone(),
            provider_ref: component.image.clone(),
            host_id: host_id.to_owned(),
            config: component
                .config
                .iter()
                .map(|c| c.lattice_name(app))
                .collect(),
            annotations: Some(annotations_for(app)),
        })
    };
    for host in lattice.alive_hosts() {
        let wanted = placement.contains_key(&host.id);
        let running = host
            .provider(&component.id)
            .filter(|p| is_owned_by(p.annotations.as_ref(), app));
        match running {
            None if wanted => sections.starts.push(start(&host.id)),
            None => {}
            Some(_) if !wanted => sections.stops.push(stop_provider(&host.id, &component.id)),
            Some(p) if p.image_ref.as_ref().is_some_and(|i| i != &component.image) => {
                // A host will not start an id it runs, so the old process goes first.
                sections.starts.push(stop_provider(&host.id, &component.id));
                sections.starts.push(start(&host.id));
            }
            Some(_) => {}
        }
    }
}

/// Stops a running component: a scale to 0 of what the host reports.
fn scale_to_zero(app: &str, host_id: &str, running: &ComponentDescription) -> Command {
    Command::ScaleComponent(ScaleComponentCommand {
        component_ref: running.image_ref.clone(),
        component_id: running.id.clone(),
        annotations: Some(annotations_for(app)),
        max_instances: 0,
        host_id: host_id.to_owned(),
        config: Vec::new(),
        allow_update: false,
        allowed_hosts: Vec::new(),
    })
}

fn stop_provider(host_id: &str, provider_id: &str) -> Command {
    Command::StopProvider(StopProviderCommand {
        host_id: host_id.to_owned(),
        provider_id: provider_id.to_owned(),
    })
}

/// Stops `app`'s components and providers on alive hosts whose ids are not
/// among those still declared.
/// How [`remove_owned`] treats providers the app's links still target.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// The app keeps running: such a provider stays until its links move.
    WhileServing,
    /// The app is going: everything stops.
    All,
}

fn remove_owned(
    app: &str,
    lattice: &ObservedLattice,
    components: &BTreeSet<&str>,
    providers: &BTreeSet<&str>,
    removal: Removal,
    sections: &mut Sections,
) {
    let mut sources: BTreeSet<&str> = lattice.owned_ids(app).into_iter().collect();
    sources.extend(components.iter().copied());
    for host in lattice.alive_hosts() {
        for c in &host.components {
            if is_owned_by(c.annotations.as_ref(), app) && !components.contains(c.id.as_str()) {
                sections.stops.push(scale_to_zero(app, &host.id, c));
            }
        }
        for p in &host.providers {
            if !is_owned_by(p.annotations.as_ref(), app) || providers.contains(p.id.as_str()) {
                continue;
            }
            // Still the target of one of the app's links (one this plan
            // moves, or one waiting for its new target): it serves until
            // the lattice shows the link gone.
            let still_linked = removal == Removal::WhileServing
                && lattice
                    .links
                    .iter()
                    .any(|l| l.target == p.id && sources.contains(l.source_id.as_str()));
            if still_linked {
                sections.notes.waiting.push(format!(
                    "keeping `{}` on host {} while the app's links still target it",
                    p.id, host.id
                ));
                continue;
            }
            sections.stops.push(stop_provider(&host.id, &p.id));
        }
    }
}
