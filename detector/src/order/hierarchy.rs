//! The learned lock hierarchy over lock *classes*, and its JSON and DOT writers
//! (`LOCKWATCH_ORDER_GRAPH`, schema [`ORDER_SCHEMA`]).
//!
//! The order graph ([`super::OrderGraph`]) has a node per live lock and forgets a lock when it
//! is dropped; the hierarchy keeps what the program taught over its whole run, with one node
//! per class (creation site, kind, name) so that the thousand `account-{k}` locks of one site
//! with one name are one node, and two runs of the same program give the same file.
//!
//! # Stable across runs
//!
//! Nothing in the file depends on scheduling: nodes are numbered in the order of their class
//! (file, line, column, kind, name); an edge seen by several threads keeps the smallest of
//! their recordings (thread name, then the two sites), and its gates are the intersection of
//! every recording's; threads are numbered within the file (by name, then by the first edge
//! they stand for), not by their runtime ids, which follow the order threads first touched a
//! lock.
//!
//! # Bounded
//!
//! Like lockdep's class table (`MAX_LOCKDEP_KEYS`) and TSan's deadlock detector, the hierarchy
//! has fixed capacities: [`Hierarchy::MAX_CLASSES`] classes and [`Hierarchy::MAX_EDGES`]
//! orderings. A recording that would need a new class or a new ordering beyond them is left
//! out and counted ([`Recorded::Dropped`]; the count is written as `dropped`), and the first
//! one is the caller's cue to say so once. Orderings between classes already known are still
//! merged. The live order graph, which finds inversions, is not affected: it follows the live
//! locks.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::model::{resource_label, thread_label, Location, ResourceKind};

/// The schema identifier of [`Hierarchy::to_json`].
pub const ORDER_SCHEMA: &str = "lockwatch.order/v1";

/// What identifies a lock across instances and runs. The field order is the sort order of
/// the written file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockClass {
    /// Where locks of the class are created.
    pub created_at: Location,
    /// Their type.
    pub kind: ResourceKind,
    /// Their name, if they are named.
    pub name: Option<String>,
}

/// One thread's recording of an ordering: it took a lock of class `to` at `location` while
/// holding one of class `from`, taken at `from_location`, with locks of the `gates` classes
/// also held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassRecording {
    /// The thread's runtime id: only tells threads apart, never written.
    pub thread: u64,
    /// The thread's name, if it has one.
    pub thread_name: Option<String>,
    /// Where the lock of class `to` was taken.
    pub location: Location,
    /// Where the lock of class `from` had been taken.
    pub from_location: Location,
    /// The classes of the other exclusively held locks (see the order graph's gate rule).
    pub gates: Vec<LockClass>,
}

/// What [`Hierarchy::record`] did with a recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// A new ordering.
    Added,
    /// Merged into an ordering already known (or a class ordered after itself: ignored).
    Known,
    /// Left out: the hierarchy is at its bound.
    Dropped {
        /// This is the first recording left out (the one to report).
        first: bool,
    },
}

#[derive(Clone, Debug)]
struct EdgeRecord {
    thread: u64,
    thread_name: Option<String>,
    location: Location,
    from_location: Location,
    /// Class indices, sorted.
    gates: Vec<u32>,
}

impl EdgeRecord {
    /// The order in which recordings of one edge compete: the smallest is kept. A named
    /// thread before an unnamed one, so the name shows.
    fn rank(&self) -> (bool, &Option<String>, &Location, &Location) {
        (
            self.thread_name.is_none(),
            &self.thread_name,
            &self.location,
            &self.from_location,
        )
    }
}

/// The learned hierarchy over lock classes (see the module docs).
#[derive(Clone, Debug)]
pub struct Hierarchy {
    index: HashMap<LockClass, u32>,
    classes: Vec<LockClass>,
    edges: HashMap<(u32, u32), EdgeRecord>,
    max_classes: usize,
    max_edges: usize,
    dropped: u64,
}

impl Default for Hierarchy {
    fn default() -> Self {
        Self::with_bounds(Self::MAX_CLASSES, Self::MAX_EDGES)
    }
}

impl Hierarchy {
    /// Lock classes kept (lockdep keeps 8,191; TSan's detector about 4,000 live locks).
    pub const MAX_CLASSES: usize = 4_096;
    /// Orderings kept between them.
    pub const MAX_EDGES: usize = 16_384;

    /// An empty hierarchy with the default capacities.
    pub fn new() -> Self {
        Self::default()
    }

    /// A hierarchy with other capacities (tests use small ones).
    pub fn with_bounds(max_classes: usize, max_edges: usize) -> Self {
        Hierarchy {
            index: HashMap::new(),
            classes: Vec::new(),
            edges: HashMap::new(),
            max_classes,
            max_edges,
            dropped: 0,
        }
    }

