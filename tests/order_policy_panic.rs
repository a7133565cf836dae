//! A lock-order inversion that stops the program by policy (`LOCKWATCH_LOCK_ORDER=error` with
//! `LOCKWATCH_ON_DEADLOCK=panic`) panics in the acquisition that closes it, and that
//! acquisition leaves the lock it was taking free: the first attempt at a lock comes before its
//! bookkeeping, so a hold with an ordering to record gives the lock back before recording it.
//! Its own binary: it installs settings for the whole process.
#![cfg(feature = "detect")]

use lockwatch::{Config, LockOrder, Mutex, OnDeadlock};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn an_inversion_that_panics_by_policy_leaves_the_lock_it_was_taking_free() {
    let mut config = Config::current();
    config.lock_order = LockOrder::Error;
    config.on_deadlock = OnDeadlock::Panic;
    config.install();
    // On a thread of its own, with a bound: a lock left held would make the next acquisition
    // wait forever, and this test fail rather than hang.
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        scenario();
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the scenario did not finish within 30 s: a lock was left held")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the scenario failed (see above)"),
    }
}

fn scenario() {
    let first = Mutex::named("first", 0);
    let second = Mutex::named("second", 0);
    for _ in 0..3 {
        // Both locks are fresh the first time round (their first use), known after.
        let _first = first.lock();
        let _second = second.lock();
    }
    let inverted = catch_unwind(AssertUnwindSafe(|| {
        let _second = second.lock();
        let _first = first.lock();
    }));
    let message = inverted.expect_err("the inversion did not panic under policy panic");
    let message = message
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(
        message.contains("first") && message.contains("second"),
        "the panic does not name the locks: {message:?}"
    );
    assert!(
        first.try_lock().is_some(),
        "the acquisition that panicked left `first` locked"
    );
    assert!(
        second.try_lock().is_some(),
        "the guard of `second` did not release it"
    );
    // And the lock can be taken again, with nothing held.
    *first.lock() += 1;
}
