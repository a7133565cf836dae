//! Holt graph reduction over a [`Snapshot`] (SPEC §3), and the reports built from what is left.
//!
//! # The model
//!
//! The wait-for graph is an AND/OR graph: a blocked thread waits on one resource, and the
//! resource's [`Releasers`] say who can end that wait — all of its holders (a Mutex, an RwLock
//! write waiting for every reader), any one of several threads (a queued pool task), or anyone
//! at all (an Event). Reduction repeatedly removes every thread that can still run and every
//! wait that such a thread can end. What is left when nothing more can be removed can never run
//! again: this holds for single-owner cycles, knots of semaphores and pool tasks, and global
//! stalls alike, and never flags a valid program (a wait is only kept if *no* way out exists
//! in the snapshot).
//!
//! # From the leftover to findings
//!
//! Among the stuck threads we draw the *holder graph*: an edge from a stuck thread to each
//! stuck (or exited) thread that could have released what it waits for. Its strongly connected
//! components with a cycle are deadlocks; an exited holder is the end of a deadlocked chain
//! (what it holds is never released); threads whose holder chain leads into one of those are
//! reported with it ("blocked behind"); the rest, with no cycle to show, are stalls.
//!
//! Everything is deterministic: the same snapshot gives the same findings in the same order,
//! and the same stuck state gives the same [`Finding::key`], which is what the runtime uses to
//! confirm a finding across two snapshots and to report it once.

use std::collections::{HashMap, HashSet, VecDeque};

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::model::{
    CycleEdge, Hold, Op, Report, ReportKind, ResourceReport, ThreadReport, ThreadState, WaitingFor,
    SCHEMA,
};
use crate::snapshot::{Releasers, ResourceSnap, Snapshot, ThreadSnap, WaitSnap};
use crate::wording::FindingText;

/// One edge of a deadlock: `thread` waits for resource `waits_for`, which only `held_by` can
/// release (for a chain ending at an exited owner, `held_by` is that owner).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaitEdge {
    /// The waiting thread.
    pub thread: u64,
    /// The resource it waits for.
    pub waits_for: u64,
    /// The thread that can release it.
    pub held_by: u64,
}

/// One deadlock or stall found by [`analyze`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// [`ReportKind::Deadlock`] or [`ReportKind::Stall`].
    pub kind: ReportKind,
    /// The cycle's threads in cycle order first, then the other stuck threads involved (the
    /// rest of the strongly connected component, then those blocked behind it, by id), then
    /// any exited owner (by id).
    pub threads: Vec<u64>,
    /// The shortest cycle, starting at its smallest thread id; for a chain ending at an exited
    /// owner, the shortest chain up to it; empty for a stall.
    pub cycle: Vec<WaitEdge>,
    /// `(thread id, wait seq)` of every blocked thread in the finding, sorted: the same stuck
    /// state always gives the same key, and any change (a wait ending, a new wait) changes it.
    pub key: Vec<(u64, u64)>,
    /// The thread whose wait closed the cycle: the cycle (or chain) thread whose wait has the
    /// highest `seq`; for a stall, the blocked thread with the highest `seq`. Under
    /// `LOCKWATCH_ON_DEADLOCK=panic` this is the thread that panics.
    pub closing_thread: u64,
}

/// Runs the reduction and returns every deadlock and stall in the snapshot, sorted by kind
/// (deadlocks first) and then by key.
///
/// Reducibility (SPEC §3): `Running` and `TimedWait` threads can run, and so can the unknown
/// threads when [`Snapshot::unknown_threads_can_run`] is set; `Exited` threads never run (what
/// they hold is never released). A `Blocked` thread can run once its wait can end:
///
/// - the resource is `available`;
/// - [`Releasers::Holders`]: every holder other than itself can run (no holder listed means
///   the holder is running); a thread waiting on what it holds itself never can;
/// - [`Releasers::WritersAndQueuedWriters`]: every write holder and every *other* thread
///   queued for write can run (for a read wait; a write wait on the same RwLock follows
///   `Holders`: every reader and writer must leave);
/// - [`Releasers::HoldersOrAnyone`]: any thread at all can run, or no holder is listed (it is
///   being handed to the waiter, or a running thread holds it);
/// - [`Releasers::Anyone`]: any thread at all can run;
/// - [`Releasers::Thread`]: that thread can run, has exited (the join returns) or is not in
///   the snapshot;
/// - [`Releasers::Workers`]: any listed worker can run or is not in the snapshot (exited
///   workers never take a task; an empty list means no worker ever will: the runtime must mark
///   the resource `available` when the pool can still spawn one).
///
/// A blocked thread with no wait, or waiting on a resource missing from the snapshot, is
/// treated as able to run: the analysis only reports what it can prove.
///
/// Cost: O(V + E) for the reduction (a worklist over the releaser graph, each edge visited
/// once); the cycle search runs only over the stuck threads.
pub fn analyze(s: &Snapshot) -> Vec<Finding> {
    let ix = Index::new(s);
    let reduced = ix.reduce();
    let graph = HolderGraph::build(&ix, &reduced);
    let mut findings = graph.findings(&ix);
    findings.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
    findings
}

