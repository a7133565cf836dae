//! Lock-order tracking: an edge A → B each time a thread holding A blocks to acquire B.
//!
//! Three levels, cheapest first: a per-thread direct-mapped cache of edges this thread already
//! recorded (a lookup, no shared memory), a `DashMap` of edges any thread recorded, and only for
//! an edge never seen before the global lock-order graph (`lockwatch_detector::order`), whose
//! incremental topological order makes the insertion cheap. An edge is keyed with a fingerprint
//! of the whole held set, so the same nesting under a different set of outer locks reaches the
//! graph once more and can narrow the edge's gate set.

use super::registry;
use super::report::{self, Emitted};
use super::{Held, Meta, ThreadCtx};
use crate::config::{self, LockOrder};
use crate::core::Kind;
use crate::raw::Access;
use dashmap::DashMap;
use lockwatch_detector::order::{LockInfo, OrderEdge, OrderGraph};
use lockwatch_detector::{Location as ReportLocation, Report, ResourceKind};
use parking_lot::Mutex;
use std::cell::Cell;
use std::collections::HashMap;
use std::panic::Location;
use std::sync::OnceLock;
use std::time::Duration;

const CACHE_SLOTS: usize = 256;

/// Acquisitions this thread has fully recorded, as `(held-set fingerprint, lock taken)`,
/// direct-mapped: a hit means every edge from every held lock to that lock, under exactly that
/// held set, is already known, so a repeated nesting costs one lookup whatever its depth.
pub(crate) struct EdgeCache {
    slots: [Cell<(u64, u64)>; CACHE_SLOTS],
}

impl EdgeCache {
    pub(crate) fn new() -> EdgeCache {
        EdgeCache {
            slots: std::array::from_fn(|_| Cell::new((0, 0))),
        }
    }

    #[inline(always)]
    fn slot(fingerprint: u64, to: u64) -> usize {
        let h = fingerprint ^ to.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        (h >> 56) as usize % CACHE_SLOTS
    }

    #[inline(always)]
    fn contains(&self, key: (u64, u64)) -> bool {
        self.slots[Self::slot(key.0, key.1)].get() == key
    }

    #[inline]
    fn insert(&self, key: (u64, u64)) {
        self.slots[Self::slot(key.0, key.1)].set(key);
    }
}

/// The live graph over lock instances, and the hierarchy written at exit.
struct Graphs {
    /// One node per live lock: what inversions are found on.
    instances: OrderGraph,
    /// One node per lock *class* (kind, name, creation site), never shrinking: the learned
    /// hierarchy `LOCKWATCH_ORDER_GRAPH` writes, stable across runs so CI can diff it.
    classes: OrderGraph,
    class_ids: HashMap<(ResourceKind, Option<String>, ReportLocation), u64>,
}

impl Graphs {
    fn class_of(&mut self, lock: &LockInfo) -> LockInfo {
        let key = (lock.kind, lock.name.clone(), lock.created_at.clone());
        let next = self.class_ids.len() as u64 + 1;
        let id = *self.class_ids.entry(key).or_insert(next);
        LockInfo { id, ..lock.clone() }
    }

    fn insert(&mut self, from: LockInfo, to: LockInfo, edge: OrderEdge) -> Vec<Vec<(u64, u64)>> {
        let (from_class, to_class) = (self.class_of(&from), self.class_of(&to));
        if from_class.id != to_class.id {
            // Inversions are judged on instances; the class graph only records the hierarchy.
            let _ = self.classes.insert_edge(from_class, to_class, edge.clone());
        }
        self.instances.insert_edge(from, to, edge)
    }
}

struct OrderState {
    graph: Mutex<Graphs>,
    /// Edges any thread has recorded, by source lock: `(to, gate set)`, the gate set being
    /// the intersection over every recording, as in the graph.
    known: DashMap<u64, Vec<(u64, Vec<u64>)>>,
    /// The reverse index of `known` (target → sources), so a dropped lock leaves no entry.
    sources: DashMap<u64, Vec<u64>>,
}

fn state() -> &'static OrderState {
    static STATE: OnceLock<OrderState> = OnceLock::new();
    STATE.get_or_init(|| {
        ensure_exit_hook();
        OrderState {
            graph: Mutex::new(Graphs {
                instances: OrderGraph::new(),
                classes: OrderGraph::new(),
                class_ids: HashMap::new(),
            }),
            known: DashMap::new(),
            sources: DashMap::new(),
        }
    })
}

