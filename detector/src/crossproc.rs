//! Lock order across processes: the cycles that only the union of several processes' lock
//! hierarchies contains (SPEC §6).
//!
//! `cargo test` runs each test binary in a process of its own, and each learns only its part
//! of the lock hierarchy: test binary A takes `accounts` then `audit`, test binary B `audit`
//! then `accounts`. Neither process saw an inversion, yet a program that runs both paths can
//! deadlock. `lockwatch run` has every process write its hierarchy (`lockwatch.order/v1`,
//! `LOCKWATCH_ORDER_GRAPH=<dir>/order-%p.json`); this module merges them and reports each cycle
//! that no single process took every edge of.
//!
//! Nodes are lock *classes*: kind, name and creation site, the same in every process that runs
//! the same code (lock ids are per process and mean nothing across them). For each merged edge
//! the search looks for the shortest cycle through it whose edges no one process all took (a
//! BFS over `(class, processes that took every edge so far)`), so a cycle one process saw whole,
//! which that process reported itself, is never reported again, and it does not hide a longer
//! cross-process one. Each cycle is reported once, as its class sequence starting at its
//! smallest class, in the words of an in-process inversion.
//!
//! A cycle whose every edge was taken while holding one same class of lock (a gate) is not
//! reported, as in-process.
//!
//! The types here read the hierarchy JSON on their own (read-only, unknown fields ignored), so
//! the writer in the runtime can add fields freely; the fields read are part of the format.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde::Deserialize;

use crate::model::{
    resource_label, thread_label, CycleEdge, Hold, Location, Op, Report, ReportKind, ResourceKind,
    ResourceReport, ThreadReport, ThreadState, SCHEMA,
};
use crate::order::ORDER_SCHEMA;
use crate::wording::{
    cross_process_summary, order_help, reverse_acquisition_help, CROSS_PROCESS_HELP,
};

/// A lock class as a hierarchy file names it.
#[derive(Clone, Debug, Deserialize)]
struct NodeJson {
    id: u64,
    kind: ResourceKind,
    #[serde(default)]
    name: Option<String>,
    created_at: Location,
}

/// One ordering as a hierarchy file records it: `thread` took `to` at `location` while holding
/// `from`, taken at `from_location`.
#[derive(Clone, Debug, Deserialize)]
struct EdgeJson {
    from: u64,
    to: u64,
    thread: u64,
    #[serde(default)]
    thread_name: Option<String>,
    location: Location,
    from_location: Location,
    #[serde(default)]
    from_op: Option<Op>,
    #[serde(default)]
    gates: Vec<u64>,
}

#[derive(Debug, Deserialize)]
struct HierarchyJson {
    nodes: Vec<NodeJson>,
    edges: Vec<EdgeJson>,
}

/// The lock hierarchy one process learned, read from its `lockwatch.order/v1` file.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    /// The process that wrote it, if known (from the file name `order-<pid>.json`).
    pub pid: Option<u32>,
    nodes: Vec<NodeJson>,
    edges: Vec<EdgeJson>,
}

/// Why a text is not a lock hierarchy.
#[derive(Debug)]
pub enum HierarchyError {
    /// Not JSON, or JSON of the wrong shape.
    Json(serde_json::Error),
    /// Well-formed, but its `schema` is not `lockwatch.order/v1`.
    ForeignSchema(Option<String>),
    /// An edge names a lock the file does not list.
    UnknownLock(u64),
}

impl fmt::Display for HierarchyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HierarchyError::Json(e) => write!(f, "not a lockwatch lock hierarchy: {e}"),
            HierarchyError::ForeignSchema(Some(s)) => {
                write!(f, "unsupported schema `{s}` (expected `{ORDER_SCHEMA}`)")
            }
            HierarchyError::ForeignSchema(None) => write!(
                f,
                "not a lockwatch lock hierarchy: no `schema` field (expected `{ORDER_SCHEMA}`)"
            ),
            HierarchyError::UnknownLock(id) => {
                write!(f, "an edge names lock {id}, which is not among the nodes")
            }
        }
    }
}

