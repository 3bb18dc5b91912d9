//! Where a component or provider should run, and how many of it.
//!
//! A spreadscaler divides its `instances` between its spreads in
//! proportion to their weights (largest remainder, so 6 at 2:1 is 4 and
//! 2, and the total is always exact). Each host serves the first spread
//! (in manifest order, among those with a share) whose requirements it
//! meets, so overlapping spreads never count the same instances twice.
//! Within a spread:
//! - a component's share is its concurrency, given to hosts as
//!   `max_instances`. What already runs there is kept when it adds up to
//!   the share; otherwise the difference is spread by water-filling: added
//!   to the hosts with the fewest, or taken from those with the most. From
//!   nothing this is an even split over up to `share` hosts (64 over two
//!   hosts is 32 each; 1 over three hosts is 1 on one of them), and a
//!   change moves as little as it can (6 over three hosts is 2/2/2; when
//!   one dies the other two get 3/3).
//! - a provider's share is a number of hosts, each running one process.
//!
//! A daemonscaler puts `instances` (components) or one process (providers)
//! on every host matching any of its spreads.
//!
//! Ties go to hosts already running this app's copy, then to hosts
//! carrying fewer of the app's things, then by id, so nothing moves while
//! nothing changes. Only alive hosts count, so a dead host's share lands on
//! the rest. A host running the same id for someone else (unmanaged, or
//! another app) is never used: wadm would take it over without being able
//! to mark it as its own.
//!
//! A spread no host satisfies yields a problem and no placement.
//!
//! A capability whose data lives on one host's disk (a recorded
//! [`DataHome`]) runs only there, unless its manifest says
//! `localData: movable`; while that host is gone it runs nowhere, and the
//! problem names the host and the data, rather than starting afresh
//! elsewhere as if nothing had been lost.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet};

use crate::manifest::{
    Component, ComponentKind, DEFAULT_SPREAD_WEIGHT, Scaler, ScalerKind, Spread,
};
use crate::ownership::{is_owned_by, owner_app};

use super::Notes;
use super::observed::{DataHome, ObservedHost, ObservedLattice};

/// Instances wanted per host id; 0 never appears.
pub(super) type Placement = BTreeMap<String, u32>;

/// How many of the app's things each host carries, counting what this
/// plan has already placed, so one plan spreads an app across hosts.
pub(super) struct Load(BTreeMap<String, usize>);

impl Load {
    pub(super) fn observed(app: &str, lattice: &ObservedLattice) -> Self {
        Self(
            lattice
                .alive_hosts()
                .map(|h| (h.id.clone(), h.app_load(app)))
                .collect(),
        )
    }

    fn of(&self, host: &str) -> usize {
        self.0.get(host).copied().unwrap_or(0)
    }
}

/// A host that may run the component, and how much of it runs there now.
struct Candidate<'a> {
    host: &'a ObservedHost,
    current: u32,
}

/// Where `component` of `app` should run; problems say what could not be placed.
pub(super) fn place(
    component: &Component,
    app: &str,
    lattice: &ObservedLattice,
    load: &mut Load,
    notes: &mut Notes,
) -> Placement {
    let scaler = &component.scaler;
    let implicit;
    let spreads: &[Spread] = if scaler.spread.is_empty() {
        implicit = [Spread {
            name: "default".to_owned(),
            requirements: BTreeMap::new(),
            weight: DEFAULT_SPREAD_WEIGHT,
        }];
        &implicit
    } else {
        &scaler.spread
    };
    let mut candidates: Vec<Candidate<'_>> = lattice
        .alive_hosts()
        .filter_map(|host| candidate(host, component, app))
        .collect();
    if let Some(home) = data_home(component, lattice) {
        if !lattice.hosts.get(&home.host_id).is_some_and(|h| h.alive) {
            notes.problems.push(format!(
                "`{}` keeps its data on host {} ({}), which is not answering; wadm will not \
                 start it on another host, where it would start without that data. Bring that \
                 host back, or set `properties.localData: movable` to let it start elsewhere \
                 without the data",
                component.id, home.host_id, home.path
            ));
            return Placement::new();
        }
        candidates.retain(|c| c.host.id == home.host_id);
    }
    let placer = Placer {
        component,
        scaler,
        lattice,
        candidates: &candidates,
    };
    let placement = match scaler.kind {
        ScalerKind::Spread => placer.spread(spreads, load, notes),
        ScalerKind::Daemon => placer.daemon(spreads, notes),
    };
    for host in placement.keys() {
        let new_here = candidates
            .iter()
            .any(|c| &c.host.id == host && c.current == 0);
        if new_here {
            *load.0.entry(host.clone()).or_default() += 1;
        }
    }
    placement
}

