//! The tracked acquisition and release of every lock ([`LockCore`]'s methods with feature
//! `detect`), and a Condvar wait's hand-back of its mutex's hold.

use super::wait;
use crate::config;
use crate::core::{LockCore, Mode, Op};
use crate::raw::{Access, Parked, RawLock, Waiter};
use crate::rt::meta::{FLAG_IN_ORDER_GRAPH, FLAG_NAMED, FLAG_NO_DEFER};
use crate::rt::{
    order, registry, report, runtime, trace, with_ctx, with_current_ctx, with_fast_ctx, Held, Meta,
    Probe, ThreadCtx,
};
use backtrace::Backtrace;
use lockwatch_detector::snapshot::Releasers;
use lockwatch_detector::ResourceKind as Kind;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl<R: RawLock> LockCore<R> {
    /// Acquires with `access`, blocking according to `mode`. Returns whether it got the lock.
    ///
    /// Inlined into every call site, like parking_lot's own fast path, and like it the first
    /// thing it does is one attempt at the raw lock: a thread that releases a lock and takes
    /// it again does so within a few instructions, before a thread spinning for it can take it
    /// in between (a hand-over costs two threads' caches the lock's line: this is what keeps
    /// a contended lock's throughput). The bookkeeping follows, while holding: when the thread
    /// has nothing new to record it is a few thread-local loads and stores; everything else is
    /// out of line.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn acquire(&self, op: Op, access: Access, mode: Mode) -> bool {
        let site = Location::caller();
        let got = if self.raw().try_acquire_fast(access) {
            match config::tracking() {
                Some(tracking) => took(self, tracking, op, access, mode, site),
                None => true,
            }
        } else {
            match config::tracking() {
                Some(tracking) => acquire(self, tracking, op, access, mode, site),
                None => self.acquire_untracked(access, mode),
            }
        };
        if !got && mode == Mode::Blocking {
            return interrupted(self, access);
        }
        got
    }

    /// Releases `access`.
    ///
    /// # Safety
    /// The lock is held with this access (by this thread, or for an ownerless lock by anyone).
    #[inline(always)]
    pub(crate) unsafe fn release(&self, access: Access) {
        on_release(&self.meta, access, R::OWNERLESS);
        // SAFETY: the caller holds the lock with this access (function contract).
        unsafe { self.raw.release(access) }
    }

    /// Records a reentrant re-acquisition (+1) or a partial release (-1) of a lock the current
    /// thread already holds. Reentrant holds count once in the graphs.
    #[inline]
    pub(crate) fn note_reentry(&self, delta: i32) {
        on_reentry(&self.meta, delta);
    }
}

/// A blocking acquisition that returned without the lock: its wait took a verdict (policy
/// `panic`), raised here so that the panic names the caller's line. Never returns `false`: were
/// there no verdict (a bug), the lock is taken without tracking, as a blocking acquisition must.
#[cold]
#[inline(never)]
#[track_caller]
fn interrupted<R: RawLock>(core: &LockCore<R>, access: Access) -> bool {
    wait::raise_held_verdict();
    core.acquire_untracked(access, Mode::Blocking)
}

/// Whether a wait on this lock can never end because the current thread itself holds what it
/// is waiting for: a Mutex or write lock taken twice, or a write lock under its own read.
fn waits_on_itself(meta: &Meta, ctx: &ThreadCtx, access: Access) -> bool {
    if meta.kind() == Kind::Lock {
        // Another thread may release a Lock: a second acquire by its holder can be a signal.
        return false;
    }
    if meta.owner() == ctx.id() {
        return true;
    }
    let id = meta.id();
    access == Access::Exclusive && ctx.held.contains(id)
}

/// The id of `meta` if holding it needs nothing recorded but the hold itself (see
/// [`record_hold`]): the thread has its state, the lock has its id, no backtrace is asked for,
/// no other thread deferred ordering edges into it, and the nesting (if blocking, under held
/// locks) is one this thread already recorded.
#[inline(always)]
fn plain_hold_id(
    meta: &Meta,
    ctx: &ThreadCtx,
    tracking: config::Tracking,
    mode: Mode,
) -> Option<u64> {
    let id = meta.id.load(Ordering::Relaxed);
    if id == 0 || tracking.full_backtraces() {
        return None;
    }
    // Another thread's deferred ordering edges into this lock must reach the graph before
    // this thread can hold it (see `order`). `order::has_foreign_pending_owner` with a relaxed
    // load: on the hot path, and a lock's holder has the owner its predecessor stored.
    let pending = meta.pending_owner.load(Ordering::Relaxed);
    if pending != 0 && pending != ctx.id() {
        return None;
    }
    if mode == Mode::Blocking && tracking.lock_order() {
        // Zero exactly when nothing is held (a non-empty set summing to zero is a 2^-64
        // event, and would only skip recording one ordering). A known nesting records
        // nothing, so holds another thread released meanwhile (ownerless locks, in the
        // thread's mail) cannot add an edge here: the mail waits for the slow path.
        let fingerprint = ctx.held.fingerprint();
        if fingerprint != 0 && !order::is_known(&ctx.order, fingerprint, id) {
            return None;
        }
    }
    Some(id)
}

