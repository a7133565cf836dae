//! Policy `panic` in a process of its own (the policy is process-wide): the thread whose wait
//! closed a deadlock panics, whichever thread's scan found it. Without feature `detect` there
//! is nothing to detect, and this file is empty.
#![cfg(feature = "detect")]

use lockwatch::{thread, Config, Mutex, OnDeadlock, RwLock};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// What the thread panicked with, or why it did not.
fn panic_message(handle: thread::JoinHandle<()>) -> String {
    match handle.join_timeout(Duration::from_secs(10)) {
        Err(_) => panic!("still blocked after 10 s: it never panicked"),
        Ok(Ok(())) => panic!("finished without a deadlock"),
        Ok(Err(payload)) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    }
}

/// An RwLock writer waits in one piece (waking early would let readers past it), so it
/// cannot take a verdict posted by another thread. Two self-deadlocks formed at once: the
/// Mutex thread's scan also sees the writer's, and used to report it, leaving the writer
/// parked for good instead of panicking.
#[test]
fn an_rwlock_writer_deadlocked_on_itself_panics_when_another_thread_scans_first() {
    let mut config = Config::from_env();
    config.on_deadlock = OnDeadlock::Panic;
    config.install();
    for _ in 0..10 {
        let both = Arc::new(Barrier::new(2));
        let writer = {
            let both = both.clone();
            thread::Builder::new()
                .name("upgrader".into())
                .spawn(move || {
                    let lock = RwLock::named("upgraded", 0);
                    let _read = lock.read();
                    both.wait();
                    let _write = lock.write();
                })
                .unwrap()
        };
        let relocker = thread::Builder::new()
            .name("relocker".into())
            .spawn(move || {
                let mutex = Mutex::named("relocked", 0);
                let _first = mutex.lock();
                both.wait();
                let _second = mutex.lock();
            })
            .unwrap();
        for (who, handle) in [("upgrader", writer), ("relocker", relocker)] {
            let message = panic_message(handle);
            assert!(message.starts_with("deadlock detected"), "{who}: {message}");
            // It names where the thread is stuck (the writer's panic is raised inside
            // lockwatch; the Mutex's at the program's line, see `deadlocks.rs`).
            assert!(
                message.contains("(this thread waits at tests/panic_policy.rs:"),
                "{who}: {message}"
            );
        }
    }
}

/// A deadlock found by the watchdog, not by the thread that must panic: that thread is parked
/// for good in its wait, and the verdict wakes it (it no longer polls). The owner of the lock
/// it waits for exits while it waits, leaking the guard; the thread's own scan, when its wait
/// began, found nothing.
#[test]
fn a_parked_waiter_is_woken_to_panic_when_the_watchdog_finds_its_deadlock() {
    let mut config = Config::from_env();
    config.on_deadlock = OnDeadlock::Panic;
    config.install();
    let lock = Arc::new(Mutex::named("leaked by its owner", 0));
    let (exit_tx, exit_rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let owner = {
        let lock = lock.clone();
        thread::Builder::new()
            .name("leaver".into())
            .spawn(move || {
                std::mem::forget(lock.lock());
                held_tx.send(()).unwrap();
                // Running, as far as lockwatch knows, until told to exit.
                let _ = exit_rx.recv();
            })
            .unwrap()
    };
    held_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let waiter = {
        let lock = lock.clone();
        thread::Builder::new()
            .name("left waiting".into())
            .spawn(move || drop(lock.lock()))
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lockwatch::introspect::registered_waits_on("leaked by its owner") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the wait never registered"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(exit_tx);
    owner
        .join_timeout(Duration::from_secs(10))
        .ok()
        .unwrap()
        .unwrap();
    let message = panic_message(waiter);
    assert!(message.starts_with("deadlock detected"), "{message}");
}
