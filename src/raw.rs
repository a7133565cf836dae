//! The raw-lock layer: parking_lot's raw locks behind one small trait, so that the instrumented
//! core (`core.rs`) is written once for every primitive.

use parking_lot::lock_api::{RawRwLock as _, RawRwLockTimed as _};
use std::time::Duration;

/// Which side of a lock an acquisition takes. Mutex-like locks only know `Exclusive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Exclusive,
    Shared,
}

/// A lock that parks threads. Implementations must provide mutual exclusion for `Exclusive`
/// and reader/writer exclusion for `Shared`.
///
/// # Safety
/// `release` may only be called by code that acquired the same access and has not yet
/// released it; implementations rely on that.
pub(crate) unsafe trait RawLock: Sync {
    fn try_acquire(&self, access: Access) -> bool;
    fn acquire(&self, access: Access);
    fn acquire_for(&self, access: Access, timeout: Duration) -> bool;
    /// # Safety
    /// The caller holds the lock with this access.
    unsafe fn release(&self, access: Access);
    /// Whether an acquisition with this access could succeed right now.
    fn is_free_for(&self, access: Access) -> bool;

    /// Whether the lock is taken but not yet by anyone the runtime can name: an acquisition
    /// that got the raw lock (or had it handed over by parking_lot) and has not finished its
    /// bookkeeping. The acquirer will run, so a wait on the lock can count as ending.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    fn in_transit(&self) -> bool {
        false
    }

    /// Whether a timed attempt with this access that expires changes what other threads see
    /// (so a wait must not be cut into timed slices).
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    fn timed_attempt_is_visible(&self, _access: Access) -> bool {
        false
    }
}

/// A mutex as `parking_lot::Mutex<()>`, so that `parking_lot::Condvar` can wait on it.
pub(crate) type RawMutex = parking_lot::Mutex<()>;

// SAFETY: parking_lot's mutex provides mutual exclusion; guards are forgotten on acquisition and
// `force_unlock` is only reached through `release`, whose contract says the lock is held.
unsafe impl RawLock for RawMutex {
    #[inline]
    fn try_acquire(&self, _: Access) -> bool {
        self.try_lock().map(std::mem::forget).is_some()
    }

    #[inline]
    fn acquire(&self, _: Access) {
        std::mem::forget(self.lock());
    }

    #[inline]
    fn acquire_for(&self, _: Access, timeout: Duration) -> bool {
        self.try_lock_for(timeout).map(std::mem::forget).is_some()
    }

    #[inline]
    unsafe fn release(&self, _: Access) {
        // SAFETY: the caller holds the lock (trait contract).
        unsafe { self.force_unlock() }
    }

    #[inline]
    fn is_free_for(&self, _: Access) -> bool {
        !self.is_locked()
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
