//! The lock-order graph: which lock was held when which other lock was taken (SPEC §3
//! `lock_order_inversion`).
//!
//! A node per lock, an edge `from -> to` when some thread took `to` while holding `from`. A
//! cycle in this graph is a potential deadlock even if this run never froze: two threads
//! following two edges of it at once would wait for each other.
//!
//! # Incremental cycle detection (Pearce–Kelly)
//!
//! The graph keeps a topological order `ord` (one integer per node) over its acyclic part.
//! Inserting `u -> v`:
//!
//! - if `ord(u) < ord(v)` the edge agrees with the order: O(1), no search;
//! - otherwise a forward DFS from `v` over nodes with `ord < ord(u)` looks for `u`. If it is
//!   not found, a backward DFS from `u` over nodes with `ord > ord(v)` collects the other side
//!   and the two regions are renumbered (the backward region first) using their own pool of
//!   `ord` values; nothing outside the affected region is touched.
//! - if `u` is found the edge closes a cycle.
//!
//! A new lock gets the next `ord`, so a new lock taken under old ones agrees with the order
//! without any search: inserting the first edge into a graph of 10,000 locks costs two hash
//! lookups and an `add_edge`. Deleting a lock (it was dropped) removes its node and edges and
//! leaves a gap in the numbering, which the order does not mind.
//!
//! # Cycle-closing edges
//!
//! An edge that closes a cycle cannot take part in a topological order, yet it must stay in
//! the graph: a later edge can form a *new* cycle through it (`A -> B`, `B -> A` reported;
//! later `B -> C`, `C -> A` is another inversion, `A -> B -> C -> A`). Such edges are kept in
//! the graph and flagged in a side set, `back_edges`; the order is maintained over the other
//! ("DAG") edges only, so every DAG edge goes up in `ord` and every edge going down is flagged.
//!
//! The flagged edges are consulted by the search for cycles through a new edge. While none
//! exist, a new edge that the order accepts (directly or after renumbering) cannot close a
//! cycle and no search is made. Once some exist, a new edge `u -> v` may close a cycle that
//! goes down through a flagged edge, so we search from `v` for `u` over all edges, pruned by a
//! bound: from a node whose `ord` is above both `ord(u)` and the `ord` of every flagged edge's
//! source, DAG edges only go further up and no flagged edge starts, so `u` is out of reach.
//! The search therefore stays within the region below that bound. A flagged edge whose ends
//! come to agree with the order after a renumbering is unflagged (that keeps the invariant:
//! DAG edges go up); after a deletion every flagged edge is offered its place in the order
//! again (a bounded Pearce–Kelly search each), so the side set only holds edges that still
//! close a cycle and a graph that became acyclic is back to O(1) agreeing inserts.
//!
//! # Reporting
//!
//! For each new edge the report is the *shortest* cycle through it (a BFS from `to` back to
//! `from`), normalised to start at its smallest lock id. Each distinct cycle (as that node
//! sequence) is reported once for the life of the graph, even if its locks are removed and
//! inserted again. Self-edges (`A -> A`) are never recorded: a reentrant re-acquire creates
//! no order, and a non-reentrant one deadlocks on the spot, which the wait-for graph reports.
//!
//! # Gate locks
//!
//! Each edge keeps the set of *other* locks its thread held when it took `to` (`gates`,
//! intersected over every recording of the edge). A cycle whose every edge has one lock `G`
//! in common is not reported: every thread that could follow one of its edges holds `G`, so no
//! two of them are inside the cycle at once and it cannot deadlock. The search finds the
//! shortest cycle through the new edge that is *not* gated (a BFS over (node, which gates have
//! been escaped) states), so a gated short cycle does not hide an ungated longer one. When a
//! re-recording shrinks an edge's gate set, cycles through that edge are checked again.

use std::collections::{HashMap, HashSet, VecDeque};

use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction::{Incoming, Outgoing};

use crate::model::{
    resource_label, thread_label, CycleEdge, Frame, Hold, Location, Op, Report, ReportKind,
    ResourceKind, ResourceReport, ThreadReport, ThreadState, SCHEMA,
};
use crate::wording::{inversion_summary, order_help, reverse_acquisition_help};

pub mod hierarchy;

pub use hierarchy::{ClassRecording, Hierarchy, LockClass, Recorded, ORDER_SCHEMA};