impl std::error::Error for HierarchyError {}

impl Hierarchy {
    /// Reads a hierarchy written by process `pid`.
    pub fn from_json(text: &str, pid: Option<u32>) -> Result<Hierarchy, HierarchyError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(HierarchyError::Json)?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(ORDER_SCHEMA) => {}
            Some(other) => return Err(HierarchyError::ForeignSchema(Some(other.to_owned()))),
            None => return Err(HierarchyError::ForeignSchema(None)),
        }
        let doc: HierarchyJson = serde_json::from_value(value).map_err(HierarchyError::Json)?;
        for e in &doc.edges {
            for id in [e.from, e.to] {
                if !doc.nodes.iter().any(|n| n.id == id) {
                    return Err(HierarchyError::UnknownLock(id));
                }
            }
        }
        Ok(Hierarchy {
            pid,
            nodes: doc.nodes,
            edges: doc.edges,
        })
    }

    fn class_key(&self, id: u64) -> Option<ClassKey> {
        self.nodes.iter().find(|n| n.id == id).map(ClassKey::of)
    }
}

/// What makes two locks of two processes the same lock of the code. Ordered by creation site
/// first, so class ids (and the order the help suggests) follow the source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ClassKey {
    created_at: Location,
    name: Option<String>,
    kind: ResourceKind,
}

impl ClassKey {
    fn of(n: &NodeJson) -> ClassKey {
        ClassKey {
            created_at: n.created_at.clone(),
            name: n.name.clone(),
            kind: n.kind,
        }
    }
}

/// One process's recording of a merged edge.
struct Recording<'a> {
    /// Index of the hierarchy (the process) in the input.
    process: usize,
    edge: &'a EdgeJson,
}

/// The union of every process's hierarchy, over lock classes.
struct Merged<'a> {
    hierarchies: &'a [Hierarchy],
    /// Class id (1-based, in `ClassKey` order) → key.
    classes: Vec<ClassKey>,
    /// `(from, to)` class ids → every recording, in input order.
    edges: BTreeMap<(u64, u64), Vec<Recording<'a>>>,
    /// Successors of each class, sorted.
    next: BTreeMap<u64, Vec<u64>>,
}

