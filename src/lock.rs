//! Python-style locks: [`Lock`] (ownerless, not reentrant) and [`RLock`] (owned, reentrant).

use crate::core::{Kind, LockCore, Mode, Op};
use crate::error::SyncError;
use crate::raw::{Access, Parked, RawLock, RawSemaphore, Waiter};
use crate::reentrant::ReentrantCore;
use lockwatch_detector::snapshot::Releasers;
use std::fmt;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// CPython's `threading.Lock`: not reentrant and not owned — any thread may release it, which
/// makes it usable as a signal.
///
/// A thread that acquires a `Lock` it already holds waits for some other thread to release it.
/// If no other thread can ever run, that is the classic frozen program (the reason `RLock`
/// exists), and lockwatch reports it as a deadlock. While another thread can still run, it is a
/// valid signal and never reported.
///
/// # Examples
/// ```
/// use lockwatch::{Lock, SyncError};
/// let lock = Lock::named("config");
/// lock.acquire();
/// assert!(lock.locked());
/// assert!(!lock.try_acquire());
/// lock.release().unwrap();
/// assert_eq!(lock.release(), Err(SyncError::NotLocked));
/// ```
pub struct Lock {
    core: LockCore<OwnerlessRaw>,
}

/// The raw lock of a [`Lock`]: one ownerless permit, and a flag set once an acquisition has
/// finished. A release swaps the flag off, so two racing releases cannot both give the permit
/// back; and a permit that is taken while the flag is off is in transit to an acquirer that
/// will run (it was handed over, or its acquirer is finishing), which the wait-for graph must
/// not take for a lock nobody will release.
pub(crate) struct OwnerlessRaw {
    permit: RawSemaphore,
    held: AtomicBool,
}

impl OwnerlessRaw {
    const fn new() -> OwnerlessRaw {
        OwnerlessRaw {
            permit: RawSemaphore::new(1),
            held: AtomicBool::new(false),
        }
    }

    fn is_taken(&self) -> bool {
        self.permit.available() == 0
    }
}

// SAFETY: one permit gives mutual exclusion between acquisitions; `release` gives it back once
// per acquisition, from whichever thread (`Lock::release`'s flag swap guarantees the once).
unsafe impl RawLock for OwnerlessRaw {
    const OWNERLESS: bool = true;

    #[inline]
    fn try_acquire(&self, _: Access) -> bool {
        self.permit.try_acquire()
    }

    #[inline]
    fn acquire(&self, _: Access) {
        self.permit.acquire()
    }

    #[inline]
    fn acquire_for(&self, _: Access, timeout: Duration) -> bool {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.permit.try_acquire_until(deadline),
            None => {
                self.permit.acquire();
                true
            }
        }
    }

    #[inline]
    unsafe fn release(&self, _: Access) {
        self.permit.release()
    }

    #[inline]
    fn is_free_for(&self, _: Access) -> bool {
        !self.is_taken()
    }

    fn acquire_as(&self, _: Access, deadline: Option<Instant>, waiter: Waiter<'_>) -> Parked {
        self.permit.acquire_as(deadline, waiter)
    }

    /// Ownerless: its holder, or any thread that can still run.
    fn releasers(&self) -> Releasers {
        Releasers::HoldersOrAnyone
    }

    fn interruptible(&self) -> bool {
        true
    }

    fn interrupt(&self, token: usize) -> bool {
        self.permit.interrupt(token)
    }

    fn in_transit(&self) -> bool {
        self.is_taken() && !self.held.load(Ordering::Acquire)
    }
}

impl Lock {
    /// A new unlocked lock; the caller's location is its creation site in reports.
    #[track_caller]
    pub const fn new() -> Lock {
        Lock {
            core: LockCore::new(OwnerlessRaw::new(), Kind::Lock, Location::caller()),
        }
    }

    /// A new unlocked lock with a name shown in reports.
    #[track_caller]
    pub fn named(name: impl Into<Arc<str>>) -> Lock {
        Lock {
            core: LockCore::named(
                OwnerlessRaw::new(),
                Kind::Lock,
                name.into(),
                Location::caller(),
            ),
        }
    }

    #[track_caller]
    #[inline]
    fn acquire_with(&self, mode: Mode) -> bool {
        let got = self.core.acquire(Op::Acquire, Access::Exclusive, mode);
        if got {
            self.core.raw().held.store(true, Ordering::Release);
        }
        got
    }

    /// Blocks until the lock is acquired.
    #[track_caller]
    pub fn acquire(&self) {
        self.acquire_with(Mode::Blocking);
    }

    /// Acquires the lock if it is free; never waits.
    #[track_caller]
    pub fn try_acquire(&self) -> bool {
        self.acquire_with(Mode::Try)
    }

