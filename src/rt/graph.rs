//! The live wait-for graph: a petgraph `StableGraph` whose edges are the registered waits
//! (thread → resource). It changes only on the slow path, when a thread is about to block.
//!
//! Who holds what is not kept here: a blocked thread publishes a copy of its held locks with its
//! wait (it cannot release anything while it waits), an exited thread leaves what it leaked in
//! the registry, and any other holder is running, which is all the analysis needs to know.

use super::held::Held;
use super::registry::{self, HeldCopy, ThreadRecord};
use super::runtime::runtime;
use super::trace;
use backtrace::Backtrace;
use lockwatch_detector::snapshot::{
    HoldSnap, Releasers, ResourceSnap, Snapshot, ThreadSnap, WaitSnap,
};
use lockwatch_detector::{Location as ReportLocation, ThreadState};
use lockwatch_detector::{Op, ResourceKind as Kind};
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ops::Range;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// What the graph may ask of a resource while a thread waits for it: the resource model. Each
/// resource type says who can end a wait on it (SPEC §3's table lives beside each resource, in
/// its probe), who holds it, and how to wake one of its waiters for a verdict.
///
/// The waiter lends its probe to the graph for exactly as long as its wait is registered
/// (the wait driver, `core::tracked::wait::registered`, scopes it), so the probe outlives the registration.
pub(crate) trait Probe: Sync {
    fn resource_id(&self) -> u64;
    fn kind(&self) -> Kind;
    fn name(&self) -> Option<Arc<str>>;
    fn created_at(&self) -> &'static Location<'static>;
    /// Who can end a wait on this resource.
    fn releasers(&self) -> Releasers;
    /// The wait could end right now (the lock is free, the event set, the waiter notified).
    fn available(&self) -> bool;
    /// The exclusive holder, if known, and where it acquired the resource.
    fn owner(&self) -> Option<(u64, Option<&'static Location<'static>>)>;
    /// Wakes the waiter parked with `token` so that it takes the verdict posted for it; false
    /// if this resource's waiters cannot be woken (they park inside parking_lot).
    fn interrupt(&self, token: usize) -> bool;
}

/// A map keyed by thread or resource ids. They are lockwatch's own counters, never chosen by
/// an adversary, so a fast fixed hasher is safe, and SipHash cost a fifth of a scan with 10,000
/// blocked threads.
type IdMap<V> = HashMap<u64, V, foldhash::fast::FixedState>;

