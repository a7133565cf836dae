//! A condition variable on `parking_lot_core`, for [`RawMutex`].
//!
//! The condition variable keeps its own list of the waiters not yet notified, in the order
//! they began to wait, and each waiter parks under its own address. A notifier takes waiters
//! from the front of that list, so it knows exactly which waiter each notification is for:
//! `notify_one` ends exactly one wait and `notify_all` every wait listed when it is called;
//! there are no spurious wake-ups. A waiter joins the list while it still holds its mutex and
//! releases the mutex only once it is parked (in `before_sleep`), so no notification sent after
//! the release can be missed, and it waits without the mutex: another thread's `try_lock`
//! succeeds meanwhile.
//!
//! **Requeueing.** A notified waiter must take its mutex back, and the notifier usually holds
//! it. Waking the waiter then would only have it park again on the mutex, so the notifier
//! moves it, still parked, onto the mutex's queue (`unpark_requeue`, as parking_lot's condvar
//! does) and sets the mutex's parked bit: the mutex's release wakes it once, often handing the
//! mutex over. A free mutex has nobody to release it, so a waiter notified then is woken.
//!
//! **One wait may be several parks.** The wait driver parks quietly for a grace period first,
//! and only a wait that outlasts it is registered in the wait-for graph and parks again; a
//! registered wait may be woken for a verdict and park again. A waiter stays in the list for
//! its whole wait, parks or not, so a notification sent between two parks is the waiter's: it
//! sees it as it parks again, or as it leaves ([`RawCondvar::wait_as`]).
//!
//! **Who touches a waiter when.** A notifier marks the waiter *notifying* under the list's
//! lock, then wakes or requeues it and only then marks it notified or requeued (under the
//! waiter's own parking queue lock). In between, the waiter may not end its wait, since the
//! notifier still reads it and may still find it parked: a waiter that finds itself
//! *notifying* parks until the notifier has dealt with it. So a waiter's memory is never
//! touched after it ended its wait, and a waiter's address, reused by a later wait, is never
//! mistaken for it.
//!
//! The rules for the code inside `parking_lot_core` callbacks are those of [`super::mutex`].

use super::mutex::TOKEN_HANDOFF;
use super::park::{interrupt_parked, TOKEN_INTERRUPT};
use super::{RawMutex, Waiter};
use crate::primitive::parking::{
    self as core, FilterOp, ParkResult, ParkToken, RequeueOp, UnparkResult, UnparkToken,
};
use crate::primitive::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::cell::Cell;
use std::time::Instant;

/// In the condvar's list, not notified.
const WAITING: u8 = 0;
/// Taken off the list by a notifier that has not yet woken or requeued it.
const NOTIFYING: u8 = 1;
/// Notified: woken by its notifier, or it sees the notification before it parks again.
const NOTIFIED: u8 = 2;
/// Notified and parked on its mutex's queue (or woken from there): the mutex's release, a
/// time-out or a verdict wakes it.
const REQUEUED: u8 = 3;
/// Notified, and its thread holds the mutex: handed over by its release, or never released.
const HOLDING: u8 = 4;

/// A notifier woke the waiter (a requeued one is woken by its mutex, with the mutex's tokens).
const TOKEN_NOTIFY: UnparkToken = UnparkToken(3);

/// How a park on a [`RawCondvar`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CvWake {
    /// The waiter was notified: its wait is over ([`CondWaiter::holds_mutex`] says whether it
    /// must still take its mutex back).
    Notified,
    /// The deadline passed before a notification reached the waiter.
    TimedOut,
    /// Woken for a verdict. It may have been notified meanwhile ([`CondWaiter::notified`]),
    /// then parked on its mutex's queue: it is not holding the mutex.
    Interrupted,
}