    /// Acquires the lock, waiting at most `timeout`; returns whether it was acquired.
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.acquire_with(Mode::after(timeout))
    }

    /// Releases the lock, from any thread. `Err(SyncError::NotLocked)` if it is not locked.
    pub fn release(&self) -> Result<(), SyncError> {
        loop {
            if self.core.raw().held.swap(false, Ordering::AcqRel) {
                // SAFETY: `held` was true, so the raw lock is held, and the swap makes this the
                // only release of that acquisition.
                unsafe { self.core.release(Access::Exclusive) };
                return Ok(());
            }
            if !self.core.raw().is_taken() {
                return Err(SyncError::NotLocked);
            }
            // Locked but not yet marked held: an acquisition is completing its bookkeeping
            // (or another release is finishing). Either settles within nanoseconds.
            std::hint::spin_loop();
            std::thread::yield_now();
        }
    }

    /// Whether the lock is held by some thread.
    pub fn locked(&self) -> bool {
        self.core.raw().held.load(Ordering::Acquire)
    }

    /// Acquires the lock and returns a guard that releases it when dropped.
    #[track_caller]
    pub fn lock(&self) -> LockGuard<'_> {
        self.acquire();
        LockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }
}

impl Default for Lock {
    #[track_caller]
    fn default() -> Lock {
        Lock::new()
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.locked())
            .finish()
    }
}

/// Holds a [`Lock`]; releases it when dropped (unless another thread already did).
#[must_use = "if unused the Lock will immediately be released"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    _not_send: PhantomData<*const ()>,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Another thread may have released it meanwhile (a Lock has no owner): not an error
        // worth a panic in a destructor.
        let _ = self.lock.release();
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

/// CPython's `threading.RLock`: owned and reentrant. The owner may acquire it again without
/// blocking and must release it as many times; no other thread may release it.
///
/// # Examples
/// ```
/// use lockwatch::{RLock, SyncError};
/// let lock = RLock::named("registry");
/// lock.acquire();
/// lock.acquire(); // re-entry by the owner
/// lock.release().unwrap();
/// lock.release().unwrap();
/// assert_eq!(lock.release(), Err(SyncError::NotOwner));
/// ```
pub struct RLock {
    inner: ReentrantCore,
}

impl RLock {
    /// A new unlocked lock; the caller's location is its creation site in reports.
    #[track_caller]
    pub const fn new() -> RLock {
        RLock {
            inner: ReentrantCore::new(Kind::RLock),
        }
    }

    /// A new unlocked lock with a name shown in reports.
    #[track_caller]
    pub fn named(name: impl Into<Arc<str>>) -> RLock {
        RLock {
            inner: ReentrantCore::named(Kind::RLock, name.into()),
        }
    }

    /// Blocks until the lock is acquired (at once if this thread owns it).
    #[track_caller]
    pub fn acquire(&self) {
        self.inner.acquire(Op::Acquire, Mode::Blocking);
    }

    /// Acquires the lock if it is free or owned by this thread; never waits.
    #[track_caller]
    pub fn try_acquire(&self) -> bool {
        self.inner.acquire(Op::Acquire, Mode::Try)
    }

    /// Acquires the lock, waiting at most `timeout`; returns whether it was acquired.
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.inner.acquire(Op::Acquire, Mode::after(timeout))
    }

    /// Releases one level. `Err(SyncError::NotOwner)` from any thread but the owner,
    /// including when the lock is not held at all.
    pub fn release(&self) -> Result<(), SyncError> {
        self.inner.release()
    }

    /// Whether the current thread owns the lock.
    pub fn is_owned(&self) -> bool {
        self.inner.is_owned_by_current_thread()
    }

    /// Acquires the lock and returns a guard that releases one level when dropped.
    #[track_caller]
    pub fn lock(&self) -> RLockGuard<'_> {
        self.acquire();
        RLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }
}

impl Default for RLock {
    #[track_caller]
    fn default() -> RLock {
        RLock::new()
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("locked", &self.inner.is_locked())
            .finish()
    }
}

/// Holds one level of an [`RLock`]; releases it when dropped. `!Send`.
#[must_use = "if unused the RLock will immediately be released"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // The guard lives on the owning thread (it is !Send), so this cannot fail.
        let _ = self.lock.release();
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_lock_is_in_transit_only_between_the_raw_acquisition_and_the_flag() {
        let raw = OwnerlessRaw::new();
        assert!(!raw.in_transit(), "free");
        assert!(raw.try_acquire(Access::Exclusive));
        assert!(raw.in_transit(), "taken, the acquisition not finished");
        raw.held.store(true, Ordering::Release);
        assert!(!raw.in_transit(), "acquired");
        raw.held.store(false, Ordering::Release);
        assert!(raw.in_transit(), "being released");
        // SAFETY: acquired above and not released since.
        unsafe { raw.release(Access::Exclusive) };
        assert!(!raw.in_transit(), "released");
    }
}
