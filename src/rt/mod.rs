//! The runtime behind feature `detect`: per-lock metadata, per-thread state, the global
//! wait-for graph, detection, the watchdog, lock-order tracking and reporting.
//!
//! Everything here uses plain parking_lot locks and atomics, never an instrumented primitive,
//! so lockwatch cannot deadlock on itself and can report while user threads are frozen.

mod condvar;
mod detect;
mod dump;
mod graph;
mod held;
mod join;
mod mail;
mod order;
mod registry;
mod report;
mod trace;
mod wait;

pub(crate) use condvar::wait as condvar_wait;
pub(crate) use detect::{check, waiting_thread_count};
pub(crate) use graph::Probe;
pub(crate) use join::{wait as join_wait, Joined};
pub(crate) use order::{
    graph_size as order_graph_size, known_edges_size, pending_size as order_pending_size,
    write_order_graph,
};
pub(crate) use registry::{
    adopt_thread, forget_thread, live_thread_count, preregister_thread, ThreadRecord,
};
pub(crate) use report::{set_handler, wait_for_reports};
pub(crate) use wait::{registered_waits_on, wake_for_verdict, ResourceInfo};

use crate::config;
use crate::core::{Kind, LockCore, Mode, Op};
use crate::raw::{Access, Parked, RawLock, Waiter};
use backtrace::Backtrace;
pub(crate) use held::Held;
use held::{mix, HeldStack};
use lockwatch_detector::snapshot::Releasers;
use std::cell::{Cell, OnceCell, RefCell};
use std::panic::Location;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

static NEXT_RESOURCE_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh resource id. Ids are never reused (addresses are), so a per-thread cache of
/// ordering edges can never go stale.
pub(crate) fn next_resource_id() -> u64 {
    NEXT_RESOURCE_ID.fetch_add(1, Ordering::Relaxed)
}

/// The lock has been the source of an ordering edge, or the target of one in the graph.
const FLAG_IN_ORDER_GRAPH: u8 = 1;
const FLAG_NAMED: u8 = 2;
/// Another thread than its pending owner acquired it: edges into it always go to the graph
/// (see `order`'s docs on deferred edges).
const FLAG_NO_DEFER: u8 = 4;

/// What a lock knows about itself. Creating and dropping a lock touches no global state: the id
/// is assigned on first tracked use, and only locks that reached a global table leave it on drop.
///
/// `repr(C)` and the order of the fields are for contention: the fields every acquisition and
/// release touches come last, so that they sit next to the raw lock that follows them in
/// [`LockCore`] and next to the data after it. Spread over two cache lines they made two
/// threads contending on one lock bounce both lines.
#[repr(C)]
pub(crate) struct Meta {
    name: Option<Arc<str>>,
    created_at: &'static Location<'static>,
    kind: Kind,
    flags: AtomicU8,
    id: AtomicU64,
    /// The thread whose buffer holds deferred ordering edges into this lock, or 0. Read by
    /// every acquisition: another thread's acquisition publishes them first.
    pending_owner: AtomicU64,
    /// The runtime id of the thread holding it exclusively (for a Lock, the one that acquired
    /// it), or 0.
    owner: AtomicU64,
    /// Where the current exclusive hold began.
    site: AtomicPtr<Location<'static>>,
}

impl Meta {
    pub(crate) const fn new(
        kind: Kind,
        name: Option<Arc<str>>,
        created_at: &'static Location<'static>,
    ) -> Meta {
        Meta {
            id: AtomicU64::new(0),
            pending_owner: AtomicU64::new(0),
            owner: AtomicU64::new(0),
            site: AtomicPtr::new(std::ptr::null_mut()),
            flags: AtomicU8::new(0),
            kind,
            created_at,
            name,
        }
    }

    #[inline]
    pub(crate) fn id(&self) -> u64 {
        match self.id.load(Ordering::Relaxed) {
            0 => self.assign_id(),
            id => id,
        }
    }

