//! Lock-order tracking: an edge A → B each time a thread holding A blocks to acquire B.
//!
//! Four levels, cheapest first:
//!
//! 1. a per-thread two-way cache of acquisitions this thread already recorded (a
//!    lookup, no shared memory);
//! 2. *deferred* edges: an edge into a lock that has never been the source of an edge (a
//!    *sink*) cannot close a cycle, so a thread keeps it in its own buffer instead of the global
//!    graph, and it is gone with the lock if nothing else happens. This is the common case of
//!    a short-lived lock taken under a long-held one (`account-{k}` under `accounts`): no
//!    global lock, no allocation, and memory that follows the locks. When the thread that
//!    deferred the edge drops the lock, the drop only notes it, and the edge is struck at the
//!    thread's next use of its buffer (`ThreadOrder::last_dropped`): the whole life of such a
//!    lock takes the buffer's lock once;
//! 3. a `DashMap` of edges any thread recorded;
//! 4. for an edge never seen before, the global lock-order graph (`lockwatch_detector::order`),
//!    whose incremental topological order makes the insertion cheap.
//!
//! An edge is keyed with a fingerprint of the whole held set, so the same nesting under a
//! different set of outer locks reaches the graph once more and can narrow the edge's gate set.
//!
//! # When deferred edges are published
//!
//! A lock's pending in-edges live in the buffer of one thread, its *pending owner*
//! (`Meta::pending_owner`). They must be in the graph before the lock can be on a cycle, i.e.
//! before it is the source of an edge. It becomes one only while some thread holds it, so:
//!
//! - another thread's acquisition of the lock (the fast path sees a foreign pending owner and
//!   goes to the slow path) publishes them first ([`claim`]), and the lock is marked so that
//!   it is never deferred into again;
//! - the owner's own use of it as a source publishes them ([`note_new_edges`]), and the hold is
//!   flagged so that its release marks the lock the same way;
//! - the owner's exit publishes everything left ([`thread_exit`]).
//!
//! So when every edge of a cycle has been recorded, every lock on it has been a source and
//! every edge of it is in the graph, where the last one inserted finds the cycle. The common
//! deferral is made while its thread holds the lock exclusively (the first attempt took it,
//! see `core::tracked::lock`), and every exclusive acquisition reads the pending owner again
//! once it holds the lock (and, if another thread's deferral appeared meanwhile, gives the
//! lock back and publishes it first), so those cannot race. The window left is a deferral made
//! while the deferring thread does not hold the lock exclusively (a new ordering met on the
//! way to a wait) racing with another thread that already holds it: that edge is published
//! when the deferring thread's wait registers, at the lock's next foreign acquisition or at
//! the owner's exit — a late report, never a false one.
//!
//! # The hierarchy
//!
//! While `LOCKWATCH_ORDER_GRAPH` is set, every ordering is also recorded per lock class in a
//! bounded [`Hierarchy`] written at exit (see its docs for the bound and for why the file is
//! the same from run to run). A per-thread set of recordings already made keeps repeats off
//! its lock.

use super::held::{Held, HeldStack};
use super::meta::Meta;
use super::registry;
use super::registry::ThreadRecord;
use super::report::{self, Emitted};
use super::runtime::runtime;
use crate::config::{self, LockOrder};
use crate::raw::Access;
use dashmap::DashMap;
use lockwatch_detector::order::{
    ClassRecording, Hierarchy, LockClass, LockInfo, OrderEdge, OrderGraph, Recorded,
};
use lockwatch_detector::ResourceKind as Kind;
use lockwatch_detector::{CycleEdge, Report};
use parking_lot::{Mutex, MutexGuard};
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const CACHE_SLOTS: usize = 256;

/// Deferred edges a thread may keep before it publishes them all: keeps every scan of its
/// buffer short.
const MAX_PENDING: usize = 256;

/// Recordings a thread remembers having made in the hierarchy before it starts afresh.
const MAX_CLASS_SEEN: usize = 65_536;

/// Acquisitions this thread has fully recorded, as `(held-set fingerprint, lock taken)`, in
/// sets of two ways: a hit means every edge from every held lock to that lock, under exactly
/// that held set, is already known, so a repeated nesting costs one lookup whatever its depth.
/// Two ways, so that two nestings a loop repeats cannot evict each other on every pass when
/// they fall in the same set (each eviction is a trip through the slow path).
pub(crate) struct EdgeCache {
    slots: [Cell<(u64, u64)>; CACHE_SLOTS],
}

impl EdgeCache {
    fn new() -> EdgeCache {
        EdgeCache {
            slots: std::array::from_fn(|_| Cell::new((0, 0))),
        }
    }

    /// The first of the two slots of the set of `(fingerprint, to)`.
    #[inline(always)]
    fn set(fingerprint: u64, to: u64) -> usize {
        let h = fingerprint ^ to.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        ((h >> 56) as usize % CACHE_SLOTS) & !1
    }

    #[inline(always)]
    fn contains(&self, key: (u64, u64)) -> bool {
        let set = Self::set(key.0, key.1);
        self.slots[set].get() == key || self.slots[set + 1].get() == key
    }

    /// Inserts `key` as the set's most recent entry; the other way keeps the previous one.
    #[inline]
    fn insert(&self, key: (u64, u64)) {
        let set = Self::set(key.0, key.1);
        let first = self.slots[set].get();
        if first != key {
            self.slots[set + 1].set(first);
            self.slots[set].set(key);
        }
    }
}

/// One deferred edge: the thread held `from` (that hold, copied) when it took lock `to` at
/// `site`, with the `gates` held too.
struct Pending {
    from: Held,
    to: u64,
    to_kind: Kind,
    to_created_at: &'static Location<'static>,
    site: &'static Location<'static>,
    gates: Vec<u64>,
}