/// A map keyed by thread or resource ids: the runtime's own counters, never chosen by an
/// adversary, so a fast fixed hasher is safe (SipHash was a large part of a reduction over
/// 10,000 threads).
type IdMap<V> = HashMap<u64, V, foldhash::fast::FixedState>;

/// Lookups over one snapshot, built once per analysis.
struct Index<'a> {
    s: &'a Snapshot,
    /// Thread id -> position in `s.threads`.
    thread: IdMap<usize>,
    resource: IdMap<&'a ResourceSnap>,
    /// Resource id -> (holder position, op), in snapshot order.
    holders: IdMap<Vec<(usize, Op)>>,
    /// Resource id -> positions of the blocked threads waiting on it for write.
    queued_writers: IdMap<Vec<usize>>,
}

/// When a thread becomes reducible.
enum Need {
    /// Now: it runs, or its wait can end at once.
    Now,
    /// Never (an exited thread, or a wait on what the waiter holds itself).
    Never,
    /// When every one of these threads has.
    All(Vec<usize>),
    /// When any one of these threads has.
    Any(Vec<usize>),
    /// When any thread at all has.
    Anyone,
}

impl<'a> Index<'a> {
    fn new(s: &'a Snapshot) -> Self {
        let mut thread = IdMap::with_capacity_and_hasher(s.threads.len(), Default::default());
        let mut holders: IdMap<Vec<(usize, Op)>> = IdMap::default();
        let mut queued_writers: IdMap<Vec<usize>> = IdMap::default();
        for (i, t) in s.threads.iter().enumerate() {
            thread.insert(t.id, i);
            for h in &t.holds {
                holders.entry(h.resource).or_default().push((i, h.op));
            }
            if let Some(w) = Self::blocked_wait(t) {
                if w.op == Op::Write {
                    queued_writers.entry(w.resource).or_default().push(i);
                }
            }
        }
        let resource = s.resources.iter().map(|r| (r.id, r)).collect();
        Index {
            s,
            thread,
            resource,
            holders,
            queued_writers,
        }
    }

    fn blocked_wait(t: &ThreadSnap) -> Option<&WaitSnap> {
        match t.state {
            ThreadState::Blocked => t.wait.as_ref(),
            _ => None,
        }
    }

    /// The wait of a blocked thread and the resource it is on, if both are known.
    fn wait(&self, i: usize) -> Option<(&'a WaitSnap, &'a ResourceSnap)> {
        let w = Self::blocked_wait(&self.s.threads[i])?;
        Some((w, *self.resource.get(&w.resource)?))
    }

    fn holders_of(&self, r: u64) -> &[(usize, Op)] {
        self.holders.get(&r).map_or(&[], Vec::as_slice)
    }