/// A pointer to the probe of a registered wait.
#[derive(Clone, Copy)]
pub(crate) struct ProbePtr(pub(crate) *const (dyn Probe + 'static));

// SAFETY: probes are `Sync` and only dereferenced under the graph lock while their wait is
// registered, which the waiting thread guarantees outlives (see `wait::registered`).
unsafe impl Send for ProbePtr {}

impl ProbePtr {
    pub(crate) fn get(&self) -> &dyn Probe {
        // SAFETY: only called under the graph lock on a registered wait; the waiter keeps the
        // probe alive until `wait::registered` has removed the wait under that same lock.
        unsafe { &*self.0 }
    }
}

/// Threads are anonymous nodes (a thread's wait edge is found through `LiveGraph::waits`);
/// resources carry their id so the last waiter's departure can drop the node.
pub(crate) enum Node {
    Thread,
    Resource(u64),
}

pub(crate) struct WaitRecord {
    pub(crate) seq: u64,
    pub(crate) thread: Arc<ThreadRecord>,
    pub(crate) probe: ProbePtr,
    pub(crate) op: Op,
    pub(crate) site: &'static Location<'static>,
    pub(crate) started: Instant,
    pub(crate) timed: bool,
    /// The waiter can be woken to take a verdict (policy `panic`).
    pub(crate) takes_verdicts: bool,
    /// The waiter's park token, to wake it alone.
    pub(crate) token: usize,
    pub(crate) backtrace: Option<Backtrace>,
    pub(crate) holds: Vec<HeldCopy>,
}

/// A registered wait as the graph keeps it: the waiter's record, and what every snapshot reads
/// of it, copied once when the wait registers. A scan then reads the graph's own dense array of
/// edges instead of dereferencing every blocked thread's record and probe, which lie scattered
/// over the heap and over the threads' stacks: with 10,000 blocked threads those cache misses
/// were most of a scan.
struct Edge {
    thread: u64,
    thread_name: Option<Arc<str>>,
    /// The waiter is one of lockwatch's own threads.
    internal: bool,
    /// The waiter is the process's main thread.
    main_thread: bool,
    record: WaitRecord,
}

#[derive(Default)]
pub(crate) struct LiveGraph {
    graph: StableDiGraph<Node, Edge>,
    /// The wait edge of each waiting thread (a thread waits for one thing at a time).
    waits: IdMap<EdgeIndex>,
    resources: IdMap<NodeIndex>,
}

impl LiveGraph {
    pub(crate) fn insert(&mut self, resource: u64, record: WaitRecord) {
        let thread_id = record.thread.id;
        // The edge goes to the resource waited for at registration. A snapshot asks the probe
        // instead: a Condvar waiter requeued onto its mutex waits for the mutex from then on.
        let edge = Edge {
            thread: thread_id,
            thread_name: record.thread.name.clone(),
            internal: record.thread.internal,
            main_thread: record.thread.is_process_main_thread(std::process::id()),
            record,
        };
        let thread_node = self.graph.add_node(Node::Thread);
        let resource_node = *self
            .resources
            .entry(resource)
            .or_insert_with(|| self.graph.add_node(Node::Resource(resource)));
        let edge = self.graph.add_edge(thread_node, resource_node, edge);
        if let Some(stale) = self.waits.insert(thread_id, edge) {
            // A thread is in one wait at a time; a leftover means a bug upstream, not a reason
            // to corrupt the graph.
            self.remove_edge(stale);
        }
    }

    pub(crate) fn remove(&mut self, thread: u64, seq: u64) {
        if let Some(&edge) = self.waits.get(&thread) {
            if self
                .graph
                .edge_weight(edge)
                .is_some_and(|w| w.record.seq == seq)
            {
                self.waits.remove(&thread);
                self.remove_edge(edge);
            }
        }
    }

    fn remove_edge(&mut self, edge: EdgeIndex) {
        let Some((thread_node, resource_node)) = self.graph.edge_endpoints(edge) else {
            return;
        };
        self.graph.remove_edge(edge);
        self.graph.remove_node(thread_node);
        if self
            .graph
            .neighbors_directed(resource_node, petgraph::Direction::Incoming)
            .next()
            .is_none()
        {
            if let Some(Node::Resource(id)) = self.graph.remove_node(resource_node) {
                self.resources.remove(&id);
            }
        }
    }

    pub(crate) fn wait_of(&self, thread: u64) -> Option<&WaitRecord> {
        self.waits
            .get(&thread)
            .and_then(|&e| self.graph.edge_weight(e))
            .map(|e| &e.record)
    }

    pub(crate) fn waits(&self) -> impl Iterator<Item = &WaitRecord> {
        self.graph.edge_weights().map(|e| &e.record)
    }

    fn edges(&self) -> impl Iterator<Item = &Edge> {
        self.graph.edge_weights()
    }

    pub(crate) fn waiting_count(&self) -> usize {
        self.waits.len()
    }
}

fn location(loc: &'static Location<'static>) -> ReportLocation {
    ReportLocation::from(loc)
}

fn hold_snap(h: &Held) -> HoldSnap {
    HoldSnap {
        resource: h.id,
        op: h.op,
        count: h.count,
        location: location(h.site),
        backtrace: Vec::new(),
    }
}

/// A resource only known from a hold (the lock itself may be gone).
fn held_resource(copy: &HeldCopy) -> ResourceSnap {
    let h = &copy.held;
    ResourceSnap {
        id: h.id,
        kind: h.kind,
        name: registry::lock_name(h.id),
        created_at: location(h.created_at),
        releasers: Releasers::Holders,
        available: false,
    }
}

/// A thread of a snapshot as read under the tables' locks: nothing is allocated per thread
/// there (names are shared, holds are ranges of one array); the [`ThreadSnap`] is built once
/// every lock is released, already in id order.
struct PendingThread {
    id: u64,
    name: Option<Arc<str>>,
    state: ThreadState,
    wait: Option<PendingWait>,
    /// Its holds, in [`Pending::held`].
    holds: Range<usize>,
}

struct PendingWait {
    resource: u64,
    op: Op,
    site: &'static Location<'static>,
    since_ms: u64,
    seq: u64,
}

struct PendingResource {
    id: u64,
    kind: Kind,
    name: Option<Arc<str>>,
    created_at: &'static Location<'static>,
    releasers: Releasers,
    available: bool,
}

#[derive(Default)]
struct Pending {
    threads: Vec<PendingThread>,
    held: Vec<Held>,
    resources: Vec<PendingResource>,
}

impl Pending {
    fn push(
        &mut self,
        id: u64,
        name: &Option<Arc<str>>,
        state: ThreadState,
        wait: Option<PendingWait>,
        holds: &[HeldCopy],
    ) {
        let first = self.held.len();
        self.held.extend(holds.iter().map(|copy| copy.held));
        self.threads.push(PendingThread {
            id,
            name: name.clone(),
            state,
            wait,
            holds: first..self.held.len(),
        });
    }

    /// The snapshot's threads sorted by id (a stable order: a thread listed twice keeps the
    /// order it was read in) and its resources.
    fn into_snapshot(self, unknown_threads_can_run: bool) -> Snapshot {
        // Sorted as 16-byte keys, not as threads: moving 10,000 `ThreadSnap`s around in a sort
        // cost more than building them.
        let mut order: Vec<(u64, usize)> = self
            .threads
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i))
            .collect();
        order.sort_unstable();
        let threads = order
            .iter()
            .map(|&(_, i)| {
                let t = &self.threads[i];
                ThreadSnap {
                    id: t.id,
                    name: t.name.as_deref().map(str::to_owned),
                    state: t.state,
                    wait: t.wait.as_ref().map(|w| WaitSnap {
                        resource: w.resource,
                        op: w.op,
                        location: location(w.site),
                        since_ms: w.since_ms,
                        seq: w.seq,
                    }),
                    holds: self.held[t.holds.clone()].iter().map(hold_snap).collect(),
                    backtrace: Vec::new(),
                }
            })
            .collect();
        let resources = self
            .resources
            .into_iter()
            .map(|r| ResourceSnap {
                id: r.id,
                kind: r.kind,
                name: r.name.map(|n| n.to_string()),
                created_at: location(r.created_at),
                releasers: r.releasers,
                available: r.available,
            })
            .collect();
        Snapshot {
            threads,
            resources,
            unknown_threads_can_run,
        }
    }
}

