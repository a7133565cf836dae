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
            // It names where the thread is stuck: the panic itself is raised inside lockwatch.
            assert!(
                message.contains("(this thread waits at tests/panic_policy.rs:"),
                "{who}: {message}"
            );
        }
    }
}