    /// Records that a thread took a lock of class `to` while holding one of class `from`.
    pub fn record(
        &mut self,
        from: &LockClass,
        to: &LockClass,
        recording: ClassRecording,
    ) -> Recorded {
        if from == to {
            return Recorded::Known;
        }
        let needed =
            usize::from(!self.index.contains_key(from)) + usize::from(!self.index.contains_key(to));
        if self.classes.len() + needed > self.max_classes {
            return self.drop_one();
        }
        let (u, v) = (self.class(from), self.class(to));
        let mut gates: Vec<u32> = recording
            .gates
            .iter()
            .filter_map(|g| self.index.get(g).copied())
            .filter(|&g| g != u && g != v)
            .collect();
        gates.sort_unstable();
        gates.dedup();
        let fresh = EdgeRecord {
            thread: recording.thread,
            thread_name: recording.thread_name,
            location: recording.location,
            from_location: recording.from_location,
            gates,
        };
        let full = self.edges.len() >= self.max_edges;
        match self.edges.get_mut(&(u, v)) {
            Some(known) => {
                known.gates.retain(|g| fresh.gates.binary_search(g).is_ok());
                if fresh.rank() < known.rank() {
                    let gates = std::mem::take(&mut known.gates);
                    *known = EdgeRecord { gates, ..fresh };
                }
                Recorded::Known
            }
            None if full => self.drop_one(),
            None => {
                self.edges.insert((u, v), fresh);
                Recorded::Added
            }
        }
    }

    fn drop_one(&mut self) -> Recorded {
        self.dropped += 1;
        Recorded::Dropped {
            first: self.dropped == 1,
        }
    }

    fn class(&mut self, class: &LockClass) -> u32 {
        if let Some(&k) = self.index.get(class) {
            return k;
        }
        let k = self.classes.len() as u32;
        self.classes.push(class.clone());
        self.index.insert(class.clone(), k);
        k
    }

    /// Lock classes kept.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// Orderings kept.
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// Recordings left out at the bound.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The file's view: node ids by class order, edges sorted, thread numbers, and which
    /// edges lie on a cycle.
    fn layout(&self) -> Layout<'_> {
        let mut order: Vec<u32> = (0..self.classes.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.classes[a as usize].cmp(&self.classes[b as usize]));
        let mut id = vec![0u64; self.classes.len()];
        for (rank, &k) in order.iter().enumerate() {
            id[k as usize] = rank as u64 + 1;
        }
        let mut edges: Vec<(u64, u64, &EdgeRecord)> = self
            .edges
            .iter()
            .map(|(&(u, v), e)| (id[u as usize], id[v as usize], e))
            .collect();
        edges.sort_unstable_by_key(|&(a, b, _)| (a, b));
        // Threads by name, then by the first edge they stand for (edges are sorted).
        let mut threads: Vec<(bool, Option<&str>, usize, u64)> = Vec::new();
        for (position, &(_, _, e)) in edges.iter().enumerate() {
            if !threads.iter().any(|t| t.3 == e.thread) {
                threads.push((
                    e.thread_name.is_none(),
                    e.thread_name.as_deref(),
                    position,
                    e.thread,
                ));
            }
        }
        threads.sort_unstable();
        let number: HashMap<u64, u64> = threads
            .iter()
            .enumerate()
            .map(|(k, t)| (t.3, k as u64 + 1))
            .collect();
        let on_cycle = on_cycle(self.classes.len(), &edges);
        Layout {
            order,
            id,
            edges,
            number,
            on_cycle,
        }
    }

    /// The hierarchy as JSON (schema [`ORDER_SCHEMA`]): `nodes` (id, kind, name, created_at)
    /// sorted by id, `edges` (from, to, thread, thread_name, location, from_location, gates)
    /// sorted by (from, to), and `dropped` when the bound left recordings out. `thread` is a
    /// number for the thread within this file.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct JsonNode<'a> {
            id: u64,
            kind: ResourceKind,
            name: &'a Option<String>,
            created_at: &'a Location,
        }
        #[derive(Serialize)]
        struct JsonEdge<'a> {
            from: u64,
            to: u64,
            thread: u64,
            thread_name: &'a Option<String>,
            location: &'a Location,
            from_location: &'a Location,
            gates: Vec<u64>,
        }
        #[derive(Serialize)]
        struct JsonGraph<'a> {
            schema: &'static str,
            nodes: Vec<JsonNode<'a>>,
            edges: Vec<JsonEdge<'a>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            dropped: Option<u64>,
        }
        let layout = self.layout();
        let nodes = layout
            .order
            .iter()
            .map(|&k| {
                let c = &self.classes[k as usize];
                JsonNode {
                    id: layout.id[k as usize],
                    kind: c.kind,
                    name: &c.name,
                    created_at: &c.created_at,
                }
            })
            .collect();
        let edges = layout
            .edges
            .iter()
            .map(|&(from, to, e)| {
                let mut gates: Vec<u64> = e.gates.iter().map(|&g| layout.id[g as usize]).collect();
                gates.sort_unstable();
                JsonEdge {
                    from,
                    to,
                    thread: layout.number[&e.thread],
                    thread_name: &e.thread_name,
                    location: &e.location,
                    from_location: &e.from_location,
                    gates,
                }
            })
            .collect();
        let doc = JsonGraph {
            schema: ORDER_SCHEMA,
            nodes,
            edges,
            dropped: (self.dropped > 0).then_some(self.dropped),
        };
        serde_json::to_string_pretty(&doc).expect("the hierarchy always serialises")
    }

    /// The hierarchy as a Graphviz digraph: a box per class labelled with its name and
    /// creation site, an edge per ordering labelled with the thread and where it took `to`;
    /// edges on a cycle (an inversion between classes) are red. Numbered and sorted like
    /// [`Hierarchy::to_json`].
    pub fn to_dot(&self) -> String {
        let layout = self.layout();
        let mut out = String::from(
            "digraph lock_order {\n    rankdir=LR;\n    node [shape=box, fontname=\"monospace\"];\n",
        );
        for &k in &layout.order {
            let c = &self.classes[k as usize];
            let id = layout.id[k as usize];
            let label = format!(
                "{}\n{}",
                resource_label(c.kind, c.name.as_deref(), id),
                c.created_at
            );
            let _ = writeln!(
                out,
                "    n{id} [label=\"{}\"];",
                crate::render::dot::escape(&label)
            );
        }
        for (position, &(a, b, e)) in layout.edges.iter().enumerate() {
            let label = format!(
                "{}\n{}",
                thread_label(e.thread_name.as_deref(), layout.number[&e.thread]),
                e.location
            );
            let color = if layout.on_cycle[position] {
                ", color=red, fontcolor=red"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    n{a} -> n{b} [label=\"{}\"{color}];",
                crate::render::dot::escape(&label)
            );
        }
        if self.dropped > 0 {
            let _ = writeln!(
                out,
                "    // {} recordings left out at the bound ({} classes, {} orderings)",
                self.dropped, self.max_classes, self.max_edges
            );
        }
        out.push_str("}\n");
        out
    }
}