impl<'a> Merged<'a> {
    fn new(hierarchies: &'a [Hierarchy]) -> Merged<'a> {
        let keys: BTreeSet<ClassKey> = hierarchies
            .iter()
            .flat_map(|h| h.nodes.iter().map(ClassKey::of))
            .collect();
        let classes: Vec<ClassKey> = keys.into_iter().collect();
        let mut merged = Merged {
            hierarchies,
            classes,
            edges: BTreeMap::new(),
            next: BTreeMap::new(),
        };
        for (process, h) in hierarchies.iter().enumerate() {
            for edge in &h.edges {
                let (Some(from), Some(to)) = (
                    h.class_key(edge.from).and_then(|k| merged.class_id(&k)),
                    h.class_key(edge.to).and_then(|k| merged.class_id(&k)),
                ) else {
                    continue;
                };
                if from == to {
                    continue;
                }
                merged
                    .edges
                    .entry((from, to))
                    .or_default()
                    .push(Recording { process, edge });
            }
        }
        for &(from, to) in merged.edges.keys() {
            merged.next.entry(from).or_default().push(to);
        }
        merged
    }

    fn class_id(&self, key: &ClassKey) -> Option<u64> {
        self.classes.binary_search(key).ok().map(|i| i as u64 + 1)
    }

    fn class(&self, id: u64) -> &ClassKey {
        &self.classes[id as usize - 1]
    }

    /// The processes that took edge `from -> to`.
    fn processes(&self, from: u64, to: u64) -> BTreeSet<usize> {
        self.edges
            .get(&(from, to))
            .map(|rs| rs.iter().map(|r| r.process).collect())
            .unwrap_or_default()
    }

    /// The gate classes of an edge: held, as the same class, by every recording of it.
    fn gates(&self, from: u64, to: u64) -> BTreeSet<u64> {
        let mut all: Option<BTreeSet<u64>> = None;
        for r in self.edges.get(&(from, to)).into_iter().flatten() {
            let h = &self.hierarchies[r.process];
            let gates: BTreeSet<u64> = r
                .edge
                .gates
                .iter()
                .filter_map(|&g| h.class_key(g).and_then(|k| self.class_id(&k)))
                .collect();
            all = Some(match all {
                None => gates,
                Some(acc) => acc.intersection(&gates).copied().collect(),
            });
        }
        all.unwrap_or_default()
    }

    /// The shortest cycle through `from -> to` that no single process took every edge of, as
    /// its class sequence starting at `from`.
    fn shortest_cross_process_cycle(&self, from: u64, to: u64) -> Option<Vec<u64>> {
        /// A bound on the search, whose states are (class, set of processes).
        const MAX_STATES: usize = 100_000;
        struct State {
            class: u64,
            together: BTreeSet<usize>,
            parent: Option<usize>,
        }
        let mut states = vec![State {
            class: to,
            together: self.processes(from, to),
            parent: None,
        }];
        // Per class, the process sets it was reached with: a state whose set contains one of
        // them is no closer to an empty set, so it is dominated.
        let mut reached: BTreeMap<u64, Vec<BTreeSet<usize>>> = BTreeMap::new();
        reached.insert(to, vec![states[0].together.clone()]);
        let mut queue = VecDeque::from([0usize]);
        let path_of = |states: &[State], mut i: usize| {
            let mut path = vec![states[i].class];
            while let Some(p) = states[i].parent {
                path.push(states[p].class);
                i = p;
            }
            path.reverse();
            path
        };
        while let Some(i) = queue.pop_front() {
            let class = states[i].class;
            for &next in self.next.get(&class).into_iter().flatten() {
                let together: BTreeSet<usize> = states[i]
                    .together
                    .intersection(&self.processes(class, next))
                    .copied()
                    .collect();
                if next == from {
                    if together.is_empty() {
                        let mut cycle = vec![from];
                        cycle.extend(path_of(&states, i));
                        return Some(cycle);
                    }
                    continue;
                }
                // Simple cycles only: a class already on this path closes a shorter cycle,
                // which the search through that cycle's own edges finds.
                if path_of(&states, i).contains(&next) {
                    continue;
                }
                let seen = reached.entry(next).or_default();
                if seen.iter().any(|s| s.is_subset(&together)) {
                    continue;
                }
                if states.len() >= MAX_STATES {
                    return None;
                }
                seen.push(together.clone());
                states.push(State {
                    class: next,
                    together,
                    parent: Some(i),
                });
                queue.push_back(states.len() - 1);
            }
        }
        None
    }
}

/// Merges the hierarchies of the processes one `lockwatch run` ran and returns a
/// `lock_order_inversion` report for each cycle that no single process took every edge of.
///
/// Each report's cycle edges carry the `pid` of the process that took them (the first
/// recording, in input order, of each edge). Resource ids are class ids and thread ids are
/// numbered within the report (threads of different processes share ids); `pid` is the
/// reporting process (the CLI). Reports come sorted by cycle; a cycle is reported once.
pub fn cross_process_inversions(
    hierarchies: &[Hierarchy],
    pid: u32,
    detected_at_ms: u64,
) -> Vec<Report> {
    let merged = Merged::new(hierarchies);
    let mut found: BTreeSet<Vec<u64>> = BTreeSet::new();
    for &(from, to) in merged.edges.keys() {
        let Some(mut cycle) = merged.shortest_cross_process_cycle(from, to) else {
            continue;
        };
        let smallest = cycle
            .iter()
            .enumerate()
            .min_by_key(|&(_, &c)| c)
            .map_or(0, |(i, _)| i);
        cycle.rotate_left(smallest);
        let pairs: Vec<(u64, u64)> = pairs_of(&cycle);
        let gated = pairs
            .iter()
            .map(|&(a, b)| merged.gates(a, b))
            .reduce(|acc, g| acc.intersection(&g).copied().collect())
            .is_some_and(|g| !g.is_empty());
        if !gated {
            found.insert(cycle);
        }
    }
    found
        .into_iter()
        .map(|cycle| report_of(&merged, &pairs_of(&cycle), pid, detected_at_ms))
        .collect()
}

fn pairs_of(cycle: &[u64]) -> Vec<(u64, u64)> {
    (0..cycle.len())
        .map(|i| (cycle[i], cycle[(i + 1) % cycle.len()]))
        .collect()
}

fn report_of(merged: &Merged<'_>, cycle: &[(u64, u64)], pid: u32, detected_at_ms: u64) -> Report {
    let label = |id: u64| {
        let c = merged.class(id);
        format!("`{}`", resource_label(c.kind, c.name.as_deref(), id))
    };
    let mut edges = Vec::new();
    let mut threads: Vec<ThreadReport> = Vec::new();
    // (process, thread id in that process) → thread id in the report.
    let mut thread_ids: Vec<(usize, u64)> = Vec::new();
    let mut processes: BTreeSet<usize> = BTreeSet::new();
    let mut reversals = Vec::new();
    let order: Vec<u64> = {
        let mut o: Vec<u64> = cycle.iter().map(|&(a, _)| a).collect();
        o.sort_unstable();
        o
    };
    let rank = |id: u64| order.iter().position(|&o| o == id);
    for &(a, b) in cycle {
        let r = &merged.edges[&(a, b)][0];
        let e = r.edge;
        let process_pid = merged.hierarchies[r.process].pid;
        processes.insert(r.process);
        let key = (r.process, e.thread);
        let tid = match thread_ids.iter().position(|k| *k == key) {
            Some(i) => i as u64 + 1,
            None => {
                thread_ids.push(key);
                threads.push(ThreadReport {
                    id: thread_ids.len() as u64,
                    name: e.thread_name.clone(),
                    // The process wrote its hierarchy at exit.
                    state: ThreadState::Exited,
                    waiting_for: None,
                    holds: Vec::new(),
                    backtrace: Vec::new(),
                });
                thread_ids.len() as u64
            }
        };
        let thread = &mut threads[tid as usize - 1];
        if !thread.holds.iter().any(|h| h.resource == a) {
            thread.holds.push(Hold {
                resource: a,
                op: e.from_op.unwrap_or(match merged.class(a).kind {
                    ResourceKind::Lock => Op::Acquire,
                    ResourceKind::RwLock => Op::Write,
                    _ => Op::Lock,
                }),
                count: 1,
                location: e.from_location.clone(),
                backtrace: Vec::new(),
            });
        }
        edges.push(CycleEdge::Order {
            from: a,
            to: b,
            thread: tid,
            location: e.location.clone(),
            from_location: Some(e.from_location.clone()),
            thread_name: e.thread_name.clone(),
            backtrace: Vec::new(),
            pid: process_pid,
        });
        if rank(a) > rank(b) {
            reversals.push(reverse_acquisition_help(
                &thread_label(e.thread_name.as_deref(), e.thread),
                process_pid,
                &label(b),
                &label(a),
                &e.location,
            ));
        }
    }
    let mut resources = Vec::new();
    for &(a, _) in cycle {
        let c = merged.class(a);
        resources.push(ResourceReport {
            id: a,
            kind: c.kind,
            name: c.name.clone(),
            created_at: c.created_at.clone(),
        });
    }
    let mut path: Vec<String> = cycle.iter().map(|&(a, _)| label(a)).collect();
    path.extend(cycle.first().map(|&(a, _)| label(a)));
    let n = processes.len();
    let summary = cross_process_summary(&path, n);
    let labels: Vec<String> = order.iter().map(|&id| label(id)).collect();
    let mut help: Vec<String> = order_help(&labels).into_iter().collect();
    help.extend(reversals);
    help.push(CROSS_PROCESS_HELP.to_owned());
    Report {
        schema: SCHEMA.to_owned(),
        kind: ReportKind::LockOrderInversion,
        summary,
        pid,
        detected_at_ms,
        threads,
        resources,
        cycle: edges,
        help,
        test: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hierarchy of one process: `locks` as (id, name, creation line), `edges` as
    /// (from, to, thread, line where `to` was taken).
    fn hierarchy(
        pid: u32,
        locks: &[(u64, &str, u32)],
        edges: &[(u64, u64, u64, u32)],
        gates: &[u64],
    ) -> Hierarchy {
        let nodes: Vec<serde_json::Value> = locks
            .iter()
            .map(|&(id, name, line)| {
                serde_json::json!({"id": id, "kind": "Mutex", "name": name,
                    "created_at": {"file": "src/bank.rs", "line": line, "column": 9}})
            })
            .collect();
        let edges: Vec<serde_json::Value> = edges
            .iter()
            .map(|&(from, to, thread, line)| {
                serde_json::json!({"from": from, "to": to, "thread": thread,
                    "thread_name": format!("t{thread}"),
                    "location": {"file": "src/bank.rs", "line": line, "column": 5},
                    "from_location": {"file": "src/bank.rs", "line": line - 1, "column": 5},
                    "gates": gates, "future_field": true})
            })
            .collect();
        let text =
            serde_json::json!({"schema": ORDER_SCHEMA, "nodes": nodes, "edges": edges}).to_string();
        Hierarchy::from_json(&text, Some(pid)).expect("a valid hierarchy")
    }

    fn cycle_of(r: &Report) -> Vec<(u64, u64, Option<u32>)> {
        r.cycle
            .iter()
            .map(|e| match e {
                CycleEdge::Order { from, to, pid, .. } => (*from, *to, *pid),
                CycleEdge::Wait { .. } => panic!("a wait edge in an inversion"),
            })
            .collect()
    }

    #[test]
    fn two_processes_taking_two_classes_in_opposite_orders_make_one_inversion() {
        // Lock ids differ between the processes; the classes (name + site) are the same.
        let a = hierarchy(
            100,
            &[(1, "accounts", 10), (2, "audit", 11)],
            &[(1, 2, 1, 21)],
            &[],
        );
        let b = hierarchy(
            200,
            &[(5, "audit", 11), (9, "accounts", 10)],
            &[(5, 9, 3, 31)],
            &[],
        );
        let reports = cross_process_inversions(&[a, b], 7, 99);
        assert_eq!(reports.len(), 1, "{reports:#?}");
        let r = &reports[0];
        assert_eq!(r.kind, ReportKind::LockOrderInversion);
        assert_eq!(
            r.summary,
            "lock order inversion: `accounts` → `audit` → `accounts` across 2 processes"
        );
        // accounts is class 1 (created first), audit class 2.
        assert_eq!(cycle_of(r), vec![(1, 2, Some(100)), (2, 1, Some(200))]);
        assert_eq!(r.help[0], "acquire `accounts` before `audit` on every path");
        assert_eq!(
            r.help[1],
            "thread `t3` of process 200 takes `accounts` while holding `audit` at \
             src/bank.rs:31:5: reverse this acquisition"
        );
        assert_eq!(r.threads.len(), 2);
        assert_eq!(
            r.threads[1].holds[0].location,
            Location::new("src/bank.rs", 30, 5)
        );
        assert_eq!(r.pid, 7);
        // The pid of each edge survives the JSON; in-process reports keep their old shape.
        let json = r.to_json();
        assert!(json.contains("\"pid\":100"), "{json}");
        assert_eq!(Report::from_json(&json).unwrap(), *r);
    }

    #[test]
    fn a_cycle_one_process_saw_whole_is_not_reported_again() {
        let both = hierarchy(
            100,
            &[(1, "accounts", 10), (2, "audit", 11)],
            &[(1, 2, 1, 21), (2, 1, 2, 31)],
            &[],
        );
        let other = hierarchy(
            200,
            &[(1, "accounts", 10), (2, "audit", 11)],
            &[(1, 2, 1, 21)],
            &[],
        );
        assert!(cross_process_inversions(&[both, other], 7, 99).is_empty());
    }

    #[test]
    fn a_cross_process_cycle_behind_an_in_process_one_is_still_found() {
        // Process 100 saw a ↔ b whole; b → c → a comes from process 200 only, so the cycle
        // a → b → c → a is new, though the shortest cycle through a → b is not.
        let p = hierarchy(
            100,
            &[(1, "a", 10), (2, "b", 11)],
            &[(1, 2, 1, 21), (2, 1, 1, 31)],
            &[],
        );
        let q = hierarchy(
            200,
            &[(1, "b", 11), (2, "c", 12), (3, "a", 10)],
            &[(1, 2, 1, 41), (2, 3, 1, 51)],
            &[],
        );
        let reports = cross_process_inversions(&[p, q], 7, 99);
        assert_eq!(reports.len(), 1, "{reports:#?}");
        let edges: Vec<(u64, u64)> = cycle_of(&reports[0]).iter().map(|e| (e.0, e.1)).collect();
        assert_eq!(edges, vec![(1, 2), (2, 3), (3, 1)]);
    }

    #[test]
    fn each_cycle_is_reported_once_and_the_shortest_one() {
        // Three processes, one edge each of the 3-cycle a → b → c → a.
        let p1 = hierarchy(1, &[(1, "a", 10), (2, "b", 11)], &[(1, 2, 1, 21)], &[]);
        let p2 = hierarchy(2, &[(1, "b", 11), (2, "c", 12)], &[(1, 2, 1, 31)], &[]);
        let p3 = hierarchy(3, &[(1, "c", 12), (2, "a", 10)], &[(1, 2, 1, 41)], &[]);
        let reports = cross_process_inversions(&[p1.clone(), p2.clone(), p3.clone()], 7, 99);
        assert_eq!(reports.len(), 1, "one cycle, found from each of its edges");
        assert_eq!(cycle_of(&reports[0]).len(), 3);
        assert!(reports[0].summary.ends_with("across 3 processes"));

        // A fourth process's b → a makes a → b → a the shortest cycle through a → b.
        let p4 = hierarchy(4, &[(1, "b", 11), (2, "a", 10)], &[(1, 2, 1, 51)], &[]);
        let reports = cross_process_inversions(&[p1, p2, p3, p4], 7, 99);
        let lengths: Vec<usize> = reports.iter().map(|r| r.cycle.len()).collect();
        // a → b → a through a → b and b → a; a → b → c → a is still reported through c → a,
        // whose shortest cycle it is.
        assert_eq!(lengths, vec![2, 3]);
    }

    #[test]
    fn a_cycle_gated_by_one_class_on_every_edge_is_not_reported() {
        let a = hierarchy(
            100,
            &[(1, "accounts", 10), (2, "audit", 11), (3, "bank", 9)],
            &[(1, 2, 1, 21)],
            &[3],
        );
        let b = hierarchy(
            200,
            &[(4, "bank", 9), (5, "audit", 11), (6, "accounts", 10)],
            &[(5, 6, 1, 31)],
            &[4],
        );
        assert!(cross_process_inversions(&[a, b], 7, 99).is_empty());
    }

    #[test]
    fn bad_hierarchy_files_are_named_errors() {
        let foreign = Hierarchy::from_json(r#"{"schema": "other/v1"}"#, None).unwrap_err();
        assert_eq!(
            foreign.to_string(),
            "unsupported schema `other/v1` (expected `lockwatch.order/v1`)"
        );
        let malformed = Hierarchy::from_json("{", None).unwrap_err();
        assert!(malformed
            .to_string()
            .starts_with("not a lockwatch lock hierarchy"));
        let dangling = Hierarchy::from_json(
            r#"{"schema": "lockwatch.order/v1", "nodes": [], "edges": [{"from": 1, "to": 2,
                "thread": 1, "location": {"file": "a", "line": 1, "column": 1},
                "from_location": {"file": "a", "line": 1, "column": 1}}]}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(
            dangling.to_string(),
            "an edge names lock 1, which is not among the nodes"
        );
    }
}