/// A lock, as a node of the order graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    /// lockwatch's id for the lock.
    pub id: u64,
    /// Its type.
    pub kind: ResourceKind,
    /// Its name, if any.
    pub name: Option<String>,
    /// Where it was created.
    pub created_at: Location,
}

/// How one ordering was first seen: `thread` took `to` at `location` while holding `from`,
/// which it had taken at `from_location`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderEdge {
    /// The thread that took `to` while holding `from`.
    pub thread: u64,
    /// That thread's name, if any.
    pub thread_name: Option<String>,
    /// Where `to` was taken.
    pub location: Location,
    /// Where `from` was taken.
    pub from_location: Location,
    /// How `from` was held (`read` or `write` for an RwLock): the thread's hold in a report.
    pub from_op: Op,
    /// Sorted ids of the other locks the thread held at that moment; stored as the
    /// intersection over every recording of this edge (see the module docs on gate locks).
    pub gates: Vec<u64>,
    /// Where `to` was taken, with `LOCKWATCH_BACKTRACE=full`.
    pub backtrace: Vec<Frame>,
}

/// A node's weight: the lock and its place in the topological order.
#[derive(Clone, Debug)]
struct Node {
    info: LockInfo,
    ord: u64,
}

/// The learned lock hierarchy, with incremental cycle detection (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct OrderGraph {
    graph: StableDiGraph<Node, OrderEdge>,
    index: HashMap<u64, NodeIndex>,
    next_ord: u64,
    /// Cycle-closing edges: in `graph`, exempt from the order.
    back_edges: HashSet<EdgeIndex>,
    /// Every cycle reported so far, as its normalised node sequence.
    reported: HashSet<Vec<u64>>,
}

/// Above this many gate locks on one edge, the exact ungated-cycle search (whose state space
/// doubles per gate) gives way to a plain shortest-cycle search plus a gate check (which may
/// then miss an ungated cycle hidden behind a gated shorter one).
const MAX_GATE_BITS: usize = 12;