/// Takes a consistent snapshot of every wait, every live thread and what exited threads left.
///
/// Cost: linear in the number of threads. Under the graph lock it reads the graph's edges and
/// asks each waiter's probe whether its wait could end; it copies without allocating per
/// thread, so registrations are held up as briefly as possible.
pub(crate) fn snapshot() -> Snapshot {
    let rt = runtime();
    // Counted before the graph is read: a thread that starts meanwhile is then counted as
    // unknown, which can only make the analysis more careful.
    // `internal` is read first: a helper thread that ends meanwhile is then still counted by the
    // OS, which can only make an unknown thread look present (the careful side).
    let internal = rt.internal_threads.load(Ordering::Relaxed);
    let os_threads = registry::os_thread_count();
    let pid = std::process::id();
    let now = Instant::now();
    let mut pending = Pending::default();
    let mut resource_index: IdMap<usize> = IdMap::default();
    // The waiting threads, with whether each is one of lockwatch's own and whether it is the
    // process's main thread, for the count of live threads below.
    let mut waiting: IdMap<(bool, bool)> = IdMap::default();
    {
        let graph = rt.graph.lock();
        pending.threads.reserve(graph.waiting_count());
        waiting.reserve(graph.waiting_count());
        // Each probe lies on its waiter's stack, cold since the waiter parked: with thousands
        // of waits, those cache misses dominate the snapshot. Asked in a loop of their own, the
        // misses overlap instead of waiting for each other.
        let asked: Vec<(u64, bool)> = graph
            .edges()
            .map(|edge| {
                let probe = edge.record.probe.get();
                (probe.resource_id(), probe.available())
            })
            .collect();
        for (edge, (rid, available)) in graph.edges().zip(asked) {
            let record = &edge.record;
            match resource_index.entry(rid) {
                Entry::Vacant(e) => {
                    let probe = record.probe.get();
                    e.insert(pending.resources.len());
                    pending.resources.push(PendingResource {
                        id: rid,
                        kind: probe.kind(),
                        name: probe.name(),
                        created_at: probe.created_at(),
                        releasers: probe.releasers(),
                        available,
                    });
                }
                // Two waiters on one resource with different access (read and write), or a
                // notified Condvar waiter: a wait that can end makes the resource available for
                // the analysis of every wait on it.
                Entry::Occupied(e) => pending.resources[*e.get()].available |= available,
            }
            waiting.insert(edge.thread, (edge.internal, edge.main_thread));
            let state = if record.timed {
                ThreadState::TimedWait
            } else {
                ThreadState::Blocked
            };
            let wait = PendingWait {
                resource: rid,
                op: record.op,
                site: record.site,
                since_ms: now.saturating_duration_since(record.started).as_millis() as u64,
                seq: record.seq,
            };
            pending.push(
                edge.thread,
                &edge.thread_name,
                state,
                Some(wait),
                &record.holds,
            );
        }
    }
    let mut live = 0usize;
    let mut main_thread_seen = false;
    for entry in rt.threads.iter() {
        // A waiting thread is known from its wait already: its record is not read again.
        if let Some(&(internal, main_thread)) = waiting.get(entry.key()) {
            if !internal {
                live += 1;
                main_thread_seen |= main_thread;
            }
            continue;
        }
        let record = entry.value();
        if record.internal {
            // Counted in `internal_threads` already, and never a helper of user threads.
            continue;
        }
        live += 1;
        main_thread_seen |= record.is_process_main_thread(pid);
        pending.push(record.id, &record.name, ThreadState::Running, None, &[]);
    }
    for gone in rt.exited.lock().values() {
        // Its lockwatch state is gone, but the OS thread may still be running later
        // thread-local destructors or exit handlers, which can release what it holds.
        let state = if gone.record.os_thread_gone() {
            ThreadState::Exited
        } else {
            ThreadState::Running
        };
        pending.push(gone.record.id, &gone.record.name, state, None, &gone.holds);
    }
    let unknown_threads_can_run = match os_threads {
        Some(os) => match os.saturating_sub(live + internal) {
            0 => false,
            // Under libtest the process's main thread, while lockwatch has not seen it, only
            // coordinates tests: the OS counts it, but it can end no wait. Asked only when it
            // decides (the first answer may read the executable).
            1 => main_thread_seen || !super::libtest::main_thread_only_coordinates(),
            _ => true,
        },
        // Without a thread count, assume a thread lockwatch never saw may exist.
        None => true,
    };
    pending.into_snapshot(unknown_threads_can_run)
}

