//! The live wait-for graph: a petgraph `StableGraph` whose edges are the registered waits
//! (thread → resource). It changes only on the slow path, when a thread is about to block.
//!
//! Who holds what is not kept here: a blocked thread publishes a copy of its held locks with its
//! wait (it cannot release anything while it waits), an exited thread leaves what it leaked in
//! the registry, and any other holder is running, which is all the analysis needs to know.

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
use std::collections::{HashMap, HashSet};
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

#[derive(Default)]
pub(crate) struct LiveGraph {
    graph: StableDiGraph<Node, WaitRecord>,
    /// The wait edge of each waiting thread (a thread waits for one thing at a time).
    waits: HashMap<u64, EdgeIndex>,
    resources: HashMap<u64, NodeIndex>,
}

impl LiveGraph {
    pub(crate) fn insert(&mut self, resource: u64, record: WaitRecord) {
        let thread_id = record.thread.id;
        let thread_node = self.graph.add_node(Node::Thread);
        let resource_node = *self
            .resources
            .entry(resource)
            .or_insert_with(|| self.graph.add_node(Node::Resource(resource)));
        let edge = self.graph.add_edge(thread_node, resource_node, record);
        if let Some(stale) = self.waits.insert(thread_id, edge) {
            // A thread is in one wait at a time; a leftover means a bug upstream, not a reason
            // to corrupt the graph.
            self.remove_edge(stale);
        }
    }

    pub(crate) fn remove(&mut self, thread: u64, seq: u64) {
        if let Some(&edge) = self.waits.get(&thread) {
            if self.graph.edge_weight(edge).is_some_and(|w| w.seq == seq) {
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
    }

    pub(crate) fn waits(&self) -> impl Iterator<Item = &WaitRecord> {
        self.graph.edge_weights()
    }

    pub(crate) fn waiting_count(&self) -> usize {
        self.waits.len()
    }
}

fn location(loc: &'static Location<'static>) -> ReportLocation {
    ReportLocation::from(loc)
}

fn hold_snap(copy: &HeldCopy) -> HoldSnap {
    let h = &copy.held;
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

/// Takes a consistent snapshot of every wait, every live thread and what exited threads left.
pub(crate) fn snapshot() -> Snapshot {
    let rt = runtime();
    // Counted before the graph is read: a thread that starts meanwhile is then counted as
    // unknown, which can only make the analysis more careful.
    // `internal` is read first: a helper thread that ends meanwhile is then still counted by the
    // OS, which can only make an unknown thread look present (the careful side).
    let internal = rt.internal_threads.load(Ordering::Relaxed);
    let os_threads = registry::os_thread_count();
    let now = Instant::now();
    let mut snapshot = Snapshot::default();
    let mut resource_index: HashMap<u64, usize> = HashMap::new();
    let mut waiting: HashSet<u64> = HashSet::new();
    {
        let graph = rt.graph.lock();
        for record in graph.waits() {
            let probe = record.probe.get();
            let rid = probe.resource_id();
            if let std::collections::hash_map::Entry::Vacant(e) = resource_index.entry(rid) {
                e.insert(snapshot.resources.len());
                snapshot.resources.push(ResourceSnap {
                    id: rid,
                    kind: probe.kind(),
                    name: probe.name().map(|n| n.to_string()),
                    created_at: location(probe.created_at()),
                    releasers: probe.releasers(),
                    available: probe.available(),
                });
            } else if probe.available() {
                // Two waiters on one resource with different access (read and write): a wait
                // that can end makes the resource available for the analysis of either.
                let i = resource_index[&rid];
                snapshot.resources[i].available = true;
            }
            waiting.insert(record.thread.id);
            snapshot.threads.push(ThreadSnap {
                id: record.thread.id,
                name: record.thread.name.as_deref().map(str::to_owned),
                state: if record.timed {
                    ThreadState::TimedWait
                } else {
                    ThreadState::Blocked
                },
                wait: Some(WaitSnap {
                    resource: rid,
                    op: record.op,
                    location: location(record.site),
                    since_ms: now.saturating_duration_since(record.started).as_millis() as u64,
                    seq: record.seq,
                }),
                holds: record.holds.iter().map(hold_snap).collect(),
                backtrace: Vec::new(),
            });
        }
    }
    let mut live = 0usize;
    let mut main_thread_seen = false;
    for entry in rt.threads.iter() {
        let record = entry.value();
        if record.internal {
            // Counted in `internal_threads` already, and never a helper of user threads.
            continue;
        }
        live += 1;
        main_thread_seen |= record.is_process_main_thread();
        if waiting.contains(&record.id) {
            continue;
        }
        snapshot.threads.push(ThreadSnap {
            id: record.id,
            name: record.name.as_deref().map(str::to_owned),
            state: ThreadState::Running,
            wait: None,
            holds: Vec::new(),
            backtrace: Vec::new(),
        });
    }
    for gone in rt.exited.lock().values() {
        // Its lockwatch state is gone, but the OS thread may still be running later
        // thread-local destructors or exit handlers, which can release what it holds.
        let state = if gone.record.os_thread_gone() {
            ThreadState::Exited
        } else {
            ThreadState::Running
        };
        snapshot.threads.push(ThreadSnap {
            id: gone.record.id,
            name: gone.record.name.as_deref().map(str::to_owned),
            state,
            wait: None,
            holds: gone.holds.iter().map(hold_snap).collect(),
            backtrace: Vec::new(),
        });
    }
    // Under libtest the process's main thread, while lockwatch has not seen it, only
    // coordinates tests: the OS counts it, but it can end no wait.
    let coordinator =
        usize::from(!main_thread_seen && crate::config::harness() == crate::Harness::Libtest);
    snapshot.unknown_threads_can_run = match os_threads {
        Some(os) => os > live + internal + coordinator,
        // Without a thread count, assume a thread lockwatch never saw may exist.
        None => true,
    };
    snapshot.threads.sort_by_key(|t| t.id);
    snapshot
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