/// A thread waiting on a condition variable, with the mutex it takes back. Its address is its
/// park key and its park token, both unique while it waits.
pub(crate) struct CondWaiter<'a> {
    state: AtomicU8,
    /// Its neighbours in the condvar's list while `WAITING` (see [`RawCondvar`]), touched only
    /// under the list's lock: the next waiter (0 for the last), and the previous one (for the
    /// first waiter, the last one).
    next: AtomicUsize,
    prev: AtomicUsize,
    mutex: &'a RawMutex,
    interrupted: Option<&'a AtomicBool>,
}

impl<'a> CondWaiter<'a> {
    pub(crate) fn new(mutex: &'a RawMutex, interrupted: Option<&'a AtomicBool>) -> Self {
        let waiter = CondWaiter {
            state: AtomicU8::new(WAITING),
            next: AtomicUsize::new(0),
            prev: AtomicUsize::new(0),
            mutex,
            interrupted,
        };
        // Under loom an atomic comes into being on first use (see `crate::primitive`): make
        // them here, on the waiter's thread, before any notifier can see them.
        #[cfg(loom)]
        {
            waiter.state.load(Ordering::Relaxed);
            waiter.next.load(Ordering::Relaxed);
            waiter.prev.load(Ordering::Relaxed);
        }
        waiter
    }

    /// The park token naming this waiter, on its own key and on its mutex's queue.
    pub(crate) fn token(&self) -> usize {
        self as *const CondWaiter<'_> as usize
    }

    fn key(&self) -> usize {
        self.token()
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Whether a notification has reached this waiter (it may not have run since).
    pub(crate) fn notified(&self) -> bool {
        self.state() != WAITING
    }

    /// Whether the waiter was notified and moved onto its mutex's queue: it now waits for the
    /// mutex, and only the mutex's release (or a time-out, or a verdict) wakes it.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    pub(crate) fn requeued(&self) -> bool {
        self.state() == REQUEUED
    }

    /// For the waiting thread, once its wait is over: whether it holds its mutex already (the
    /// mutex's release handed it over, or the notification came before it was released).
    pub(crate) fn holds_mutex(&self) -> bool {
        self.state() == HOLDING
    }

    /// Wakes this waiter for a verdict where it is parked: under its own key, or on its
    /// mutex's queue once requeued. False if it is parked in neither.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    pub(crate) fn interrupt(&self) -> bool {
        // SAFETY: the key is this waiter's address, which only its own thread parks under; the
        // callback does nothing.
        if unsafe { interrupt_parked(self.key(), self.token(), |_| {}) } {
            return true;
        }
        // A requeue moves the waiter under both queues' locks and marks it before releasing
        // them, so a waiter missing from its own queue is either requeued (and marked so) or
        // no longer parked. Requeues only go one way: this finds it unless it was woken.
        self.state() == REQUEUED && self.mutex.interrupt(self.token())
    }

    fn as_waiter(&self) -> Waiter<'a> {
        Waiter {
            token: self.token(),
            interrupted: self.interrupted,
        }
    }
}

/// The condition variable: the list of waiters not yet notified, one word.
///
/// The list is intrusive (its links live in the [`CondWaiter`]s) and doubly linked, with the
/// first waiter's `prev` pointing at the last, so that joining at the end and leaving from
/// anywhere take constant time. Its lock is `parking_lot_core`'s queue lock for the condvar's
/// own address, under which nobody ever parks: [`RawCondvar::locked`] takes it through an
/// unpark that finds nobody, and the code under it follows the rules of the callbacks.
pub(crate) struct RawCondvar {
    /// The address of the first [`CondWaiter`] in [`RawCondvar::wait_as`] that is `WAITING`,
    /// or 0. A waiter is alive while it is listed (`wait_as` removes it before returning), and
    /// while it is `NOTIFYING` (it does not end its wait then).
    head: AtomicUsize,
}

