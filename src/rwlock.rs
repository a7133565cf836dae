use crate::core::{Kind, LockCore, Mode, Op};
use crate::raw::{Access, RawLock, RawRwLock};
use parking_lot::lock_api::RawRwLock as _;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

/// A reader-writer lock with the surface and the task-fair policy of `parking_lot::RwLock`.
///
/// Task-fair means a reader waits behind a writer that is already waiting, so a thread that
/// takes a read lock twice can deadlock if a writer queues in between. lockwatch models that:
/// the queued writer is a releaser of the second read, and the cycle is reported.
///
/// # Examples
/// ```
/// use lockwatch::RwLock;
/// let config = RwLock::named("config", vec![1, 2]);
/// assert_eq!(config.read().len(), 2);
/// config.write().push(3);
/// assert_eq!(*config.read(), [1, 2, 3]);
/// ```
pub struct RwLock<T: ?Sized> {
    core: LockCore<RawRwLock>,
    data: UnsafeCell<T>,
}

// SAFETY: as `std::sync::RwLock`: readers share `&T` (needs `Sync`), a writer gets `&mut T`
// (needs `Send`).
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    /// A new unlocked lock; the caller's location is its creation site in reports.
    #[track_caller]
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            core: LockCore::new(RawRwLock::INIT, Kind::RwLock, Location::caller()),
            data: UnsafeCell::new(value),
        }
    }

    /// A new unlocked lock with a name shown in reports.
    #[track_caller]
    pub fn named(name: impl Into<Arc<str>>, value: T) -> RwLock<T> {
        RwLock {
            core: LockCore::named(
                RawRwLock::INIT,
                Kind::RwLock,
                name.into(),
                Location::caller(),
            ),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Blocks until shared access is acquired.
    #[track_caller]
    #[inline]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.core.acquire(Op::Read, Access::Shared, Mode::Blocking);
        RwLockReadGuard::new(self)
    }

    /// Blocks until exclusive access is acquired.
    #[track_caller]
    #[inline]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.core
            .acquire(Op::Write, Access::Exclusive, Mode::Blocking);
        RwLockWriteGuard::new(self)
    }

    /// Shared access if it can be had at once.
    #[track_caller]
    #[inline]
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.core
            .acquire(Op::Read, Access::Shared, Mode::Try)
            .then(|| RwLockReadGuard::new(self))
    }

    /// Exclusive access if it can be had at once.
    #[track_caller]
    #[inline]
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        self.core
            .acquire(Op::Write, Access::Exclusive, Mode::Try)
            .then(|| RwLockWriteGuard::new(self))
    }

    /// Shared access, waiting at most `timeout`.
    #[track_caller]
    #[inline]
    pub fn try_read_for(&self, timeout: Duration) -> Option<RwLockReadGuard<'_, T>> {
        self.core
            .acquire(Op::Read, Access::Shared, Mode::after(timeout))
            .then(|| RwLockReadGuard::new(self))
    }

    /// Exclusive access, waiting at most `timeout`.
    #[track_caller]
    #[inline]
    pub fn try_write_for(&self, timeout: Duration) -> Option<RwLockWriteGuard<'_, T>> {
        self.core
            .acquire(Op::Write, Access::Exclusive, Mode::after(timeout))
            .then(|| RwLockWriteGuard::new(self))
    }

    /// Whether any thread holds the lock, shared or exclusive.
    pub fn is_locked(&self) -> bool {
        !self.core.raw().is_free_for(Access::Exclusive)
    }

    /// Whether a writer holds the lock.
    pub fn is_locked_exclusive(&self) -> bool {
        self.core.raw().is_locked_exclusive()
    }

    /// Mutable access without locking: `&mut self` proves no one else can have it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: Default> Default for RwLock<T> {
    #[track_caller]
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        if self.core.raw().try_lock_shared() {
            // SAFETY: shared access is held until the unlock below.
            d.field("data", &unsafe { &*self.data.get() });
            // SAFETY: acquired just above.
            unsafe { self.core.raw().unlock_shared() };
        } else {
            d.field("data", &format_args!("<locked>"));
        }
        d.finish()
    }
}

/// Shared access to an [`RwLock`]; released when dropped. `!Send`, like every guard here.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

/// Exclusive access to an [`RwLock`]; released when dropped.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing a guard only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: sharing a guard only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    fn new(lock: &'a RwLock<T>) -> Self {
        RwLockReadGuard {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    fn new(lock: &'a RwLock<T>) -> Self {
        RwLockWriteGuard {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: shared access is held.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: exclusive access is held.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: exclusive access is held and `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard stands for one shared acquisition, released once.
        unsafe { self.lock.core.release(Access::Shared) }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard stands for the exclusive acquisition, released once.
        unsafe { self.lock.core.release(Access::Exclusive) }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
