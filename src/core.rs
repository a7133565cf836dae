//! The one instrumented lock: a raw lock plus, with feature `detect`, the metadata the wait-for
//! and lock-order graphs need. Every blocking primitive is built on [`LockCore`], and this is
//! the only place the runtime's hooks are called from, so each primitive is instrumented once.
//!
//! The uncontended path stays local: it tries the raw lock, stores the owner and the call site
//! in the lock, and pushes an entry on a thread-local stack. Only an acquisition that has to
//! wait takes the `#[cold]` path that registers the wait in the global graph.

use crate::raw::{Access, CondWaiter, RawCondvar, RawLock, RawMutex};
use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The type of a primitive and what an acquisition or a wait is for: the report model's own
/// enums, so the runtime records exactly what reports say.
pub(crate) use lockwatch_detector::{Op, ResourceKind as Kind};

/// How long an acquisition may block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Until it succeeds: the wait is an edge of the wait-for graph and the acquisition an edge
    /// of the lock-order graph.
    Blocking,
    /// Not at all: never an ordering edge for the lock it tries.
    Try,
    /// Until the deadline: a timed wait can always end, so it is neither a stuck wait nor an
    /// ordering edge.
    Until(Instant),
}

impl Mode {
    pub(crate) fn after(timeout: Duration) -> Mode {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => Mode::Until(deadline),
            // A timeout too far in the future to represent is, in practice, no timeout.
            None => Mode::Blocking,
        }
    }
}

/// `repr(C)`: the raw lock comes right after the metadata's hot fields and right before the
/// data of the primitive that embeds it (see [`crate::rt::Meta`]).
#[repr(C)]
pub(crate) struct LockCore<R> {
    #[cfg(feature = "detect")]
    meta: crate::rt::Meta,
    raw: R,
}

impl<R: RawLock> LockCore<R> {
    /// An unnamed lock; `const` so primitives can be statics.
    #[inline]
    #[allow(unused_variables)]
    pub(crate) const fn new(raw: R, kind: Kind, created_at: &'static Location<'static>) -> Self {
        LockCore {
            raw,
            #[cfg(feature = "detect")]
            meta: crate::rt::Meta::new(kind, None, created_at),
        }
    }

    /// A lock with a name for reports (dropped without feature `detect`).
    #[inline]
    #[allow(unused_variables)]
    pub(crate) fn named(
        raw: R,
        kind: Kind,
        name: Arc<str>,
        created_at: &'static Location<'static>,
    ) -> Self {
        LockCore {
            raw,
            #[cfg(feature = "detect")]
            meta: crate::rt::Meta::new(kind, Some(name), created_at),
        }
    }

    #[inline]
    pub(crate) fn raw(&self) -> &R {
        &self.raw
    }

    /// Acquires with `access`, blocking according to `mode`. Returns whether it got the lock.
    ///
    /// Inlined into every call site, like parking_lot's own fast path: what is left of it when
    /// tracking is on is a few thread-local loads and stores; everything else is out of line.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn acquire(&self, op: Op, access: Access, mode: Mode) -> bool {
        let site = Location::caller();
        #[cfg(feature = "detect")]
        if let Some(tracking) = crate::config::tracking() {
            return crate::rt::acquire(self, tracking, op, access, mode, site);
        }
        let _ = (op, site);
        self.acquire_untracked(access, mode)
    }

    /// Acquires without any bookkeeping: tracking is off, or this thread's state is gone.
    #[inline(always)]
    pub(crate) fn acquire_untracked(&self, access: Access, mode: Mode) -> bool {
        match mode {
            Mode::Blocking => {
                self.raw.acquire(access);
                true
            }
            Mode::Try => self.raw.try_acquire(access),
            Mode::Until(deadline) => self
                .raw
                .acquire_for(access, deadline.saturating_duration_since(Instant::now())),
        }
    }

    /// Releases `access`.
    ///
    /// # Safety
    /// The lock is held with this access (by this thread, or for an ownerless lock by anyone).
    #[inline(always)]
    pub(crate) unsafe fn release(&self, access: Access) {
        #[cfg(feature = "detect")]
        crate::rt::on_release(&self.meta, access);
        // SAFETY: the caller holds the lock with this access (function contract).
        unsafe { self.raw.release(access) }
    }

    /// Records a reentrant re-acquisition (+1) or a partial release (-1) of a lock the current
    /// thread already holds. Reentrant holds count once in the graphs.
    #[inline]
    #[allow(unused_variables)]
    pub(crate) fn note_reentry(&self, delta: i32) {
        #[cfg(feature = "detect")]
        crate::rt::on_reentry(&self.meta, delta);
    }

    #[cfg(feature = "detect")]
    pub(crate) fn meta(&self) -> &crate::rt::Meta {
        &self.meta
    }
}

