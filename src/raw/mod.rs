//! The raw-primitive layer: one small trait over the locks every primitive is built on, so that
//! the instrumented core (`core.rs`) is written once.
//!
//! - [`RawMutex`] (`mutex.rs`): lockwatch's own mutex on `parking_lot_core`, with parking_lot's
//!   algorithm, whose waiters park under a token and can be woken alone for a verdict.
//! - [`RawSemaphore`] (`semaphore.rs`): ownerless permits, the raw primitive of `Lock`.
//! - [`RawCondvar`] (`condvar.rs`) and [`RawEvent`] (`event.rs`): waits that are not locks.
//! - parking_lot's task-fair `RawRwLock`, adapted below. Its waiters park inside parking_lot,
//!   so they cannot be woken for a verdict.

mod condvar;
mod event;
#[cfg(all(test, loom))]
mod loom_tests;
mod mutex;
mod park;
mod semaphore;
#[cfg(all(test, not(loom)))]
mod tests;

pub(crate) use condvar::{CondWaiter, RawCondvar};
// How a park ended matters to the tracked wait (and the tests); the untracked one only asks
// the waiter afterwards.
#[cfg_attr(not(feature = "detect"), allow(unused_imports))]
pub(crate) use condvar::CvWake;
pub(crate) use event::RawEvent;
pub(crate) use mutex::RawMutex;
pub(crate) use semaphore::RawSemaphore;

use crate::primitive::sync::atomic::{AtomicBool, Ordering};
use lockwatch_detector::snapshot::Releasers;
use parking_lot::lock_api::{RawRwLock as _, RawRwLockTimed as _};
use std::time::{Duration, Instant};

/// Which side of a lock an acquisition takes. Mutex-like locks only know `Exclusive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Exclusive,
    Shared,
}

/// A thread about to park, as the raw primitives see it.
#[derive(Clone, Copy)]
pub(crate) struct Waiter<'a> {
    /// Its park token: unique among the threads parked on one primitive, so that it alone can
    /// be woken for a verdict (0 for a waiter nobody will look for).
    pub(crate) token: usize,
    /// Set when a verdict is posted for the thread: it does not park, or stops parking.
    pub(crate) interrupted: Option<&'a AtomicBool>,
}

impl Waiter<'_> {
    /// A waiter that nobody will interrupt: an untracked wait, or the quiet grace period.
    pub(crate) const ANONYMOUS: Waiter<'static> = Waiter {
        token: 0,
        interrupted: None,
    };

    /// Safe inside `parking_lot_core` callbacks: one atomic load.
    #[inline]
    pub(crate) fn is_interrupted(&self) -> bool {
        self.interrupted
            .is_some_and(|flag| flag.load(Ordering::Acquire))
    }
}

/// How a park as a [`Waiter`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parked {
    /// The wait is over: the lock or permit is the caller's, the event is set.
    Acquired,
    TimedOut,
    /// A verdict was posted for the waiter; it still waits for nothing it acquired.
    Interrupted,
}

/// A lock that parks threads. Implementations must provide mutual exclusion for `Exclusive`
/// and reader/writer exclusion for `Shared`.
///
/// # Safety
/// `release` may only be called by code that acquired the same access and has not yet
/// released it (for an ownerless lock: by any thread, once per acquisition); implementations
/// rely on that.
pub(crate) unsafe trait RawLock: Sync {
    /// Any thread may release an acquisition, not only the one that made it (a `Lock`).
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    const OWNERLESS: bool = false;

    fn try_acquire(&self, access: Access) -> bool;

    /// One attempt that may fail even though the lock is free (contention on its word, or
    /// waiters parked): the inlined fast path, which falls back to [`RawLock::try_acquire`] or
    /// a wait.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    #[inline(always)]
    fn try_acquire_fast(&self, access: Access) -> bool {
        self.try_acquire(access)
    }
    fn acquire(&self, access: Access);
    fn acquire_for(&self, access: Access, timeout: Duration) -> bool;
    /// # Safety
    /// The caller holds the lock with this access (see the trait's contract).
    unsafe fn release(&self, access: Access);
    /// Whether an acquisition with this access could succeed right now.
    fn is_free_for(&self, access: Access) -> bool;

    /// Waits for `access` as `waiter` until it is acquired, `deadline` passes or the waiter is
    /// interrupted. The default is one uninterruptible wait (a lock whose waiters park inside
    /// parking_lot).
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    fn acquire_as(&self, access: Access, deadline: Option<Instant>, waiter: Waiter<'_>) -> Parked {
        let _ = waiter;
        match deadline {
            None => {
                self.acquire(access);
                Parked::Acquired
            }
            Some(d) => {
                if self.acquire_for(access, d.saturating_duration_since(Instant::now())) {
                    Parked::Acquired
                } else {
                    Parked::TimedOut
                }
            }
        }
    }