/// The bookkeeping of an acquisition whose first attempt took the raw lock: the hold is
/// pushed, or, if there is more to do, the lock is given back and taken again by the whole
/// path.
#[inline(always)]
fn took<R: RawLock>(
    core: &LockCore<R>,
    tracking: config::Tracking,
    op: Op,
    access: Access,
    mode: Mode,
    site: &'static Location<'static>,
) -> bool {
    let meta = &core.meta;
    let recorded = with_fast_ctx(
        #[inline(always)]
        |ctx| {
            let Some(ctx) = ctx else { return false };
            match plain_hold_id(meta, ctx, tracking, mode) {
                Some(id) => {
                    record_hold(meta, ctx, id, op, access, site);
                    true
                }
                None => record_first_hold(meta, ctx, tracking, op, access, mode, site),
            }
        },
    );
    recorded || retake(core, op, access, mode, site)
}

/// Records a hold the first attempt took, when there is more to it than the push but nothing
/// that could report or panic, so that it may run while holding: the lock's first use (its id),
/// and the commonest new ordering, into a lock that was never a source under exactly one held
/// lock, which stays in this thread's buffer (`order::try_note_single_deferred`). The ordering
/// is recorded after the acquisition rather than before: it did not wait, so nothing could see
/// the difference. `false` (nothing recorded) for anything else, which the whole path does.
#[cold]
#[inline(never)]
fn record_first_hold(
    meta: &Meta,
    ctx: &ThreadCtx,
    tracking: config::Tracking,
    op: Op,
    access: Access,
    mode: Mode,
    site: &'static Location<'static>,
) -> bool {
    if tracking.full_backtraces() {
        return false;
    }
    // Another thread's deferred edges into the lock: the whole path publishes them first.
    if order::has_foreign_pending_owner(meta, ctx.id()) {
        return false;
    }
    if mode == Mode::Blocking && tracking.lock_order() && ctx.held.len() != 0 {
        // Holds another thread released (ownerless locks) must leave the stack before they
        // can be sources: the whole path reads the mail.
        if ctx.record.has_mail() || !order::try_note_single_deferred(&ctx.order_view(), meta, site)
        {
            return false;
        }
    }
    record_hold(meta, ctx, meta.id(), op, access, site);
    true
}

/// Gives back a lock an attempt or a wait took, and takes it through the whole path. What is
/// left to do may have to come before the hold (publishing another thread's edges into the
/// lock, recording a new ordering, which can report and, by policy, panic; a first use), and
/// none of it may run holding a lock the thread has no guard for. To the program this is a
/// release and a new acquisition, between which another thread may take the lock: an
/// interleaving it could have had anyway. After an attempt or a wait that found another
/// thread's deferral made meanwhile (by the lock's holder, while this thread tried or
/// waited), at most once: publishing it marks the lock as never to be deferred into again.
#[cold]
#[inline(never)]
fn retake<R: RawLock>(
    core: &LockCore<R>,
    op: Op,
    access: Access,
    mode: Mode,
    site: &'static Location<'static>,
) -> bool {
    // SAFETY: the caller's attempt or wait took the lock with `access`, and nothing released it.
    unsafe { core.raw().release(access) };
    acquire_slow(core, op, access, mode, site)
}