/// A thread's deferred edges. Behind a lock because another thread publishes them when it
/// acquires one of their targets.
struct PendingBuffer {
    edges: Vec<Pending>,
    /// Set once the buffer published everything at its bound: its targets may then have edges
    /// in the graph that dropping them must remove.
    published_some: bool,
    /// Targets whose edges a registered wait of the thread published (so they are in the
    /// graph) and that have not been dropped since: dropping one must remove it from the
    /// graph. Bounded by `MAX_PUBLISHED_TARGETS`; past it, `published_some` is set instead.
    published_targets: HashSet<u64>,
}

/// Targets a buffer remembers as published by waits before it falls back to `published_some`
/// (every later drop of a lock this thread deferred into then takes the general path).
const MAX_PUBLISHED_TARGETS: usize = 4096;

type SharedBuffer = Arc<Mutex<PendingBuffer>>;

/// Lock-order state of one thread.
pub(crate) struct ThreadOrder {
    edge_cache: EdgeCache,
    pending: OnceCell<SharedBuffer>,
    /// Whether `pending` may hold edges: a thread-local check before its lock is taken.
    may_have_pending: Cell<bool>,
    /// `pending.published_some`, readable without its lock (only this thread sets either).
    published_some: Cell<bool>,
    /// This thread's copy of `pending.published_targets`, readable without its lock, so that
    /// its drop of any other lock stays cheap: only this thread adds to either, and its own
    /// drops remove from both. Another thread's drop removes from the shared set only; the id
    /// it leaves here is never matched again (ids are not reused), and counts toward the
    /// bound.
    published_targets: RefCell<HashSet<u64>>,
    /// The last lock this thread deferred edges into and then dropped itself (0: none), whose
    /// edges may still be in `pending`: struck out the next time this thread takes its
    /// buffer's lock ([`ThreadOrder::lock_own`]), so that the drop itself costs no lock (see
    /// [`forget_own_pending`]). Until then the edges are inert: nothing publishes an edge of
    /// this buffer into a dropped lock (a claim takes the edges into the live lock it claims;
    /// everything else that publishes runs on this thread and strikes these first).
    last_dropped: Cell<u64>,
    /// The ones dropped before `last_dropped` since the buffer's lock was last taken. At most
    /// one per lock deferred into since then, so bounded by `MAX_PENDING` plus one; kept
    /// allocated.
    dropped: RefCell<Vec<u64>>,
    /// Hashes of hierarchy recordings this thread already made.
    class_seen: RefCell<HashSet<u64>>,
    /// Buffers [`note_new_edges`] reuses, so that recording a new edge allocates nothing
    /// once they have grown (taken out while in use: a report handler may nest a call).
    scratch: Cell<Scratch>,
}

#[derive(Default)]
struct Scratch {
    held: Vec<Held>,
    sources: Vec<usize>,
    gate_ids: Vec<u64>,
}

impl ThreadOrder {
    pub(crate) fn new() -> ThreadOrder {
        ThreadOrder {
            edge_cache: EdgeCache::new(),
            pending: OnceCell::new(),
            may_have_pending: Cell::new(false),
            published_some: Cell::new(false),
            published_targets: RefCell::new(HashSet::new()),
            last_dropped: Cell::new(0),
            dropped: RefCell::new(Vec::new()),
            class_seen: RefCell::new(HashSet::new()),
            scratch: Cell::new(Scratch::default()),
        }
    }

    fn buffer(&self, thread: u64) -> &SharedBuffer {
        self.pending.get_or_init(|| {
            let buffer = Arc::new(Mutex::new(PendingBuffer {
                edges: Vec::new(),
                published_some: false,
                published_targets: HashSet::new(),
            }));
            state().buffers.lock().insert(thread, buffer.clone());
            buffer
        })
    }

    /// Locks this thread's own buffer, first striking the edges into the locks it dropped
    /// since it last did.
    fn lock_own(&self, thread: u64) -> MutexGuard<'_, PendingBuffer> {
        let mut buffer = self.buffer(thread).lock();
        let last = self.last_dropped.replace(0);
        if last != 0 {
            strike(&mut buffer.edges, last);
            // Not borrowed elsewhere: only `forget_own_pending` borrows it too, and neither
            // runs code that could reach the other while it holds the borrow.
            if let Ok(mut dropped) = self.dropped.try_borrow_mut() {
                if !dropped.is_empty() {
                    for id in dropped.drain(..) {
                        strike(&mut buffer.edges, id);
                    }
                }
            }
        }
        buffer
    }
}

/// Removes from `edges` every edge into lock `id`. From the end: the edges of the lock
/// deferred into last, the usual one to strike, are there.
fn strike(edges: &mut Vec<Pending>, id: u64) {
    let mut k = edges.len();
    while k > 0 {
        k -= 1;
        if edges[k].to == id {
            if k + 1 == edges.len() {
                // Dropped in place: the usual case, the edge deferred last.
                edges.truncate(k);
            } else {
                // What moves into `k` comes from the end, already looked at.
                edges.swap_remove(k);
            }
        }
    }
}

pub(crate) struct OrderState {
    /// One node per live lock: what inversions are found on.
    graph: Mutex<OrderGraph>,
    /// The learned hierarchy, per lock class, while `LOCKWATCH_ORDER_GRAPH` is set.
    hierarchy: Mutex<Hierarchy>,
    /// Edges any thread has recorded, by source lock: `(to, gate set)`, the gate set being
    /// the intersection over every recording, as in the graph.
    known: DashMap<u64, Vec<(u64, Vec<u64>)>>,
    /// The reverse index of `known` (target → sources), so a dropped lock leaves no entry.
    sources: DashMap<u64, Vec<u64>>,
    /// Every live thread's buffer of deferred edges, by runtime thread id.
    buffers: Mutex<HashMap<u64, SharedBuffer>>,
    /// Inversions reported, by the signature of their cycle over lock classes and sites.
    reported: Mutex<HashMap<u64, Reported>>,
}

/// An inversion already reported, and how many more times it was seen.
struct Reported {
    report: Report,
    file: Option<PathBuf>,
    occurrences: u64,
}

