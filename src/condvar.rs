use crate::core::CondvarCore;
use crate::mutex::MutexGuard;
use std::fmt;
use std::time::{Duration, Instant};

/// The result of a timed [`Condvar`] wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the wait ended because its time ran out.
    pub fn timed_out(self) -> bool {
        self.0
    }
}

/// A condition variable with the surface of `parking_lot::Condvar`, used with [`Mutex`](crate::Mutex).
///
/// A waiting thread is an edge of the wait-for graph that any running thread can end, so a
/// program whose every thread waits for a notification nobody can send is reported as a stall.
///
/// # Examples
/// ```
/// use lockwatch::{Condvar, Mutex};
/// use std::sync::Arc;
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let pair2 = pair.clone();
/// let t = lockwatch::thread::spawn(move || {
///     *pair2.0.lock() = true;
///     pair2.1.notify_one();
/// });
/// let mut ready = pair.0.lock();
/// pair.1.wait_while(&mut ready, |ready| !*ready);
/// drop(ready);
/// t.join().unwrap();
/// ```
///
/// As parking_lot's, a wait returns only when notified or timed out: never spuriously. A
/// waiter does not hold the mutex while it waits, so another thread's `try_lock` succeeds.
/// `notify_one` wakes exactly one waiter.
pub struct Condvar {
    core: CondvarCore,
}

impl Condvar {
    /// A new condition variable.
    #[track_caller]
    pub const fn new() -> Condvar {
        Condvar {
            core: CondvarCore::new(std::panic::Location::caller()),
        }
    }

    /// A new condition variable with a name shown in reports.
    #[track_caller]
    pub fn named(name: impl Into<std::sync::Arc<str>>) -> Condvar {
        Condvar {
            core: CondvarCore::named(name.into(), std::panic::Location::caller()),
        }
    }

    /// Releases the guard's mutex, waits for a notification, and re-acquires it.
    #[track_caller]
    pub fn wait<T: ?Sized>(&self, guard: &mut MutexGuard<'_, T>) {
        self.wait_inner(guard, None);
    }

    /// As [`Condvar::wait`], giving up after `timeout`.
    #[track_caller]
    pub fn wait_for<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
    ) -> WaitTimeoutResult {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_until(guard, deadline),
            None => {
                self.wait_inner(guard, None);
                WaitTimeoutResult(false)
            }
        }
    }

    /// As [`Condvar::wait`], giving up at `deadline`.
    #[track_caller]
    pub fn wait_until<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Instant,
    ) -> WaitTimeoutResult {
        WaitTimeoutResult(self.wait_inner(guard, Some(deadline)))
    }

    /// Waits while `condition` holds, re-checking after every wakeup.
    #[track_caller]
    pub fn wait_while<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) {
        while condition(&mut **guard) {
            self.wait_inner(guard, None);
        }
    }

    /// As [`Condvar::wait_while`], giving up after `timeout`.
    #[track_caller]
    pub fn wait_while_for<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        mut condition: impl FnMut(&mut T) -> bool,
        timeout: Duration,
    ) -> WaitTimeoutResult {
        // As parking_lot: the result says whether the last wait timed out; the condition is
        // not evaluated again after a time-out.
        let deadline = Instant::now().checked_add(timeout);
        while condition(&mut **guard) {
            if self.wait_inner(guard, deadline) {
                return WaitTimeoutResult(true);
            }
        }
        WaitTimeoutResult(false)
    }

    /// Wakes one waiting thread; returns whether there was one.
    pub fn notify_one(&self) -> bool {
        self.core.notify_one()
    }

    /// Wakes every waiting thread; returns how many there were.
    pub fn notify_all(&self) -> usize {
        self.core.notify_all()
    }

    /// Returns whether the deadline passed.
    #[track_caller]
    fn wait_inner<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Option<Instant>,
    ) -> bool {
        // The guard proves this thread holds the mutex; the core releases it while waiting
        // and holds it again whenever it returns or unwinds, so the guard stays valid.
        self.core
            .wait(&guard.mutex.core, deadline, std::panic::Location::caller())
    }
}

impl Default for Condvar {
    #[track_caller]
    fn default() -> Condvar {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
