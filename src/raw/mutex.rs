//! lockwatch's own mutex on `parking_lot_core`.
//!
//! The algorithm is the one parking_lot's mutex uses — one byte with a locked bit and a parked
//! bit, a short spin, then parking in `parking_lot_core`'s table under the lock's address, and
//! a hand-over to the next waiter once in a while (about every 0.5 ms) so nobody starves. What
//! parking_lot's mutex cannot offer, and the wait driver needs, is a waiter that parks under a
//! token naming it and that can be woken alone, with a verdict, while the lock stays taken
//! ([`RawMutex::interrupt`]).
//!
//! Rules for the code inside `parking_lot_core` callbacks (`validate`, `timed_out`, the unpark
//! callbacks): they run under the queue's lock, so they only touch atomics; they never panic
//! and never call back into parking_lot.

use super::{Parked, Waiter};
use crate::primitive::parking::{self as core, ParkResult, SpinWait, UnparkResult, UnparkToken};
use crate::primitive::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

/// The lock is held.
const LOCKED: u8 = 1;
/// Some thread is (or is about to be) parked on the lock's address: a release must wake one.
const PARKED: u8 = 2;

/// A woken waiter must try again.
const TOKEN_RETRY: UnparkToken = UnparkToken(0);
/// A woken waiter owns the lock: the releaser handed it over without unlocking.
pub(super) const TOKEN_HANDOFF: UnparkToken = UnparkToken(1);
use super::park::{interrupt_parked, park_waiter, TOKEN_INTERRUPT};

/// A mutual-exclusion lock without data, the size of a byte.
pub(crate) struct RawMutex {
    state: AtomicU8,
}

impl RawMutex {
    pub(crate) const fn new() -> RawMutex {
        RawMutex {
            state: AtomicU8::new(0),
        }
    }

    /// The address its waiters park under (and condvar waiters are requeued onto).
    pub(super) fn key(&self) -> usize {
        self as *const RawMutex as usize
    }

    /// For a condvar requeueing a notified waiter onto this lock, with this lock's queue locked
    /// (inside `unpark_requeue`'s `validate`): sets the parked bit if the lock is held, so that
    /// its release wakes the requeued waiter. `None` if the lock is free (the waiter must be
    /// woken instead: nobody might ever release it); otherwise whether the bit was set here.
    pub(super) fn mark_parked_if_locked(&self) -> Option<bool> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED == 0 {
                return None;
            }
            if state & PARKED != 0 {
                return Some(false);
            }
            match self.state.compare_exchange_weak(
                state,
                state | PARKED,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(true),
                Err(now) => state = now,
            }
        }
    }

    /// Clears the parked bit, with this lock's queue locked and nobody parked in it: the last
    /// requeued condvar waiter timed out, or a requeue that set the bit moved nobody.
    pub(super) fn clear_parked(&self) {
        self.state.fetch_and(!PARKED, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
    }

    /// One attempt from the unlocked state without waiters, as [`RawMutex::lock`] begins:
    /// may fail although the lock is free (waiters parked, or a spurious failure).
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn try_lock_fast(&self) -> bool {
        self.state
            .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[inline]
    pub(crate) fn lock(&self) {
        if self
            .state
            .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow(None, Waiter::ANONYMOUS);
        }
    }

    /// Locks before `deadline`; false if it passed first.
    #[inline]
    pub(crate) fn try_lock_until(&self, deadline: Instant) -> bool {
        self.try_lock() || self.lock_slow(Some(deadline), Waiter::ANONYMOUS) == Parked::Acquired
    }

    /// Waits as `waiter`: until the lock is taken, `deadline` passes, or the waiter is
    /// interrupted (its flag is set, or [`RawMutex::interrupt`] woke it).
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    pub(crate) fn lock_as(&self, deadline: Option<Instant>, waiter: Waiter<'_>) -> Parked {
        if self.try_lock() {
            return Parked::Acquired;
        }
        self.lock_slow(deadline, waiter)
    }

    /// Unlocks. The caller holds the lock.
    #[inline]
    pub(crate) fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    /// The locked and parked bits, for tests.
    #[cfg(test)]
    pub(super) fn bits(&self) -> (bool, bool) {
        let state = self.state.load(Ordering::Relaxed);
        (state & LOCKED != 0, state & PARKED != 0)
    }

    #[inline]
    pub(crate) fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// Wakes the waiter parked with `token` for a verdict; false if it is not parked here.
    pub(crate) fn interrupt(&self, token: usize) -> bool {
        let woken = |result: UnparkResult| {
            if result.unparked_threads != 0 && !result.have_more_threads {
                self.state.fetch_and(!PARKED, Ordering::Relaxed);
            }
        };
        // SAFETY: the key is this lock's address, which only this lock's code parks on; the
        // callback only touches this lock's atomic state.
        unsafe { interrupt_parked(self.key(), token, woken) }
    }

    #[cold]
    fn lock_slow(&self, deadline: Option<Instant>, waiter: Waiter<'_>) -> Parked {
        let mut spin = SpinWait::new();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED == 0 {
                match self.state.compare_exchange_weak(
                    state,
                    state | LOCKED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Parked::Acquired,
                    Err(now) => state = now,
                }
                continue;
            }
            // Nobody is parked yet: spin a little, the holder may be about to leave.
            if state & PARKED == 0 && spin.spin() {
                state = self.state.load(Ordering::Relaxed);
                continue;
            }
            if state & PARKED == 0 {
                if let Err(now) = self.state.compare_exchange_weak(
                    state,
                    state | PARKED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    state = now;
                    continue;
                }
            }
            if waiter.is_interrupted() {
                return Parked::Interrupted;
            }
            // Parks only if the lock is still held with the parked bit set (a release in
            // between would have cleared it) and no verdict has been posted since the check.
            // SAFETY: the key is this lock's address; the callbacks only touch atomics.
            let parked = unsafe {
                park_waiter(
                    self.key(),
                    || self.state.load(Ordering::Relaxed) == LOCKED | PARKED,
                    || {
                        self.state.fetch_and(!PARKED, Ordering::Relaxed);
                    },
                    waiter,
                    deadline,
                )
            };
            match parked {
                ParkResult::Unparked(TOKEN_HANDOFF) => return Parked::Acquired,
                ParkResult::Unparked(TOKEN_INTERRUPT) => return Parked::Interrupted,
                ParkResult::TimedOut => return Parked::TimedOut,
                ParkResult::Unparked(_) | ParkResult::Invalid => {}
            }
            if waiter.is_interrupted() {
                return Parked::Interrupted;
            }
            spin.reset();
            state = self.state.load(Ordering::Relaxed);
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let callback = |result: UnparkResult| {
            if result.unparked_threads != 0 && result.be_fair {
                // Handed over: the lock stays held, now by the woken thread.
                if !result.have_more_threads {
                    self.state.store(LOCKED, Ordering::Relaxed);
                }
                return TOKEN_HANDOFF;
            }
            let rest = if result.have_more_threads { PARKED } else { 0 };
            self.state.store(rest, Ordering::Release);
            TOKEN_RETRY
        };
        // SAFETY: the key is this lock's address; the callback only touches its state.
        unsafe {
            core::unpark_one(self.key(), callback);
        }
    }
}
