//! The decision at the heart of the scheduler, kept pure: given what the formations want,
//! the hosts there are and the jobs they run, which jobs to start where and which to stop.
//! The scheduler feeds it its current view after every change and carries the actions out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// One process type of one release of one app: the unit a formation counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The app id.
    pub app: String,
    /// The release id.
    pub release: String,
    /// The process type.
    pub kind: String,
}

/// What a formation wants of one [`Key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// Jobs wanted (per host, for omni types).
    pub count: u32,
    /// One set of `count` jobs on every matching host.
    pub omni: bool,
    /// Host tags every job's host must have, with these values.
    pub tags: BTreeMap<String, String>,
    /// Memory each job reserves on its host, in bytes.
    pub memory: u64,
}

/// A host jobs can be placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    /// Its id.
    pub id: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Memory that jobs may reserve on it, in bytes.
    pub memory: u64,
    /// Draining: nothing new is placed on it, and its jobs move to other hosts (each stopped
    /// once enough of its kind run elsewhere).
    pub draining: bool,
}

/// Where a job is in its life, as far as placement cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Asked for; the host has not answered yet.
    Creating,
    /// Being set up on its host.
    Starting,
    /// Running.
    Running,
}

/// A live job of some [`Key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// Its host.
    pub host: String,
    /// What it runs.
    pub key: Key,
    /// Its phase.
    pub phase: Phase,
    /// When it was created, for "newest first".
    pub created: u128,
    /// Memory it reserves, in bytes.
    pub memory: u64,
    /// A job of a host that was given up for lost and came back: stopped first.
    pub stray: bool,
}

/// A crashed job waiting to be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    /// How many times this slot has restarted, with this one.
    pub restarts: u32,
    /// When it may start again.
    pub ready_at: Instant,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a job of `key` on `host`.
    Start {
        /// What to run.
        key: Key,
        /// Where.
        host: String,
        /// Its restart count (0 for a new slot).
        restarts: u32,
    },
    /// Stop a job.
    Stop {
        /// The job.
        job: String,
        /// Its host.
        host: String,
    },
}

/// The outcome of one planning pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What to do now.
    pub actions: Vec<Action>,
    /// Crashes used up by starts, per key (the first N of each key's list).
    pub restarted: BTreeMap<Key, usize>,
    /// Crashes no longer needed (the count went down), per key: dropped from the end.
    pub dropped: BTreeMap<Key, usize>,
    /// Jobs that could not be placed, per key (no host has the tags or the memory).
    pub blocked: BTreeMap<Key, u32>,
    /// The earliest time a waiting crash becomes ready, for a timer.
    pub next_ready: Option<Instant>,
}

fn tags_match(host: &HostView, tags: &BTreeMap<String, String>) -> bool {
    tags.iter().all(|(k, v)| host.tags.get(k) == Some(v))
}

/// Stop order among jobs of one key: strays first, then the least far along, then those on
/// the host with the most of them `left`, then the newest.
fn stop_order(a: &JobView, b: &JobView, left: &BTreeMap<&str, u32>) -> std::cmp::Ordering {
    let on = |j: &JobView| left.get(j.host.as_str()).copied().unwrap_or(0);
    b.stray
        .cmp(&a.stray)
        .then(a.phase.cmp(&b.phase))
        .then(on(b).cmp(&on(a)))
        .then(b.created.cmp(&a.created))
}