impl OrderGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that a thread took `to` while holding `from`.
    ///
    /// Returns the cycles this edge newly closes that were never reported before and are not
    /// gated, each as its ordered list of `(from, to)` edges starting at its smallest lock id
    /// (at most one: the shortest through this edge). Re-recording an existing edge keeps the
    /// first recording's thread and sites, intersects its gates, and if the gate set shrank
    /// takes the new recording's thread and sites (the acquisition under fewer gates) and
    /// re-checks the cycles through it. Self-edges are ignored.
    pub fn insert_edge(
        &mut self,
        from: LockInfo,
        to: LockInfo,
        mut edge: OrderEdge,
    ) -> Vec<Vec<(u64, u64)>> {
        if from.id == to.id {
            return Vec::new();
        }
        edge.gates.sort_unstable();
        edge.gates.dedup();
        edge.gates.retain(|&g| g != from.id && g != to.id);
        let u = self.node(from);
        let v = self.node(to);
        if let Some(e) = self.graph.find_edge(u, v) {
            let known = &mut self.graph[e];
            let before = known.gates.len();
            known.gates.retain(|g| edge.gates.binary_search(g).is_ok());
            if known.gates.len() == before {
                return Vec::new();
            }
            // The recording that narrowed the gates is the one that can deadlock where the
            // earlier ones could not (they ran under a gate this one lacks): it becomes the
            // edge's citation, so a report points at the dangerous acquisition.
            let gates = std::mem::take(&mut known.gates);
            *known = OrderEdge { gates, ..edge };
            return self.report_cycle_through(e);
        }
        let closes_cycle = self.ord(u) > self.ord(v) && !self.reorder(u, v);
        let e = self.graph.add_edge(u, v, edge);
        if closes_cycle {
            self.back_edges.insert(e);
        }
        if self.back_edges.is_empty() {
            // Every edge agrees with the order: the graph is acyclic.
            return Vec::new();
        }
        self.report_cycle_through(e)
    }

    /// Forgets a lock (it was dropped): its node and every edge to or from it.
    ///
    /// O(degree) while the graph is acyclic. When it holds cycle-closing edges, each of them
    /// is also offered its place in the order again (a bounded Pearce–Kelly search each),
    /// since removing this lock may have broken the cycle it closed.
    pub fn remove_lock(&mut self, id: u64) {
        let Some(n) = self.index.remove(&id) else {
            return;
        };
        if !self.back_edges.is_empty() {
            let incident: Vec<EdgeIndex> = self
                .graph
                .edges_directed(n, Outgoing)
                .chain(self.graph.edges_directed(n, Incoming))
                .map(|e| e.id())
                .collect();
            for e in incident {
                self.back_edges.remove(&e);
            }
        }
        self.graph.remove_node(n);
        self.retry_flagged();
    }

    /// Whether `from -> to` has been recorded (and neither lock removed since).
    pub fn contains_edge(&self, from: u64, to: u64) -> bool {
        self.edge_index(from, to).is_some()
    }

    /// The recording of `from -> to`, if any.
    pub fn edge(&self, from: u64, to: u64) -> Option<&OrderEdge> {
        self.edge_index(from, to).map(|e| &self.graph[e])
    }

    /// The lock with this id, if it is in the graph.
    pub fn lock(&self, id: u64) -> Option<&LockInfo> {
        self.index.get(&id).map(|&n| &self.graph[n].info)
    }

    /// How many locks the graph knows.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// How many orderings the graph knows.
    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// The `lock_order_inversion` report for a cycle returned by
    /// [`OrderGraph::insert_edge`].
    ///
    /// `cycle` holds the order edges in order, each with the thread and sites that created it;
    /// `threads` has one entry per distinct thread that created an edge, `running`, holding the
    /// `from` locks of its edges and waiting for nothing (a potential deadlock, not an actual
    /// one); `resources` are the locks of the cycle. Edges no longer in the graph are skipped.
    pub fn inversion_report(&self, cycle: &[(u64, u64)], pid: u32, detected_at_ms: u64) -> Report {
        let mut edges = Vec::new();
        let mut threads: Vec<ThreadReport> = Vec::new();
        let mut resources: Vec<ResourceReport> = Vec::new();
        for &(a, b) in cycle {
            for id in [a, b] {
                if let Some(info) = self.lock(id) {
                    if !resources.iter().any(|r| r.id == id) {
                        resources.push(ResourceReport {
                            id,
                            kind: info.kind,
                            name: info.name.clone(),
                            created_at: info.created_at.clone(),
                        });
                    }
                }
            }
            let Some(e) = self.edge(a, b) else { continue };
            edges.push(CycleEdge::Order {
                from: a,
                to: b,
                thread: e.thread,
                location: e.location.clone(),
                from_location: Some(e.from_location.clone()),
                thread_name: e.thread_name.clone(),
                backtrace: e.backtrace.clone(),
                pid: None,
            });
            let t = match threads.iter().position(|t| t.id == e.thread) {
                Some(k) => &mut threads[k],
                None => {
                    threads.push(ThreadReport {
                        id: e.thread,
                        name: e.thread_name.clone(),
                        state: ThreadState::Running,
                        waiting_for: None,
                        holds: Vec::new(),
                        backtrace: Vec::new(),
                    });
                    threads.last_mut().expect("just pushed")
                }
            };
            if !t.holds.iter().any(|h| h.resource == a) {
                t.holds.push(Hold {
                    resource: a,
                    op: e.from_op,
                    count: 1,
                    location: e.from_location.clone(),
                    backtrace: Vec::new(),
                });
            }
        }

        let label = |id: u64| match self.lock(id) {
            Some(l) => format!("`{}`", resource_label(l.kind, l.name.as_deref(), l.id)),
            None => format!("`#{id}`"),
        };
        let mut path: Vec<String> = cycle.iter().map(|&(a, _)| label(a)).collect();
        if let Some(&(first, _)) = cycle.first() {
            path.push(label(first));
        }
        let n_threads = threads.len();
        let summary = inversion_summary(&path, n_threads);

        // The fix: one order for every lock of the cycle (by id, i.e. creation order), and the
        // acquisitions that go against it.
        let mut order: Vec<u64> = cycle.iter().map(|&(a, _)| a).collect();
        order.sort_unstable();
        order.dedup();
        let labels: Vec<String> = order.iter().map(|&id| label(id)).collect();
        let mut help: Vec<String> = order_help(&labels).into_iter().collect();
        let rank = |id: u64| order.iter().position(|&o| o == id);
        for &(a, b) in cycle {
            if rank(a) <= rank(b) {
                continue;
            }
            if let Some(e) = self.edge(a, b) {
                help.push(reverse_acquisition_help(
                    &thread_label(e.thread_name.as_deref(), e.thread),
                    None,
                    &label(b),
                    &label(a),
                    &e.location,
                ));
            }
        }

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

    // ---- internals ----

    fn node(&mut self, info: LockInfo) -> NodeIndex {
        if let Some(&n) = self.index.get(&info.id) {
            let known = &mut self.graph[n].info;
            if known.name.is_none() && info.name.is_some() {
                known.name = info.name;
            }
            return n;
        }
        let id = info.id;
        let n = self.graph.add_node(Node {
            info,
            ord: self.next_ord,
        });
        self.next_ord += 1;
        self.index.insert(id, n);
        n
    }

    fn edge_index(&self, from: u64, to: u64) -> Option<EdgeIndex> {
        let (&u, &v) = (self.index.get(&from)?, self.index.get(&to)?);
        self.graph.find_edge(u, v)
    }

    fn ord(&self, n: NodeIndex) -> u64 {
        self.graph[n].ord
    }

    fn id(&self, n: NodeIndex) -> u64 {
        self.graph[n].info.id
    }

    fn is_back(&self, e: EdgeIndex) -> bool {
        !self.back_edges.is_empty() && self.back_edges.contains(&e)
    }

    /// Pearce–Kelly for a new edge `u -> v` with `ord(u) > ord(v)`: renumbers the affected
    /// region so the edge agrees with the order and returns `true`, or returns `false` if `v`
    /// reaches `u` over DAG edges (the edge closes a cycle; nothing is changed).
    fn reorder(&mut self, u: NodeIndex, v: NodeIndex) -> bool {
        let (lower, upper) = (self.ord(v), self.ord(u));
        // Forward from v, over nodes ordered before u.
        let mut forward = Vec::new();
        let mut seen = HashSet::from([v]);
        let mut stack = vec![v];
        while let Some(x) = stack.pop() {
            forward.push(x);
            for e in self.graph.edges_directed(x, Outgoing) {
                if self.is_back(e.id()) {
                    continue;
                }
                let y = e.target();
                if y == u {
                    return false;
                }
                if self.ord(y) < upper && seen.insert(y) {
                    stack.push(y);
                }
            }
        }
        // Backward from u, over nodes ordered after v.
        let mut backward = Vec::new();
        let mut seen = HashSet::from([u]);
        let mut stack = vec![u];
        while let Some(x) = stack.pop() {
            backward.push(x);
            for e in self.graph.edges_directed(x, Incoming) {
                if self.is_back(e.id()) {
                    continue;
                }
                let y = e.source();
                if self.ord(y) > lower && seen.insert(y) {
                    stack.push(y);
                }
            }
        }
        // Everything that reaches u now comes before everything v reaches, each side keeping
        // its relative order, using only the ord values the region already had.
        backward.sort_unstable_by_key(|&n| self.ord(n));
        forward.sort_unstable_by_key(|&n| self.ord(n));
        let mut pool: Vec<u64> = backward
            .iter()
            .chain(&forward)
            .map(|&n| self.ord(n))
            .collect();
        pool.sort_unstable();
        for (&n, o) in backward.iter().chain(&forward).zip(pool) {
            self.graph[n].ord = o;
        }
        self.unflag_agreeing();
        true
    }

    /// Gives every flagged edge whose cycle may be gone its place in the order again: it is
    /// unflagged if the order agrees with it or can be renumbered to. Keeps the side set to
    /// the edges that still close a cycle, so an acyclic graph goes back to O(1) inserts.
    fn retry_flagged(&mut self) {
        if self.back_edges.is_empty() {
            return;
        }
        let mut flagged: Vec<EdgeIndex> = self.back_edges.iter().copied().collect();
        flagged.sort_unstable();
        for e in flagged {
            if !self.back_edges.contains(&e) {
                continue;
            }
            let Some((u, v)) = self.graph.edge_endpoints(e) else {
                self.back_edges.remove(&e);
                continue;
            };
            // `reorder` follows DAG edges only, so `e` itself (still flagged) is not in the way.
            if self.ord(u) < self.ord(v) || self.reorder(u, v) {
                self.back_edges.remove(&e);
            }
        }
    }

    /// Moves flagged edges that now agree with the order back into the DAG part.
    fn unflag_agreeing(&mut self) {
        if self.back_edges.is_empty() {
            return;
        }
        let graph = &self.graph;
        self.back_edges.retain(|&e| match graph.edge_endpoints(e) {
            Some((a, b)) => graph[a].ord > graph[b].ord,
            None => false,
        });
    }

    /// The highest `ord` from which `target` (or a flagged edge) may still be reached.
    fn search_bound(&self, target: NodeIndex) -> u64 {
        self.back_edges
            .iter()
            .filter_map(|&e| self.graph.edge_endpoints(e))
            .map(|(a, _)| self.ord(a))
            .fold(self.ord(target), u64::max)
    }

    fn report_cycle_through(&mut self, e: EdgeIndex) -> Vec<Vec<(u64, u64)>> {
        let Some(nodes) = self.shortest_ungated_cycle(e) else {
            return Vec::new();
        };
        let mut ids: Vec<u64> = nodes.iter().map(|&n| self.id(n)).collect();
        let min = (0..ids.len()).min_by_key(|&k| ids[k]).unwrap_or(0);
        ids.rotate_left(min);
        if !self.reported.insert(ids.clone()) {
            return Vec::new();
        }
        let n = ids.len();
        vec![(0..n).map(|k| (ids[k], ids[(k + 1) % n])).collect()]
    }

    /// The shortest simple cycle through edge `e = u -> v` that is not gated, as its nodes
    /// starting at `u`; `None` if there is none (within the search bound).
    ///
    /// BFS from `v` to `u` over states (node, mask): bit `i` of the mask is set once the path
    /// has used an edge whose gate set lacks `e`'s `i`-th gate. A cycle is ungated exactly when
    /// every gate of `e` is lacking somewhere on it (the common gates of a cycle are a subset
    /// of `e`'s), i.e. when `u` is reached with a full mask. With no gates this is a plain BFS
    /// and its first hit is the answer. With gates, the first hit may be a walk through some
    /// node twice (the state it needed was first reached the long way round); then a
    /// branch-and-bound DFS over simple paths takes over (see [`Self::dfs_ungated`]). If the
    /// BFS finds no hit at all, no ungated walk exists, so no ungated cycle either.
    fn shortest_ungated_cycle(&self, e: EdgeIndex) -> Option<Vec<NodeIndex>> {
        let (u, v) = self.graph.edge_endpoints(e)?;
        let bound = self.search_bound(u);
        if self.ord(v) > bound {
            return None;
        }
        let gates: &[u64] = &self.graph[e].gates;
        let exact = gates.len() <= MAX_GATE_BITS;
        let search = Search {
            graph: self,
            skip: e,
            bound,
            tracked: if exact { gates } else { &[] },
        };
        let full = search.full();
        type State = (NodeIndex, u32);
        let mut parent: HashMap<State, State> = HashMap::new();
        let mut seen: HashSet<State> = HashSet::from([(v, 0)]);
        let mut queue: VecDeque<State> = VecDeque::from([(v, 0)]);
        while let Some((x, mask)) = queue.pop_front() {
            for (y, oe) in search.outs(x) {
                let m = mask | search.lacking(oe);
                if y == u {
                    if m != full {
                        continue;
                    }
                    let mut path = vec![x];
                    let mut at = (x, mask);
                    while let Some(&p) = parent.get(&at) {
                        path.push(p.0);
                        at = p;
                    }
                    path.push(u);
                    path.reverse();
                    let distinct: HashSet<NodeIndex> = path.iter().copied().collect();
                    if distinct.len() != path.len() {
                        return search.dfs_ungated(u, v);
                    }
                    if !exact && self.is_gated(&path) {
                        return None;
                    }
                    return Some(path);
                }
                if seen.insert((y, m)) {
                    parent.insert((y, m), (x, mask));
                    queue.push_back((y, m));
                }
            }
        }
        None
    }

    /// Whether one lock is in the gate set of every edge of the cycle through `nodes`.
    fn is_gated(&self, nodes: &[NodeIndex]) -> bool {
        let n = nodes.len();
        let mut common: Option<Vec<u64>> = None;
        for k in 0..n {
            let Some(e) = self.graph.find_edge(nodes[k], nodes[(k + 1) % n]) else {
                return false;
            };
            let gates = &self.graph[e].gates;
            common = Some(match common {
                None => gates.clone(),
                Some(mut c) => {
                    c.retain(|g| gates.binary_search(g).is_ok());
                    c
                }
            });
        }
        common.is_some_and(|c| !c.is_empty())
    }

    /// Test support: panics unless every DAG edge goes up in the order, the orders are
    /// distinct, and the side set only holds live edges.
    #[cfg(test)]
    fn check_invariants(&self) {
        let mut ords = HashSet::new();
        for n in self.graph.node_indices() {
            assert!(ords.insert(self.ord(n)), "duplicate ord");
            assert_eq!(self.index[&self.id(n)], n);
        }
        assert_eq!(self.index.len(), self.graph.node_count());
        for e in self.graph.edge_indices() {
            let (a, b) = self.graph.edge_endpoints(e).expect("live edge");
            if !self.back_edges.contains(&e) {
                assert!(
                    self.ord(a) < self.ord(b),
                    "DAG edge {} -> {} against the order",
                    self.id(a),
                    self.id(b)
                );
            }
        }
        for &e in &self.back_edges {
            assert!(self.graph.edge_endpoints(e).is_some(), "stale flagged edge");
        }
    }
}