/// The recorded home of a capability's local data, unless the manifest
/// lets it move without it.
fn data_home<'a>(component: &Component, lattice: &'a ObservedLattice) -> Option<&'a DataHome> {
    if component.kind != ComponentKind::Capability || component.data_movable {
        return None;
    }
    lattice.data_homes.get(&component.id)
}

/// The host as a candidate, or `None` when someone else runs this id there.
fn candidate<'a>(
    host: &'a ObservedHost,
    component: &Component,
    app: &str,
) -> Option<Candidate<'a>> {
    let current = match component.kind {
        ComponentKind::Component => match host.component(&component.id) {
            None => 0,
            Some(c) if is_owned_by(c.annotations.as_ref(), app) => c.max_instances,
            Some(_) => return None,
        },
        ComponentKind::Capability => match host.provider(&component.id) {
            None => 0,
            Some(p) if is_owned_by(p.annotations.as_ref(), app) => 1,
            Some(_) => return None,
        },
    };
    Some(Candidate { host, current })
}

struct Placer<'a> {
    component: &'a Component,
    scaler: &'a Scaler,
    lattice: &'a ObservedLattice,
    candidates: &'a [Candidate<'a>],
}

impl Placer<'_> {
    fn spread(&self, spreads: &[Spread], load: &Load, notes: &mut Notes) -> Placement {
        let weights: Vec<u32> = spreads.iter().map(|s| s.weight).collect();
        let shares = split_by_weight(self.scaler.instances, &weights);
        let mut claimed = BTreeSet::new();
        let mut placement = Placement::new();
        for (spread, share) in spreads.iter().zip(shares) {
            if share == 0 {
                continue;
            }
            let mut hosts = self.matching(spread, &claimed, notes);
            claimed.extend(hosts.iter().map(|c| c.host.id.as_str()));
            hosts.sort_by_key(|c| (Reverse(c.current), load.of(&c.host.id), &c.host.id));
            let counts = match self.component.kind {
                ComponentKind::Component => distribute(share, &hosts),
                ComponentKind::Capability => self.provider_hosts(spread, share, &hosts, notes),
            };
            for (c, n) in hosts.iter().zip(counts) {
                if n > 0 {
                    placement.insert(c.host.id.clone(), n);
                }
            }
        }
        placement
    }

    /// One process on each of the first `share` hosts (in preference order).
    fn provider_hosts(
        &self,
        spread: &Spread,
        share: u32,
        hosts: &[&Candidate<'_>],
        notes: &mut Notes,
    ) -> Vec<u32> {
        let wanted = usize::try_from(share).unwrap_or(usize::MAX);
        if !hosts.is_empty() && hosts.len() < wanted {
            notes.problems.push(format!(
                "{}: wants {share} instances but only {} hosts can run one \
                 (a host runs one process per provider)",
                self.subject(spread),
                hosts.len()
            ));
        }
        (0..hosts.len()).map(|i| u32::from(i < wanted)).collect()
    }

    fn daemon(&self, spreads: &[Spread], notes: &mut Notes) -> Placement {
        let per_host = match self.component.kind {
            ComponentKind::Component => self.scaler.instances,
            ComponentKind::Capability => self.scaler.instances.min(1),
        };
        let mut placement = Placement::new();
        if per_host == 0 {
            return placement;
        }
        for spread in spreads {
            for c in self.matching(spread, &BTreeSet::new(), notes) {
                placement.insert(c.host.id.clone(), per_host);
            }
        }
        placement
    }

    /// Candidates satisfying the spread and not `claimed` by an earlier
    /// one; none is a problem, and says why.
    fn matching(
        &self,
        spread: &Spread,
        claimed: &BTreeSet<&str>,
        notes: &mut Notes,
    ) -> Vec<&Candidate<'_>> {
        let matching: Vec<&Candidate<'_>> = self
            .candidates
            .iter()
            .filter(|c| c.host.satisfies(&spread.requirements))
            .filter(|c| !claimed.contains(c.host.id.as_str()))
            .collect();
        if !matching.is_empty() {
            return matching;
        }
        let satisfying: Vec<&ObservedHost> = self
            .lattice
            .alive_hosts()
            .filter(|h| h.satisfies(&spread.requirements))
            .collect();
        let hosts = if spread.requirements.is_empty() {
            String::from("alive host")
        } else {
            let labels: Vec<String> = spread
                .requirements
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("alive host with labels {}", labels.join(", "))
        };
        let subject = self.subject(spread);
        if satisfying.is_empty() {
            notes
                .problems
                .push(format!("{subject}: no {hosts} to run it on"));
        } else if satisfying.iter().all(|h| claimed.contains(h.id.as_str())) {
            notes.problems.push(format!(
                "{subject}: every {hosts} already serves an earlier spread"
            ));
        } else {
            let id = &self.component.id;
            let owners = self.owners_elsewhere(&satisfying, claimed);
            if !owners.is_empty() && owners.iter().all(|o| self.lattice.retiring.contains(*o)) {
                notes.waiting.push(format!(
                    "{subject}: waiting for `{}` to stop `{id}`, which it is undeploying",
                    owners.into_iter().collect::<Vec<_>>().join("`, `")
                ));
            } else {
                notes.problems.push(format!(
                    "{subject}: every {hosts} already runs `{id}` outside this app"
                ));
            }
        }
        matching
    }

    /// The apps running this id on the unclaimed `hosts` (none when
    /// someone runs it by hand there).
    fn owners_elsewhere<'h>(
        &self,
        hosts: &[&'h ObservedHost],
        claimed: &BTreeSet<&str>,
    ) -> BTreeSet<&'h str> {
        let id = self.component.id.as_str();
        let mut owners = BTreeSet::new();
        for host in hosts.iter().filter(|h| !claimed.contains(h.id.as_str())) {
            let annotations = match self.component.kind {
                ComponentKind::Component => host.component(id).map(|c| c.annotations.as_ref()),
                ComponentKind::Capability => host.provider(id).map(|p| p.annotations.as_ref()),
            };
            match annotations.map(owner_app) {
                Some(Some(app)) => {
                    owners.insert(app);
                }
                // Run by hand: no app will make way for this one.
                Some(None) => return BTreeSet::new(),
                None => {}
            }
        }
        owners
    }

    /// "spreadscaler of `counter`, spread `east`", or without the spread
    /// when the manifest gave none.
    fn subject(&self, spread: &Spread) -> String {
        let kind = match self.scaler.kind {
            ScalerKind::Spread => "spreadscaler",
            ScalerKind::Daemon => "daemonscaler",
        };
        if self.scaler.spread.is_empty() {
            format!("{kind} of `{}`", self.component.name)
        } else {
            format!(
                "{kind} of `{}`, spread `{}`",
                self.component.name, spread.name
            )
        }
    }
}