/// An identity for the current thread, for reentrant ownership: non-zero, and never reused
/// within the process (a global counter, read on the thread's first use), so a thread that
/// exits holding a reentrant lock leaves it owned by no thread that will ever run. (The address
/// of a thread-local, used before, is handed to a later thread.) On 32-bit targets a key would
/// come back only after 2^32 threads. It does not need the runtime, so reentrancy works
/// identically with and without feature `detect`; once assigned it is one thread-local load.
#[inline]
pub(crate) fn current_thread_key() -> usize {
    match THREAD_KEY.get() {
        0 => assign_thread_key(),
        key => key,
    }
}

thread_local! {
    /// This thread's key, 0 until its first use. No destructor, so it stays readable while
    /// other thread-locals are destroyed.
    static THREAD_KEY: Cell<usize> = const { Cell::new(0) };
}

#[cold]
#[inline(never)]
fn assign_thread_key() -> usize {
    static NEXT_THREAD_KEY: AtomicUsize = AtomicUsize::new(1);
    let key = NEXT_THREAD_KEY.fetch_add(1, Ordering::Relaxed);
    THREAD_KEY.set(key);
    key
}

/// The one instrumented condition variable, as [`LockCore`] is the one instrumented lock: the
/// raw condvar plus, with feature `detect`, what reports say about it. The only place the
/// runtime's Condvar hooks are called from.
pub(crate) struct CondvarCore {
    raw: RawCondvar,
    #[cfg(feature = "detect")]
    info: crate::rt::ResourceInfo,
}

impl CondvarCore {
    /// An unnamed condvar; `const` so it can be a static.
    #[inline]
    #[allow(unused_variables)]
    pub(crate) const fn new(created_at: &'static Location<'static>) -> Self {
        CondvarCore {
            raw: RawCondvar::new(),
            #[cfg(feature = "detect")]
            info: crate::rt::ResourceInfo::new(Kind::Condvar, None, created_at),
        }
    }

    /// A condvar with a name for reports (dropped without feature `detect`).
    #[inline]
    #[allow(unused_variables)]
    pub(crate) fn named(name: Arc<str>, created_at: &'static Location<'static>) -> Self {
        CondvarCore {
            raw: RawCondvar::new(),
            #[cfg(feature = "detect")]
            info: crate::rt::ResourceInfo::new(Kind::Condvar, Some(name), created_at),
        }
    }

    /// Waits with `mutex` held by the caller, which holds it again on return (and on unwind);
    /// returns whether the deadline passed.
    #[inline]
    pub(crate) fn wait(
        &self,
        mutex: &LockCore<RawMutex>,
        deadline: Option<Instant>,
        site: &'static Location<'static>,
    ) -> bool {
        #[cfg(feature = "detect")]
        if crate::config::tracking().is_some() {
            return crate::rt::condvar_wait(&self.raw, &self.info, mutex, deadline, site);
        }
        let _ = site;
        condvar_wait_untracked(&self.raw, mutex.raw(), deadline)
    }

    #[inline]
    pub(crate) fn notify_one(&self) -> bool {
        self.raw.notify_one()
    }

    #[inline]
    pub(crate) fn notify_all(&self) -> usize {
        self.raw.notify_all()
    }
}

/// A wait nobody tracks: one park, then the mutex again unless its release handed it over.
pub(crate) fn condvar_wait_untracked(
    cv: &RawCondvar,
    mutex: &RawMutex,
    deadline: Option<Instant>,
) -> bool {
    let waiter = CondWaiter::new(mutex, None);
    cv.wait_as(&waiter, || cv.park(&waiter, true, deadline));
    if !waiter.holds_mutex() {
        mutex.lock();
    }
    // A notification that came after the park timed out still ends the wait as notified.
    !waiter.notified()
}