/// Whether this thread already recorded every edge of acquiring lock `to` under the held set
/// `fingerprint`: the lookup the fast path makes for each nested acquisition.
#[inline(always)]
pub(crate) fn is_known(ctx: &ThreadCtx, fingerprint: u64, to: u64) -> bool {
    ctx.edge_cache.contains((fingerprint, to))
}

/// Called before a blocking acquisition of `meta` by a thread that holds at least one lock.
#[inline]
pub(crate) fn note_acquire(ctx: &ThreadCtx, meta: &Meta, site: &'static Location<'static>) {
    if !ctx
        .edge_cache
        .contains((ctx.held_fingerprint.get(), meta.id()))
    {
        note_new_edges(ctx, meta, site);
    }
}

fn lock_info_of_held(h: &Held) -> LockInfo {
    LockInfo {
        id: h.id,
        kind: h.kind,
        name: registry::lock_name(h.id),
        created_at: h.created_at.into(),
    }
}

fn lock_info_of(meta: &Meta) -> LockInfo {
    LockInfo {
        id: meta.id(),
        kind: meta.kind(),
        name: meta.name().map(|n| n.to_string()),
        created_at: meta.created_at().into(),
    }
}

#[cold]
#[inline(never)]
fn note_new_edges(ctx: &ThreadCtx, meta: &Meta, site: &'static Location<'static>) {
    let to = meta.id();
    let fingerprint = ctx.held_fingerprint.get();
    let state = state();
    let mut reports: Vec<Report> = Vec::new();
    {
        // A copy: what follows allocates, captures backtraces and takes the graph's lock.
        let held = ctx.held.to_vec();
        // Only an exclusive hold of an owned lock keeps two paths apart: two threads can both
        // hold a read lock, and any thread may release a Lock.
        let gate_ids: Vec<u64> = held
            .iter()
            .filter(|h| h.access() == Access::Exclusive && h.kind != Kind::Lock)
            .map(|h| h.id)
            .collect();
        let mut here: Option<Vec<lockwatch_detector::Frame>> = None;
        for index in 0..held.len() {
            let from = held[index].id;
            if from == to {
                continue;
            }
            // The same lock held twice (a reentrant lock) gives one edge.
            if held[..index].iter().any(|h| h.id == from) {
                continue;
            }
            let mut gates: Vec<u64> = gate_ids
                .iter()
                .copied()
                .filter(|&g| g != from && g != to)
                .collect();
            gates.sort_unstable();
            gates.dedup();
            // An edge already recorded is recorded again only if this time it can narrow the
            // edge's gate set (some stored gate is not held now): the only way a repeat can
            // change what is reported.
            let known_gates: Option<Vec<u64>> = state.known.get(&from).and_then(|edges| {
                edges
                    .iter()
                    .find(|(target, _)| *target == to)
                    .map(|(_, g)| g.clone())
            });
            let narrows = match &known_gates {
                None => true,
                Some(stored) => stored.iter().any(|g| gates.binary_search(g).is_err()),
            };
            if narrows {
                let narrowed: Vec<u64> = match &known_gates {
                    None => gates.clone(),
                    Some(stored) => stored
                        .iter()
                        .copied()
                        .filter(|g| gates.binary_search(g).is_ok())
                        .collect(),
                };
                let backtrace = if config::full_backtraces() {
                    here.get_or_insert_with(|| super::trace::resolve(&super::trace::capture()))
                        .clone()
                } else {
                    Vec::new()
                };
                let edge = OrderEdge {
                    thread: ctx.id(),
                    thread_name: ctx.record.name.as_deref().map(str::to_owned),
                    location: site.into(),
                    from_location: held[index].site.into(),
                    from_op: held[index].op,
                    gates,
                    backtrace,
                };
                let from_info = lock_info_of_held(&held[index]);
                let to_info = lock_info_of(meta);
                let mut graph = state.graph.lock();
                // A bug in the graph code must not become a panic in the user's `lock()`.
                let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    graph
                        .insert(from_info, to_info, edge)
                        .iter()
                        .map(|cycle| {
                            graph.instances.inversion_report(
                                cycle,
                                std::process::id(),
                                report::now_ms(),
                            )
                        })
                        .collect::<Vec<_>>()
                }));
                drop(graph);
                match found {
                    Ok(found) => reports.extend(found),
                    Err(_) => {
                        crate::diag::diag!(
                            "lockwatch: internal error: the lock-order graph panicked"
                        );
                    }
                }
                ctx.held.mark_in_order_graph(index);
                meta.mark_in_order_graph();
                let mut edges = state.known.entry(from).or_default();
                match edges.iter_mut().find(|(target, _)| *target == to) {
                    Some(entry) => entry.1 = narrowed,
                    None => edges.push((to, narrowed)),
                }
                drop(edges);
                let mut sources = state.sources.entry(to).or_default();
                if !sources.contains(&from) {
                    sources.push(from);
                }
            }
        }
    }
    ctx.edge_cache.insert((fingerprint, to));
    let mode = config::current().read().lock_order;
    for mut report in reports {
        report.relativize_frame_paths();
        // The graph only knows who created each edge; a thread that has ended since is shown
        // as exited rather than running.
        for thread in &mut report.threads {
            if !registry::runtime().threads.contains_key(&thread.id) {
                thread.state = lockwatch_detector::ThreadState::Exited;
            }
        }
        let how = match mode {
            LockOrder::Error => Emitted::Inversion,
            _ => Emitted::Warning,
        };
        report::emit(report, how);
    }
}