impl OrderState {
    pub(crate) fn new() -> OrderState {
        OrderState {
            graph: Mutex::new(OrderGraph::new()),
            hierarchy: Mutex::new(Hierarchy::new()),
            known: DashMap::new(),
            sources: DashMap::new(),
            buffers: Mutex::new(HashMap::new()),
            reported: Mutex::new(HashMap::new()),
        }
    }
}

fn state() -> &'static OrderState {
    &runtime().order
}

/// What lock-order tracking sees of a thread: its record, what it holds, and its own
/// lock-order state. A view of the thread's context (`local::ThreadCtx`), which holds it.
pub(crate) struct OrderCtx<'a> {
    pub(crate) record: &'a ThreadRecord,
    pub(crate) held: &'a HeldStack,
    pub(crate) order: &'a ThreadOrder,
}

impl OrderCtx<'_> {
    #[inline(always)]
    pub(crate) fn id(&self) -> u64 {
        self.record.id
    }
}

/// Whether this thread already recorded every edge of acquiring lock `to` under the held set
/// `fingerprint`: the lookup the fast path makes for each nested acquisition.
#[inline(always)]
pub(crate) fn is_known(order: &ThreadOrder, fingerprint: u64, to: u64) -> bool {
    order.edge_cache.contains((fingerprint, to))
}

/// Called before a blocking acquisition of `meta` by a thread that holds at least one lock.
#[inline]
pub(crate) fn note_acquire(ctx: &OrderCtx<'_>, meta: &Meta, site: &'static Location<'static>) {
    if !ctx
        .order
        .edge_cache
        .contains((ctx.held.fingerprint(), meta.id()))
    {
        note_new_edges(ctx, meta, site);
    }
}

/// The common new ordering, recorded without the general machinery of `note_new_edges`:
/// one lock held, and a lock taken that is a sink this thread may defer into, with nothing
/// more to record (no hierarchy, no backtraces): the deferred edge goes into this thread's
/// buffer. `true` if the acquisition's orderings are recorded (or were known); `false` if it
/// does not apply, having changed nothing: then [`note_acquire`] must run. Cannot panic, so
/// needs no guard.
#[inline]
pub(crate) fn try_note_single_deferred(
    ctx: &OrderCtx<'_>,
    meta: &Meta,
    site: &'static Location<'static>,
) -> bool {
    if !meta.may_defer_into() || config::full_backtraces() || hierarchy_on() {
        return false;
    }
    let Some(from) = ctx.held.single() else {
        return false;
    };
    let to = meta.id();
    let fingerprint = ctx.held.fingerprint();
    if ctx.order.edge_cache.contains((fingerprint, to)) {
        return true;
    }
    let me = ctx.id();
    let owner = meta.pending_owner.load(Ordering::SeqCst);
    if from.id == to || (owner != 0 && owner != me) {
        return false;
    }
    let mut buffer = ctx.order.lock_own(me);
    // The source's own deferred in-edges must be published, and a full buffer emptied: the
    // general path does both.
    if buffer.edges.len() >= MAX_PENDING || buffer.edges.iter().any(|p| p.to == from.id) {
        return false;
    }
    if !own_deferral(meta, me, owner) {
        return false;
    }
    // With one lock held the edge has no gates (the source is not its own gate). A repeat
    // (only possible once this thread owns the lock's edges) adds nothing.
    let covered = owner == me
        && buffer
            .edges
            .iter()
            .any(|p| p.to == to && p.from.id == from.id && p.gates.is_empty());
    if !covered {
        buffer.edges.push(Pending {
            from,
            to,
            to_kind: meta.kind(),
            to_created_at: meta.created_at(),
            site,
            gates: Vec::new(),
        });
    }
    drop(buffer);
    ctx.order.may_have_pending.set(true);
    // As in `note_new_edges`: the hold is a source now.
    ctx.held.mark_in_order_graph(0);
    ctx.order.edge_cache.insert((fingerprint, to));
    true
}

/// Whether another thread than `me` keeps deferred edges into `meta`: then an acquisition by
/// `me` must have them [`claim`]ed, without holding the lock, before it keeps the lock. A
/// plain load on x86 (as every load of the fast path).
#[inline(always)]
pub(crate) fn has_foreign_pending_owner(meta: &Meta, me: u64) -> bool {
    let owner = meta.pending_owner.load(Ordering::SeqCst);
    owner != 0 && owner != me
}

/// Called before a lock another thread deferred edges into is held by this one, which could
/// make it a source: those edges are published first, and the lock is never deferred into
/// again. Not while holding the lock: publishing can report.
#[inline]
pub(crate) fn claim(meta: &Meta, ctx: &OrderCtx<'_>) {
    if has_foreign_pending_owner(meta, ctx.id()) {
        claim_slow(meta, ctx);
    }
}

#[cold]
fn claim_slow(meta: &Meta, ctx: &OrderCtx<'_>) {
    let owner = begin_claim(meta);
    if owner == 0 || owner == ctx.id() {
        return;
    }
    let id = meta.id();
    let buffer = state().buffers.lock().get(&owner).cloned();
    let taken = match buffer {
        Some(buffer) => take_pending_into(&buffer, id),
        None => Vec::new(),
    };
    if !taken.is_empty() {
        let reports = publish(owner, taken);
        emit_all(reports);
    }
}

/// The claim's side of the handshake with [`own_deferral`]: marks the lock as never to be
/// deferred into again, then takes its pending owner (returned; 0 if none), whose buffer the
/// claim then empties of the lock's edges under that buffer's lock. The flag first, then the
/// owner: a deferral racing with this re-reads the flag after setting the owner, so one of the
/// two sees the other (both SeqCst). Model-checked with `own_deferral` (`loom_tests` below).
fn begin_claim(meta: &Meta) -> u64 {
    meta.mark_no_defer();
    meta.pending_owner.swap(0, Ordering::SeqCst)
}

