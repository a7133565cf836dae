//! A condition variable on `parking_lot_core`, for [`RawMutex`].
//!
//! A waiter is queued under the condition variable's address before it releases its mutex (in
//! `before_sleep`), so no notification sent after the release can be missed, and it waits
//! without the mutex: another thread's `try_lock` succeeds meanwhile. `notify_one` wakes exactly
//! one waiter and `notify_all` every waiter; there are no spurious wake-ups.
//!
//! One wait may be two parks: the wait driver parks quietly for a grace period first, and only
//! a wait that outlasts it is registered in the wait-for graph and parks again. Between the two
//! parks the waiter is out of the queue, yet it is still waiting: it is counted as *outside*,
//! and a notification that finds nobody parked but someone outside is *owed* to that waiter,
//! which takes it as it parks again. All three counts live in one word (waiters inside `wait`,
//! outside, owed) and `outside`/`owed` change only under the queue's lock (in `parking_lot_core`
//! callbacks), so a notification is never lost and never counted twice.
//!
//! The rules for the code inside callbacks are those of [`super::mutex`].

use super::{RawMutex, Waiter};
use crate::primitive::parking::{
    self as core, FilterOp, ParkResult, ParkToken, UnparkResult, UnparkToken,
};
use crate::primitive::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::cell::Cell;
use std::time::Instant;

const WAITERS_ONE: u64 = 1;
const WAITERS_MASK: u64 = 0xffff_ffff;
const OUTSIDE_ONE: u64 = 1 << 32;
const OUTSIDE_MASK: u64 = 0xffff << 32;
const OWED_ONE: u64 = 1 << 48;

const TOKEN_NOTIFY: UnparkToken = UnparkToken(0);
use super::park::{interrupt_parked, TOKEN_INTERRUPT};

/// How a park on a [`RawCondvar`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CvWake {
    Notified,
    TimedOut,
    /// A verdict was posted for the waiter.
    Interrupted,
}

/// A thread waiting on a condition variable. Its address is its park token: a notifier marks
/// the waiter it wakes, so that the wait-for graph sees a notified waiter as free before it
/// has even run.
pub(crate) struct CondWaiter<'a> {
    notified: AtomicBool,
    interrupted: Option<&'a AtomicBool>,
}

impl<'a> CondWaiter<'a> {
    pub(crate) fn new(interrupted: Option<&'a AtomicBool>) -> Self {
        let waiter = CondWaiter {
            notified: AtomicBool::new(false),
            interrupted,
        };
        // Under loom an atomic comes into being on first use (see `crate::primitive`): make
        // it here, on the waiter's thread, before any notifier can see it.
        #[cfg(loom)]
        waiter.notified.load(Ordering::Relaxed);
        waiter
    }

    /// The park token naming this waiter.
    pub(crate) fn token(&self) -> usize {
        self as *const CondWaiter<'_> as usize
    }

    /// Whether a notification has reached this waiter.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    pub(crate) fn notified(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    fn as_waiter(&self) -> Waiter<'a> {
        Waiter {
            token: self.token(),
            interrupted: self.interrupted,
        }
    }
}