/// What a report needs from the live graph beyond its snapshot, copied while the waits are
/// still registered and resolved later, off every lock: the threads' backtraces (unresolved)
/// and the resources known only from a hold.
pub(crate) struct ReportTraces {
    threads: Vec<ThreadTraces>,
}

struct ThreadTraces {
    thread: u64,
    backtrace: Option<Backtrace>,
    hold_traces: Vec<Option<Backtrace>>,
    held_only: Vec<ResourceSnap>,
}

/// Copies what [`ReportTraces::apply`] needs for `threads` of `snapshot`, whose waits must
/// still be the ones the snapshot shows (a wait that ended since contributes nothing). Short:
/// every thread that starts or ends a wait needs the graph lock.
pub(crate) fn collect_traces(snapshot: &Snapshot, threads: &[u64]) -> ReportTraces {
    let mut collected = Vec::with_capacity(threads.len());
    let rt = runtime();
    let graph = rt.graph.lock();
    let exited = rt.exited.lock();
    for t in &snapshot.threads {
        if !threads.contains(&t.id) {
            continue;
        }
        let (backtrace, holds): (Option<&Backtrace>, &[HeldCopy]) = match graph.wait_of(t.id) {
            Some(w) if t.wait.as_ref().is_some_and(|s| s.seq == w.seq) => {
                (w.backtrace.as_ref(), &w.holds)
            }
            _ => match exited.get(&t.id) {
                Some(gone) => (None, &gone.holds),
                None => (None, &[]),
            },
        };
        collected.push(ThreadTraces {
            thread: t.id,
            backtrace: backtrace.cloned(),
            hold_traces: holds.iter().map(|h| h.backtrace.clone()).collect(),
            held_only: holds.iter().map(held_resource).collect(),
        });
    }
    ReportTraces { threads: collected }
}

