use crate::core::{Kind, LockCore, Mode, Op};
use crate::raw::{Access, RawMutex};
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

/// A mutual-exclusion lock with the surface of `parking_lot::Mutex` (no poisoning), whose
/// waits are watched for deadlocks.
///
/// Locking a `Mutex` the current thread already holds can never succeed: lockwatch reports it
/// as a deadlock at once instead of hanging silently.
///
/// # Examples
/// ```
/// use lockwatch::Mutex;
/// let balance = Mutex::named("balance", 100);
/// *balance.lock() -= 30;
/// assert_eq!(*balance.lock(), 70);
/// ```
///
/// `new` is `const`, so a mutex can be a `static`; its creation site is the `static`'s line:
/// ```
/// static REGISTRY: lockwatch::Mutex<Vec<&str>> = lockwatch::Mutex::new(Vec::new());
/// REGISTRY.lock().push("ready");
/// ```
///
/// # Differences from `std::sync::Mutex`
/// No poisoning: a panic while the lock is held releases it and the data stays accessible.
pub struct Mutex<T: ?Sized> {
    pub(crate) core: LockCore<RawMutex>,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `T` to one thread at a time, as std's does.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above: `&Mutex<T>` only gives `&mut T` under the lock.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// A new unlocked mutex; the caller's location is its creation site in reports.
    #[track_caller]
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            core: LockCore::new(RawMutex::new(), Kind::Mutex, Location::caller()),
            data: UnsafeCell::new(value),
        }
    }

    /// A new unlocked mutex with a name shown in reports.
    #[track_caller]
    pub fn named(name: impl Into<Arc<str>>, value: T) -> Mutex<T> {
        Mutex {
            core: LockCore::named(
                RawMutex::new(),
                Kind::Mutex,
                name.into(),
                Location::caller(),
            ),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Blocks until the lock is acquired.
    #[track_caller]
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.core
            .acquire(Op::Lock, Access::Exclusive, Mode::Blocking);
        MutexGuard::new(self)
    }

    /// Acquires the lock if it is free. Never an ordering edge for this lock.
    #[track_caller]
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.core
            .acquire(Op::Lock, Access::Exclusive, Mode::Try)
            .then(|| MutexGuard::new(self))
    }

    /// Acquires the lock, waiting at most `timeout`.
    #[track_caller]
    #[inline]
    pub fn try_lock_for(&self, timeout: Duration) -> Option<MutexGuard<'_, T>> {
        self.core
            .acquire(Op::Lock, Access::Exclusive, Mode::after(timeout))
            .then(|| MutexGuard::new(self))
    }

    /// Whether some thread holds the lock right now.
    pub fn is_locked(&self) -> bool {
        self.core.raw().is_locked()
    }

    /// Mutable access without locking: `&mut self` proves no one else can have it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: Default> Default for Mutex<T> {
    #[track_caller]
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        if self.core.raw().try_lock() {
            // SAFETY: the raw lock is held (untracked: formatting is not an acquisition the
            // program made) for the duration of this borrow, and released right after it.
            d.field("data", &unsafe { &*self.data.get() });
            self.core.raw().unlock();
        } else {
            d.field("data", &format_args!("<locked>"));
        }
        d.finish()
    }
}

/// Proof of holding a [`Mutex`]; releases it when dropped.
///
/// Not `Send`: lockwatch tracks held locks per thread, and a guard released by another thread
/// would corrupt that record (parking_lot's guards are `!Send` by default too).
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    pub(crate) mutex: &'a Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    fn new(mutex: &'a Mutex<T>) -> Self {
        MutexGuard {
            mutex,
            _not_send: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, and `&mut self` that this is the only
        // access through it.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard was created by a successful acquisition and is dropped once.
        unsafe { self.mutex.core.release(Access::Exclusive) }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
