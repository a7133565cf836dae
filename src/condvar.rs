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
/// Like parking_lot's, a wait may return without a notification (a spurious wakeup), so wait
/// in a loop or use [`Condvar::wait_while`].
pub struct Condvar {
    cv: parking_lot::Condvar,
    #[cfg(feature = "detect")]
    state: detect::CondvarState,
}

impl Condvar {
    /// A new condition variable.
    #[track_caller]
    pub const fn new() -> Condvar {
        Condvar {
            cv: parking_lot::Condvar::new(),
            #[cfg(feature = "detect")]
            state: detect::CondvarState::new(None, std::panic::Location::caller()),
        }
    }

    /// A new condition variable with a name shown in reports.
    #[track_caller]
    #[allow(unused_variables)]
    pub fn named(name: impl Into<std::sync::Arc<str>>) -> Condvar {
        Condvar {
            cv: parking_lot::Condvar::new(),
            #[cfg(feature = "detect")]
            state: detect::CondvarState::new(Some(name.into()), std::panic::Location::caller()),
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
        #[cfg(feature = "detect")]
        self.state.before_notify();
        let woke = self.cv.notify_one();
        #[cfg(feature = "detect")]
        let woke = self.state.after_notify(usize::from(woke), false) > 0;
        woke
    }

    /// Wakes every waiting thread; returns how many there were.
    pub fn notify_all(&self) -> usize {
        #[cfg(feature = "detect")]
        self.state.before_notify();
        let woke = self.cv.notify_all();
        #[cfg(feature = "detect")]
        let woke = self.state.after_notify(woke, true);
        woke
    }

    /// Returns whether the deadline passed.
    #[track_caller]
    fn wait_inner<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Option<Instant>,
    ) -> bool {
        let raw = guard.mutex.core.raw();
        // SAFETY: the lockwatch guard proves this thread holds the raw mutex; the parking_lot
        // guard made here stands for that same hold only while parking_lot's condvar needs
        // it. It is never dropped (ManuallyDrop), even if the wait unwinds, so the hold stays
        // owned by the lockwatch guard and is released exactly once.
        let mut raw_guard = std::mem::ManuallyDrop::new(unsafe { raw.make_guard_unchecked() });
        #[cfg(feature = "detect")]
        let timed_out = detect::wait(
            self,
            &guard.mutex.core,
            &mut raw_guard,
            deadline,
            std::panic::Location::caller(),
        );
        #[cfg(not(feature = "detect"))]
        let timed_out = match deadline {
            Some(deadline) => self.cv.wait_until(&mut *raw_guard, deadline).timed_out(),
            None => {
                self.cv.wait(&mut *raw_guard);
                false
            }
        };
        timed_out
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

#[cfg(feature = "detect")]
mod detect {
    use super::Condvar;
    use crate::config;
    use crate::core::{Kind, LockCore, Op};
    use crate::raw::{Access, RawMutex};
    use crate::rt::{self, Probe, Waiting};
    use std::panic::Location;
    use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    pub(super) struct CondvarState {
        id: AtomicU64,
        name: Option<Arc<str>>,
        created_at: &'static Location<'static>,
        /// Notifications sent, so a wait cut into slices never misses one sent between them.
        notifications: AtomicU64,
        /// Threads woken by a notification that have not returned yet: what `notify_one` must
        /// not count again as waiting to be woken.
        pending: AtomicI64,
        /// Threads inside `wait`, parked or between two slices of it: what `notify_one` and
        /// `notify_all` report, as if the wait were one uninterrupted park.
        waiters: AtomicUsize,
    }

    impl CondvarState {
        pub(super) const fn new(
            name: Option<Arc<str>>,
            created_at: &'static Location<'static>,
        ) -> Self {
            CondvarState {
                id: AtomicU64::new(0),
                name,
                created_at,
                notifications: AtomicU64::new(0),
                pending: AtomicI64::new(0),
                waiters: AtomicUsize::new(0),
            }
        }

        fn id(&self) -> u64 {
            match self.id.load(Ordering::Relaxed) {
                0 => {
                    let fresh = rt::next_resource_id();
                    match self
                        .id
                        .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
                    {
                        Ok(_) => fresh,
                        Err(winner) => winner,
                    }
                }
                id => id,
            }
        }

        pub(super) fn before_notify(&self) {
            self.notifications.fetch_add(1, Ordering::SeqCst);
        }

        /// Returns how many waiters the notification reached: those parked that parking_lot
        /// woke, or, if more, those inside `wait` (a waiter between slices sees the changed
        /// notification count and returns).
        pub(super) fn after_notify(&self, woken: usize, all: bool) -> usize {
            // Counted again after parking_lot woke someone: a waiter that read the count
            // between the first increment and its own parking was woken without seeing it.
            self.notifications.fetch_add(1, Ordering::SeqCst);
            let inside = self.waiters.load(Ordering::SeqCst);
            // Only tracked waiters ever take a pending wakeup back.
            let tracked_woken = woken.min(inside);
            if tracked_woken > 0 {
                self.pending
                    .fetch_add(tracked_woken as i64, Ordering::SeqCst);
            }
            let already_woken = self.pending.load(Ordering::SeqCst).max(0) as usize;
            let not_yet_woken = inside.saturating_sub(already_woken);
            if all {
                woken.max(inside)
            } else {
                woken.max(not_yet_woken.min(1))
            }
        }
    }

    struct Restore<'a> {
        state: &'a CondvarState,
        meta: &'a rt::Meta,
        suspended: Option<rt::Suspended>,
        site: &'static Location<'static>,
    }

    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            self.state.waiters.fetch_sub(1, Ordering::SeqCst);
            rt::resume_hold(self.meta, self.suspended.take(), self.site);
        }
    }

    struct CondvarProbe<'a> {
        state: &'a CondvarState,
        /// The notification count when this wait began.
        seen: u64,
        /// The mutex the waiter re-acquires once notified.
        mutex: rt::LockProbe<'a, RawMutex>,
    }

    impl Probe for CondvarProbe<'_> {
        fn resource_id(&self) -> u64 {
            self.state.id()
        }
        fn kind(&self) -> Kind {
            Kind::Condvar
        }
        fn name(&self) -> Option<Arc<str>> {
            self.state.name.clone()
        }
        fn created_at(&self) -> &'static Location<'static> {
            self.state.created_at
        }
        fn available(&self) -> bool {
            // A notification since this wait began: the waiter was woken, or it returns at its
            // next slice. Either way it only needs its mutex now (see `then`).
            self.state.notifications.load(Ordering::SeqCst) != self.seen
        }
        fn owner(&self) -> Option<(u64, Option<&'static Location<'static>>)> {
            None
        }
        fn then(&self) -> Option<&dyn Probe> {
            // Once notified, the waiter is only as free as the mutex it must take back: a
            // notifier that keeps the mutex and then waits for the waiter deadlocks.
            Some(&self.mutex)
        }
    }

    /// The instrumented wait: the mutex's hold leaves the thread's record while it waits, the
    /// wait is registered once it outlasts the grace period, and it is cut into slices so a
    /// verdict posted by the watchdog is taken. Returns whether the deadline passed.
    pub(super) fn wait(
        cv: &Condvar,
        mutex: &LockCore<RawMutex>,
        raw_guard: &mut parking_lot::MutexGuard<'_, ()>,
        deadline: Option<Instant>,
        site: &'static Location<'static>,
    ) -> bool {
        if !config::enabled() {
            return match deadline {
                Some(d) => cv.cv.wait_until(raw_guard, d).timed_out(),
                None => {
                    cv.cv.wait(raw_guard);
                    false
                }
            };
        }
        let state = &cv.state;
        let started = Instant::now();
        let seen = state.notifications.load(Ordering::SeqCst);
        state.waiters.fetch_add(1, Ordering::SeqCst);
        // Undone on every exit, unwinding included: the waiter count, and the mutex's hold,
        // which is back (re-acquired at the wait's call site) whenever this returns or unwinds.
        let _restore = Restore {
            state,
            meta: mutex.meta(),
            suspended: rt::suspend_hold(mutex.meta()),
            site,
        };
        let mut timed_out = false;
        // One slice of the wait; true when the wait is over (notified, timed out, or a
        // notification was sent while this thread was between slices, holding the mutex
        // rather than parked: it returns as a spurious wakeup instead of missing it).
        let mut slice_wait = |until: Instant, timed_out: &mut bool| -> bool {
            let result = cv.cv.wait_until(raw_guard, until);
            if !result.timed_out() {
                state.pending.fetch_sub(1, Ordering::SeqCst);
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                *timed_out = true;
                return true;
            }
            state.notifications.load(Ordering::SeqCst) != seen
        };
        let grace_end = started + rt::GRACE;
        let first_until = deadline.map_or(grace_end, |d| d.min(grace_end));
        let registered = rt::with_ctx(|ctx| {
            let probe = CondvarProbe {
                state,
                seen,
                mutex: rt::LockProbe::new(mutex, Access::Exclusive),
            };
            // Registered before the first slice, unlike a lock's wait: a notified waiter
            // re-takes the mutex inside parking_lot, where it can block for good before any
            // slice ends. The backtrace waits for the grace period, as elsewhere.
            let timed = deadline.is_some();
            let waiting = Waiting::register(ctx, &probe, Op::Wait, site, started, timed, false);
            if slice_wait(first_until, &mut timed_out) {
                return true;
            }
            waiting.capture_backtrace();
            waiting.block_scanned_elsewhere(deadline, |slice| {
                slice_wait(Instant::now() + slice, &mut timed_out)
            })
        });
        match registered {
            Some(ended) => timed_out |= !ended,
            // The thread's locals are gone (a wait in a thread-local destructor): wait
            // untracked, still in slices.
            None => loop {
                let until = Instant::now() + rt::GRACE * 100;
                if slice_wait(deadline.map_or(until, |d| d.min(until)), &mut timed_out) {
                    break;
                }
            },
        }
        timed_out
    }
}
