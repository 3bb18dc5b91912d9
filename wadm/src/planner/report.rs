//! A plan as people and scripts read it (`wash app plan`, `deploy
//! --dry-run`): the commands grouped by where they act, and what runs
//! where once they are done.
//!
//! Config appears by name and keys only: its values may be secrets, and a
//! plan is printed and passed around.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Command, ObservedLattice, Plan};

/// What a plan is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanAction {
    /// Deploying a manifest (a first deploy or an upgrade).
    Deploy,
    /// Undeploying an app.
    Undeploy,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A named config is put.
    PutConfig,
    /// A link is put.
    PutLink,
    /// A component starts on a host that does not run it.
    StartComponent,
    /// A running component gets another instance limit.
    ScaleComponent,
    /// A running component is replaced by another image.
    UpgradeComponent,
    /// A component stops on a host.
    StopComponent,
    /// A provider starts on a host.
    StartProvider,
    /// A provider stops on a host.
    StopProvider,
    /// A link is deleted.
    DeleteLink,
    /// A named config is deleted.
    DeleteConfig,
}

impl StepKind {
    fn as_str(&self) -> &'static str {
        match self {
            StepKind::PutConfig => "put config",
            StepKind::PutLink => "put link",
            StepKind::StartComponent => "start component",
            StepKind::ScaleComponent => "scale component",
            StepKind::UpgradeComponent => "upgrade component",
            StepKind::StopComponent => "stop component",
            StepKind::StartProvider => "start provider",
            StepKind::StopProvider => "stop provider",
            StepKind::DeleteLink => "delete link",
            StepKind::DeleteConfig => "delete config",
        }
    }
}

/// One command, described.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// What it does.
    pub kind: StepKind,
    /// The component, provider, link source or config it acts on.
    pub target: String,
    /// The rest, for people: an image, instance counts, a link's route,
    /// a config's keys.
    pub detail: String,
}

/// How much of one component or provider runs, before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instances {
    /// Its id.
    pub id: String,
    /// `component` or `provider`.
    pub kind: String,
    /// Instances (a component's limit, or 1 per provider process) per
    /// host now.
    pub before: BTreeMap<String, u32>,
    /// The same once the plan is done.
    pub after: BTreeMap<String, u32>,
}

impl Instances {
    fn total(counts: &BTreeMap<String, u32>) -> u32 {
        counts.values().sum()
    }
}

/// A plan, grouped for reading.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanReport {
    /// The app.
    pub app: String,
    /// What the plan is for.
    pub action: PlanAction,
    /// The version it deploys (none for an undeploy).
    pub version: Option<String>,
    /// The version deployed now, if any.
    pub deployed_version: Option<String>,
    /// Steps on lattice-wide state (config, links), in order.
    pub lattice: Vec<Step>,
    /// Steps on each host, by host id, each host's in order.
    pub hosts: BTreeMap<String, Vec<Step>>,
    /// What runs where before and after, for everything the plan touches
    /// or the app owns.
    pub instances: Vec<Instances>,
    /// What stands in the way: the app would be `failed` with these.
    pub problems: Vec<String>,
    /// What it would wait for (`reconciling`), which passes by itself.
    pub waiting: Vec<String>,
}

impl PlanReport {
    /// The report of `plan`, made for `app` against `lattice`.
    pub fn new(
        app: &str,
        action: PlanAction,
        version: Option<String>,
        deployed_version: Option<String>,
        plan: &Plan,
        lattice: &ObservedLattice,
    ) -> Self {
        let mut report = Self {
            app: app.to_owned(),
            action,
            version,
            deployed_version,
            lattice: Vec::new(),
            hosts: BTreeMap::new(),
            instances: Vec::new(),
            problems: plan.problems.clone(),
            waiting: plan.waiting.clone(),
        };
        let mut counts = Counts::observed(app, lattice, plan);
        for command in &plan.commands {
            let (host, step) = describe(command, lattice);
            counts.apply(command);
            match host {
                Some(host) => report.hosts.entry(host).or_default().push(step),
                None => report.lattice.push(step),
            }
        }
        report.instances = counts.into_instances();
        report
    }

    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.lattice.is_empty() && self.hosts.is_empty()
    }
}

/// The host a command goes to (none for lattice state) and its step.
fn describe(command: &Command, lattice: &ObservedLattice) -> (Option<String>, Step) {
    let step = |kind, target: &str, detail: String| Step {
        kind,
        target: target.to_owned(),
        detail,
    };
    match command {
        Command::PutConfig { name, values } => {
            let keys: Vec<&str> = values.keys().map(String::as_str).collect();
            let detail = if keys.is_empty() {
                String::from("no keys")
            } else {
                format!("keys: {}", keys.join(", "))
            };
            (None, step(StepKind::PutConfig, name, detail))
        }
        Command::DeleteConfig { name } => (None, step(StepKind::DeleteConfig, name, String::new())),
        Command::PutLink(link) => {
            let detail = format!(
                "→ {} {}:{}/{{{}}} (link name {})",
                link.target,
                link.wit_namespace,
                link.wit_package,
                link.interfaces.join(","),
                link.name
            );
            (None, step(StepKind::PutLink, &link.source_id, detail))
        }
        Command::DeleteLink(link) => {
            let detail = format!(
                "{}:{} (link name {})",
                link.wit_namespace, link.wit_package, link.name
            );
            (None, step(StepKind::DeleteLink, &link.source_id, detail))
        }
        Command::ScaleComponent(scale) => {
            let running = lattice
                .hosts
                .get(&scale.host_id)
                .and_then(|h| h.component(&scale.component_id));
            let (kind, detail) = match running {
                None => (
                    StepKind::StartComponent,
                    format!(
                        "{} instances of {}",
                        scale.max_instances, scale.component_ref
                    ),
                ),
                Some(_) if scale.max_instances == 0 => (StepKind::StopComponent, String::new()),
                Some(running) if running.image_ref != scale.component_ref => (
                    StepKind::UpgradeComponent,
                    format!(
                        "{} → {} ({} → {} instances)",
                        running.image_ref,
                        scale.component_ref,
                        running.max_instances,
                        scale.max_instances
                    ),
                ),
                Some(running) => (
                    StepKind::ScaleComponent,
                    format!(
                        "{} → {} instances",
                        running.max_instances, scale.max_instances
                    ),
                ),
            };
            (
                Some(scale.host_id.clone()),
                step(kind, &scale.component_id, detail),
            )
        }
        Command::StartProvider(start) => (
            Some(start.host_id.clone()),
            step(
                StepKind::StartProvider,
                &start.provider_id,
                start.provider_ref.clone(),
            ),
        ),
        Command::StopProvider(stop) => (
            Some(stop.host_id.clone()),
            step(StepKind::StopProvider, &stop.provider_id, String::new()),
        ),
    }
}