/// A lock that reached the order graph is being dropped: its node and edges go with it.
pub(crate) fn remove_lock(id: u64) {
    let state = state();
    state.graph.lock().instances.remove_lock(id);
    if let Some((_, targets)) = state.known.remove(&id) {
        for (to, _) in targets {
            if let Some(mut sources) = state.sources.get_mut(&to) {
                sources.retain(|&s| s != id);
            }
        }
    }
    if let Some((_, sources)) = state.sources.remove(&id) {
        for from in sources {
            if let Some(mut edges) = state.known.get_mut(&from) {
                edges.retain(|&(to, _)| to != id);
            }
        }
    }
}

/// Entries in the shared tables of known edges: (sources with entries, edges recorded).
pub(crate) fn known_edges_size() -> (usize, usize) {
    let state = state();
    let edges = state.known.iter().map(|e| e.value().len()).sum();
    (state.known.len(), edges)
}

/// The number of locks in the order graph (tests check it returns to empty).
pub(crate) fn graph_size() -> (usize, usize) {
    let graph = state().graph.lock();
    (graph.instances.node_count(), graph.instances.edge_count())
}

/// Arranges for the lock-order graph to be written at process exit (`LOCKWATCH_ORDER_GRAPH`).
/// Called when the runtime starts, so a program that never nests locks still writes its
/// (empty) hierarchy.
pub(crate) fn ensure_exit_hook() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(install_exit_hook);
}

fn install_exit_hook() {
    extern "C" fn write_order_graph_at_exit() {
        // Never let a panic cross the C boundary.
        let _ = std::panic::catch_unwind(write_order_graph);
    }
    // SAFETY: `atexit` only records the function pointer; the function is `extern "C"`, takes
    // nothing and catches every panic.
    unsafe {
        libc::atexit(write_order_graph_at_exit);
    }
}

/// Writes the learned hierarchy to `LOCKWATCH_ORDER_GRAPH`, if set.
pub(crate) fn write_order_graph() {
    let Some(path) = config::current().read().order_graph.clone() else {
        return;
    };
    // A thread frozen elsewhere never holds this lock for long; do not hang the exit on it.
    let Some(graph) = state().graph.try_lock_for(Duration::from_secs(1)) else {
        crate::diag::diag!("lockwatch: error: the lock-order graph was busy at exit; not written");
        return;
    };
    let text = if path.extension().is_some_and(|e| e == "dot") {
        graph.classes.to_dot()
    } else {
        graph.classes.to_json()
    };
    drop(graph);
    let tmp = path.with_extension("lockwatch-tmp");
    let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        crate::diag::diag!(
            "lockwatch: error: cannot write the lock-order graph to {}: {e}",
            path.display()
        );
    }
}
