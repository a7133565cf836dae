//! What every raw primitive does the same way when a waiter parks or is woken for a verdict.
//! The rules for code inside `parking_lot_core` callbacks are those of [`super::mutex`].

use super::Waiter;
use crate::primitive::parking::{
    self as core, FilterOp, ParkResult, ParkToken, UnparkResult, UnparkToken,
};
use std::time::Instant;

/// A woken waiter must leave its wait and take the verdict posted for it.
pub(crate) const TOKEN_INTERRUPT: UnparkToken = UnparkToken(2);

/// Parks `waiter` under `key` until `deadline`, if `still_blocked()` holds and no verdict has
/// been posted for it (both checked under the queue's lock). `last_timed_out` runs under that
/// lock when the waiter times out as the last thread parked under `key`: the primitive clears
/// its parked bit there.
///
/// # Safety
/// `key` is the address of the calling primitive, which only its own code parks on; the
/// closures only touch atomics, never panic and never call into parking_lot.
pub(crate) unsafe fn park_waiter(
    key: usize,
    still_blocked: impl FnOnce() -> bool,
    last_timed_out: impl FnOnce(),
    waiter: Waiter<'_>,
    deadline: Option<Instant>,
) -> ParkResult {
    let validate = || still_blocked() && !waiter.is_interrupted();
    let timed_out = |_key: usize, was_last: bool| {
        if was_last {
            last_timed_out();
        }
    };
    // SAFETY: the function's contract.
    unsafe {
        core::park(
            key,
            validate,
            || {},
            timed_out,
            ParkToken(waiter.token),
            deadline,
        )
    }
}

/// Wakes the waiter parked under `key` with `token` for a verdict, and only it; false if it is
/// not parked there. `woken` runs under the queue's lock with the result (the primitive clears
/// its parked bit when no other thread is left).
///
/// # Safety
/// As [`park_waiter`].
pub(crate) unsafe fn interrupt_parked(
    key: usize,
    token: usize,
    woken: impl FnOnce(UnparkResult),
) -> bool {
    let filter = |parked: ParkToken| {
        if parked.0 == token {
            FilterOp::Unpark
        } else {
            FilterOp::Skip
        }
    };
    let callback = |result: UnparkResult| {
        woken(result);
        TOKEN_INTERRUPT
    };
    // SAFETY: the function's contract.
    unsafe { core::unpark_filter(key, filter, callback) }.unparked_threads != 0
}