    fn need(&self, i: usize) -> Need {
        match self.s.threads[i].state {
            ThreadState::Running | ThreadState::TimedWait => return Need::Now,
            ThreadState::Exited => return Need::Never,
            ThreadState::Blocked => {}
        }
        let Some((w, r)) = self.wait(i) else {
            return Need::Now;
        };
        if r.available {
            return Need::Now;
        }
        let all = |mut v: Vec<usize>| {
            v.sort_unstable();
            v.dedup();
            if v.is_empty() {
                Need::Now
            } else {
                Need::All(v)
            }
        };
        match releasers(r, Some(w.op)) {
            Releasers::Holders => {
                let hs = self.holders_of(r.id);
                if hs.iter().any(|&(h, _)| h == i) {
                    return Need::Never;
                }
                all(hs.iter().map(|&(h, _)| h).collect())
            }
            Releasers::WritersAndQueuedWriters => {
                let writers: Vec<usize> = self
                    .holders_of(r.id)
                    .iter()
                    .filter(|&&(_, op)| op == Op::Write)
                    .map(|&(h, _)| h)
                    .collect();
                if writers.contains(&i) {
                    return Need::Never;
                }
                let queued = self.queued_writers.get(&r.id).into_iter().flatten();
                all(writers
                    .iter()
                    .chain(queued)
                    .copied()
                    .filter(|&w| w != i)
                    .collect())
            }
            // Held by nobody the snapshot knows of, yet not available: it is in flight to this
            // very waiter (a fair unlock hands an ownerless lock straight to a parked thread),
            // or held by a thread that is running. Either way the wait ends.
            Releasers::HoldersOrAnyone if self.holders_of(r.id).is_empty() => Need::Now,
            Releasers::HoldersOrAnyone | Releasers::Anyone => Need::Anyone,
            Releasers::Thread(t) => match self.thread.get(t) {
                None => Need::Now,
                Some(&j) if j == i => Need::Never,
                Some(&j) if self.s.threads[j].state == ThreadState::Exited => Need::Now,
                Some(&j) => Need::All(vec![j]),
            },
            Releasers::Workers(ws) => {
                let mut present = Vec::with_capacity(ws.len());
                for w in ws {
                    match self.thread.get(w) {
                        None => return Need::Now,
                        // An exited worker will never take the task.
                        Some(&j) if self.is_exited(j) => {}
                        Some(&j) => present.push(j),
                    }
                }
                present.sort_unstable();
                present.dedup();
                if present.is_empty() {
                    Need::Never
                } else {
                    Need::Any(present)
                }
            }
        }
    }

    /// The reduction proper: which threads can run (`true`) once every wait that can end has.
    ///
    /// The releaser graph has an edge releaser -> waiter; a waiter needing *all* of its
    /// releasers counts them down, one needing *any* fires on the first. "Anyone" waiters are
    /// not given an edge from every thread (that would be O(V²)): they all fire as soon as any
    /// thread at all can run, which is decided before the worklist starts.
    fn reduce(&self) -> Vec<bool> {
        let n = self.s.threads.len();
        let mut g: DiGraph<(), ()> = DiGraph::with_capacity(n, n);
        for _ in 0..n {
            g.add_node(());
        }
        let mut remaining = vec![0usize; n];
        let mut reduced = vec![false; n];
        let mut queue = VecDeque::new();
        let mut anyone = Vec::new();
        for i in 0..n {
            match self.need(i) {
                Need::Now => {
                    reduced[i] = true;
                    queue.push_back(i);
                }
                Need::Never => {}
                Need::All(rs) => {
                    remaining[i] = rs.len();
                    for r in rs {
                        g.add_edge(NodeIndex::new(r), NodeIndex::new(i), ());
                    }
                }
                Need::Any(rs) => {
                    remaining[i] = 1;
                    for r in rs {
                        g.add_edge(NodeIndex::new(r), NodeIndex::new(i), ());
                    }
                }
                Need::Anyone => anyone.push(i),
            }
        }
        // Every later reduction cascades from a thread that runs now, so "some thread can run"
        // is known here.
        if self.s.unknown_threads_can_run || !queue.is_empty() {
            for i in anyone {
                reduced[i] = true;
                queue.push_back(i);
            }
        }
        while let Some(x) = queue.pop_front() {
            for w in g.neighbors(NodeIndex::new(x)) {
                let w = w.index();
                if reduced[w] {
                    continue;
                }
                remaining[w] -= 1;
                if remaining[w] == 0 {
                    reduced[w] = true;
                    queue.push_back(w);
                }
            }
        }
        reduced
    }