    #[cold]
    fn assign_id(&self) -> u64 {
        let fresh = next_resource_id();
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => {
                if let Some(name) = &self.name {
                    registry::runtime().names.insert(fresh, name.clone());
                    self.flags.fetch_or(FLAG_NAMED, Ordering::Relaxed);
                }
                fresh
            }
            Err(winner) => winner,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn name(&self) -> Option<&Arc<str>> {
        self.name.as_ref()
    }

    pub(crate) fn created_at(&self) -> &'static Location<'static> {
        self.created_at
    }

    pub(crate) fn owner(&self) -> u64 {
        self.owner.load(Ordering::Relaxed)
    }

    pub(crate) fn owner_site(&self) -> Option<&'static Location<'static>> {
        let ptr = self.site.load(Ordering::Relaxed);
        // SAFETY: `site` only ever holds null or a pointer made from a `&'static Location`.
        unsafe { ptr.as_ref() }
    }

    fn mark_in_order_graph(&self) {
        self.flags.fetch_or(FLAG_IN_ORDER_GRAPH, Ordering::Relaxed);
    }

    fn mark_no_defer(&self) {
        self.flags.fetch_or(FLAG_NO_DEFER, Ordering::SeqCst);
    }

    /// Whether ordering edges into this lock may stay in a thread's buffer: it has never been
    /// a source, nor been acquired by a thread other than its pending owner.
    fn may_defer_into(&self) -> bool {
        self.flags.load(Ordering::SeqCst) & (FLAG_IN_ORDER_GRAPH | FLAG_NO_DEFER) == 0
    }
}

impl Drop for Meta {
    fn drop(&mut self) {
        let flags = *self.flags.get_mut();
        let pending_owner = *self.pending_owner.get_mut();
        if flags != 0 || pending_owner != 0 {
            forget_lock(*self.id.get_mut(), flags, pending_owner);
        }
    }
}

#[cold]
fn forget_lock(id: u64, flags: u8, pending_owner: u64) {
    if flags & FLAG_NAMED != 0 {
        registry::runtime().names.remove(&id);
    }
    let mut in_graph = flags & (FLAG_IN_ORDER_GRAPH | FLAG_NO_DEFER) != 0;
    // The common end of a short-lived lock: only its creator took it, under other locks, and
    // drops it. Cannot panic, takes no lock.
    if !in_graph && pending_owner != 0 && order::forget_own_pending(id, pending_owner) {
        return;
    }
    // A panic in the lock-order bookkeeping never reaches the dropping code.
    report::guard_bookkeeping(|| {
        if pending_owner != 0 && !order::forget_pending(id, pending_owner) {
            in_graph = true;
        }
        if in_graph {
            order::remove_lock(id, flags & FLAG_IN_ORDER_GRAPH != 0);
        }
    });
}

/// Per-thread state, reachable only from its own thread.
pub(crate) struct ThreadCtx {
    /// `record.id`, kept here so the fast path does not follow the `Arc` (only a nested blocking
    /// acquisition does, to check for foreign releases).
    id: u64,
    pub(crate) record: Arc<ThreadRecord>,
    pub(crate) held: HeldStack,
    /// Fingerprint of the held set (see [`mix`]), the key of the lock-order edge cache.
    pub(crate) held_fingerprint: Cell<u64>,
    /// Where each held lock was acquired, with `LOCKWATCH_BACKTRACE=full` only: kept apart so
    /// the common path moves small entries.
    pub(crate) acquired_at: RefCell<Vec<(u64, Backtrace)>>,
    /// Whether `acquired_at` was ever used: a thread-local check instead of the setting.
    has_acquired_at: Cell<bool>,
    pub(crate) order: order::ThreadOrder,
}

impl ThreadCtx {
    pub(crate) fn new(record: Arc<ThreadRecord>) -> ThreadCtx {
        ThreadCtx {
            id: record.id,
            record,
            held: HeldStack::new(),
            held_fingerprint: Cell::new(0),
            acquired_at: RefCell::new(Vec::new()),
            has_acquired_at: Cell::new(false),
            order: order::ThreadOrder::new(),
        }
    }

    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Drops entries for ownerless locks that other threads released on our behalf.
    #[inline]
    pub(crate) fn collect_foreign_releases(&self) {
        if self.record.has_mail() {
            self.take_mail();
        }
    }

