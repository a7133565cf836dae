//! An ownerless counted primitive on `parking_lot_core`: permits that any thread may take and
//! any thread may give back. It is the raw primitive of [`Lock`](crate::Lock) (one permit) and
//! is built to carry `Semaphore` and `BoundedSemaphore`.
//!
//! Releasing is a first-class operation of anybody's, not an unlock by a stranger: nothing here
//! assumes that the thread that gives a permit back took it, so no lock's ownership contract is
//! bent (parking_lot's `force_unlock` requires the caller to own the guard it stands for).
//!
//! The state word holds the free permits shifted left by one, and a parked bit. The rules for
//! the code inside `parking_lot_core` callbacks are those of [`super::mutex`].

use super::{Parked, Waiter};
use crate::primitive::parking::{self as core, ParkResult, SpinWait, UnparkResult, UnparkToken};
use crate::primitive::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Some thread is (or is about to be) parked waiting for a permit.
const PARKED: usize = 1;
/// One free permit, in the state word.
const PERMIT: usize = 2;

/// A woken waiter must try again.
const TOKEN_RETRY: UnparkToken = UnparkToken(0);
/// A woken waiter was given a permit directly by the releaser.
const TOKEN_HANDOFF: UnparkToken = UnparkToken(1);
use super::park::{interrupt_parked, park_waiter, TOKEN_INTERRUPT};

pub(crate) struct RawSemaphore {
    state: AtomicUsize,
}

impl RawSemaphore {
    pub(crate) const fn new(permits: usize) -> RawSemaphore {
        RawSemaphore {
            state: AtomicUsize::new(permits * PERMIT),
        }
    }

    fn key(&self) -> usize {
        self as *const RawSemaphore as usize
    }

    /// The permits free right now.
    #[inline]
    pub(crate) fn available(&self) -> usize {
        self.state.load(Ordering::Relaxed) / PERMIT
    }

    /// Takes a permit if one is free.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state < PERMIT {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state - PERMIT,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
    }

    #[inline]
    pub(crate) fn acquire(&self) {
        if !self.try_acquire() {
            self.acquire_slow(None, Waiter::ANONYMOUS);
        }
    }

    /// Takes a permit before `deadline`; false if it passed first.
    pub(crate) fn try_acquire_until(&self, deadline: Instant) -> bool {
        self.try_acquire()
            || self.acquire_slow(Some(deadline), Waiter::ANONYMOUS) == Parked::Acquired
    }

    /// Waits as `waiter` for a permit, until `deadline`, or until interrupted.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    pub(crate) fn acquire_as(&self, deadline: Option<Instant>, waiter: Waiter<'_>) -> Parked {
        if self.try_acquire() {
            return Parked::Acquired;
        }
        self.acquire_slow(deadline, waiter)
    }

    /// Gives one permit back, from any thread: to a parked waiter directly, now and then (so
    /// that waiters are not starved by threads that keep taking permits as they come back),
    /// otherwise to the count.
    #[inline]
    pub(crate) fn release(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & PARKED == 0 {
            match self.state.compare_exchange_weak(
                state,
                state + PERMIT,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
        self.release_slow();
    }

    /// Wakes the waiter parked with `token` for a verdict; false if it is not parked here.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    pub(crate) fn interrupt(&self, token: usize) -> bool {
        let woken = |result: UnparkResult| {
            if result.unparked_threads != 0 && !result.have_more_threads {
                self.state.fetch_and(!PARKED, Ordering::Relaxed);
            }
        };
        // SAFETY: the key is this primitive's address, parked on by its own code only; the callback
        // only touches its atomic state.
        unsafe { interrupt_parked(self.key(), token, woken) }
    }

    #[cold]
    fn acquire_slow(&self, deadline: Option<Instant>, waiter: Waiter<'_>) -> Parked {
        let mut spin = SpinWait::new();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state >= PERMIT {
                match self.state.compare_exchange_weak(
                    state,
                    state - PERMIT,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Parked::Acquired,
                    Err(now) => state = now,
                }
                continue;
            }
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
            // Parks only while no permit is free and the parked bit is still set: a release
            // in between either added a permit or went through the queue's lock.
            // SAFETY: the key is this primitive's address; the callbacks only touch atomics.
            let parked = unsafe {
                park_waiter(
                    self.key(),
                    || self.state.load(Ordering::Relaxed) == PARKED,
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
    fn release_slow(&self) {
        let callback = |result: UnparkResult| {
            if result.unparked_threads != 0 && result.be_fair {
                // The permit goes straight to the woken thread; the count is unchanged.
                if !result.have_more_threads {
                    self.state.fetch_and(!PARKED, Ordering::Relaxed);
                }
                return TOKEN_HANDOFF;
            }
            // Under the queue's lock nobody else can change the parked bit, but permits can
            // still be taken (try_acquire) concurrently: update with one atomic operation.
            if result.have_more_threads {
                self.state.fetch_add(PERMIT, Ordering::Release);
            } else {
                let _ = self
                    .state
                    .fetch_update(Ordering::Release, Ordering::Relaxed, |s| {
                        Some((s + PERMIT) & !PARKED)
                    });
            }
            TOKEN_RETRY
        };
        // SAFETY: the key is this primitive's address; the callback only touches its state.
        unsafe {
            core::unpark_one(self.key(), callback);
        }
    }
}