    /// The threads that stop stuck thread `i`'s wait from ending: the holder-graph successors.
    /// Sorted by thread id, so everything built on them is deterministic.
    fn blockers(&self, i: usize, reduced: &[bool]) -> Vec<usize> {
        let Some((_, r)) = self.wait(i) else {
            return Vec::new();
        };
        let mut out: Vec<usize> = match releasers(r, w_op(self.wait(i))) {
            Releasers::Holders | Releasers::HoldersOrAnyone => {
                self.holders_of(r.id).iter().map(|&(h, _)| h).collect()
            }
            Releasers::WritersAndQueuedWriters => {
                let writers = self
                    .holders_of(r.id)
                    .iter()
                    .filter(|&&(_, op)| op == Op::Write)
                    .map(|&(h, _)| h);
                let queued = self
                    .queued_writers
                    .get(&r.id)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&w| w != i);
                writers.chain(queued).collect()
            }
            Releasers::Anyone => Vec::new(),
            Releasers::Thread(t) => self.thread.get(t).copied().into_iter().collect(),
            Releasers::Workers(ws) => ws
                .iter()
                .filter_map(|w| self.thread.get(w).copied())
                .filter(|&j| !self.is_exited(j))
                .collect(),
        };
        out.retain(|&j| !reduced[j]);
        out.sort_unstable_by_key(|&j| self.s.threads[j].id);
        out.dedup();
        out
    }

    fn id(&self, i: usize) -> u64 {
        self.s.threads[i].id
    }

    fn seq(&self, i: usize) -> Option<u64> {
        self.wait(i).map(|(w, _)| w.seq)
    }

    fn is_exited(&self, i: usize) -> bool {
        self.s.threads[i].state == ThreadState::Exited
    }
}

fn w_op(wait: Option<(&WaitSnap, &ResourceSnap)>) -> Option<Op> {
    wait.map(|(w, _)| w.op)
}

/// The releasers of a wait with `op` on `r`. A resource carries one [`Releasers`], but an
/// RwLock's depend on the operation: `WritersAndQueuedWriters` describes its *read* waits,
/// while a write wait on the same lock needs every holder to leave (`Holders`).
fn releasers(r: &ResourceSnap, op: Option<Op>) -> &Releasers {
    match (&r.releasers, op) {
        (Releasers::WritersAndQueuedWriters, Some(op)) if op != Op::Read => &Releasers::Holders,
        (rel, _) => rel,
    }
}

/// The holder graph over the stuck threads (and the exited threads they wait on).
struct HolderGraph {
    g: DiGraph<usize, ()>,
    /// Successors and predecessors by thread position, each sorted by thread id.
    succ: HashMap<usize, Vec<usize>>,
    pred: HashMap<usize, Vec<usize>>,
    /// Stuck (blocked, irreducible) threads, sorted by id.
    stuck: Vec<usize>,
}

impl HolderGraph {
    fn build(ix: &Index<'_>, reduced: &[bool]) -> Self {
        let mut stuck: Vec<usize> = (0..ix.s.threads.len())
            .filter(|&i| !reduced[i] && ix.wait(i).is_some())
            .collect();
        stuck.sort_unstable_by_key(|&i| ix.id(i));
        let mut g = DiGraph::new();
        let mut node: HashMap<usize, NodeIndex> = HashMap::new();
        let mut succ = HashMap::new();
        let mut pred: HashMap<usize, Vec<usize>> = HashMap::new();
        for &i in &stuck {
            node.insert(i, g.add_node(i));
        }
        for &i in &stuck {
            let bs = ix.blockers(i, reduced);
            for &b in &bs {
                let nb = *node.entry(b).or_insert_with(|| g.add_node(b));
                g.add_edge(node[&i], nb, ());
                pred.entry(b).or_default().push(i);
            }
            succ.insert(i, bs);
        }
        // `stuck` is visited in id order, so every predecessor list is already sorted.
        HolderGraph {
            g,
            succ,
            pred,
            stuck,
        }
    }

    fn succ(&self, i: usize) -> &[usize] {
        self.succ.get(&i).map_or(&[], Vec::as_slice)
    }