/// One cycle search through edge `skip`: the nodes above `bound` are out of reach, and the
/// masks track which of `tracked` (the new edge's gates) the path has escaped.
struct Search<'a> {
    graph: &'a OrderGraph,
    skip: EdgeIndex,
    bound: u64,
    tracked: &'a [u64],
}

impl Search<'_> {
    /// Expansions the DFS fallback may make before it settles for what it has found.
    const DFS_BUDGET: usize = 100_000;

    fn full(&self) -> u32 {
        (1u32 << self.tracked.len()) - 1
    }

    /// The successors of `x` worth following, by lock id (so results are deterministic).
    fn outs(&self, x: NodeIndex) -> Vec<(NodeIndex, EdgeIndex)> {
        let g = self.graph;
        let mut outs: Vec<(u64, NodeIndex, EdgeIndex)> = g
            .graph
            .edges_directed(x, Outgoing)
            .filter(|o| o.id() != self.skip && g.ord(o.target()) <= self.bound)
            .map(|o| (g.id(o.target()), o.target(), o.id()))
            .collect();
        outs.sort_unstable_by_key(|o| o.0);
        outs.into_iter().map(|(_, n, e)| (n, e)).collect()
    }

    /// The mask bits of the tracked gates that edge `e` lacks.
    fn lacking(&self, e: EdgeIndex) -> u32 {
        let gates = &self.graph.graph[e].gates;
        self.tracked
            .iter()
            .enumerate()
            .filter(|(_, g)| gates.binary_search(g).is_err())
            .fold(0, |m, (i, _)| m | (1 << i))
    }

    /// The shortest simple path `v ⇝ u` escaping every tracked gate, by depth-first
    /// branch-and-bound over simple paths (an explicit stack, no recursion), as the cycle's
    /// nodes starting at `u`. Exact unless [`Self::DFS_BUDGET`] runs out, in which case the
    /// best cycle found so far (or none) is returned.
    fn dfs_ungated(&self, u: NodeIndex, v: NodeIndex) -> Option<Vec<NodeIndex>> {
        struct Step {
            node: NodeIndex,
            mask: u32,
            outs: Vec<(NodeIndex, EdgeIndex)>,
            next: usize,
        }
        let full = self.full();
        let mut best: Option<Vec<NodeIndex>> = None;
        let mut on_path: HashSet<NodeIndex> = HashSet::from([u, v]);
        let mut stack = vec![Step {
            node: v,
            mask: 0,
            outs: self.outs(v),
            next: 0,
        }];
        let mut budget = Self::DFS_BUDGET;
        loop {
            // Going one edge deeper makes a cycle of at least `stack.len() + 1` edges.
            let depth = stack.len();
            let too_long = best.as_ref().is_some_and(|b| depth + 1 >= b.len());
            let Some(top) = stack.last_mut() else { break };
            if top.next == top.outs.len() || too_long || budget == 0 {
                on_path.remove(&top.node);
                stack.pop();
                continue;
            }
            budget -= 1;
            let (y, oe) = top.outs[top.next];
            top.next += 1;
            let m = top.mask | self.lacking(oe);
            if y == u {
                if m == full {
                    best = Some(
                        std::iter::once(u)
                            .chain(stack.iter().map(|s| s.node))
                            .collect(),
                    );
                }
                continue;
            }
            if on_path.insert(y) {
                stack.push(Step {
                    node: y,
                    mask: m,
                    outs: self.outs(y),
                    next: 0,
                });
            }
        }
        best
    }
}

#[cfg(test)]
mod tests;