/// Takes the edges into lock `id` out of `buffer`, for a claim. The lock is in the graph from
/// now on (its drop removes it), so the buffer stops remembering it as published.
fn take_pending_into(buffer: &SharedBuffer, id: u64) -> Vec<Pending> {
    let mut taken = Vec::new();
    let mut pending = buffer.lock();
    extract(&mut pending.edges, &mut taken, |p| p.to == id);
    pending.published_targets.remove(&id);
    taken
}

/// Moves the edges `which` selects from `edges` to `into`.
fn extract(
    edges: &mut Vec<Pending>,
    into: &mut Vec<Pending>,
    mut which: impl FnMut(&Pending) -> bool,
) {
    let mut k = 0;
    while k < edges.len() {
        if which(&edges[k]) {
            into.push(edges.swap_remove(k));
        } else {
            k += 1;
        }
    }
}

/// Puts deferred edges recorded by thread `thread` into the graph; returns the reports of the
/// cycles they close.
fn publish(thread: u64, pending: Vec<Pending>) -> Vec<Report> {
    let thread_name = runtime()
        .threads
        .get(&thread)
        .and_then(|t| t.name.as_deref().map(str::to_owned));
    let mut reports = Vec::new();
    for p in pending {
        let edge = OrderEdge {
            thread,
            thread_name: thread_name.clone(),
            location: p.site.into(),
            from_location: p.from.site.into(),
            from_op: p.from.op,
            gates: p.gates.clone(),
            backtrace: Vec::new(),
        };
        let to = LockInfo {
            id: p.to,
            kind: p.to_kind,
            name: registry::lock_name(p.to),
            created_at: p.to_created_at.into(),
        };
        reports.extend(insert_global(lock_info_of_held(&p.from), to, edge));
    }
    reports
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

/// The gate set of edge `from -> to` taken with `gate_ids` held: sorted, without the edge's
/// own locks.
fn gates_of(gate_ids: &[u64], from: u64, to: u64) -> Vec<u64> {
    if gate_ids.iter().all(|&g| g == from || g == to) {
        return Vec::new();
    }
    let mut gates: Vec<u64> = gate_ids
        .iter()
        .copied()
        .filter(|&g| g != from && g != to)
        .collect();
    gates.sort_unstable();
    gates.dedup();
    gates
}

#[cold]
#[inline(never)]
fn note_new_edges(ctx: &OrderCtx<'_>, meta: &Meta, site: &'static Location<'static>) {
    let to = meta.id();
    let fingerprint = ctx.held.fingerprint();
    let state = state();
    let mut reports: Vec<Report> = Vec::new();
    let mut scratch = ctx.order.scratch.take();
    let Scratch {
        held,
        sources,
        gate_ids,
    } = &mut scratch;
    // A copy: what follows allocates, captures backtraces and takes the graph's lock.
    ctx.held.copy_into(held);
    // The sources: each held lock once (a reentrant lock held twice gives one edge), never
    // the lock being taken.
    sources.clear();
    sources.extend(
        (0..held.len())
            .filter(|&k| held[k].id != to && !held[..k].iter().any(|h| h.id == held[k].id)),
    );
    // Only an exclusive hold of an owned lock keeps two paths apart: two threads can both
    // hold a read lock, and any thread may release a Lock.
    gate_ids.clear();
    gate_ids.extend(
        held.iter()
            .filter(|h| h.access() == Access::Exclusive && h.kind != Kind::Lock)
            .map(|h| h.id),
    );
    let (held, sources, gate_ids) = (&held[..], &sources[..], &gate_ids[..]);

    // One hold of this thread's buffer for both of what follows: each source is becoming one
    // now, so what this thread deferred into it goes to the graph; and the edges of this
    // acquisition may stay in the buffer instead.
    let may_defer = !config::full_backtraces() && meta.may_defer_into();
    let mut to_publish = Vec::new();
    let mut deferred = false;
    if ctx.order.may_have_pending.get() || may_defer {
        let mut buffer = ctx.order.lock_own(ctx.id());
        if ctx.order.may_have_pending.get() {
            extract(&mut buffer.edges, &mut to_publish, |p| {
                sources.iter().any(|&k| held[k].id == p.to)
            });
        }
        if may_defer {
            deferred = try_defer(
                ctx,
                meta,
                &mut buffer,
                held,
                sources,
                gate_ids,
                site,
                &mut to_publish,
            );
        }
    }
    if !to_publish.is_empty() {
        reports.extend(publish(ctx.id(), to_publish));
    }

    if !deferred {
        let mut here: Option<Vec<lockwatch_detector::Frame>> = None;
        for &index in sources {
            let from = held[index].id;
            let gates = gates_of(gate_ids, from, to);
            // An edge already recorded is recorded again only if this time it can narrow the
            // edge's gate set (some stored gate is not held now): the only way a repeat can
            // change what is reported.
            let narrows = state.known.get(&from).is_none_or(|edges| {
                edges
                    .iter()
                    .find(|(target, _)| *target == to)
                    .is_none_or(|(_, stored)| {
                        stored.iter().any(|g| gates.binary_search(g).is_err())
                    })
            });
            if !narrows {
                continue;
            }
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
            reports.extend(insert_global(
                lock_info_of_held(&held[index]),
                lock_info_of(meta),
                edge,
            ));
            meta.mark_in_order_graph();
        }
    }
    // Every source is flagged, deferred or not: its release marks the lock as one that has
    // been a source (never deferred into again), and its drop takes its edges along.
    for &index in sources {
        ctx.held.mark_in_order_graph(index);
    }
    ctx.order.edge_cache.insert((fingerprint, to));
    if hierarchy_on() {
        record_classes(ctx, meta, held, sources, gate_ids, site);
    }
    ctx.order.scratch.set(scratch);
    emit_all(reports);
}

/// Whether the hierarchy is recorded: `LOCKWATCH_ORDER_GRAPH` (or `Config::order_graph`) was
/// set when the first new ordering was seen. Read once: it is consulted for every new edge,
/// and the settings' lock costs more than the rest of a deferred edge.
fn hierarchy_on() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| config::current().read().order_graph.is_some())
}