    /// Who can end a wait on this lock (SPEC §3): the resource model's answer for every
    /// primitive built on it.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    fn releasers(&self) -> Releasers;

    /// Whether [`RawLock::acquire_as`] can be interrupted: its waiters take verdicts.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    fn interruptible(&self) -> bool {
        false
    }

    /// Wakes the waiter parked in [`RawLock::acquire_as`] with `token` for a verdict.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    fn interrupt(&self, token: usize) -> bool {
        let _ = token;
        false
    }

    /// Whether the lock is taken but not yet by anyone the runtime can name: an acquisition
    /// that got the raw lock (or had it handed over) and has not finished its bookkeeping.
    /// The acquirer will run, so a wait on the lock can count as ending.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    fn in_transit(&self) -> bool {
        false
    }

    /// Whether a timed attempt with this access that expires changes what other threads see
    /// (so the quiet grace period must not be a timed attempt).
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    fn timed_attempt_is_visible(&self, _access: Access) -> bool {
        false
    }
}

// SAFETY: lockwatch's mutex provides mutual exclusion; `release` is only called by the holder
// (trait contract).
unsafe impl RawLock for RawMutex {
    #[inline]
    fn try_acquire(&self, _: Access) -> bool {
        self.try_lock()
    }

    #[inline(always)]
    fn try_acquire_fast(&self, _: Access) -> bool {
        self.try_lock_fast()
    }

    #[inline]
    fn acquire(&self, _: Access) {
        self.lock();
    }

    #[inline]
    fn acquire_for(&self, _: Access, timeout: Duration) -> bool {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.try_lock_until(deadline),
            None => {
                self.lock();
                true
            }
        }
    }

    #[inline]
    unsafe fn release(&self, _: Access) {
        self.unlock();
    }

    #[inline]
    fn is_free_for(&self, _: Access) -> bool {
        !self.is_locked()
    }

    fn acquire_as(&self, _: Access, deadline: Option<Instant>, waiter: Waiter<'_>) -> Parked {
        self.lock_as(deadline, waiter)
    }

    /// Mutex, ReentrantMutex, RLock: the owner (reentrant holds count once).
    fn releasers(&self) -> Releasers {
        Releasers::Holders
    }

    fn interruptible(&self) -> bool {
        true
    }

    fn interrupt(&self, token: usize) -> bool {
        RawMutex::interrupt(self, token)
    }
}

/// parking_lot's task-fair reader/writer lock.
pub(crate) type RawRwLock = parking_lot::RawRwLock;

// SAFETY: delegates to parking_lot's raw rwlock; `release` is only called for an access the
// caller holds (trait contract).
unsafe impl RawLock for RawRwLock {
    #[inline]
    fn try_acquire(&self, access: Access) -> bool {
        match access {
            Access::Exclusive => self.try_lock_exclusive(),
            Access::Shared => self.try_lock_shared(),
        }
    }

    #[inline]
    fn acquire(&self, access: Access) {
        match access {
            Access::Exclusive => self.lock_exclusive(),
            Access::Shared => self.lock_shared(),
        }
    }

    #[inline]
    fn acquire_for(&self, access: Access, timeout: Duration) -> bool {
        match access {
            Access::Exclusive => self.try_lock_exclusive_for(timeout),
            Access::Shared => self.try_lock_shared_for(timeout),
        }
    }

    #[inline]
    unsafe fn release(&self, access: Access) {
        // SAFETY: the caller holds this access (trait contract).
        unsafe {
            match access {
                Access::Exclusive => self.unlock_exclusive(),
                Access::Shared => self.unlock_shared(),
            }
        }
    }

    /// A read waits for the writer holding the lock and for writers queued ahead of it
    /// (task-fair); the analysis treats a write wait on the same lock as a wait on every
    /// holder.
    fn releasers(&self) -> Releasers {
        Releasers::WritersAndQueuedWriters
    }

    /// A waiting writer of this task-fair lock bars new readers; a timed attempt that expires
    /// lifts that bar for a moment and lets readers past, which an untimed wait never does.
    fn timed_attempt_is_visible(&self, access: Access) -> bool {
        access == Access::Exclusive
    }

    #[inline]
    fn is_free_for(&self, access: Access) -> bool {
        match access {
            Access::Exclusive => !self.is_locked(),
            // A reader gets in unless a writer holds it or waits for it; the raw lock does not
            // tell the two apart, so "locked exclusively" is the honest approximation.
            Access::Shared => !self.is_locked_exclusive(),
        }
    }
}