    #[cold]
    fn take_mail(&self) {
        for id in self.record.take_mail() {
            self.remove_held(id, None);
        }
    }

    fn remove_held(&self, id: u64, access: Option<Access>) -> Option<Held> {
        let entry = self.held.remove_innermost(id, access)?;
        self.forget_entry(&entry);
        if self.has_acquired_at.get() {
            let mut traces = self.acquired_at.borrow_mut();
            if let Some(i) = traces.iter().rposition(|(t, _)| *t == entry.id) {
                traces.remove(i);
            }
        }
        Some(entry)
    }

    /// Pops the top entry if it is the hold of `id` with `access`: the release fast path,
    /// which leaves the full-backtrace record to the slow path.
    #[inline(always)]
    fn pop_held_if_top(&self, id: u64, access: Access) -> Option<Held> {
        let entry = self.held.pop_if_top(id, access)?;
        self.forget_entry(&entry);
        Some(entry)
    }

    #[inline(always)]
    fn forget_entry(&self, entry: &Held) {
        self.held_fingerprint
            .set(self.held_fingerprint.get().wrapping_sub(mix(entry.id)));
    }

    fn push_held(&self, entry: Held) {
        let id = entry.id;
        self.held.push(entry);
        self.note_entry(id);
    }

    /// Adds a pushed hold to the fingerprint, after the push: a lock taken by the allocator
    /// while the stack grows must not be keyed under a set that includes this hold.
    #[inline(always)]
    fn note_entry(&self, id: u64) {
        self.held_fingerprint
            .set(self.held_fingerprint.get().wrapping_add(mix(id)));
    }