/// Divides `total` in proportion to `weights`, exactly: each gets its
/// rounded-down share, and what is left goes to the largest remainders
/// (the earlier spread on a tie).
fn split_by_weight(total: u32, weights: &[u32]) -> Vec<u32> {
    let sum: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<(u64, u64)> = weights
        .iter()
        .map(|w| {
            let scaled = u64::from(total) * u64::from(*w);
            (scaled / sum, scaled % sum)
        })
        .collect();
    let mut shares: Vec<u64> = exact.iter().map(|(whole, _)| *whole).collect();
    let left = u64::from(total) - shares.iter().sum::<u64>();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by_key(|&i| (Reverse(exact[i].1), i));
    for &i in by_remainder
        .iter()
        .take(usize::try_from(left).unwrap_or(usize::MAX))
    {
        shares[i] += 1;
    }
    // Each share is at most `total`, so it fits back in a u32.
    shares
        .into_iter()
        .map(|s| u32::try_from(s).unwrap_or(u32::MAX))
        .collect()
}

/// A component's `share` over `hosts` (in preference order), changing
/// what runs (`current`) as little as possible.
fn distribute(share: u32, hosts: &[&Candidate<'_>]) -> Vec<u32> {
    let current: Vec<u64> = hosts.iter().map(|c| u64::from(c.current)).collect();
    let total: u64 = current.iter().sum();
    let share = u64::from(share);
    let counts = match total.cmp(&share) {
        Ordering::Equal => current,
        Ordering::Less => fill(current, share - total),
        Ordering::Greater => drain(current, total - share),
    };
    // Every count is at most the share or what runs now, both u32s.
    counts
        .into_iter()
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .collect()
}

/// Adds `extra` to the smallest counts, raising them level by level;
/// what cannot be spread evenly goes to the earliest counts at the top level.
fn fill(mut counts: Vec<u64>, extra: u64) -> Vec<u64> {
    let cost = |level: u64| -> u64 { counts.iter().map(|c| level.saturating_sub(*c)).sum() };
    let Some(&lowest) = counts.iter().min() else {
        return counts;
    };
    // The highest level all counts can be raised to with `extra`.
    let (mut low, mut high) = (lowest, lowest.saturating_add(extra));
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if cost(mid) <= extra {
            low = mid
        } else {
            high = mid - 1
        }
    }
    let mut left = extra - cost(low);
    for count in &mut counts {
        if *count <= low {
            *count = low;
            if left > 0 {
                *count += 1;
                left -= 1;
            }
        }
    }
    counts
}