struct Layout<'a> {
    /// Class indices in file order.
    order: Vec<u32>,
    /// The file id of each class index.
    id: Vec<u64>,
    /// (from id, to id, record), sorted.
    edges: Vec<(u64, u64, &'a EdgeRecord)>,
    /// File thread numbers by runtime id.
    number: HashMap<u64, u64>,
    /// Per sorted edge: whether its two ends are in one strongly connected component.
    on_cycle: Vec<bool>,
}

/// For each edge, whether it lies on a cycle (its ends are strongly connected).
fn on_cycle(n: usize, edges: &[(u64, u64, &EdgeRecord)]) -> Vec<bool> {
    let mut graph = petgraph::Graph::<(), ()>::with_capacity(n, edges.len());
    let nodes: Vec<_> = (0..n).map(|_| graph.add_node(())).collect();
    for &(a, b, _) in edges {
        graph.add_edge(nodes[a as usize - 1], nodes[b as usize - 1], ());
    }
    let mut component = vec![usize::MAX; n];
    for (k, scc) in petgraph::algo::tarjan_scc(&graph).into_iter().enumerate() {
        for node in scc {
            component[node.index()] = k;
        }
    }
    edges
        .iter()
        .map(|&(a, b, _)| component[a as usize - 1] == component[b as usize - 1])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(line: u32, name: &str) -> LockClass {
        LockClass {
            created_at: Location::new("src/locks.rs", line, 13),
            kind: ResourceKind::Mutex,
            name: Some(name.to_owned()),
        }
    }

    fn by(thread: u64, name: Option<&str>, line: u32) -> ClassRecording {
        ClassRecording {
            thread,
            thread_name: name.map(str::to_owned),
            location: Location::new("src/app.rs", line, 23),
            from_location: Location::new("src/app.rs", line - 1, 23),
            gates: Vec::new(),
        }
    }

    #[test]
    fn json_is_the_same_whatever_order_the_recordings_came_in() {
        let (a, b, c) = (class(3, "a"), class(1, "b"), class(2, "c"));
        let recordings = [
            (a.clone(), b.clone(), by(7, Some("w1"), 20)),
            (b.clone(), c.clone(), by(9, Some("w0"), 30)),
            (a.clone(), b.clone(), by(9, Some("w0"), 40)),
            (c.clone(), a.clone(), by(4, None, 50)),
        ];
        let mut texts = Vec::new();
        for rotation in 0..recordings.len() {
            let mut h = Hierarchy::new();
            for k in 0..recordings.len() {
                let (from, to, r) = recordings[(k + rotation) % recordings.len()].clone();
                // Runtime ids differ from run to run; within a run a thread keeps its id.
                let r = ClassRecording {
                    thread: r.thread + 1000 * rotation as u64,
                    ..r
                };
                h.record(&from, &to, r);
            }
            texts.push(h.to_json());
        }
        assert!(texts.windows(2).all(|w| w[0] == w[1]), "{texts:#?}");
        let v: serde_json::Value = serde_json::from_str(&texts[0]).unwrap();
        assert_eq!(v["schema"], ORDER_SCHEMA);
        // Nodes by creation site: b (line 1), c (line 2), a (line 3).
        let names: Vec<&str> = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b", "c", "a"]);
        // a -> b seen by w1 and w0: w0's recording is kept; threads are numbered by name.
        let ab = v["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["from"] == 3 && e["to"] == 1)
            .unwrap();
        assert_eq!(ab["thread_name"], "w0");
        assert_eq!(ab["thread"], 1);
        assert_eq!(ab["location"]["line"], 40);
        assert!(v.get("dropped").is_none());
    }

    #[test]
    fn gates_are_classes_intersected_over_recordings() {
        let (g, a, b, other) = (class(1, "g"), class(2, "a"), class(3, "b"), class(4, "o"));
        let mut h = Hierarchy::new();
        // Gates only count once they are classes of the hierarchy.
        h.record(&g, &a, by(1, None, 10));
        h.record(&g, &other, by(1, None, 10));
        let gated = |gates: Vec<LockClass>| ClassRecording {
            gates,
            ..by(1, None, 20)
        };
        h.record(&a, &b, gated(vec![g.clone(), other.clone()]));
        h.record(&a, &b, gated(vec![g.clone()]));
        let v: serde_json::Value = serde_json::from_str(&h.to_json()).unwrap();
        let ab = v["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["from"] == 2 && e["to"] == 3)
            .unwrap();
        assert_eq!(ab["gates"], serde_json::json!([1]));
    }

    #[test]
    fn the_bound_leaves_new_classes_out_and_counts_them() {
        let mut h = Hierarchy::with_bounds(3, 10);
        let outer = class(1, "outer");
        assert_eq!(
            h.record(&outer, &class(2, "k0"), by(1, None, 10)),
            Recorded::Added
        );
        assert_eq!(
            h.record(&outer, &class(3, "k1"), by(1, None, 10)),
            Recorded::Added
        );
        assert_eq!(
            h.record(&outer, &class(4, "k2"), by(1, None, 10)),
            Recorded::Dropped { first: true }
        );
        assert_eq!(
            h.record(&outer, &class(5, "k3"), by(1, None, 10)),
            Recorded::Dropped { first: false }
        );
        // Known classes still merge and order.
        assert_eq!(
            h.record(&class(2, "k0"), &class(3, "k1"), by(1, None, 10)),
            Recorded::Added
        );
        assert_eq!((h.class_count(), h.edge_count(), h.dropped()), (3, 3, 2));
        let v: serde_json::Value = serde_json::from_str(&h.to_json()).unwrap();
        assert_eq!(v["dropped"], 2);
        let mut h = Hierarchy::with_bounds(10, 1);
        h.record(&outer, &class(2, "k0"), by(1, None, 10));
        assert_eq!(
            h.record(&outer, &class(3, "k1"), by(1, None, 10)),
            Recorded::Dropped { first: true }
        );
    }

    #[test]
    fn dot_output_is_escaped_and_marks_edges_on_a_cycle() {
        let mut h = Hierarchy::new();
        let quoted = class(1, "say \"hi\" \\ there");
        let (b, c) = (class(2, "b"), class(3, "c"));
        h.record(&quoted, &b, by(5, Some("t1"), 20));
        h.record(&b, &quoted, by(5, Some("t1"), 11));
        h.record(&b, &c, by(6, None, 30));
        let dot = h.to_dot();
        assert!(dot.starts_with("digraph lock_order {\n"));
        assert!(dot.ends_with("}\n"));
        assert!(
            dot.contains(r#"n1 [label="say \"hi\" \\ there\nsrc/locks.rs:1:13"];"#),
            "{dot}"
        );
        assert!(
            dot.contains(r#"n1 -> n2 [label="t1\nsrc/app.rs:20:23", color=red, fontcolor=red];"#),
            "{dot}"
        );
        assert!(
            dot.contains(r#"n2 -> n1 [label="t1\nsrc/app.rs:11:23", color=red, fontcolor=red];"#),
            "{dot}"
        );
        assert!(
            dot.contains(r##"n2 -> n3 [label="#2\nsrc/app.rs:30:23"];"##),
            "{dot}"
        );
    }
}