/// Instances per id and host, as the plan's commands change them.
struct Counts {
    by_id: BTreeMap<String, Instances>,
}

impl Counts {
    /// What runs now on alive hosts, for the app's ids and every id the
    /// plan names.
    fn observed(app: &str, lattice: &ObservedLattice, plan: &Plan) -> Self {
        let mut ids: Vec<&str> = lattice.owned_ids(app);
        for command in &plan.commands {
            match command {
                Command::ScaleComponent(s) => ids.push(&s.component_id),
                Command::StartProvider(s) => ids.push(&s.provider_id),
                Command::StopProvider(s) => ids.push(&s.provider_id),
                _ => {}
            }
        }
        let mut by_id = BTreeMap::new();
        for id in ids {
            let mut kind = "component";
            let mut before = BTreeMap::new();
            for host in lattice.alive_hosts() {
                if let Some(c) = host.component(id) {
                    before.insert(host.id.clone(), c.max_instances);
                }
                if host.provider(id).is_some() {
                    kind = "provider";
                    before.insert(host.id.clone(), 1);
                }
            }
            let started = plan
                .commands
                .iter()
                .any(|c| matches!(c, Command::StartProvider(s) if s.provider_id == id));
            if started {
                kind = "provider";
            }
            let instances = Instances {
                id: id.to_owned(),
                kind: kind.to_owned(),
                after: before.clone(),
                before,
            };
            by_id.insert(id.to_owned(), instances);
        }
        Self { by_id }
    }

    fn apply(&mut self, command: &Command) {
        let (id, host, count) = match command {
            Command::ScaleComponent(s) => (&s.component_id, &s.host_id, s.max_instances),
            Command::StartProvider(s) => (&s.provider_id, &s.host_id, 1),
            Command::StopProvider(s) => (&s.provider_id, &s.host_id, 0),
            _ => return,
        };
        if let Some(instances) = self.by_id.get_mut(id) {
            if count == 0 {
                instances.after.remove(host);
            } else {
                instances.after.insert(host.clone(), count);
            }
        }
    }

    fn into_instances(self) -> Vec<Instances> {
        self.by_id.into_values().collect()
    }
}

impl fmt::Display for PlanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            PlanAction::Deploy => "deploy",
            PlanAction::Undeploy => "undeploy",
        };
        write!(f, "plan: {action} `{}`", self.app)?;
        if let Some(version) = &self.version {
            write!(f, " version {version}")?;
        }
        match &self.deployed_version {
            Some(deployed) => writeln!(f, " (deployed now: {deployed})")?,
            None => writeln!(f, " (not deployed now)")?,
        }
        if self.is_empty() {
            writeln!(f, "no changes: the lattice already runs it as planned")?;
        }
        let width = self
            .lattice
            .iter()
            .chain(self.hosts.values().flatten())
            .map(|s| s.kind.as_str().len() + 1 + s.target.len())
            .max()
            .unwrap_or(0);
        let line = |f: &mut fmt::Formatter<'_>, step: &Step| {
            let head = format!("{} {}", step.kind.as_str(), step.target);
            if step.detail.is_empty() {
                writeln!(f, "  {head}")
            } else {
                writeln!(f, "  {head:<width$}  {}", step.detail)
            }
        };
        if !self.lattice.is_empty() {
            writeln!(f, "lattice:")?;
            for step in &self.lattice {
                line(f, step)?;
            }
        }
        for (host, steps) in &self.hosts {
            writeln!(f, "host {host}:")?;
            for step in steps {
                line(f, step)?;
            }
        }
        if !self.instances.is_empty() {
            writeln!(f, "instances (now → after):")?;
            let width = self.instances.iter().map(|i| i.id.len()).max().unwrap_or(0);
            for i in &self.instances {
                let hosts = i.after.len();
                writeln!(
                    f,
                    "  {:<width$}  {:<9}  {} → {} on {hosts} host{}",
                    i.id,
                    i.kind,
                    Instances::total(&i.before),
                    Instances::total(&i.after),
                    if hosts == 1 { "" } else { "s" }
                )?;
            }
        }
        if !self.waiting.is_empty() {
            writeln!(
                f,
                "waiting (the app would be reconciling until these pass):"
            )?;
            for wait in &self.waiting {
                writeln!(f, "  - {wait}")?;
            }
        }
        if !self.problems.is_empty() {
            writeln!(f, "problems (the app would be failed):")?;
            for problem in &self.problems {
                writeln!(f, "  - {problem}")?;
            }
        }
        Ok(())
    }
}