/// The waiter at `address`, listed or `NOTIFYING`.
///
/// # Safety
/// `address` is a [`CondWaiter`]'s, listed (with the list locked) or `NOTIFYING`: alive.
unsafe fn waiter_at<'w>(address: usize) -> &'w CondWaiter<'w> {
    // SAFETY: the function's contract.
    unsafe { &*(address as *const CondWaiter<'w>) }
}

impl RawCondvar {
    pub(crate) const fn new() -> RawCondvar {
        RawCondvar {
            head: AtomicUsize::new(0),
        }
    }

    fn key(&self) -> usize {
        self as *const RawCondvar as usize
    }

    /// Runs `f` with the list locked. `f` follows the rules for `parking_lot_core` callbacks:
    /// it runs inside one.
    fn locked(&self, f: impl FnOnce()) {
        let callback = |_: UnparkResult| {
            f();
            TOKEN_NOTIFY
        };
        // SAFETY: the key is this condvar's address, under which nobody parks (waiters park
        // under their own); the filter stops at once and the callback follows the rules.
        unsafe { core::unpark_filter(self.key(), |_| FilterOp::Stop, callback) };
    }

    /// How many waiters wait for a notification, for tests (which call it first thing, so that
    /// under loom the list's head comes into being before any thread shares it).
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        let count = Cell::new(0);
        self.locked(|| {
            let mut at = self.head.load(Ordering::Relaxed);
            while at != 0 {
                count.set(count.get() + 1);
                // SAFETY: listed, with the list locked.
                at = unsafe { waiter_at(at) }.next.load(Ordering::Relaxed);
            }
        });
        count.get()
    }

    /// Lists `waiter` last. With the list locked.
    fn push_back(&self, waiter: &CondWaiter<'_>) {
        let me = waiter.key();
        waiter.next.store(0, Ordering::Relaxed);
        match self.head.load(Ordering::Relaxed) {
            0 => {
                waiter.prev.store(me, Ordering::Relaxed);
                self.head.store(me, Ordering::Relaxed);
            }
            head => {
                // SAFETY: listed, with the list locked.
                let head = unsafe { waiter_at(head) };
                let tail = head.prev.load(Ordering::Relaxed);
                // SAFETY: listed, with the list locked.
                unsafe { waiter_at(tail) }.next.store(me, Ordering::Relaxed);
                waiter.prev.store(tail, Ordering::Relaxed);
                head.prev.store(me, Ordering::Relaxed);
            }
        }
    }

    /// Unlists `waiter`, which is listed. With the list locked.
    fn unlink(&self, waiter: &CondWaiter<'_>) {
        let next = waiter.next.load(Ordering::Relaxed);
        let prev = waiter.prev.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Relaxed);
        if head == waiter.key() {
            self.head.store(next, Ordering::Relaxed);
            if next != 0 {
                // SAFETY: listed, with the list locked.
                unsafe { waiter_at(next) }
                    .prev
                    .store(prev, Ordering::Relaxed);
            }
            return;
        }
        // SAFETY: listed (it is not the first, so it has a predecessor), with the list locked.
        unsafe { waiter_at(prev) }
            .next
            .store(next, Ordering::Relaxed);
        let after = if next != 0 { next } else { head };
        // SAFETY: listed, with the list locked.
        unsafe { waiter_at(after) }
            .prev
            .store(prev, Ordering::Relaxed);
    }

    /// Runs `body` with `waiter` listed for a notification: the wait of a thread holding the
    /// waiter's mutex, which `body` releases with its first [`RawCondvar::park`]. On return
    /// (or unwind) the waiter has left the list and its state is final:
    /// [`CondWaiter::notified`] says whether a notification ended the wait (it may have
    /// arrived after the last park timed out), [`CondWaiter::holds_mutex`] whether the caller
    /// already holds the mutex again.
    pub(crate) fn wait_as<R>(&self, waiter: &CondWaiter<'_>, body: impl FnOnce() -> R) -> R {
        /// Leaves the list on every exit from [`RawCondvar::wait_as`], unwinding included:
        /// a listed waiter must stay alive, and `waiter` is borrowed for the whole call.
        struct Leave<'c, 'w, 'a> {
            cv: &'c RawCondvar,
            waiter: &'w CondWaiter<'a>,
        }
        impl Drop for Leave<'_, '_, '_> {
            fn drop(&mut self) {
                self.cv.leave(self.waiter);
            }
        }

        self.locked(|| self.push_back(waiter));
        let _leave = Leave { cv: self, waiter };
        body()
    }

    fn leave(&self, waiter: &CondWaiter<'_>) {
        if waiter.state() == WAITING {
            let left = Cell::new(false);
            self.locked(|| {
                // Notifiers take waiters off the list and mark them under this lock.
                if waiter.state.load(Ordering::Relaxed) == WAITING {
                    self.unlink(waiter);
                    left.set(true);
                }
            });
            if left.get() {
                return;
            }
        }
        if waiter.state() == NOTIFYING {
            // Its notifier still needs it: wait until it has been woken or requeued.
            self.park(waiter, false, None);
        }
    }

    /// Parks `waiter`, listed by [`RawCondvar::wait_as`], until notified, `deadline` or
    /// interrupted. `release_mutex`: the first park of a wait, which releases the mutex the
    /// caller holds once the thread is queued; it takes no interrupt, so that it always
    /// returns with the mutex released or [`CondWaiter::holds_mutex`]. After `TimedOut` or
    /// `Interrupted` the waiter is still listed: it may park again (never releasing the mutex
    /// again) or end its wait.
    pub(crate) fn park(
        &self,
        waiter: &CondWaiter<'_>,
        release_mutex: bool,
        deadline: Option<Instant>,
    ) -> CvWake {
        let mut releases = release_mutex;
        let mut deadline = deadline;
        loop {
            // Runs under the waiter's own queue lock, which its notifier's callback takes too.
            let validate = || match waiter.state() {
                WAITING => releases || !waiter.as_waiter().is_interrupted(),
                // Its notifier is about to wake or requeue it: it finds it parked.
                NOTIFYING => true,
                _ => false,
            };
            let before_sleep = || {
                if releases {
                    waiter.mutex.unlock();
                }
            };
            let timed_out = |key: usize, was_last: bool| {
                // Timed out on the mutex's queue: the mutex's parked bit is this waiter's to
                // clear if it was the last one there, as a timed lock waiter's would be.
                if key != waiter.key() && was_last {
                    waiter.mutex.clear_parked();
                }
            };
            // SAFETY: the key is the waiter's address, which only its own thread parks under
            // (and from which only its notifier requeues it); `validate` and `timed_out` only
            // touch atomics; `before_sleep` only unlocks a mutex, which may unpark (allowed
            // there) but never parks.
            let parked = unsafe {
                core::park(
                    waiter.key(),
                    validate,
                    before_sleep,
                    timed_out,
                    ParkToken(waiter.token()),
                    deadline,
                )
            };
            let held_all_along = releases && parked == ParkResult::Invalid;
            if parked != ParkResult::Invalid {
                // `before_sleep` ran: the mutex is released.
                releases = false;
            }
            match waiter.state() {
                NOTIFYING => {
                    // Timed out or woken for a verdict just as a notifier took it: the
                    // notifier is on its way and needs it parked, with no time-out.
                    deadline = None;
                }
                REQUEUED => {
                    return match parked {
                        ParkResult::Unparked(TOKEN_HANDOFF) => {
                            waiter.state.store(HOLDING, Ordering::Relaxed);
                            CvWake::Notified
                        }
                        ParkResult::Unparked(TOKEN_INTERRUPT) => CvWake::Interrupted,
                        // Woken by the release to try the mutex, or timed out on its queue:
                        // notified either way, and the mutex is to be taken.
                        _ => CvWake::Notified,
                    };
                }
                WAITING => {
                    return match parked {
                        ParkResult::TimedOut => CvWake::TimedOut,
                        // Woken for a verdict, or a verdict was posted before it parked.
                        _ => CvWake::Interrupted,
                    };
                }
                _ => {
                    // Notified: woken by its notifier, or the notification came before it
                    // parked (or after it timed out).
                    if held_all_along {
                        waiter.state.store(HOLDING, Ordering::Relaxed);
                    }
                    return CvWake::Notified;
                }
            }
        }
    }

    /// Ends one wait; returns whether there was one.
    pub(crate) fn notify_one(&self) -> bool {
        if self.head.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let first = Cell::new(0);
        self.locked(|| {
            let head = self.head.load(Ordering::Relaxed);
            if head != 0 {
                // SAFETY: listed, with the list locked.
                let waiter = unsafe { waiter_at(head) };
                self.unlink(waiter);
                waiter.state.store(NOTIFYING, Ordering::Release);
                first.set(head);
            }
        });
        if first.get() == 0 {
            return false;
        }
        // SAFETY: `NOTIFYING`, marked by this thread: alive until it is dealt with here.
        unsafe { wake_or_requeue(waiter_at(first.get())) };
        true
    }

    /// Ends every wait; returns how many there were.
    pub(crate) fn notify_all(&self) -> usize {
        if self.head.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        // The whole list, taken at once; its links stay as they are (nobody touches the links
        // of a waiter that is not listed), so it is walked again below.
        let first = Cell::new(0);
        self.locked(|| {
            let mut at = self.head.swap(0, Ordering::Relaxed);
            first.set(at);
            while at != 0 {
                // SAFETY: listed until the swap above, with the list locked.
                let waiter = unsafe { waiter_at(at) };
                at = waiter.next.load(Ordering::Relaxed);
                waiter.state.store(NOTIFYING, Ordering::Release);
            }
        });
        let mut count = 0;
        let mut at = first.get();
        while at != 0 {
            // SAFETY: `NOTIFYING`, marked by this thread: alive until it is dealt with here,
            // which is after its link to the next one is read.
            let waiter = unsafe { waiter_at(at) };
            at = waiter.next.load(Ordering::Relaxed);
            // SAFETY: as above.
            unsafe { wake_or_requeue(waiter) };
            count += 1;
        }
        count
    }
}