impl ReportTraces {
    /// Resolves the backtraces into `snapshot` and adds the held-only resources it lacks.
    /// Symbol resolution can take hundreds of milliseconds: run on lockwatch's own threads.
    pub(crate) fn apply(self, snapshot: &mut Snapshot) {
        for p in self.threads {
            if let Some(t) = snapshot.threads.iter_mut().find(|t| t.id == p.thread) {
                if let Some(bt) = &p.backtrace {
                    t.backtrace = trace::resolve(bt);
                }
                for (snap, trace) in t.holds.iter_mut().zip(&p.hold_traces) {
                    if let Some(bt) = trace {
                        snap.backtrace = trace::resolve(bt);
                    }
                }
            }
            for resource in p.held_only {
                if !snapshot.resources.iter().any(|r| r.id == resource.id) {
                    snapshot.resources.push(resource);
                }
            }
        }
    }
}

/// The sequence number of `thread`'s registered wait and whether that wait takes verdicts.
pub(crate) fn current_wait(thread: u64) -> Option<(u64, bool)> {
    let graph = runtime().graph.lock();
    graph.wait_of(thread).map(|w| (w.seq, w.takes_verdicts))
}

/// Whether `thread`, in its wait `seq`, wakes between slices to take a verdict.
pub(crate) fn takes_verdicts(thread: u64, seq: u64) -> bool {
    let graph = runtime().graph.lock();
    graph
        .wait_of(thread)
        .is_some_and(|w| w.seq == seq && w.takes_verdicts)
}

/// The exclusive holder of the resource `thread` waits for, for a long-wait report.
pub(crate) fn owner_of_wait(thread: u64) -> Option<(u64, Option<&'static Location<'static>>)> {
    let graph = runtime().graph.lock();
    graph.wait_of(thread).and_then(|w| w.probe.get().owner())
}

/// Wakes `thread`, in its wait `seq`, so that it takes the verdict just posted for it. A wait
/// that has ended meanwhile, or that its resource cannot interrupt, is left alone.
pub(crate) fn wake_for_verdict(thread: u64, seq: u64) {
    let graph = runtime().graph.lock();
    if let Some(record) = graph.wait_of(thread).filter(|w| w.seq == seq) {
        if record.takes_verdicts {
            record.probe.get().interrupt(record.token);
        }
    }
}

/// How many registered waits are on resources named `name` (for tests).
pub(crate) fn registered_waits_on(name: &str) -> usize {
    let graph = runtime().graph.lock();
    graph
        .waits()
        .filter(|w| w.probe.get().name().as_deref() == Some(name))
        .count()
}