/// The tracked acquisition after a first attempt failed (a held lock, or a spurious failure):
/// one more attempt, then, when the thread has nothing new to record before it waits, a wait.
/// Anything else (a first use, a new ordering edge, full backtraces) goes to the whole path.
#[inline(never)]
fn acquire<R: RawLock>(
    core: &LockCore<R>,
    tracking: config::Tracking,
    op: Op,
    access: Access,
    mode: Mode,
    site: &'static Location<'static>,
) -> bool {
    if core.raw().try_acquire(access) {
        return took(core, tracking, op, access, mode, site);
    }
    if mode == Mode::Try {
        return false;
    }
    with_fast_ctx(|ctx| match ctx {
        Some(ctx) if plain_hold_id(&core.meta, ctx, tracking, mode).is_some() => {
            acquire_contended(core, ctx, op, access, mode, site)
        }
        _ => acquire_slow(core, op, access, mode, site),
    })
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
        // Publishing another thread's deferred edges can report, and by policy panic: before
        // the lock is held, under the guard that raises the policy's panic here.
        if order::has_foreign_pending_owner(&core.meta, ctx.id()) {
            report::guard_bookkeeping(|| order::claim(&core.meta, &ctx.order_view()));
        }
        note_ordering(&core.meta, ctx, mode, site);
        if core.raw().try_acquire(access) {
            if order::has_foreign_pending_owner(&core.meta, ctx.id()) {
                // A deferral into the lock was made meanwhile: it is published before the
                // lock is held (see `retake`).
                return retake(core, op, access, mode, site);
            }
            acquired(&core.meta, ctx, op, access, site);
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
    if mode == Mode::Blocking && ctx.held.len() != 0 && config::lock_order_enabled() {
        // Ownerless locks another thread released are no longer held: not a source of edges.
        ctx.collect_foreign_releases();
        let view = ctx.order_view();
        // The commonest new ordering has a path that cannot panic: no guard to set up.
        if !order::try_note_single_deferred(&view, meta, site) {
            report::guard_bookkeeping(|| order::note_acquire(&view, meta, site));
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
        // The pending owner was read before the wait: a deferral into the lock made by its
        // holder meanwhile must be published before this thread can make the lock a source.
        if order::has_foreign_pending_owner(&core.meta, ctx.id()) {
            return retake(core, op, access, mode, site);
        }
        acquired(&core.meta, ctx, op, access, site);
    }
    got
}

/// Waits until `core` is acquired with `access` (true) or `deadline` passes (false), through
/// both phases of the wait driver (see [`wait`]). Records nothing about the hold: the caller
/// does. `interruptible`: the wait may take a verdict, which needs its caller to be able to
/// unwind from here (a Condvar wait re-taking its mutex cannot: the guard it returns to would
/// release a mutex it does not hold).
pub(super) fn wait_for_lock<R: RawLock>(
    core: &LockCore<R>,
    ctx: &ThreadCtx,
    op: Op,
    access: Access,
    deadline: Option<Instant>,
    site: &'static Location<'static>,
    interruptible: bool,
) -> bool {
    let meta = &core.meta;
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
            // With a verdict, back without the lock for the entry point to raise it; without
            // one (a stale one was discarded), park again.
            Parked::Interrupted => {
                if registration.hold_verdict() {
                    return false;
                }
            }
        }
    })
}

/// What the wait-for graph may ask of a lock while a thread waits for it.
pub(super) struct LockProbe<'a, R> {
    pub(super) core: &'a LockCore<R>,
    pub(super) access: Access,
}

impl<R: RawLock> Probe for LockProbe<'_, R> {
    fn resource_id(&self) -> u64 {
        self.core.meta.id()
    }

    fn kind(&self) -> Kind {
        self.core.meta.kind()
    }

    fn name(&self) -> Option<Arc<str>> {
        self.core.meta.name().cloned()
    }

    fn created_at(&self) -> &'static Location<'static> {
        self.core.meta.created_at()
    }

    fn releasers(&self) -> Releasers {
        self.core.raw().releasers()
    }

    fn available(&self) -> bool {
        let raw = self.core.raw();
        raw.is_free_for(self.access) || raw.in_transit()
    }

    fn owner(&self) -> Option<(u64, Option<&'static Location<'static>>)> {
        let meta = &self.core.meta;
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
        record_holder(meta, ctx, access, site);
        let held = Held {
            id,
            kind: meta.kind(),
            op,
            count: 1,
            site,
            created_at: meta.created_at(),
            in_order_graph: false,
        };
        ctx.push_held(held, Some(trace::capture()));
    } else {
        record_hold(meta, ctx, id, op, access, site);
    }
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
    // Read before the stores into the lock, which the compiler cannot tell from the stack:
    // the same read as the fast path's nesting check, made once.
    let below = ctx.held.fingerprint();
    record_holder(meta, ctx, access, site);
    ctx.held
        .push_new(below, id, meta.kind(), op, access, site, meta.created_at());
}

/// Who holds the lock exclusively and since where, in the lock, for the wait-for graph.
#[inline(always)]
fn record_holder(meta: &Meta, ctx: &ThreadCtx, access: Access, site: &'static Location<'static>) {
    if access == Access::Exclusive {
        meta.owner.store(ctx.id(), Ordering::Relaxed);
        meta.site.store(
            site as *const Location<'static> as *mut _,
            Ordering::Relaxed,
        );
    }
}

