//! Regression tests, each named after what broke.

use lockwatch::{Condvar, Mutex};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// A Condvar wait that unwinds (here: parking_lot refuses a second mutex on one condvar) used
/// to drop a temporary parking_lot guard *and* the caller's guard: the mutex was unlocked
/// twice, and two threads could then hold it at once.
#[test]
fn condvar_wait_that_panics_unlocks_the_mutex_once() {
    let cv = Arc::new(Condvar::new());
    let first = Arc::new(Mutex::new(()));
    let second = Arc::new(Mutex::new(0u32));
    let (parked_tx, parked_rx) = mpsc::channel();
    let waiter = {
        let (cv, first) = (cv.clone(), first.clone());
        std::thread::spawn(move || {
            let mut g = first.lock();
            parked_tx.send(()).unwrap();
            // Ends with the notification below; bounded so a regression cannot hang.
            let _ = cv.wait_for(&mut g, Duration::from_secs(10));
        })
    };
    parked_rx.recv().unwrap();
    // Let the first waiter park on the condvar with `first`.
    std::thread::sleep(Duration::from_millis(50));
    let misuse = {
        let (cv, second) = (cv.clone(), second.clone());
        std::thread::spawn(move || {
            let mut g = second.lock();
            let _ = cv.wait_for(&mut g, Duration::from_secs(10));
        })
    };
    let outcome = misuse.join();
    cv.notify_all();
    waiter.join().unwrap();
    if outcome.is_ok() {
        // parking_lot accepted the second mutex (the first waiter had already left): nothing
        // unwound, nothing to check.
        return;
    }
    // The unwind released `second` exactly once: it is free now, and a fresh hold excludes
    // another.
    let held = second
        .try_lock_for(Duration::from_secs(5))
        .expect("`second` is free");
    assert!(second.try_lock().is_none(), "`second` was unlocked twice");
    drop(held);
    assert!(!second.is_locked());
}

/// Two threads deadlock; a third then blocks behind them. It used to be reported as a second,
/// different deadlock because the finding's identity included the threads behind the cycle.
#[cfg(feature = "detect")]
#[test]
fn a_thread_blocking_behind_a_reported_deadlock_does_not_report_it_again() {
    use lockwatch::ReportKind;
    use std::sync::Barrier;
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    lockwatch::set_handler(move |r| {
        if r.kind() == ReportKind::Deadlock
            && r.resources
                .iter()
                .any(|x| x.name.as_deref() == Some("again A"))
        {
            let _ = tx.lock().unwrap().send(r.summary.clone());
        }
    });
    let a = Arc::new(Mutex::named("again A", ()));
    let b = Arc::new(Mutex::named("again B", ()));
    let both = Arc::new(Barrier::new(2));
    for (first, second) in [(a.clone(), b.clone()), (b.clone(), a.clone())] {
        let both = both.clone();
        // Left deadlocked on purpose; the test process ends with them.
        std::thread::spawn(move || {
            let _f = first.lock();
            both.wait();
            let _s = second.lock();
        });
    }
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the deadlock is reported");
    let behind = a.clone();
    std::thread::spawn(move || drop(behind.lock()));
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "reported a second time"
    );
}