/// Takes `surplus` from the largest counts, lowering them level by level;
/// what cannot be taken evenly comes from the last counts at the top level.
fn drain(mut counts: Vec<u64>, surplus: u64) -> Vec<u64> {
    let cost = |level: u64| -> u64 { counts.iter().map(|c| c.saturating_sub(level)).sum() };
    let highest = counts.iter().copied().max().unwrap_or(0);
    // The lowest level all counts can be brought down to with `surplus`.
    let (mut low, mut high) = (0, highest);
    while low < high {
        let mid = low + (high - low) / 2;
        if cost(mid) <= surplus {
            high = mid
        } else {
            low = mid + 1
        }
    }
    let mut left = surplus - cost(low);
    for count in counts.iter_mut().rev() {
        if *count >= low {
            *count = low;
            if left > 0 && low > 0 {
                *count -= 1;
                left -= 1;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_split_exactly_in_proportion() {
        assert_eq!(split_by_weight(6, &[2, 1]), [4, 2]);
        assert_eq!(split_by_weight(10, &[80, 20]), [8, 2]);
        assert_eq!(split_by_weight(1, &[100, 100]), [1, 0]);
        assert_eq!(split_by_weight(5, &[1, 1, 1]), [2, 2, 1]);
        assert_eq!(split_by_weight(7, &[0, 3]), [0, 7]);
        assert_eq!(split_by_weight(3, &[0, 0]), [0, 0]);
        assert_eq!(
            split_by_weight(u32::MAX, &[u32::MAX, 1])
                .iter()
                .map(|s| u64::from(*s))
                .sum::<u64>(),
            u64::from(u32::MAX)
        );
    }

    #[test]
    fn fill_raises_the_lowest_first_and_gives_leftovers_to_the_earliest() {
        assert_eq!(fill(vec![0, 0], 64), [32, 32]);
        assert_eq!(fill(vec![0, 0, 0], 1), [1, 0, 0]);
        assert_eq!(fill(vec![0, 0, 0], 4), [2, 1, 1]);
        assert_eq!(fill(vec![2, 2], 2), [3, 3]);
        assert_eq!(fill(vec![32, 32, 0], 1), [32, 32, 1]);
        assert_eq!(fill(vec![2, 2, 0], 3), [3, 2, 2]);
        assert_eq!(fill(vec![], 3), Vec::<u64>::new());
    }

    #[test]
    fn drain_lowers_the_highest_first_and_takes_leftovers_from_the_last() {
        assert_eq!(drain(vec![2, 2, 2], 2), [2, 1, 1]);
        assert_eq!(drain(vec![1, 1, 1], 1), [1, 1, 0]);
        assert_eq!(drain(vec![5, 1], 4), [1, 1]);
        assert_eq!(drain(vec![3, 3], 6), [0, 0]);
        assert_eq!(drain(vec![4, 2, 1], 3), [2, 1, 1]);
    }
}
