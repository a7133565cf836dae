//! Ownership of the reentrant locks (`RLock`, `ReentrantMutex`) belongs to a thread, and to no
//! later thread: an owner that exits (or panics) holding one leaves it held by nobody alive. A
//! later thread must not re-enter it (it used to, when a new thread got the old one's
//! thread-local address back), cannot release it, and its wait is reported as a deadlock on a
//! lock whose owner exited.

mod child;
mod support;

use lockwatch::{RLock, ReentrantMutex, SyncError};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// How many fresh threads try to take the lock over: one alone might not be handed the exited
/// owner's thread-local block, several in a row are (glibc reuses a joined thread's stack).
const LATER_THREADS: usize = 8;

fn leave_rlock_held(lock: &Arc<RLock>, panic: bool) {
    let lock = lock.clone();
    let owner = std::thread::spawn(move || {
        lock.acquire();
        lock.acquire();
        if panic {
            panic!("the owner panics holding the lock");
        }
    });
    assert_eq!(owner.join().is_err(), panic);
}

fn assert_no_later_thread_owns_rlock(lock: &Arc<RLock>) {
    for _ in 0..LATER_THREADS {
        let lock = lock.clone();
        bounded(WAIT, move || {
            assert!(!lock.try_acquire(), "a later thread re-entered the RLock");
            assert_eq!(lock.release(), Err(SyncError::NotOwner));
            assert!(!lock.acquire_timeout(Duration::from_millis(1)));
        });
    }
}

#[test]
fn an_rlock_whose_owner_exited_holding_it_is_owned_by_no_later_thread() {
    let lock = Arc::new(RLock::named("left held"));
    leave_rlock_held(&lock, false);
    assert_no_later_thread_owns_rlock(&lock);
}

#[test]
fn an_rlock_whose_owner_panicked_holding_it_is_owned_by_no_later_thread() {
    let lock = Arc::new(RLock::named("left held by a panic"));
    leave_rlock_held(&lock, true);
    assert_no_later_thread_owns_rlock(&lock);
}

#[test]
fn a_reentrant_mutex_whose_owner_exited_holding_it_is_owned_by_no_later_thread() {
    let mutex = Arc::new(ReentrantMutex::named("left held", 5));
    {
        let mutex = mutex.clone();
        std::thread::spawn(move || std::mem::forget(mutex.lock()))
            .join()
            .unwrap();
    }
    for _ in 0..LATER_THREADS {
        let mutex = mutex.clone();
        bounded(WAIT, move || {
            assert!(mutex.is_locked());
            assert!(!mutex.is_owned_by_current_thread());
            assert!(mutex.try_lock().is_none(), "a later thread re-entered it");
            assert!(mutex.try_lock_for(Duration::from_millis(1)).is_none());
        });
    }
}

/// The child: an owner thread exits holding the RLock twice, then this thread waits for it.
#[test]
#[ignore = "run in a child process by the test below"]
fn child_waits_on_an_rlock_whose_owner_exited() {
    let lock = Arc::new(RLock::named("orphaned rlock"));
    {
        let lock = lock.clone();
        lockwatch::thread::Builder::new()
            .name("owner".into())
            .spawn(move || {
                lock.acquire();
                lock.acquire();
            })
            .unwrap()
            .join()
            .unwrap();
    }
    // A thread started after the owner exited (it may get the owner's thread-local block)
    // waits for the lock. Never returns: the report aborts the process.
    std::thread::spawn(move || {
        lock.acquire();
        unreachable!("acquired an RLock whose owner exited holding it");
    })
    .join()
    .unwrap();
}

#[cfg(feature = "detect")]
#[test]
fn a_wait_on_an_rlock_whose_owner_exited_is_reported_as_a_deadlock() {
    let run = child::run_test_in_child(
        "child_waits_on_an_rlock_whose_owner_exited",
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let deadlocks = run.reports_of_kind("deadlock");
    assert_eq!(deadlocks.len(), 1, "stderr:\n{}", run.stderr);
    let report = deadlocks[0];
    let rlock = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "orphaned rlock")
        .unwrap_or_else(|| panic!("no orphaned rlock in {report:#}"));
    assert_eq!(rlock["kind"], "RLock");
    let owner = report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "owner")
        .unwrap_or_else(|| panic!("no owner thread in {report:#}"));
    assert_eq!(owner["state"], "exited", "{report:#}");
    assert_eq!(owner["holds"][0]["resource"], rlock["id"], "{report:#}");
}