/// The handshake before a thread keeps edges into `meta` in its buffer, called with that
/// buffer locked: it becomes the lock's pending owner (`owner`, read before, is 0 or `me`),
/// then re-reads the no-defer flag. A claim that set the flag before ownership was taken has
/// not seen this thread, or has already taken the lock's edges out of the buffer, and would
/// never see one added now: then nothing may be kept. Ownership taken just now is given back;
/// ownership held from before is left to the claim that set the flag, whose swap publishes the
/// edges already kept. Returns whether the edges may be kept.
fn own_deferral(meta: &Meta, me: u64, owner: u64) -> bool {
    if owner == 0
        && meta
            .pending_owner
            .compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    {
        return false;
    }
    if meta.may_defer_into() {
        return true;
    }
    if owner == 0 {
        let _ = meta
            .pending_owner
            .compare_exchange(me, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
    false
}

/// Keeps the edges of this acquisition in the thread's own buffer (`pending`, locked) if
/// `meta` is a sink this thread may defer into; `false` if they must go to the graph. A buffer
/// at its bound is emptied into `overflow`, for the caller to publish once it is unlocked.
#[allow(clippy::too_many_arguments)]
fn try_defer(
    ctx: &OrderCtx<'_>,
    meta: &Meta,
    pending: &mut PendingBuffer,
    held: &[Held],
    sources: &[usize],
    gate_ids: &[u64],
    site: &'static Location<'static>,
    overflow: &mut Vec<Pending>,
) -> bool {
    let me = ctx.id();
    let owner = meta.pending_owner.load(Ordering::SeqCst);
    if owner != 0 && owner != me {
        return false;
    }
    let to = meta.id();
    if pending.edges.len() >= MAX_PENDING {
        // Bounded: publish them all, and this acquisition goes to the graph.
        overflow.append(&mut pending.edges);
        pending.published_some = true;
        ctx.order.published_some.set(true);
        return false;
    }
    if !own_deferral(meta, me, owner) {
        return false;
    }
    for &index in sources {
        let from = held[index];
        let gates = gates_of(gate_ids, from.id, to);
        // A repeat adds nothing unless it narrows the gates.
        let covered = pending.edges.iter().rev().any(|p| {
            p.to == to
                && p.from.id == from.id
                && p.gates.iter().all(|g| gates.binary_search(g).is_ok())
        });
        if !covered {
            pending.edges.push(Pending {
                from,
                to,
                to_kind: meta.kind(),
                to_created_at: meta.created_at(),
                site,
                gates,
            });
        }
    }
    ctx.order.may_have_pending.set(true);
    true
}

/// Inserts one edge into the graph and the shared table of known edges; returns the
/// reports of the cycles it closes.
fn insert_global(from: LockInfo, to: LockInfo, edge: OrderEdge) -> Vec<Report> {
    let state = state();
    let (from_id, to_id) = (from.id, to.id);
    let gates = edge.gates.clone();
    let mut graph = state.graph.lock();
    // A bug in the graph code must not become a panic in the user's `lock()`.
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        graph
            .insert_edge(from, to, edge)
            .iter()
            .map(|cycle| graph.inversion_report(cycle, std::process::id(), report::now_ms()))
            .collect::<Vec<_>>()
    }));
    drop(graph);
    let reports = found.unwrap_or_else(|_| {
        crate::diag::diag!("lockwatch: internal error: the lock-order graph panicked");
        Vec::new()
    });
    {
        let mut edges = state.known.entry(from_id).or_default();
        match edges.iter_mut().find(|(target, _)| *target == to_id) {
            Some(entry) => entry.1.retain(|g| gates.binary_search(g).is_ok()),
            None => edges.push((to_id, gates)),
        }
    }
    let mut sources = state.sources.entry(to_id).or_default();
    if !sources.contains(&from_id) {
        sources.push(from_id);
    }
    reports
}

/// The class of a held lock, for the hierarchy.
fn class_of_held(h: &Held) -> LockClass {
    LockClass {
        created_at: h.created_at.into(),
        kind: h.kind,
        name: registry::lock_name(h.id),
    }
}

/// Records the orderings of this acquisition in the hierarchy, once per distinct recording
/// per thread.
fn record_classes(
    ctx: &OrderCtx<'_>,
    meta: &Meta,
    held: &[Held],
    sources: &[usize],
    gate_ids: &[u64],
    site: &'static Location<'static>,
) {
    let to_class = LockClass {
        created_at: meta.created_at().into(),
        kind: meta.kind(),
        name: meta.name().map(|n| n.to_string()),
    };
    let mut to_hasher = DefaultHasher::new();
    to_class.hash(&mut to_hasher);
    let to_key = to_hasher.finish();
    for &index in sources {
        let from = &held[index];
        let gates = gates_of(gate_ids, from.id, meta.id());
        // What makes this recording distinct, in this thread's terms: the source instance
        // (whose class never changes), the class taken, both sites and the gate instances.
        let mut hasher = DefaultHasher::new();
        (from.id, to_key, &gates).hash(&mut hasher);
        (site.file(), site.line(), site.column()).hash(&mut hasher);
        (from.site.file(), from.site.line(), from.site.column()).hash(&mut hasher);
        let key = hasher.finish();
        if ctx.order.class_seen.borrow().contains(&key) {
            continue;
        }
        let gate_classes: Vec<LockClass> = held
            .iter()
            .filter(|h| gates.binary_search(&h.id).is_ok())
            .map(class_of_held)
            .collect();
        let recording = ClassRecording {
            thread: ctx.id(),
            thread_name: ctx.record.name.as_deref().map(str::to_owned),
            location: site.into(),
            from_location: from.site.into(),
            gates: gate_classes,
        };
        let from_class = class_of_held(from);
        let recorded = state()
            .hierarchy
            .lock()
            .record(&from_class, &to_class, recording);
        match recorded {
            Recorded::Added | Recorded::Known => {
                let mut seen = ctx.order.class_seen.borrow_mut();
                if seen.len() >= MAX_CLASS_SEEN {
                    seen.clear();
                }
                seen.insert(key);
            }
            Recorded::Dropped { first: true } => crate::diag::diag!(
                "lockwatch: warning: the lock-order hierarchy is full ({} lock classes, {} \
                 orderings); orderings that need more are left out of LOCKWATCH_ORDER_GRAPH \
                 (inversions are still reported)",
                Hierarchy::MAX_CLASSES,
                Hierarchy::MAX_EDGES
            ),
            Recorded::Dropped { first: false } => {}
        }
    }
}

