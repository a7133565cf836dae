use crate::core::{current_thread_key, Kind, LockCore, Mode, Op};
use crate::error::SyncError;
use crate::raw::{Access, RawMutex};
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::Location;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Ownership and depth on top of a mutex: the part [`ReentrantMutex`] and
/// [`RLock`](crate::RLock) share. Re-entry by the owner is a counter increment: it never
/// blocks and never adds an ordering edge.
pub(crate) struct ReentrantCore {
    core: LockCore<RawMutex>,
    /// `current_thread_key()` of the owner, or 0.
    owner: AtomicUsize,
    /// Depth; only the owner reads or writes it.
    depth: AtomicUsize,
}

impl ReentrantCore {
    #[track_caller]
    pub(crate) const fn new(kind: Kind) -> ReentrantCore {
        ReentrantCore::from_core(LockCore::new(RawMutex::new(), kind, Location::caller()))
    }

    #[track_caller]
    pub(crate) fn named(kind: Kind, name: Arc<str>) -> ReentrantCore {
        ReentrantCore::from_core(LockCore::named(
            RawMutex::new(),
            kind,
            name,
            Location::caller(),
        ))
    }

    const fn from_core(core: LockCore<RawMutex>) -> ReentrantCore {
        ReentrantCore {
            core,
            owner: AtomicUsize::new(0),
            depth: AtomicUsize::new(0),
        }
    }

    #[track_caller]
    #[inline]
    pub(crate) fn acquire(&self, op: Op, mode: Mode) -> bool {
        let me = current_thread_key();
        if self.owner.load(Ordering::Relaxed) == me {
            let depth = self.depth.load(Ordering::Relaxed);
            self.depth.store(
                depth.checked_add(1).expect("reentrant lock depth overflow"),
                Ordering::Relaxed,
            );
            self.core.note_reentry(1);
            return true;
        }
        if !self.core.acquire(op, Access::Exclusive, mode) {
            return false;
        }
        self.owner.store(me, Ordering::Relaxed);
        self.depth.store(1, Ordering::Relaxed);
        true
    }

    #[inline]
    pub(crate) fn is_owned_by_current_thread(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == current_thread_key()
    }

    /// Releases one level; `Err(NotOwner)` from any thread but the owner.
    #[inline]
    pub(crate) fn release(&self) -> Result<(), SyncError> {
        if !self.is_owned_by_current_thread() {
            return Err(SyncError::NotOwner);
        }
        let depth = self.depth.load(Ordering::Relaxed) - 1;
        self.depth.store(depth, Ordering::Relaxed);
        if depth == 0 {
            self.owner.store(0, Ordering::Relaxed);
            // SAFETY: the current thread owns the mutex (checked above) and this was its
            // outermost level.
            unsafe { self.core.release(Access::Exclusive) };
        } else {
            self.core.note_reentry(-1);
        }
        Ok(())
    }

    pub(crate) fn is_locked(&self) -> bool {
        self.core.raw().is_locked()
    }
}

/// A mutex the owning thread may lock again without blocking, with the surface of
/// `parking_lot::ReentrantMutex`: it gives shared access (`&T`), so pair it with a `Cell` or
/// `RefCell` for mutation.
///
/// # Examples
/// ```
/// use lockwatch::ReentrantMutex;
/// use std::cell::Cell;
/// let counter = ReentrantMutex::named("counter", Cell::new(0));
/// let outer = counter.lock();
/// let inner = counter.lock(); // the owner re-enters without blocking
/// inner.set(inner.get() + 1);
/// drop(inner);
/// outer.set(outer.get() + 1);
/// drop(outer);
/// assert_eq!(counter.lock().get(), 2);
/// ```
pub struct ReentrantMutex<T: ?Sized> {
    inner: ReentrantCore,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reachable as `&T` from the owning thread, so `T: Send` suffices to
// move and share the mutex, as for parking_lot's `ReentrantMutex`.
unsafe impl<T: ?Sized + Send> Send for ReentrantMutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for ReentrantMutex<T> {}

impl<T> ReentrantMutex<T> {
    /// A new unlocked mutex; the caller's location is its creation site in reports.
    #[track_caller]
    pub const fn new(value: T) -> ReentrantMutex<T> {
        ReentrantMutex {
            inner: ReentrantCore::new(Kind::ReentrantMutex),
            data: UnsafeCell::new(value),
        }
    }

    /// A new unlocked mutex with a name shown in reports.
    #[track_caller]
    pub fn named(name: impl Into<Arc<str>>, value: T) -> ReentrantMutex<T> {
        ReentrantMutex {
            inner: ReentrantCore::named(Kind::ReentrantMutex, name.into()),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> ReentrantMutex<T> {
    /// Acquires the lock, re-entering at once if this thread already owns it.
    #[track_caller]
    #[inline]
    pub fn lock(&self) -> ReentrantMutexGuard<'_, T> {
        self.inner.acquire(Op::Lock, Mode::Blocking);
        ReentrantMutexGuard::new(self)
    }

    /// Acquires the lock if it is free or already owned by this thread.
    #[track_caller]
    #[inline]
    pub fn try_lock(&self) -> Option<ReentrantMutexGuard<'_, T>> {
        self.inner
            .acquire(Op::Lock, Mode::Try)
            .then(|| ReentrantMutexGuard::new(self))
    }

    /// Acquires the lock, waiting at most `timeout`.
    #[track_caller]
    #[inline]
    pub fn try_lock_for(&self, timeout: Duration) -> Option<ReentrantMutexGuard<'_, T>> {
        self.inner
            .acquire(Op::Lock, Mode::after(timeout))
            .then(|| ReentrantMutexGuard::new(self))
    }

    /// Whether some thread holds the lock.
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// Whether the current thread holds the lock.
    pub fn is_owned_by_current_thread(&self) -> bool {
        self.inner.is_owned_by_current_thread()
    }

    /// Mutable access without locking: `&mut self` proves no one else can have it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: Default> Default for ReentrantMutex<T> {
    #[track_caller]
    fn default() -> ReentrantMutex<T> {
        ReentrantMutex::new(T::default())
    }
}

impl<T: ?Sized> fmt::Debug for ReentrantMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReentrantMutex")
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// Shared access to a [`ReentrantMutex`]; releases one level when dropped. `!Send`.
#[must_use = "if unused the ReentrantMutex will immediately unlock"]
pub struct ReentrantMutexGuard<'a, T: ?Sized> {
    mutex: &'a ReentrantMutex<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for ReentrantMutexGuard<'_, T> {}

impl<'a, T: ?Sized> ReentrantMutexGuard<'a, T> {
    fn new(mutex: &'a ReentrantMutex<T>) -> Self {
        ReentrantMutexGuard {
            mutex,
            _not_send: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for ReentrantMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this thread owns the mutex; only `&T` is handed out.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for ReentrantMutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // A guard only exists on the owning thread (it is !Send), so this cannot fail.
        let _ = self.mutex.inner.release();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ReentrantMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