    /// Where the held lock `id` was acquired, if known (`LOCKWATCH_BACKTRACE=full`).
    pub(crate) fn acquired_at(&self, id: u64) -> Option<Backtrace> {
        self.acquired_at
            .borrow()
            .iter()
            .rev()
            .find(|(t, _)| *t == id)
            .map(|(_, bt)| bt.clone())
    }
}

struct LocalSlot {
    ctx: OnceCell<ThreadCtx>,
}

impl Drop for LocalSlot {
    fn drop(&mut self) {
        // From here on the fast path must not reach the context: it is being torn down.
        CTX.with(|c| c.set(std::ptr::null()));
        if let Some(ctx) = self.ctx.get() {
            order::thread_exit(ctx);
            registry::thread_exit(ctx);
        }
    }
}

thread_local! {
    static LOCAL: LocalSlot = const { LocalSlot { ctx: OnceCell::new() } };
    /// The address of `LOCAL`'s context once it exists, null before and during its teardown.
    /// A thread-local without a destructor is one load away, where `LOCAL` costs a check of
    /// its registration state and of the cell: this is what the fast path reads.
    static CTX: Cell<*const ThreadCtx> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with this thread's state, registering the thread on first use. `None` once the
/// thread's locals are being destroyed: such late acquisitions go untracked.
#[inline]
pub(crate) fn with_ctx<T>(f: impl FnOnce(&ThreadCtx) -> T) -> Option<T> {
    LOCAL
        .try_with(|slot| {
            let ctx = slot.ctx.get_or_init(registry::register_current);
            CTX.with(|c| c.set(ctx));
            f(ctx)
        })
        .ok()
}

/// Runs `f` with this thread's state if it already exists and is not being torn down: the
/// fast path, which leaves registration to [`with_ctx`] on the slow path.
#[inline(always)]
fn with_fast_ctx<T>(f: impl FnOnce(Option<&ThreadCtx>) -> T) -> T {
    let ptr = CTX.with(|c| c.get());
    // SAFETY: `CTX` is non-null only while it points at this thread's context inside `LOCAL`,
    // which stays in place until `LocalSlot::drop` nulls `CTX` before tearing it down. The
    // reference cannot escape `f`, and `ThreadCtx` is only ever used by its own thread.
    f(unsafe { ptr.as_ref() })
}

/// Runs `f` with this thread's state if it exists and is not being torn down, without
/// registering the thread.
pub(crate) fn with_current_ctx<T>(f: impl FnOnce(&ThreadCtx) -> T) -> Option<T> {
    with_fast_ctx(|ctx| ctx.map(f))
}

/// Installs a context made by `thread::spawn` for the thread it starts.
pub(crate) fn install_ctx(ctx: ThreadCtx) {
    let _ = LOCAL.try_with(|slot| {
        // A context already there (the closure touched a lock before this ran) cannot be;
        // `spawn` installs it first.
        let _ = slot.ctx.set(ctx);
    });
}

/// Whether a wait on this lock can never end because the current thread itself holds what it
/// is waiting for: a Mutex or write lock taken twice, or a write lock under its own read.
fn waits_on_itself(meta: &Meta, ctx: &ThreadCtx, access: Access) -> bool {
    if meta.kind == Kind::Lock {
        // Another thread may release a Lock: a second acquire by its holder can be a signal.
        return false;
    }
    if meta.owner() == ctx.id() {
        return true;
    }
    let id = meta.id();
    access == Access::Exclusive && ctx.held.contains(id)
}

/// The tracked acquisition path of every primitive, inlined into each call site: when the
/// lock is free and the thread has nothing new to record, it takes the raw lock and pushes the
/// hold. Anything else (a first use, a new ordering edge, contention, full backtraces) goes
/// out of line.
#[inline(always)]
pub(crate) fn acquire<R: RawLock>(
    core: &LockCore<R>,
    tracking: config::Tracking,
    op: Op,
    access: Access,
    mode: Mode,
    site: &'static Location<'static>,
) -> bool {
    let meta = core.meta();
    with_fast_ctx(
        #[inline(always)]
        |ctx| {
            let id = meta.id.load(Ordering::Relaxed);
            let Some(ctx) = ctx else {
                return acquire_slow(core, op, access, mode, site);
            };
            if id == 0 || tracking.full_backtraces() {
                return acquire_slow(core, op, access, mode, site);
            }
            // Another thread's deferred ordering edges into this lock must reach the graph
            // before this thread can hold it (see `order`).
            let pending = meta.pending_owner.load(Ordering::Relaxed);
            if pending != 0 && pending != ctx.id() {
                return acquire_slow(core, op, access, mode, site);
            }
            // The fingerprint is zero exactly when nothing is held (see `note_ordering`).
            let fingerprint = ctx.held_fingerprint.get();
            if mode == Mode::Blocking
                && fingerprint != 0
                && tracking.lock_order()
                && (ctx.record.has_mail() || !order::is_known(ctx, fingerprint, id))
            {
                return acquire_slow(core, op, access, mode, site);
            }
            if core.raw().try_acquire(access) {
                record_hold(meta, ctx, id, op, access, site);
                return true;
            }
            if mode == Mode::Try {
                return false;
            }
            acquire_contended(core, ctx, op, access, mode, site)
        },
    )
}

/// The whole tracked acquisition, for whatever the inlined path leaves out.
#[cold]
#[inline(never)]
fn acquire_slow<R: RawLock>(
    core: &LockCore<R>,
    op: Op,
    access: Access,
    mode: Mode,
    site: &'static Location<'static>,
) -> bool {
    match with_ctx(|ctx| {
        order::claim(core.meta(), ctx);
        note_ordering(core.meta(), ctx, mode, site);
        if core.raw().try_acquire(access) {
            acquired(core.meta(), ctx, op, access, site);
            return true;
        }
        mode != Mode::Try && acquire_contended(core, ctx, op, access, mode, site)
    }) {
        Some(got) => got,
        None => core.acquire_untracked(access, mode),
    }
}

/// Records the ordering edges of a blocking acquisition of `meta` before it can block.
fn note_ordering(meta: &Meta, ctx: &ThreadCtx, mode: Mode, site: &'static Location<'static>) {
    // The fingerprint is zero exactly when nothing is held (a non-empty set summing to zero
    // is a 2^-64 event, and would only skip recording one ordering).
    if mode == Mode::Blocking && ctx.held_fingerprint.get() != 0 && config::lock_order_enabled() {
        // Ownerless locks another thread released are no longer held: not a source of edges.
        ctx.collect_foreign_releases();
        // The commonest new ordering has a path that cannot panic: no guard to set up.
        if !order::try_note_single_deferred(ctx, meta, site) {
            report::guard_bookkeeping(|| order::note_acquire(ctx, meta, site));
        }
    }
}

/// Retries `attempt` after pauses that double up to eight spin hints (`spins` rounds), then
/// after yielding the processor (`yields` rounds).
#[inline]
fn retry(mut attempt: impl FnMut() -> bool, spins: u32, yields: u32) -> bool {
    for round in 0..spins + yields {
        if round < spins {
            for _ in 0..(1u32 << round.min(3)) {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        if attempt() {
            return true;
        }
    }
    false
}

/// A tracked acquisition whose first attempt failed: spin briefly, then wait.
#[cold]
#[inline(never)]
fn acquire_contended<R: RawLock>(
    core: &LockCore<R>,
    ctx: &ThreadCtx,
    op: Op,
    access: Access,
    mode: Mode,
    site: &'static Location<'static>,
) -> bool {
    let deadline = match mode {
        Mode::Until(deadline) => Some(deadline),
        _ => None,
    };
    let got = wait_for_lock(core, ctx, op, access, deadline, site, true);
    if got {
        acquired(core.meta(), ctx, op, access, site);
    }
    got
}

/// Waits until `core` is acquired with `access` (true) or `deadline` passes (false), through
/// both phases of the wait driver (see [`wait`]). Records nothing about the hold: the caller
/// does. `interruptible`: the wait may take a verdict, which needs its caller to be able to
/// unwind from here (a Condvar wait re-taking its mutex cannot: the guard it returns to would
/// release a mutex it does not hold).
fn wait_for_lock<R: RawLock>(
    core: &LockCore<R>,
    ctx: &ThreadCtx,
    op: Op,
    access: Access,
    deadline: Option<Instant>,
    site: &'static Location<'static>,
    interruptible: bool,
) -> bool {
    let meta = core.meta();
    let raw = core.raw();
    // Most contention ends within a few spins; only then is the clock read.
    if retry(|| raw.try_acquire(access), 4, 0) {
        return true;
    }
    let started = Instant::now();
    if !waits_on_itself(meta, ctx, access) {
        let got = if raw.timed_attempt_is_visible(access) {
            // A timed attempt that expires would show (an RwLock writer lets readers past):
            // the quiet phase only spins, about as long as a short critical section.
            retry(|| raw.try_acquire(access), 16, 48)
        } else {
            raw.acquire_as(
                access,
                Some(wait::quiet_until(started, deadline)),
                Waiter::ANONYMOUS,
            ) == Parked::Acquired
        };
        if got {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
    }
    let probe = LockProbe { core, access };
    let spec = wait::WaitSpec {
        op,
        site,
        started,
        deadline,
        token: ctx.id() as usize,
        interruptible: interruptible && raw.interruptible(),
    };
    wait::registered(ctx, &probe, &spec, |registration| loop {
        let waiter = if spec.interruptible {
            registration.waiter()
        } else {
            Waiter::ANONYMOUS
        };
        match raw.acquire_as(access, deadline, waiter) {
            Parked::Acquired => return true,
            Parked::TimedOut => return false,
            // No verdict for this wait (a stale one was discarded): park again.
            Parked::Interrupted => registration.take_verdict(),
        }
    })
}

/// What the wait-for graph may ask of a lock while a thread waits for it.
pub(crate) struct LockProbe<'a, R> {
    core: &'a LockCore<R>,
    access: Access,
}

impl<R: RawLock> Probe for LockProbe<'_, R> {
    fn resource_id(&self) -> u64 {
        self.core.meta().id()
    }

    fn kind(&self) -> Kind {
        self.core.meta().kind
    }

    fn name(&self) -> Option<Arc<str>> {
        self.core.meta().name.clone()
    }

    fn created_at(&self) -> &'static Location<'static> {
        self.core.meta().created_at
    }

    fn releasers(&self) -> Releasers {
        self.core.raw().releasers()
    }

    fn available(&self) -> bool {
        let raw = self.core.raw();
        raw.is_free_for(self.access) || raw.in_transit()
    }

    fn owner(&self) -> Option<(u64, Option<&'static Location<'static>>)> {
        let meta = self.core.meta();
        match meta.owner() {
            0 => None,
            owner => Some((owner, meta.owner_site())),
        }
    }

    fn interrupt(&self, token: usize) -> bool {
        self.core.raw().interrupt(token)
    }
}

/// Records a hold that began at `site`, with everything the settings ask for.
fn acquired(
    meta: &Meta,
    ctx: &ThreadCtx,
    op: Op,
    access: Access,
    site: &'static Location<'static>,
) {
    let id = meta.id();
    if config::full_backtraces() {
        ctx.has_acquired_at.set(true);
        ctx.acquired_at.borrow_mut().push((id, trace::capture()));
    }
    record_hold(meta, ctx, id, op, access, site);
}

/// The part of recording a hold that every acquisition does: the owner and the site in the
/// lock, the entry on the thread's stack.
#[inline(always)]
fn record_hold(
    meta: &Meta,
    ctx: &ThreadCtx,
    id: u64,
    op: Op,
    access: Access,
    site: &'static Location<'static>,
) {
    if access == Access::Exclusive {
        meta.owner.store(ctx.id(), Ordering::Relaxed);
        meta.site.store(
            site as *const Location<'static> as *mut _,
            Ordering::Relaxed,
        );
    }
    ctx.held.push_new(id, meta.kind, op, site, meta.created_at);
    ctx.note_entry(id);
}

/// Bookkeeping before the raw lock is released. Inlined: the common release is of the hold on
/// top of this thread's stack, by the thread that took it.
#[inline(always)]
pub(crate) fn on_release(meta: &Meta, access: Access) {
    let id = meta.id.load(Ordering::Relaxed);
    if id == 0 {
        // Never acquired with tracking on: nothing was recorded.
        return;
    }
    let done = with_fast_ctx(
        #[inline(always)]
        |ctx| {
            let Some(ctx) = ctx else { return false };
            if ctx.has_acquired_at.get()
                || (access == Access::Exclusive && meta.owner.load(Ordering::Relaxed) != ctx.id())
            {
                return false;
            }
            let Some(entry) = ctx.pop_held_if_top(id, access) else {
                return false;
            };
            if access == Access::Exclusive {
                meta.owner.store(0, Ordering::Relaxed);
            }
            if entry.in_order_graph {
                meta.mark_in_order_graph();
            }
            true
        },
    );
    if !done {
        on_release_slow(meta, id, access);
    }
}

/// Every other release: of a hold below the top, of a Lock by another thread, after the
/// thread's state is gone.
#[cold]
#[inline(never)]
fn on_release_slow(meta: &Meta, id: u64, access: Access) {
    let acquirer = meta.owner.load(Ordering::Relaxed);
    if access == Access::Exclusive {
        meta.owner.store(0, Ordering::Relaxed);
    }
    let found = with_ctx(|ctx| {
        if meta.kind == Kind::Lock && acquirer != ctx.id() {
            // A Lock released by a thread other than the one that acquired it (a signal): the
            // entry to drop is the acquirer's, even if this thread holds a stale one itself.
            return None;
        }
        ctx.remove_held(id, Some(access))
            .map(|entry| entry.in_order_graph)
    });
    match found {
        Some(Some(true)) => meta.mark_in_order_graph(),
        Some(Some(false)) => {}
        // Not in this thread's record: the acquirer's record, live or exited, must forget it.
        // Its entry may have been a source of ordering edges: have the lock leave the order
        // graph when dropped (harmless if it never entered it).
        Some(None) => {
            if acquirer != 0 && access == Access::Exclusive {
                meta.mark_in_order_graph();
                registry::send_foreign_release(acquirer, id);
            }
        }
        // This thread's locals are gone (a guard dropped by a later thread-local destructor):
        // its exited record, if it has one, must forget the hold.
        None => {
            let holder = if access == Access::Exclusive && acquirer != 0 {
                acquirer
            } else {
                registry::own_id()
            };
            if holder != 0 {
                registry::send_foreign_release(holder, id);
            }
        }
    }
}

/// A reentrant re-acquisition (+1) or inner release (-1) by the owner.
#[inline]
pub(crate) fn on_reentry(meta: &Meta, delta: i32) {
    let id = meta.id.load(Ordering::Relaxed);
    if id == 0 {
        return;
    }
    with_ctx(|ctx| {
        ctx.held.adjust_count(id, delta);
    });
}

/// A condition-variable wait releases the mutex: its hold leaves the thread's record until
/// [`resume_hold`] puts it back.
pub(crate) fn suspend_hold(meta: &Meta) -> Option<Suspended> {
    let id = meta.id.load(Ordering::Relaxed);
    if id == 0 {
        return None;
    }
    meta.owner.store(0, Ordering::Relaxed);
    with_ctx(|ctx| {
        let acquired_at = ctx.acquired_at(id);
        let held = ctx.remove_held(id, None)?;
        // Like a release: a hold that was a source marks its lock as one (see `order`).
        if held.in_order_graph {
            meta.mark_in_order_graph();
        }
        Some(Suspended { held, acquired_at })
    })
    .flatten()
}

/// A hold taken off the thread's record for the length of a condition-variable wait.
pub(crate) struct Suspended {
    held: Held,
    /// Where it was first acquired (`LOCKWATCH_BACKTRACE=full`), kept across the wait.
    acquired_at: Option<Backtrace>,
}

/// The mutex was re-acquired at `site` after a condition-variable wait.
pub(crate) fn resume_hold(
    meta: &Meta,
    suspended: Option<Suspended>,
    site: &'static Location<'static>,
) {
    let Some(Suspended {
        mut held,
        acquired_at,
    }) = suspended
    else {
        return;
    };
    with_ctx(|ctx| {
        // Another thread may have deferred ordering edges into the mutex during the wait.
        order::claim(meta, ctx);
        if let Some(backtrace) = acquired_at {
            ctx.has_acquired_at.set(true);
            ctx.acquired_at.borrow_mut().push((held.id, backtrace));
        }
        meta.owner.store(ctx.id(), Ordering::Relaxed);
        meta.site.store(
            site as *const Location<'static> as *mut _,
            Ordering::Relaxed,
        );
        held.site = site;
        ctx.push_held(held);
        // Taking the mutex back while holding locks acquired during the wait is an ordering
        // like any other (M, then A, then wait: A is held when M is re-taken). Not while
        // unwinding: a report must not turn one panic into two.
        if config::lock_order_enabled() && !std::thread::panicking() && ctx.held.len() > 1 {
            ctx.collect_foreign_releases();
            report::guard_bookkeeping(|| order::note_acquire(ctx, meta, site));
        }
    });
}
