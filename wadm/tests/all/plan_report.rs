//! Plans as `wash app plan` shows them, pinned by golden files in
//! `tests/fixtures/plans`: a first deploy, an upgrade (dev.yaml to
//! prod.yaml) and an undeploy, as text and as JSON. Re-bless with
//! `TRELLIS_BLESS=1` after a deliberate change, and review the diff.

use std::path::PathBuf;

use wadm::planner::{PlanAction, PlanReport};
use wadm::{Command, ObservedLattice, plan, plan_undeploy};

use crate::support::{apply, converge, example, host, lattice};

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/plans")
        .join(name);
    if std::env::var_os("TRELLIS_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; bless with TRELLIS_BLESS=1", path.display()));
    assert_eq!(actual, expected, "{} differs", path.display());
}

fn pin(name: &str, report: &PlanReport) {
    let text = report.to_string();
    let json = serde_json::to_string_pretty(report).unwrap() + "\n";
    // Config values can be secrets: a plan names keys only.
    for shown in [&text, &json] {
        assert!(
            !shown.contains("redis://"),
            "a config value shows:\n{shown}"
        );
        assert!(
            !shown.contains("127.0.0.1:8080"),
            "a config value shows:\n{shown}"
        );
    }
    let back: PlanReport = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, report);
    golden(&format!("{name}.txt"), &text);
    golden(&format!("{name}.json"), &json);
}

fn two_hosts() -> ObservedLattice {
    lattice([host("NA", &[]), host("NB", &["zone=east"])])
}

#[test]
fn a_first_deploy_plans_configs_links_and_starts_per_host() {
    let lattice = two_hosts();
    let dev = example("dev.yaml");
    let report = PlanReport::new(
        "kv-counter",
        PlanAction::Deploy,
        Some(dev.version.clone()),
        None,
        &plan(&dev, &lattice),
        &lattice,
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.hosts.len(), 2, "{report}");
    let counter = report
        .instances
        .iter()
        .find(|i| i.id == "kv-counter")
        .unwrap();
    assert_eq!(counter.after.values().sum::<u32>(), 64);
    assert!(counter.before.is_empty());
    pin("first-deploy", &report);
}

#[test]
fn an_upgrade_plans_the_provider_swap_and_keeps_the_component() {
    let mut lattice = two_hosts();
    let dev = example("dev.yaml");
    converge(&dev, &mut lattice);
    let prod = example("prod.yaml");
    let report = PlanReport::new(
        "kv-counter",
        PlanAction::Deploy,
        Some(prod.version.clone()),
        Some(dev.version.clone()),
        &plan(&prod, &lattice),
        &lattice,
    );
    let by_id = |id: &str| report.instances.iter().find(|i| i.id == id).unwrap();
    // Redis starts first; SQLite serves, and the link stays on it, until
    // Redis runs.
    assert_eq!(by_id("keyvalue-sqlite").after.len(), 1, "{report}");
    assert_eq!(by_id("keyvalue-redis").after.len(), 1, "{report}");
    assert_eq!(by_id("kv-counter").before, by_id("kv-counter").after);
    assert_eq!(report.waiting.len(), 2, "{report}");
    pin("upgrade", &report);
}

#[test]
fn a_link_moves_to_a_new_provider_only_once_it_runs_and_the_old_one_stops_after() {
    let mut lattice = two_hosts();
    converge(&example("dev.yaml"), &mut lattice);
    let prod = example("prod.yaml");
    let steps: Vec<Vec<&'static str>> = (0..4)
        .map(|_| {
            let plan = plan(&prod, &lattice);
            let kinds = plan
                .commands
                .iter()
                .map(|c| match c {
                    Command::PutConfig { .. } => "put config",
                    Command::PutLink(_) => "put link",
                    Command::StartProvider(_) => "start provider",
                    Command::StopProvider(_) => "stop provider",
                    Command::ScaleComponent(_) => "scale",
                    Command::DeleteLink(_) => "delete link",
                    Command::DeleteConfig { .. } => "delete config",
                })
                .collect();
            apply(&mut lattice, &plan);
            kinds
        })
        .collect();
    assert_eq!(
        steps,
        [
            vec!["put config", "start provider"],
            vec!["put link"],
            vec!["stop provider"],
            vec![],
        ]
    );
}

#[test]
fn an_undeploy_plans_every_stop_and_delete() {
    let mut lattice = two_hosts();
    let prod = example("prod.yaml");
    converge(&prod, &mut lattice);
    let report = PlanReport::new(
        "kv-counter",
        PlanAction::Undeploy,
        None,
        Some(prod.version.clone()),
        &plan_undeploy("kv-counter", &lattice),
        &lattice,
    );
    assert!(
        report.instances.iter().all(|i| i.after.is_empty()),
        "{report}"
    );
    pin("undeploy", &report);
}

#[test]
fn a_lattice_that_already_runs_the_app_plans_no_changes() {
    let mut lattice = two_hosts();
    let dev = example("dev.yaml");
    converge(&dev, &mut lattice);
    let report = PlanReport::new(
        "kv-counter",
        PlanAction::Deploy,
        Some(dev.version.clone()),
        Some(dev.version.clone()),
        &plan(&dev, &lattice),
        &lattice,
    );
    assert!(report.is_empty());
    assert!(report.to_string().contains("no changes"), "{report}");
}