/// Moves `waiter`, taken off the list by this thread, onto its mutex's queue if the mutex is
/// held, or wakes it; then marks it `REQUEUED` or `NOTIFIED`, its last use here. A waiter not
/// parked under its key (between two parks, or not yet parked) is marked `NOTIFIED`: it sees
/// it as it parks or leaves.
///
/// # Safety
/// `waiter` is `NOTIFYING`, marked by the calling thread: it stays alive, and so does its
/// mutex, until this marks it.
unsafe fn wake_or_requeue(waiter: &CondWaiter<'_>) {
    let mutex = waiter.mutex;
    let marked_parked = Cell::new(false);
    // Both queues' locks are held from here to the end of `callback`; the mutex's release
    // needs the mutex's queue lock once its parked bit is set, so it cannot slip in between.
    let validate = || match mutex.mark_parked_if_locked() {
        Some(newly) => {
            marked_parked.set(newly);
            RequeueOp::RequeueOne
        }
        None => RequeueOp::UnparkOne,
    };
    let callback = |_op: RequeueOp, result: UnparkResult| {
        let requeued = result.requeued_threads != 0;
        if marked_parked.get() && !requeued {
            // Nobody was parked under the key after all, and nobody is on the mutex's queue
            // either (its parked bit was clear): leave its release on the fast path.
            mutex.clear_parked();
        }
        let state = if requeued { REQUEUED } else { NOTIFIED };
        waiter.state.store(state, Ordering::Release);
        TOKEN_NOTIFY
    };
    // SAFETY: the keys are the waiter's address and its mutex's, parked under by their own
    // code only; the callbacks only touch atomics of the waiter and the mutex, both alive
    // (function contract).
    unsafe { core::unpark_requeue(waiter.key(), mutex.key(), validate, callback) };
}