    fn findings(&self, ix: &Index<'_>) -> Vec<Finding> {
        // Cores: strongly connected components with a cycle, then exited holders. Kosaraju,
        // not Tarjan: petgraph's Tarjan recurses once per node of a path, and a long chain of
        // stuck threads must not overflow the watchdog's stack.
        let mut cycles: Vec<Vec<usize>> = kosaraju_scc(&self.g)
            .into_iter()
            .map(|comp| comp.into_iter().map(|n| self.g[n]).collect::<Vec<usize>>())
            .filter(|comp| comp.len() > 1 || self.succ(comp[0]).contains(&comp[0]))
            .map(|mut comp| {
                comp.sort_unstable_by_key(|&i| ix.id(i));
                comp
            })
            .collect();
        cycles.sort_unstable_by_key(|comp| ix.id(comp[0]));
        let mut exited: Vec<usize> = self
            .g
            .node_indices()
            .map(|n| self.g[n])
            .filter(|&i| ix.is_exited(i))
            .collect();
        exited.sort_unstable_by_key(|&i| ix.id(i));

        // Multi-source BFS backwards from the cores: every stuck thread whose holder chain
        // leads into a core joins the nearest one (ties go to the earlier core).
        let n_cores = cycles.len() + exited.len();
        let mut core_of: HashMap<usize, usize> = HashMap::new();
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut dist: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::new();
        let core_members = cycles
            .iter()
            .map(Vec::as_slice)
            .chain(exited.iter().map(std::slice::from_ref));
        for (c, members) in core_members.enumerate() {
            for &m in members {
                core_of.insert(m, c);
                dist.insert(m, 0);
                queue.push_back(m);
            }
        }
        while let Some(x) = queue.pop_front() {
            let core = core_of[&x];
            for &p in self.pred.get(&x).map_or(&[][..], Vec::as_slice) {
                if let std::collections::hash_map::Entry::Vacant(e) = core_of.entry(p) {
                    e.insert(core);
                    parent.insert(p, x);
                    dist.insert(p, dist[&x] + 1);
                    queue.push_back(p);
                }
            }
        }
        let mut behind: Vec<Vec<usize>> = vec![Vec::new(); n_cores];
        for &i in &self.stuck {
            if let Some(&c) = core_of.get(&i) {
                if dist[&i] > 0 {
                    behind[c].push(i);
                }
            }
        }

        let mut out = Vec::new();
        for (c, comp) in cycles.iter().enumerate() {
            let cycle = self.shortest_cycle(ix, comp);
            let on_cycle: HashSet<usize> = cycle.iter().copied().collect();
            let mut threads = cycle.clone();
            threads.extend(comp.iter().filter(|i| !on_cycle.contains(i)));
            threads.extend(&behind[c]);
            let edges = cycle
                .iter()
                .enumerate()
                .map(|(k, &t)| self.edge(ix, t, cycle[(k + 1) % cycle.len()]))
                .collect();
            out.push(self.finding(ix, ReportKind::Deadlock, threads, edges, &cycle));
        }
        for (k, &e) in exited.iter().enumerate() {
            let assigned = &behind[cycles.len() + k];
            // The chain up to the exited owner starts at the thread farthest from it, so the
            // report shows the whole chain of threads it holds up.
            let Some(&start) = assigned
                .iter()
                .max_by_key(|&&i| (dist[&i], std::cmp::Reverse(ix.id(i))))
            else {
                continue;
            };
            let mut chain = vec![start];
            let mut at = start;
            while let Some(&p) = parent.get(&at) {
                if p == e {
                    break;
                }
                chain.push(p);
                at = p;
            }
            let on_chain: HashSet<usize> = chain.iter().copied().collect();
            let mut threads = chain.clone();
            threads.extend(assigned.iter().filter(|i| !on_chain.contains(i)));
            let mut edges: Vec<WaitEdge> = chain
                .windows(2)
                .map(|w| self.edge(ix, w[0], w[1]))
                .collect();
            edges.push(self.edge(ix, *chain.last().expect("non-empty chain"), e));
            out.push(self.finding(ix, ReportKind::Deadlock, threads, edges, &chain));
        }

        // What is left reaches no core: stalls, one per weakly connected group, where threads
        // waiting on the same resource are one group (one Event nobody sets is one finding).
        let rest: Vec<usize> = self
            .stuck
            .iter()
            .copied()
            .filter(|i| !core_of.contains_key(i))
            .collect();
        let pos: HashMap<usize, usize> = rest.iter().enumerate().map(|(k, &i)| (i, k)).collect();
        let mut uf = UnionFind::new(rest.len());
        let mut by_resource: HashMap<u64, usize> = HashMap::new();
        for (k, &i) in rest.iter().enumerate() {
            for b in self.succ(i) {
                if let Some(&kb) = pos.get(b) {
                    uf.union(k, kb);
                }
            }
            if let Some((w, _)) = ix.wait(i) {
                let first = *by_resource.entry(w.resource).or_insert(k);
                uf.union(k, first);
            }
        }
        let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
        for (k, &i) in rest.iter().enumerate() {
            groups.entry(uf.find(k)).or_default().push(i);
        }
        for (_, group) in groups {
            out.push(self.finding(ix, ReportKind::Stall, group, Vec::new(), &[]));
        }
        out
    }