/// Plans what to start and stop so the jobs match `wants`. `crashes` are each key's
/// crashed slots, oldest first; a slot that is not ready yet holds its place (nothing new
/// starts instead of it).
pub fn plan(
    wants: &BTreeMap<Key, Want>,
    hosts: &[HostView],
    jobs: &[JobView],
    crashes: &BTreeMap<Key, Vec<Crash>>,
    now: Instant,
) -> Plan {
    let mut out = Plan::default();
    let host_ids: BTreeSet<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
    // Memory reserved per host, and jobs per (host, key), updated as starts are planned.
    let mut used: BTreeMap<&str, u64> = BTreeMap::new();
    let mut per: BTreeMap<(&str, &Key), u32> = BTreeMap::new();
    let mut total: BTreeMap<&str, u32> = BTreeMap::new();
    for j in jobs {
        *used.entry(j.host.as_str()).or_default() += j.memory;
        *per.entry((j.host.as_str(), &j.key)).or_default() += 1;
        *total.entry(j.host.as_str()).or_default() += 1;
    }
    let mut by_key: BTreeMap<&Key, Vec<&JobView>> = BTreeMap::new();
    for j in jobs {
        by_key.entry(&j.key).or_default().push(j);
    }
    // Jobs nothing wants any more.
    for j in jobs {
        if wants.get(&j.key).is_none_or(|w| w.count == 0) && j.phase != Phase::Creating {
            out.actions.push(Action::Stop {
                job: j.id.clone(),
                host: j.host.clone(),
            });
        }
    }
    for (key, want) in wants {
        let eligible: Vec<&HostView> = hosts
            .iter()
            .filter(|h| !h.draining && tags_match(h, &want.tags))
            .collect();
        let live: Vec<&JobView> = by_key.get(key).cloned().unwrap_or_default();
        // Jobs on hosts that lost the tags (or are gone from the view) make way.
        let (fit, misplaced): (Vec<&JobView>, Vec<&JobView>) = live.into_iter().partition(|j| {
            eligible.iter().any(|h| h.id == j.host) || !host_ids.contains(j.host.as_str())
        });
        // Those on draining hosts that still fit keep serving until enough run elsewhere.
        let (leaving, misplaced): (Vec<&JobView>, Vec<&JobView>) =
            misplaced.into_iter().partition(|j| {
                !want.omni
                    && j.phase == Phase::Running
                    && hosts
                        .iter()
                        .any(|h| h.id == j.host && h.draining && tags_match(h, &want.tags))
            });
        let running = fit.iter().filter(|j| j.phase == Phase::Running).count();
        let spare = (running + leaving.len()).saturating_sub(want.count as usize);
        let stopped_leaving = leaving.iter().take(spare);
        for j in misplaced.into_iter().chain(stopped_leaving.copied()) {
            if j.phase != Phase::Creating {
                out.actions.push(Action::Stop {
                    job: j.id.clone(),
                    host: j.host.clone(),
                });
            }
        }
        let groups: Vec<(Option<&str>, Vec<&JobView>, u32)> = if want.omni {
            eligible
                .iter()
                .map(|h| {
                    let on: Vec<&JobView> =
                        fit.iter().copied().filter(|j| j.host == h.id).collect();
                    (Some(h.id.as_str()), on, want.count)
                })
                .collect()
        } else {
            vec![(None, fit, want.count)]
        };
        let list = crashes.get(key).map(Vec::as_slice).unwrap_or_default();
        let mut crash_i = 0usize;
        let mut needed_total = 0usize;
        for (only, mut group, count) in groups {
            let have = group.len() as u32;
            if have > count {
                // One at a time, each from the host with the most jobs of the key left, so
                // that scaling down keeps the jobs spread.
                let mut left: BTreeMap<&str, u32> = BTreeMap::new();
                for j in &group {
                    *left.entry(j.host.as_str()).or_default() += 1;
                }
                group.retain(|j| j.phase != Phase::Creating);
                for _ in 0..(have - count) {
                    let Some(i) = (0..group.len()).min_by(|&a, &b| {
                        let (a, b) = (&group[a], &group[b]);
                        stop_order(a, b, &left)
                    }) else {
                        break;
                    };
                    let j = group.swap_remove(i);
                    *left.entry(j.host.as_str()).or_default() -= 1;
                    out.actions.push(Action::Stop {
                        job: j.id.clone(),
                        host: j.host.clone(),
                    });
                }
                continue;
            }
            for _ in have..count {
                needed_total += 1;
                let restarts = match list.get(crash_i) {
                    Some(c) if c.ready_at > now => {
                        crash_i += 1;
                        out.next_ready =
                            Some(out.next_ready.map_or(c.ready_at, |t| t.min(c.ready_at)));
                        continue;
                    }
                    Some(c) => {
                        crash_i += 1;
                        *out.restarted.entry(key.clone()).or_default() += 1;
                        c.restarts
                    }
                    None => 0,
                };
                let host = eligible
                    .iter()
                    .filter(|h| only.is_none_or(|o| o == h.id))
                    .filter(|h| {
                        used.get(h.id.as_str()).copied().unwrap_or(0) + want.memory <= h.memory
                    })
                    .min_by_key(|h| {
                        (
                            per.get(&(h.id.as_str(), key)).copied().unwrap_or(0),
                            total.get(h.id.as_str()).copied().unwrap_or(0),
                            h.id.as_str(),
                        )
                    });
                let Some(host) = host else {
                    *out.blocked.entry(key.clone()).or_default() += 1;
                    continue;
                };
                *used.entry(host.id.as_str()).or_default() += want.memory;
                *per.entry((host.id.as_str(), key)).or_default() += 1;
                *total.entry(host.id.as_str()).or_default() += 1;
                out.actions.push(Action::Start {
                    key: key.clone(),
                    host: host.id.clone(),
                    restarts,
                });
            }
        }
        if list.len() > needed_total {
            out.dropped.insert(key.clone(), list.len() - needed_total);
        }
    }
    // Crashes of keys nothing wants any more.
    for (key, list) in crashes {
        if !wants.contains_key(key) && !list.is_empty() {
            out.dropped.insert(key.clone(), list.len());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GIB: u64 = 1 << 30;

    fn key(kind: &str) -> Key {
        Key {
            app: "a".into(),
            release: "r".into(),
            kind: kind.into(),
        }
    }

    fn host(id: &str, tags: &[(&str, &str)]) -> HostView {
        HostView {
            id: id.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            draining: false,
            memory: 4 * GIB,
        }
    }

    fn want(count: u32) -> Want {
        Want {
            count,
            omni: false,
            tags: BTreeMap::new(),
            memory: GIB,
        }
    }

    fn job(id: &str, host: &str, kind: &str, created: u128) -> JobView {
        JobView {
            id: id.into(),
            host: host.into(),
            key: key(kind),
            phase: Phase::Running,
            created,
            memory: GIB,
            stray: false,
        }
    }

    fn starts(p: &Plan) -> Vec<&str> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Start { host, .. } => Some(host.as_str()),
                _ => None,
            })
            .collect()
    }

    fn stops(p: &Plan) -> Vec<&str> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Stop { job, .. } => Some(job.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn spreads_over_hosts_with_the_fewest_jobs_of_the_type() {
        let hosts = [host("h1", &[]), host("h2", &[]), host("h3", &[])];
        let wants = BTreeMap::from([(key("web"), want(3))]);
        let p = plan(&wants, &hosts, &[], &BTreeMap::new(), Instant::now());
        assert_eq!(starts(&p), ["h1", "h2", "h3"]);
        // One already on h2: the two new ones go elsewhere.
        let jobs = [job("j1", "h2", "web", 1)];
        let p = plan(&wants, &hosts, &jobs, &BTreeMap::new(), Instant::now());
        assert_eq!(starts(&p), ["h1", "h3"]);
    }

    #[test]
    fn a_draining_hosts_jobs_move_and_stop_once_replacements_run() {
        let mut draining = host("h1", &[]);
        draining.draining = true;
        let hosts = [draining, host("h2", &[])];
        let wants = BTreeMap::from([(key("web"), want(2))]);
        let none = BTreeMap::new();
        // Nothing new on the draining host; its jobs keep serving while replacements start.
        let mut jobs = vec![job("j1", "h1", "web", 1), job("j2", "h1", "web", 2)];
        let p = plan(&wants, &hosts, &jobs, &none, Instant::now());
        assert_eq!(starts(&p), ["h2", "h2"]);
        assert!(stops(&p).is_empty(), "{p:?}");
        // One replacement runs, one still starts: one old job may stop.
        let mut n1 = job("n1", "h2", "web", 3);
        let mut n2 = job("n2", "h2", "web", 4);
        n2.phase = Phase::Starting;
        jobs.extend([n1.clone(), n2.clone()]);
        let p = plan(&wants, &hosts, &jobs, &none, Instant::now());
        assert!(starts(&p).is_empty(), "{p:?}");
        assert_eq!(stops(&p).len(), 1, "{p:?}");
        // Both run: the rest of the old ones stop.
        n1.phase = Phase::Running;
        n2.phase = Phase::Running;
        let jobs = [job("j2", "h1", "web", 2), n1, n2];
        let p = plan(&wants, &hosts, &jobs, &none, Instant::now());
        assert_eq!(stops(&p), ["j2"]);
        // With nowhere else to go, the jobs stay where they are.
        let hosts = [hosts[0].clone()];
        let jobs = [job("j1", "h1", "web", 1)];
        let p = plan(&wants, &hosts, &jobs, &none, Instant::now());
        assert!(stops(&p).is_empty(), "{p:?}");
        assert_eq!(p.blocked.get(&key("web")), Some(&2));
    }

    #[test]
    fn scales_down_newest_first_and_stops_what_nothing_wants() {
        let hosts = [host("h1", &[])];
        let jobs = [
            job("old", "h1", "web", 1),
            job("new", "h1", "web", 2),
            job("w", "h1", "worker", 1),
        ];
        let wants = BTreeMap::from([(key("web"), want(1))]);
        let p = plan(&wants, &hosts, &jobs, &BTreeMap::new(), Instant::now());
        assert_eq!(stops(&p), ["w", "new"]);
        assert!(starts(&p).is_empty());
    }

    #[test]
    fn scales_down_from_the_hosts_with_the_most_jobs_of_the_type() {
        let hosts = [host("h1", &[]), host("h2", &[]), host("h3", &[])];
        // Seven where six are wanted, the newest on h1, three on h3: one of h3's goes.
        let jobs = [
            job("a1", "h1", "web", 1),
            job("a2", "h1", "web", 9),
            job("b1", "h2", "web", 2),
            job("b2", "h2", "web", 3),
            job("c1", "h3", "web", 4),
            job("c2", "h3", "web", 5),
            job("c3", "h3", "web", 6),
        ];
        let wants = BTreeMap::from([(key("web"), want(6))]);
        let p = plan(&wants, &hosts, &jobs, &BTreeMap::new(), Instant::now());
        assert_eq!(stops(&p), ["c3"]);
        // Down to three: one from each host, newest of each first.
        let wants = BTreeMap::from([(key("web"), want(3))]);
        let p = plan(&wants, &hosts, &jobs, &BTreeMap::new(), Instant::now());
        let mut stopped = stops(&p);
        stopped.sort();
        assert_eq!(stopped, ["a2", "b2", "c2", "c3"]);
    }

    #[test]
    fn strays_of_a_returning_host_are_stopped_first() {
        let hosts = [host("h1", &[]), host("h2", &[])];
        let mut stray = job("stray", "h1", "web", 1);
        stray.stray = true;
        let jobs = [stray, job("fresh", "h2", "web", 2)];
        let p = plan(
            &BTreeMap::from([(key("web"), want(1))]),
            &hosts,
            &jobs,
            &BTreeMap::new(),
            Instant::now(),
        );
        assert_eq!(stops(&p), ["stray"]);
    }

    #[test]
    fn tags_and_memory_limit_placement() {
        let hosts = [host("h1", &[("disk", "ssd")]), host("h2", &[])];
        let mut w = want(3);
        w.tags.insert("disk".into(), "ssd".into());
        w.memory = 2 * GIB;
        let p = plan(
            &BTreeMap::from([(key("db"), w)]),
            &hosts,
            &[],
            &BTreeMap::new(),
            Instant::now(),
        );
        // h1 has room for two of 2 GiB; the third is blocked, never put on h2.
        assert_eq!(starts(&p), ["h1", "h1"]);
        assert_eq!(p.blocked.get(&key("db")), Some(&1));
        // A job on a host without the tag is moved.
        let jobs = [job("j", "h2", "db", 1)];
        let mut w = want(1);
        w.tags.insert("disk".into(), "ssd".into());
        let p = plan(
            &BTreeMap::from([(key("db"), w)]),
            &hosts,
            &jobs,
            &BTreeMap::new(),
            Instant::now(),
        );
        assert_eq!((stops(&p), starts(&p)), (vec!["j"], vec!["h1"]));
    }

    #[test]
    fn omni_runs_the_count_on_every_matching_host() {
        let hosts = [host("h1", &[]), host("h2", &[]), host("h3", &[])];
        let mut w = want(1);
        w.omni = true;
        let jobs = [job("a", "h1", "router", 1), job("b", "h1", "router", 2)];
        let p = plan(
            &BTreeMap::from([(key("router"), w)]),
            &hosts,
            &jobs,
            &BTreeMap::new(),
            Instant::now(),
        );
        assert_eq!(stops(&p), ["b"]);
        assert_eq!(starts(&p), ["h2", "h3"]);
    }

    #[test]
    fn a_crash_waiting_out_its_backoff_holds_its_slot() {
        let hosts = [host("h1", &[])];
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let crashes = BTreeMap::from([(
            key("web"),
            vec![
                Crash {
                    restarts: 3,
                    ready_at: now,
                },
                Crash {
                    restarts: 7,
                    ready_at: later,
                },
            ],
        )]);
        let p = plan(
            &BTreeMap::from([(key("web"), want(3))]),
            &hosts,
            &[],
            &crashes,
            now,
        );
        let restarts: Vec<u32> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Start { restarts, .. } => Some(*restarts),
                _ => None,
            })
            .collect();
        // The ready crash restarts, the waiting one holds, the third slot is new.
        assert_eq!(restarts, [3, 0]);
        assert_eq!(p.restarted.get(&key("web")), Some(&1));
        assert_eq!(p.next_ready, Some(later));
        // Scaled to one: no crash is needed any more beyond the first slot.
        let p = plan(
            &BTreeMap::from([(key("web"), want(1))]),
            &hosts,
            &[],
            &crashes,
            now,
        );
        assert_eq!(p.dropped.get(&key("web")), Some(&1));
    }

    #[test]
    fn jobs_being_created_count_but_are_never_stopped() {
        let hosts = [host("h1", &[])];
        let mut j = job("c", "h1", "web", 1);
        j.phase = Phase::Creating;
        let p = plan(
            &BTreeMap::from([(key("web"), want(1))]),
            &hosts,
            &[j.clone()],
            &BTreeMap::new(),
            Instant::now(),
        );
        assert!(p.actions.is_empty());
        let p = plan(
            &BTreeMap::new(),
            &hosts,
            &[j],
            &BTreeMap::new(),
            Instant::now(),
        );
        assert!(p.actions.is_empty());
    }
}