/// Bookkeeping before the raw lock is released. Inlined: the common release is of the hold on
/// top of this thread's stack, by the thread that took it, with nothing to undo but the pop.
/// `ownerless`: any thread may release the lock (a `Lock`), so the releaser may not be the
/// thread whose stack has the hold.
#[inline(always)]
fn on_release(meta: &Meta, access: Access, ownerless: bool) {
    let id = meta.id.load(Ordering::Relaxed);
    if id == 0 {
        // Never acquired with tracking on: nothing was recorded.
        return;
    }
    let done = with_fast_ctx(
        #[inline(always)]
        |ctx| {
            let Some(ctx) = ctx else { return false };
            if ownerless && meta.owner.load(Ordering::Relaxed) != ctx.id() {
                return false;
            }
            if !ctx.held.pop_if_plain_top(id, access) {
                return false;
            }
            if access == Access::Exclusive {
                meta.owner.store(0, Ordering::Relaxed);
            }
            true
        },
    );
    if !done {
        on_release_slow(meta, id, access);
    }
}

/// Every other release: of a hold below the top, of a hold with more to undo than its pop (a
/// source of ordering edges, a backtrace kept), of a Lock by another thread, after the
/// thread's state is gone.
#[cold]
#[inline(never)]
fn on_release_slow(meta: &Meta, id: u64, access: Access) {
    let acquirer = meta.owner.load(Ordering::Relaxed);
    if access == Access::Exclusive {
        meta.owner.store(0, Ordering::Relaxed);
    }
    let found = with_ctx(|ctx| {
        if meta.kind() == Kind::Lock && acquirer != ctx.id() {
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
fn on_reentry(meta: &Meta, delta: i32) {
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
        record_holder(meta, ctx, Access::Exclusive, site);
        held.site = site;
        ctx.push_held(held, acquired_at);
        // Another thread may have deferred ordering edges into the mutex during the wait. The
        // mutex is held for the guard the wait returns to, so publishing them (which can
        // report, and by policy panic) may run here: a panic unwinds through that guard.
        if order::has_foreign_pending_owner(meta, ctx.id()) {
            report::guard_bookkeeping(|| order::claim(meta, &ctx.order_view()));
        }
        // Taking the mutex back while holding locks acquired during the wait is an ordering
        // like any other (M, then A, then wait: A is held when M is re-taken). Not while
        // unwinding: a report must not turn one panic into two.
        if config::lock_order_enabled() && !std::thread::panicking() && ctx.held.len() > 1 {
            ctx.collect_foreign_releases();
            report::guard_bookkeeping(|| order::note_acquire(&ctx.order_view(), meta, site));
        }
    });
}

/// A lock leaves the runtime. Creating and dropping a lock touches no global state: only a
/// lock that reached a global table (its name, the lock-order graph, a thread's buffer of
/// deferred edges) leaves it here.
impl Drop for Meta {
    fn drop(&mut self) {
        // Loads rather than `get_mut`, which the loom shim's atomics do not have.
        let flags = self.flags.load(Ordering::Relaxed);
        let pending_owner = self.pending_owner.load(Ordering::Relaxed);
        if flags != 0 || pending_owner != 0 {
            forget_lock(*self.id.get_mut(), flags, pending_owner);
        }
    }
}

#[cold]
fn forget_lock(id: u64, flags: u8, pending_owner: u64) {
    if flags & FLAG_NAMED != 0 {
        runtime().names.remove(&id);
    }
    // The dropping thread's view, if it still has its state: usually it is the lock's pending
    // owner, whose buffer is at hand.
    with_current_ctx(|ctx| forget_ordering(id, flags, pending_owner, Some(&ctx.order_view())))
        .unwrap_or_else(|| forget_ordering(id, flags, pending_owner, None));
}

/// The lock-order side of a lock's departure, seen from the dropping thread (`own`).
fn forget_ordering(id: u64, flags: u8, pending_owner: u64, own: Option<&order::OrderCtx<'_>>) {
    let mut in_graph = flags & (FLAG_IN_ORDER_GRAPH | FLAG_NO_DEFER) != 0;
    // The common end of a short-lived lock: only its creator took it, under other locks, and
    // drops it. Cannot panic, takes no lock.
    if !in_graph
        && pending_owner != 0
        && own.is_some_and(|ctx| order::forget_own_pending(id, pending_owner, ctx))
    {
        return;
    }
    // A panic in the lock-order bookkeeping never reaches the dropping code.
    report::guard_bookkeeping(|| {
        if pending_owner != 0 && !order::forget_pending(id, pending_owner, own) {
            in_graph = true;
        }
        if in_graph {
            order::remove_lock(id, flags & FLAG_IN_ORDER_GRAPH != 0);
        }
    });
}