/// Marks the waiter whose token was handed to a filter as notified.
///
/// # Safety
/// `token` is a parked thread's [`CondWaiter::token`]: a thread stays parked, and its
/// `CondWaiter` alive, until it is unparked, which happens only after the filter returns.
unsafe fn mark_notified(token: ParkToken) {
    // SAFETY: see the function's contract.
    let waiter = unsafe { &*(token.0 as *const CondWaiter<'_>) };
    waiter.notified.store(true, Ordering::Release);
}

/// The condition variable: waiters inside `wait`, waiters between two parks, notifications
/// owed to those (see the module's docs).
pub(crate) struct RawCondvar {
    counts: AtomicU64,
}

impl RawCondvar {
    pub(crate) const fn new() -> RawCondvar {
        RawCondvar {
            counts: AtomicU64::new(0),
        }
    }

    fn key(&self) -> usize {
        self as *const RawCondvar as usize
    }

    fn outside(counts: u64) -> u64 {
        (counts & OUTSIDE_MASK) >> 32
    }

    fn owed(counts: u64) -> u64 {
        counts >> 48
    }

    /// `(waiters, outside, owed)`, for tests.
    #[cfg(any(test, loom))]
    pub(super) fn counts(&self) -> (u64, u64, u64) {
        let counts = self.counts.load(Ordering::Relaxed);
        (
            counts & WAITERS_MASK,
            Self::outside(counts),
            Self::owed(counts),
        )
    }

    /// Enters a wait (the caller holds its mutex): counted until [`RawCondvar::leave`].
    pub(crate) fn enter(&self) {
        self.counts.fetch_add(WAITERS_ONE, Ordering::Relaxed);
    }

    /// Leaves a wait entered with [`RawCondvar::enter`].
    pub(crate) fn leave(&self) {
        self.counts.fetch_sub(WAITERS_ONE, Ordering::Relaxed);
    }

    /// Parks `waiter` until notified, `deadline`, or interrupted.
    ///
    /// `unlock`: the mutex the caller holds, released once the thread is queued (first park of
    /// a wait). `will_park_again`: if this park times out, the thread parks again within the
    /// same wait, so it counts as outside until then. `again`: this park follows one that
    /// timed out with `will_park_again`.
    ///
    /// An interrupt is only honoured on a park that releases no mutex (`unlock` is `None`), so
    /// that on return the mutex is always released.
    ///
    /// After `TimedOut` from a park with `will_park_again`, or after `Interrupted`, the thread
    /// counts as outside: it must park again (`again`) or [`RawCondvar::settle`].
    pub(crate) fn park(
        &self,
        unlock: Option<&RawMutex>,
        deadline: Option<Instant>,
        will_park_again: bool,
        again: bool,
        waiter: &CondWaiter<'_>,
    ) -> CvWake {
        let outcome = Cell::new(None);
        let interruptible = unlock.is_none();
        let validate = || {
            if again {
                let counts = self.counts.fetch_sub(OUTSIDE_ONE, Ordering::Relaxed);
                if Self::owed(counts) > 0 {
                    self.counts.fetch_sub(OWED_ONE, Ordering::Relaxed);
                    waiter.notified.store(true, Ordering::Release);
                    outcome.set(Some(CvWake::Notified));
                    return false;
                }
            }
            if interruptible && waiter.as_waiter().is_interrupted() {
                // Out of the queue but still in its wait, until it parks again or settles.
                self.counts.fetch_add(OUTSIDE_ONE, Ordering::Relaxed);
                outcome.set(Some(CvWake::Interrupted));
                return false;
            }
            true
        };
        let before_sleep = || {
            if let Some(mutex) = unlock {
                mutex.unlock();
            }
        };
        let timed_out = |_key: usize, _was_last: bool| {
            if will_park_again {
                self.counts.fetch_add(OUTSIDE_ONE, Ordering::Relaxed);
            }
        };
        // SAFETY: the key is this condition variable's address, parked on by its own code
        // only; `validate` and `timed_out` only touch atomics; `before_sleep` only unlocks a
        // mutex, which may unpark (allowed there) but never parks.
        let parked = unsafe {
            core::park(
                self.key(),
                validate,
                before_sleep,
                timed_out,
                ParkToken(waiter.token()),
                deadline,
            )
        };
        match parked {
            ParkResult::Unparked(TOKEN_INTERRUPT) => CvWake::Interrupted,
            ParkResult::Unparked(_) => CvWake::Notified,
            ParkResult::TimedOut => CvWake::TimedOut,
            ParkResult::Invalid => outcome.get().unwrap_or(CvWake::Notified),
        }
    }

    /// Wakes one waiter; returns whether there was one.
    pub(crate) fn notify_one(&self) -> bool {
        if self.counts.load(Ordering::Relaxed) & WAITERS_MASK == 0 {
            return false;
        }
        let mut first = true;
        let filter = |token: ParkToken| {
            if first {
                first = false;
                // SAFETY: `token` belongs to a thread parked on this key (filter contract).
                unsafe { mark_notified(token) };
                FilterOp::Unpark
            } else {
                FilterOp::Stop
            }
        };
        let owed_one = Cell::new(false);
        let callback = |result: UnparkResult| {
            if result.unparked_threads == 0 {
                let counts = self.counts.load(Ordering::Relaxed);
                if Self::outside(counts) > Self::owed(counts) {
                    self.counts.fetch_add(OWED_ONE, Ordering::Relaxed);
                    owed_one.set(true);
                }
            }
            TOKEN_NOTIFY
        };
        // SAFETY: the key is this condition variable's address; the callbacks only touch
        // atomics and parked waiters' `CondWaiter`s.
        let result = unsafe { core::unpark_filter(self.key(), filter, callback) };
        result.unparked_threads != 0 || owed_one.get()
    }

    /// Wakes every waiter; returns how many there were.
    pub(crate) fn notify_all(&self) -> usize {
        if self.counts.load(Ordering::Relaxed) & WAITERS_MASK == 0 {
            return 0;
        }
        let filter = |token: ParkToken| {
            // SAFETY: `token` belongs to a thread parked on this key (filter contract).
            unsafe { mark_notified(token) };
            FilterOp::Unpark
        };
        let owed_now = Cell::new(0u64);
        let callback = |_result: UnparkResult| {
            let counts = self.counts.load(Ordering::Relaxed);
            let extra = Self::outside(counts).saturating_sub(Self::owed(counts));
            if extra > 0 {
                self.counts.fetch_add(extra * OWED_ONE, Ordering::Relaxed);
            }
            owed_now.set(extra);
            TOKEN_NOTIFY
        };
        // SAFETY: as in `notify_one`.
        let result = unsafe { core::unpark_filter(self.key(), filter, callback) };
        result.unparked_threads + owed_now.get() as usize
    }

    /// Wakes the waiter parked with `token` for a verdict; false if it is not parked here.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    pub(crate) fn interrupt(&self, token: usize) -> bool {
        let woken = |result: UnparkResult| {
            if result.unparked_threads != 0 {
                // Out of the queue but still in its wait, until it parks again or settles.
                self.counts.fetch_add(OUTSIDE_ONE, Ordering::Relaxed);
            }
        };
        // SAFETY: the key is this condition variable's address; the callback only touches
        // atomics.
        unsafe { interrupt_parked(self.key(), token, woken) }
    }

    /// Ends the wait of a thread that is outside (see [`RawCondvar::park`]) without parking
    /// again; returns whether a notification owed to it was taken.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    pub(crate) fn settle(&self, waiter: &CondWaiter<'_>) -> bool {
        let took = Cell::new(false);
        // Runs under the queue's lock, like every other change of `outside` and `owed`.
        let validate = || {
            let counts = self.counts.fetch_sub(OUTSIDE_ONE, Ordering::Relaxed);
            if Self::owed(counts) > 0 {
                self.counts.fetch_sub(OWED_ONE, Ordering::Relaxed);
                waiter.notified.store(true, Ordering::Release);
                took.set(true);
            }
            false
        };
        // SAFETY: the key is this condition variable's address; `validate` only touches
        // atomics, and returning false means the thread never parks.
        unsafe {
            core::park(
                self.key(),
                validate,
                || {},
                |_, _| {},
                ParkToken(waiter.token()),
                None,
            );
        }
        took.get()
    }
}