/// The signature of an inversion over lock classes and sites, the same for every set of
/// fresh instances created at the same sites with the same names: one report for them all.
fn signature(report: &Report) -> u64 {
    let class = |id: u64| {
        report
            .resources
            .iter()
            .find(|r| r.id == id)
            .map(|r| (r.kind, r.name.clone(), r.created_at.clone()))
    };
    let mut steps: Vec<_> = report
        .cycle
        .iter()
        .map(|e| match e {
            CycleEdge::Order {
                from,
                to,
                location,
                from_location,
                ..
            } => Some((
                class(*from),
                class(*to),
                location.clone(),
                from_location.clone(),
            )),
            _ => None,
        })
        .collect();
    // Rotated to start at its smallest step, whatever the instance ids.
    if let Some(min) = (0..steps.len()).min_by(|&a, &b| steps[a].cmp(&steps[b])) {
        steps.rotate_left(min);
    }
    let mut hasher = DefaultHasher::new();
    steps.hash(&mut hasher);
    hasher.finish()
}

/// Delivers new inversion reports: each distinct one once, repeats only counted.
fn emit_all(reports: Vec<Report>) {
    if reports.is_empty() {
        return;
    }
    let mode = config::current().read().lock_order;
    for mut report in reports {
        let key = signature(&report);
        {
            let mut reported = state().reported.lock();
            if let Some(seen) = reported.get_mut(&key) {
                seen.occurrences += 1;
                continue;
            }
        }
        report.relativize_frame_paths();
        // The graph only knows who created each edge; a thread that has ended since is shown
        // as exited rather than running.
        for thread in &mut report.threads {
            if !runtime().threads.contains_key(&thread.id) {
                thread.state = lockwatch_detector::ThreadState::Exited;
            }
        }
        let how = match mode {
            LockOrder::Error => Emitted::Inversion,
            _ => Emitted::Warning,
        };
        // Recorded before it is delivered: under `error` delivering it may end the process.
        let copy = report.clone();
        let slot_key = {
            let mut reported = state().reported.lock();
            reported.insert(
                key,
                Reported {
                    report: copy,
                    file: None,
                    occurrences: 1,
                },
            );
            key
        };
        // The file is written on the reporter thread; it is noted there for the count at exit.
        let note_file: report::OnWritten = Box::new(move |file| {
            if let Some(seen) = state().reported.lock().get_mut(&slot_key) {
                seen.file = Some(file);
            }
        });
        report::emit(report, how, Some(note_file));
    }
}

