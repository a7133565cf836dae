//! A flag that threads wait for, on `parking_lot_core`: set once by a thread that finishes (the
//! completion a join waits for), and built to carry `Event` (set, clear, wait).
//!
//! The rules for the code inside `parking_lot_core` callbacks are those of [`super::mutex`].

use super::{Parked, Waiter};
use crate::primitive::parking::{self as core, ParkResult, UnparkResult, UnparkToken};
use crate::primitive::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

const SET: u8 = 1;
/// Some thread is (or is about to be) parked waiting for the flag.
const PARKED: u8 = 2;

const TOKEN_WAKE: UnparkToken = UnparkToken(0);
use super::park::{interrupt_parked, park_waiter, TOKEN_INTERRUPT};

pub(crate) struct RawEvent {
    state: AtomicU8,
}

impl RawEvent {
    pub(crate) const fn new() -> RawEvent {
        RawEvent {
            state: AtomicU8::new(0),
        }
    }

    fn key(&self) -> usize {
        self as *const RawEvent as usize
    }

    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) & SET != 0
    }

    /// Sets the flag and wakes every waiter.
    pub(crate) fn set(&self) {
        if self.state.swap(SET, Ordering::Release) & PARKED != 0 {
            // SAFETY: the key is this event's address, parked on by its own code only.
            unsafe {
                core::unpark_all(self.key(), TOKEN_WAKE);
            }
        }
    }

    /// Clears the flag (waiters keep waiting for the next `set`).
    #[cfg_attr(not(test), allow(dead_code))] // Event, next
    pub(crate) fn clear(&self) {
        self.state.fetch_and(!SET, Ordering::Relaxed);
    }

    /// Waits as `waiter` until the flag is set, `deadline` passes, or the waiter is
    /// interrupted.
    pub(crate) fn wait_as(&self, deadline: Option<Instant>, waiter: Waiter<'_>) -> Parked {
        loop {
            let state = self.state.load(Ordering::Acquire);
            if state & SET != 0 {
                return Parked::Acquired;
            }
            if waiter.is_interrupted() {
                return Parked::Interrupted;
            }
            if state & PARKED == 0
                && self
                    .state
                    .compare_exchange_weak(
                        state,
                        state | PARKED,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_err()
            {
                continue;
            }
            // SAFETY: the key is this event's address; the callbacks only touch atomics.
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
                ParkResult::Unparked(TOKEN_INTERRUPT) => return Parked::Interrupted,
                ParkResult::TimedOut => {
                    return if self.is_set() {
                        Parked::Acquired
                    } else {
                        Parked::TimedOut
                    }
                }
                ParkResult::Unparked(_) | ParkResult::Invalid => {}
            }
        }
    }

    /// Wakes the waiter parked with `token` for a verdict; false if it is not parked here.
    #[cfg_attr(not(feature = "detect"), allow(dead_code))]
    pub(crate) fn interrupt(&self, token: usize) -> bool {
        let woken = |result: UnparkResult| {
            if result.unparked_threads != 0 && !result.have_more_threads {
                self.state.fetch_and(!PARKED, Ordering::Relaxed);
            }
        };
        // SAFETY: the key is this event's address, parked on by its own code only; the callback
        // only touches its atomic state.
        unsafe { interrupt_parked(self.key(), token, woken) }
    }
}