    fn edge(&self, ix: &Index<'_>, from: usize, to: usize) -> WaitEdge {
        WaitEdge {
            thread: ix.id(from),
            waits_for: ix.wait(from).map_or(0, |(w, _)| w.resource),
            held_by: ix.id(to),
        }
    }

    /// Assembles a finding: adds the exited owners the threads wait on, the key, and the
    /// closing thread (chosen among `core`, or among all blocked threads when it is empty).
    fn finding(
        &self,
        ix: &Index<'_>,
        kind: ReportKind,
        mut threads: Vec<usize>,
        cycle: Vec<WaitEdge>,
        core: &[usize],
    ) -> Finding {
        let mut owners: Vec<usize> = threads
            .iter()
            .flat_map(|&i| self.succ(i).iter().copied())
            .filter(|&j| ix.is_exited(j))
            .collect();
        owners.sort_unstable_by_key(|&j| ix.id(j));
        owners.dedup();
        if kind == ReportKind::Stall {
            threads.sort_unstable_by_key(|&i| ix.id(i));
        }
        let mut key: Vec<(u64, u64)> = threads
            .iter()
            .filter_map(|&i| Some((ix.id(i), ix.seq(i)?)))
            .collect();
        key.sort_unstable();
        let candidates = if core.is_empty() { &threads[..] } else { core };
        let closing = candidates
            .iter()
            .copied()
            .max_by_key(|&i| (ix.seq(i), std::cmp::Reverse(ix.id(i))))
            .map_or(0, |i| ix.id(i));
        threads.extend(owners);
        Finding {
            kind,
            threads: threads.into_iter().map(|i| ix.id(i)).collect(),
            cycle,
            key,
            closing_thread: closing,
        }
    }

    /// The shortest cycle in a strongly connected component, rotated to start at its smallest
    /// thread id; among equally short cycles, the one whose id sequence sorts first.
    ///
    /// A BFS from each member back to itself, restricted to the component. Components are
    /// small in practice; for a very large one only as many starts are tried as fit a fixed
    /// budget (at least one), which still yields a valid, if not always the globally
    /// shortest, cycle.
    fn shortest_cycle(&self, ix: &Index<'_>, comp: &[usize]) -> Vec<usize> {
        const BUDGET: usize = 1 << 18;
        let starts = (BUDGET / comp.len()).clamp(1, comp.len());
        let members: HashSet<usize> = comp.iter().copied().collect();
        let mut best: Option<(usize, Vec<u64>, Vec<usize>)> = None;
        for &start in comp.iter().take(starts) {
            if best.as_ref().is_some_and(|b| b.0 == 1) {
                break;
            }
            let Some(mut cycle) = self.bfs_cycle(start, &members) else {
                continue;
            };
            let min = (0..cycle.len())
                .min_by_key(|&k| ix.id(cycle[k]))
                .unwrap_or(0);
            cycle.rotate_left(min);
            let ids: Vec<u64> = cycle.iter().map(|&i| ix.id(i)).collect();
            let better = match &best {
                None => true,
                Some((len, bids, _)) => (cycle.len(), &ids) < (*len, bids),
            };
            if better {
                best = Some((cycle.len(), ids, cycle));
            }
        }
        best.map(|b| b.2).unwrap_or_else(|| vec![comp[0]])
    }

    /// The shortest path from `start` back to itself within `members`, as the list of threads
    /// on it (beginning with `start`).
    fn bfs_cycle(&self, start: usize, members: &HashSet<usize>) -> Option<Vec<usize>> {
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(x) = queue.pop_front() {
            for &y in self.succ(x) {
                if y == start {
                    let mut path = vec![x];
                    let mut at = x;
                    while at != start {
                        at = parent[&at];
                        path.push(at);
                    }
                    path.reverse();
                    return Some(path);
                }
                if members.contains(&y) && !parent.contains_key(&y) {
                    parent.insert(y, x);
                    queue.push_back(y);
                }
            }
        }
        None
    }
}