/// A lock that reached the order graph or a thread's deferred edges is being dropped: its
/// node, its edges and its deferred edges go with it. `was_source`: its edges may be in any
/// thread's buffer (as their source).
pub(crate) fn remove_lock(id: u64, was_source: bool) {
    let state = state();
    if was_source {
        let buffers: Vec<SharedBuffer> = state.buffers.lock().values().cloned().collect();
        for buffer in buffers {
            let mut pending = buffer.lock();
            if !pending.edges.is_empty() {
                pending.edges.retain(|p| p.from.id != id);
            }
        }
    }
    state.graph.lock().remove_lock(id);
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

/// A lock with deferred in-edges in thread `owner`'s buffer is being dropped: removes them.
/// `true` if that is all there is to do; `false` if the lock may also have edges in the graph
/// (they were published, or the owner has exited and published everything).
///
/// `own` is the dropping thread's view, if it still has its state: usually the owner drops its
/// own lock, and its buffer is at hand.
pub(crate) fn forget_pending(id: u64, owner: u64, own: Option<&OrderCtx<'_>>) -> bool {
    /// Strikes the edges into `id`; `true` if none of them can be in the graph.
    fn strike_in(buffer: &SharedBuffer, id: u64) -> bool {
        let mut pending = buffer.lock();
        strike(&mut pending.edges, id);
        let published = pending.published_targets.remove(&id);
        !pending.published_some && !published
    }
    // Usually the owner drops its own lock: its buffer is at hand.
    let own = own.and_then(|ctx| match ctx.order.pending.get() {
        Some(buffer) if ctx.id() == owner => {
            if let Ok(mut copy) = ctx.order.published_targets.try_borrow_mut() {
                copy.remove(&id);
            }
            Some(strike_in(buffer, id))
        }
        _ => None,
    });
    if let Some(done) = own {
        return done;
    }
    let buffer = state().buffers.lock().get(&owner).cloned();
    buffer.is_some_and(|buffer| strike_in(&buffer, id))
}

/// A lock this thread may have deferred edges into (`owner`, its pending owner) is being
/// dropped by it: the common end of a short-lived lock. Notes the lock for its edges to be
/// struck at this thread's next use of its buffer, which takes no lock now; `true` if that is
/// all there is to do. `false` (nothing done) if another thread is dropping it, if this
/// thread's buffer ever overflowed into the graph, or if it remembers targets a wait published:
/// then [`forget_pending`] must.
pub(crate) fn forget_own_pending(id: u64, owner: u64, ctx: &OrderCtx<'_>) -> bool {
    let order = &ctx.order;
    if ctx.id() != owner || order.published_some.get() {
        return false;
    }
    // A target a wait published must leave the graph: the general path. (A copy borrowed
    // elsewhere cannot be, see `publish_before_blocking`; if it were, the general path too.)
    match order.published_targets.try_borrow() {
        Ok(copy) if copy.is_empty() || !copy.contains(&id) => {}
        _ => return false,
    }
    let previous = order.last_dropped.replace(id);
    if previous != 0 {
        match order.dropped.try_borrow_mut() {
            Ok(mut dropped) => dropped.push(previous),
            Err(_) => {
                // Cannot happen (see `lock_own`); if it did, the earlier lock takes the
                // general path.
                order.last_dropped.set(previous);
                return false;
            }
        }
    }
    true
}

/// A thread is about to block for good, maybe forever (a registered wait): the edges it kept
/// to itself go to the global graph now, so an inversion they close is reported even if the
/// thread never runs again (two threads taking two locks in opposite orders and deadlocking).
pub(crate) fn publish_before_blocking(ctx: &OrderCtx<'_>) {
    if ctx.order.pending.get().is_none() {
        return;
    }
    let all = {
        let mut buffer = ctx.order.lock_own(ctx.id());
        let all = std::mem::take(&mut buffer.edges);
        if !all.is_empty() {
            // Their targets have edges in the graph now, which dropping them must remove.
            match ctx.order.published_targets.try_borrow_mut() {
                Ok(mut copy) if copy.len() + all.len() <= MAX_PUBLISHED_TARGETS => {
                    copy.extend(all.iter().map(|p| p.to));
                    buffer.published_targets.extend(all.iter().map(|p| p.to));
                }
                _ => {
                    // As after an overflow: every later drop takes the general path.
                    buffer.published_some = true;
                    ctx.order.published_some.set(true);
                }
            }
        }
        all
    };
    if !all.is_empty() && !std::thread::panicking() {
        let reports = publish(ctx.id(), all);
        emit_all(reports);
    }
}

/// The thread is exiting: what it deferred goes to the graph (its locks may outlive it).
pub(crate) fn thread_exit(ctx: &OrderCtx<'_>) {
    if ctx.order.pending.get().is_none() {
        return;
    }
    state().buffers.lock().remove(&ctx.id());
    let all = std::mem::take(&mut ctx.order.lock_own(ctx.id()).edges);
    if !all.is_empty() && !std::thread::panicking() {
        let reports = publish(ctx.id(), all);
        emit_all(reports);
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
    (graph.node_count(), graph.edge_count())
}

/// Deferred edges kept by all threads (tests check they follow the locks). The calling
/// thread's edges into the locks it dropped are struck first; another thread's stay counted
/// until it next records an ordering.
///
/// `own`: the calling thread's view, if it has its state.
pub(crate) fn pending_size(own: Option<&OrderCtx<'_>>) -> usize {
    if let Some(ctx) = own {
        if ctx.order.pending.get().is_some() {
            drop(ctx.order.lock_own(ctx.id()));
        }
    }
    let buffers: Vec<SharedBuffer> = state().buffers.lock().values().cloned().collect();
    buffers.iter().map(|b| b.lock().edges.len()).sum()
}

/// Arranges for the lock-order graph to be written at process exit (`LOCKWATCH_ORDER_GRAPH`).
/// Called when the runtime starts, so a program that never nests locks still writes its
/// (empty) hierarchy.
pub(crate) fn ensure_exit_hook() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(install_exit_hook);
}

fn install_exit_hook() {
    extern "C" fn at_exit() {
        // Never let a panic cross the C boundary.
        let _ = std::panic::catch_unwind(report_repeats);
        let _ = std::panic::catch_unwind(write_order_graph);
    }
    // SAFETY: `atexit` only records the function pointer; the function is `extern "C"`, takes
    // nothing and catches every panic.
    unsafe {
        libc::atexit(at_exit);
    }
}

/// At exit, for every inversion seen more than once: one line on stderr with the count, and
/// its report file (`LOCKWATCH_REPORT_DIR`) rewritten with `occurrences` and the count in its
/// summary.
fn report_repeats() {
    // The reports are written on lockwatch's reporter thread: let the ones claimed get out.
    report::wait_for_reports(std::time::Instant::now() + Duration::from_secs(1));
    let format = config::current().read().format;
    let Some(reported) = state().reported.try_lock_for(Duration::from_secs(1)) else {
        return;
    };
    let mut repeats: Vec<&Reported> = reported.values().filter(|r| r.occurrences > 1).collect();
    repeats.sort_by(|a, b| a.report.summary.cmp(&b.report.summary));
    for seen in repeats {
        if format == config::Format::Text {
            crate::diag::diag!(
                "lockwatch: the {} (reported once) occurred {} times",
                seen.report.summary,
                seen.occurrences
            );
        }
        if let Some(file) = &seen.file {
            let mut report = seen.report.clone();
            report.summary = format!("{} ({} occurrences)", report.summary, seen.occurrences);
            let json = report.to_json_pretty();
            let body = json
                .trim_end()
                .strip_suffix('}')
                .unwrap_or(&json)
                .trim_end();
            let text = format!("{body},\n  \"occurrences\": {}\n}}\n", seen.occurrences);
            if let Err(e) = write_atomically(file, text.as_bytes()) {
                crate::diag::diag!(
                    "lockwatch: error: cannot update the report {}: {e}",
                    file.display()
                );
            }
        }
    }
}

/// Writes `bytes` to `path` complete or not at all (a temporary file beside it, then a
/// rename); on failure nothing is left behind.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.lockwatch-tmp", std::process::id()));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// `LOCKWATCH_ORDER_GRAPH` with `%p` replaced by the process id.
fn expand_path(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    if text.contains("%p") {
        PathBuf::from(text.replace("%p", &std::process::id().to_string()))
    } else {
        path.to_path_buf()
    }
}

/// Writes the learned hierarchy to `LOCKWATCH_ORDER_GRAPH`, if set.
pub(crate) fn write_order_graph() {
    let Some(path) = config::current().read().order_graph.clone() else {
        return;
    };
    let path = expand_path(&path);
    let fail = |why: &dyn std::fmt::Display| {
        crate::diag::diag!(
            "lockwatch: error: LOCKWATCH_ORDER_GRAPH={}: {why}; the lock-order hierarchy was not written",
            path.display()
        );
    };
    if path.is_dir() {
        fail(&"is a directory");
        return;
    }
    // A thread frozen elsewhere never holds this lock for long; do not hang the exit on it.
    let Some(hierarchy) = state().hierarchy.try_lock_for(Duration::from_secs(1)) else {
        fail(&"the hierarchy was busy at exit");
        return;
    };
    let text = if path.extension().is_some_and(|e| e == "dot") {
        hierarchy.to_dot()
    } else {
        hierarchy.to_json()
    };
    drop(hierarchy);
    if let Err(e) = write_atomically(&path, text.as_bytes()) {
        fail(&e);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::EdgeCache;

    /// Three nestings whose keys fall in one set of the cache.
    fn three_in_one_set() -> [(u64, u64); 3] {
        let first = (0x1234_5678, 7);
        let set = EdgeCache::set(first.0, first.1);
        let mut same = (1..)
            .map(|to| (first.0, to))
            .filter(|&(f, t)| t != first.1 && EdgeCache::set(f, t) == set);
        [first, same.next().unwrap(), same.next().unwrap()]
    }

    #[test]
    fn two_nestings_in_one_set_both_stay_known_and_a_third_evicts_the_older() {
        let cache = EdgeCache::new();
        let [a, b, c] = three_in_one_set();
        cache.insert(a);
        cache.insert(b);
        assert!(cache.contains(a) && cache.contains(b));
        // Inserting a known key again keeps the other way.
        cache.insert(b);
        assert!(cache.contains(a) && cache.contains(b));
        cache.insert(a);
        cache.insert(c);
        assert!(cache.contains(c) && cache.contains(a) && !cache.contains(b));
    }
}

/// Model checks of the handshake between a deferral and a claim (`--cfg loom`, see
/// [`crate::primitive`]): [`own_deferral`] and [`begin_claim`] themselves, on a lock's own
/// atomics, with their callers' discipline around them (the deferring thread holds its
/// buffer's lock from its read of the pending owner to its push; the claim takes that lock
/// after `begin_claim`). Whatever the interleaving, an edge the deferral keeps is taken out by
/// the claim, or left where a later claim finds it (the lock still names its owner): never
/// stranded in a buffer nobody will look into.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::{begin_claim, own_deferral, Meta};
    use crate::primitive::sync::{Arc, Mutex};
    use lockwatch_detector::ResourceKind as Kind;
    use std::panic::Location;
    use std::sync::atomic::Ordering;

    const DEFERRER: u64 = 7;
    const CLAIMER: u64 = 9;

    /// One deferral by `DEFERRER` races one claim by another thread; `already_owner`: the
    /// deferring thread owned the lock's pending edges before (one already in its buffer);
    /// `read_before_lock`: it reads the pending owner before taking its buffer's lock (as
    /// `try_note_single_deferred` does; `try_defer` reads it under the lock).
    fn deferral_racing_a_claim(already_owner: bool, read_before_lock: bool) {
        loom::model(move || {
            let meta = Arc::new(Meta::new(Kind::Mutex, Location::caller()));
            // Under loom an atomic comes into being on first use (see `crate::primitive`):
            // here, before another thread can touch it.
            meta.flags.load(Ordering::Relaxed);
            meta.pending_owner.load(Ordering::Relaxed);
            let buffer = Arc::new(Mutex::new(Vec::<u64>::new()));
            drop(buffer.lock());
            if already_owner {
                meta.pending_owner.store(DEFERRER, Ordering::SeqCst);
                buffer.lock().push(1);
            }
            let deferrer = {
                let (meta, buffer) = (meta.clone(), buffer.clone());
                loom::thread::spawn(move || {
                    let read = || meta.pending_owner.load(Ordering::SeqCst);
                    let (owner, mut edges) = if read_before_lock {
                        let owner = read();
                        (owner, buffer.lock())
                    } else {
                        let edges = buffer.lock();
                        (read(), edges)
                    };
                    let foreign = owner != 0 && owner != DEFERRER;
                    let kept = !foreign && own_deferral(&meta, DEFERRER, owner);
                    if kept {
                        edges.push(2);
                    }
                    kept
                })
            };
            let owner = begin_claim(&meta);
            let taken = if owner == DEFERRER {
                std::mem::take(&mut *buffer.lock())
            } else {
                Vec::new()
            };
            let kept = deferrer.join().unwrap();
            let left = buffer.lock().clone();
            let still_owner = meta.pending_owner.load(Ordering::SeqCst) == DEFERRER;
            for edge in [1, 2] {
                let made = edge == 1 && already_owner || edge == 2 && kept;
                let found = taken.contains(&edge) || left.contains(&edge) && still_owner;
                assert_eq!(made, found, "edge {edge}: taken {taken:?}, left {left:?}");
            }
            // The claim ran: no deferral into the lock may succeed from now on.
            assert!(!meta.may_defer_into());
            assert!(!own_deferral(&meta, CLAIMER, 0));
            // Nothing for the lock's drop to undo in the runtime (there is none in a model).
            meta.flags.store(0, Ordering::Relaxed);
            meta.pending_owner.store(0, Ordering::Relaxed);
        });
    }

    #[test]
    fn loom_a_deferral_racing_a_claim_never_strands_an_edge() {
        deferral_racing_a_claim(false, false);
        deferral_racing_a_claim(false, true);
    }

    #[test]
    fn loom_a_deferral_by_the_owner_racing_a_claim_never_strands_an_edge() {
        deferral_racing_a_claim(true, false);
        deferral_racing_a_claim(true, true);
    }
}
