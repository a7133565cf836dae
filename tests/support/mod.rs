//! Hang protection and channel helpers shared by the behaviour tests: every wait a test makes
//! is bounded, so a regression fails instead of hanging CI.
#![allow(dead_code)]

use lockwatch::thread;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// The bound on one expected event.
pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// How long to watch for an event that must not happen.
pub(crate) const QUIET: Duration = Duration::from_millis(50);

/// Runs `body` on its own thread and fails the test, instead of hanging, if it has not
/// finished within `limit`. A panic in `body` is re-raised here.
pub(crate) fn bounded<T: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let runner = std::thread::Builder::new()
        .name("test-body".into())
        .spawn(move || {
            let _ = tx.send(body());
        })
        .expect("spawn the test body");
    match rx.recv_timeout(limit) {
        Ok(value) => {
            runner.join().expect("test body thread");
            value
        }
        Err(RecvTimeoutError::Disconnected) => match runner.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => unreachable!("the body returned without sending its value"),
        },
        Err(RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}: a hang"),
    }
}

/// Joins a lockwatch thread within [`WAIT`], re-raising its panic.
pub(crate) fn join<T>(handle: thread::JoinHandle<T>) -> T {
    match handle.join_timeout(WAIT) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("thread still running after {WAIT:?}"),
    }
}

pub(crate) fn recv<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|e| panic!("{what}: nothing within {WAIT:?} ({e})"))
}

pub(crate) fn assert_nothing_yet<T>(rx: &mpsc::Receiver<T>, what: &str) {
    match rx.recv_timeout(QUIET) {
        Err(RecvTimeoutError::Timeout) => {}
        Ok(_) => panic!("{what} happened too early"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what}: the other side is gone"),
    }
}

/// Two threads that take `a` then `b` and `b` then `a`, each holding its first lock before
/// asking for the second: a deadlock for sure. The threads are left deadlocked on purpose; the
/// test process ends with them.
pub(crate) fn spawn_abba_deadlock(
    a: &std::sync::Arc<lockwatch::Mutex<()>>,
    b: &std::sync::Arc<lockwatch::Mutex<()>>,
) {
    let both = std::sync::Arc::new(std::sync::Barrier::new(2));
    for (first, second) in [(a.clone(), b.clone()), (b.clone(), a.clone())] {
        let both = both.clone();
        std::thread::spawn(move || {
            let _first = first.lock();
            both.wait();
            let _second = second.lock();
        });
    }
}