/// A minimal union-find (path halving, union by index) for grouping stalled threads.
struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        // The smaller root wins, so the representative does not depend on union order.
        if ra < rb {
            self.parent[rb] = ra;
        } else if rb < ra {
            self.parent[ra] = rb;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

/// The complete `lockwatch.report/v1` report for a finding of [`analyze`] on the same snapshot.
///
/// `threads` follows [`Finding::threads`]; `resources` lists every resource their waits and
/// holds refer to, in first-reference order (each thread's wait, then its holds); `cycle` is
/// the finding's cycle as [`CycleEdge::Wait`] entries. The summary and help lines name the
/// shape of the freeze (self-deadlock, lock order, leaked guard, recursive read, join cycle,
/// pool knot, stall) so the reader knows what to change.
pub fn build_report(s: &Snapshot, f: &Finding, pid: u32, detected_at_ms: u64) -> Report {
    let threads: Vec<ThreadReport> = f
        .threads
        .iter()
        .filter_map(|&id| s.thread(id))
        .map(thread_report)
        .collect();
    let resources = referenced_resources(s, &threads);
    let cycle = f
        .cycle
        .iter()
        .map(|e| CycleEdge::Wait {
            thread: e.thread,
            waits_for: e.waits_for,
            held_by: e.held_by,
        })
        .collect();
    let text = FindingText::new(s);
    let (summary, help) = match f.kind {
        ReportKind::Stall => text.stall(f),
        _ => text.deadlock(f),
    };
    Report {
        schema: SCHEMA.to_owned(),
        kind: f.kind,
        summary,
        pid,
        detected_at_ms,
        threads,
        resources,
        cycle,
        help,
        test: None,
    }
}

/// A `long_wait` report: `thread` has waited longer than the threshold.
///
/// The report lists the waiter, then the threads that can end its wait (the holders of the
/// resource, or the joined thread / pool workers), each with its own wait if it is blocked, so
/// the reader sees at once what the holder is doing. Returns a report with only a summary if
/// `thread` is not waiting in the snapshot.
pub fn long_wait_report(s: &Snapshot, thread: u64, pid: u32, detected_at_ms: u64) -> Report {
    let text = FindingText::new(s);
    let mut report = Report {
        schema: SCHEMA.to_owned(),
        kind: ReportKind::LongWait,
        summary: String::new(),
        pid,
        detected_at_ms,
        threads: Vec::new(),
        resources: Vec::new(),
        cycle: Vec::new(),
        help: Vec::new(),
        test: None,
    };
    let Some(t) = s.thread(thread) else {
        report.summary = text.long_wait_summary(thread, None);
        return report;
    };
    let Some(w) = &t.wait else {
        report.summary = text.long_wait_summary(thread, None);
        report.threads.push(thread_report(t));
        return report;
    };
    report.summary = text.long_wait_summary(thread, Some(w));
    let mut ids: Vec<u64> = s
        .threads
        .iter()
        .filter(|h| h.id != t.id && h.holds.iter().any(|x| x.resource == w.resource))
        .map(|h| h.id)
        .collect();
    match s.resource(w.resource).map(|r| &r.releasers) {
        Some(Releasers::Thread(j)) => ids.push(*j),
        Some(Releasers::Workers(ws)) => ids.extend(ws),
        _ => {}
    }
    let mut seen = HashSet::from([t.id]);
    ids.retain(|id| seen.insert(*id));
    let mut threads = vec![thread_report(t)];
    for id in ids {
        let Some(h) = s.thread(id) else { continue };
        threads.push(thread_report(h));
        report.help.push(text.long_wait_help(w, h));
    }
    report.resources = referenced_resources(s, &threads);
    report.threads = threads;
    report
}

pub(crate) fn thread_report(t: &ThreadSnap) -> ThreadReport {
    ThreadReport {
        id: t.id,
        name: t.name.clone(),
        state: t.state,
        waiting_for: t.wait.as_ref().map(|w| WaitingFor {
            resource: w.resource,
            op: w.op,
            location: w.location.clone(),
            since_ms: w.since_ms,
        }),
        holds: t
            .holds
            .iter()
            .map(|h| Hold {
                resource: h.resource,
                op: h.op,
                count: h.count,
                location: h.location.clone(),
                backtrace: h.backtrace.clone(),
            })
            .collect(),
        backtrace: t.backtrace.clone(),
    }
}

pub(crate) fn referenced_resources(s: &Snapshot, threads: &[ThreadReport]) -> Vec<ResourceReport> {
    let mut seen = HashSet::new();
    threads
        .iter()
        .flat_map(|t| {
            t.waiting_for
                .iter()
                .map(|w| w.resource)
                .chain(t.holds.iter().map(|h| h.resource))
        })
        .filter(|id| seen.insert(*id))
        .filter_map(|id| s.resource(id))
        .map(|r| ResourceReport {
            id: r.id,
            kind: r.kind,
            name: r.name.clone(),
            created_at: r.created_at.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
