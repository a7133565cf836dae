//! The wait core as a program sees it: waiting has the semantics of the primitive underneath
//! (SPEC §2), and a waiting thread costs nothing while it waits. Without feature `detect`
//! waits have no registered phase, and this file is empty.
#![cfg(feature = "detect")]

mod child;
mod support;

use lockwatch::{introspect, thread, Condvar, Mutex};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use support::{assert_nothing_yet, bounded, join, recv, WAIT};

/// Waits until `count` registered waits are on `name`: they outlasted their quiet phase and
/// are parked for the rest of their wait.
fn until_registered(name: &str, count: usize) {
    let deadline = Instant::now() + WAIT;
    while introspect::registered_waits_on(name) != count {
        assert!(
            Instant::now() < deadline,
            "{count} waits on {name} never registered"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A thread in `Condvar::wait` has released its mutex for the whole wait, quiet phase and
/// registered phase alike: another thread's `try_lock` never fails. It used to fail about once
/// in 5,000 tries, when the waiter re-took the mutex between timed slices.
#[test]
fn try_lock_never_fails_while_a_thread_waits_on_the_condvar() {
    bounded(WAIT * 2, || {
        let pair = Arc::new((
            Mutex::named("waited on", false),
            Condvar::named("try_lock cv"),
        ));
        let (inside_tx, inside) = mpsc::channel();
        let waiter = {
            let pair = pair.clone();
            thread::spawn(move || {
                let mut ready = pair.0.lock();
                inside_tx.send(()).unwrap();
                while !*ready {
                    pair.1.wait(&mut ready);
                }
            })
        };
        recv(&inside, "the waiter holds the mutex");
        // Free only once the waiter is parked in `wait`.
        drop(pair.0.lock());
        let mut tries = 0u64;
        let started = Instant::now();
        // Across the quiet phase, the registration and well into the registered phase.
        while started.elapsed() < Duration::from_millis(300) || tries < 200_000 {
            let guard = pair.0.try_lock();
            assert!(guard.is_some(), "try_lock failed after {tries} tries");
            tries += 1;
        }
        assert_eq!(introspect::registered_waits_on("try_lock cv"), 1);
        *pair.0.lock() = true;
        assert!(pair.1.notify_one());
        join(waiter);
    });
}

/// One `notify_one` wakes exactly one of three waiters, in their registered phase as in their
/// quiet one. It used to return all three: each timed slice counted any notification sent
/// since its wait began.
#[test]
fn one_notify_one_wakes_exactly_one_waiter() {
    for name in ["one of three (registered)", "one of three (quiet)"] {
        let registered = name.ends_with("(registered)");
        bounded(WAIT * 2, move || {
            let pair = Arc::new((Mutex::new(0u32), Condvar::named(name)));
            let (woke_tx, woke) = mpsc::channel();
            let (inside_tx, inside) = mpsc::channel();
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let (pair, woke_tx, inside_tx) =
                        (pair.clone(), woke_tx.clone(), inside_tx.clone());
                    thread::spawn(move || {
                        let mut tokens = pair.0.lock();
                        inside_tx.send(()).unwrap();
                        // No loop on a predicate: a return without a notification would be a
                        // spurious wake-up, which parking_lot promises never happens.
                        pair.1.wait(&mut tokens);
                        *tokens += 1;
                        woke_tx.send(()).unwrap();
                    })
                })
                .collect();
            for _ in 0..3 {
                recv(&inside, "a waiter holds the mutex");
            }
            if registered {
                until_registered(name, 3);
            } else {
                // Each waiter released the mutex inside `wait`.
                drop(pair.0.lock());
            }
            let woken = {
                let _g = pair.0.lock();
                pair.1.notify_one()
            };
            assert!(woken);
            recv(&woke, "the notified waiter");
            assert_nothing_yet(&woke, "a second waiter's return");
            assert_eq!(*pair.0.lock(), 1);
            let rest = {
                let _g = pair.0.lock();
                pair.1.notify_all()
            };
            assert_eq!(rest, 2, "notify_all wakes the two left");
            for w in waiters {
                join(w);
            }
            assert_eq!(*pair.0.lock(), 3);
        });
    }
}

/// The number of times the kernel switched the thread `tid` out voluntarily (it slept).
#[cfg(target_os = "linux")]
fn voluntary_switches(tid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// The kernel id of the calling thread.
#[cfg(target_os = "linux")]
fn own_tid() -> String {
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    link.file_name().unwrap().to_string_lossy().into_owned()
}

/// A thread in a registered wait is parked for good: it does not wake up periodically (the
/// watchdog's scans, every 100 ms, never touch it). Checked for a wait of each kind: a Mutex,
/// a Lock, a Condvar and a join.
#[cfg(target_os = "linux")]
#[test]
fn idle_waiters_never_wake_while_they_wait() {
    bounded(WAIT * 2, || {
        let mutex = Arc::new(Mutex::named("idle mutex", ()));
        let lock = Arc::new(lockwatch::Lock::named("idle lock"));
        let pair = Arc::new((Mutex::new(false), Condvar::named("idle cv")));
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (tids_tx, tids) = mpsc::channel();
        let held = mutex.lock();
        lock.acquire();
        let joined = thread::Builder::new()
            .name("idle joined".into())
            .spawn(move || {
                let _ = stop_rx.recv();
            })
            .unwrap();
        let mut waiters = Vec::new();
        {
            let (mutex, tids_tx) = (mutex.clone(), tids_tx.clone());
            waiters.push(thread::spawn(move || {
                tids_tx.send(own_tid()).unwrap();
                drop(mutex.lock());
            }));
        }
        {
            let (lock, tids_tx) = (lock.clone(), tids_tx.clone());
            waiters.push(thread::spawn(move || {
                tids_tx.send(own_tid()).unwrap();
                lock.acquire();
                lock.release().unwrap();
            }));
        }
        {
            let (pair, tids_tx) = (pair.clone(), tids_tx.clone());
            waiters.push(thread::spawn(move || {
                let mut ready = pair.0.lock();
                tids_tx.send(own_tid()).unwrap();
                while !*ready {
                    pair.1.wait(&mut ready);
                }
            }));
        }
        let joiner = {
            let tids_tx = tids_tx.clone();
            thread::spawn(move || {
                tids_tx.send(own_tid()).unwrap();
                join(joined);
            })
        };
        let tids: Vec<String> = (0..4).map(|_| recv(&tids, "a waiter's id")).collect();
        for name in ["idle mutex", "idle lock", "idle cv", "idle joined"] {
            until_registered(name, 1);
        }
        let sample = || -> Vec<u64> { tids.iter().map(|t| voluntary_switches(t)).collect() };
        // Registered, and done with the scan that follows a registration (it may have slept
        // on the graph's lock): settled once two samples 50 ms apart agree.
        let mut before = sample();
        let deadline = Instant::now() + WAIT;
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = sample();
            if now == before {
                break;
            }
            assert!(Instant::now() < deadline, "the waiters never settled");
            before = now;
        }
        // Three watchdog periods.
        std::thread::sleep(Duration::from_millis(350));
        let after = sample();
        assert_eq!(
            before, after,
            "a waiter woke while it waited (Mutex, Lock, Condvar, join)"
        );
        drop(held);
        lock.release().unwrap();
        *pair.0.lock() = true;
        pair.1.notify_all();
        drop(stop_tx);
        for w in waiters {
            join(w);
        }
        join(joiner);
    });
}

/// The deadlock a notified waiter forms once requeued onto its mutex: it holds `L`, and its
/// notifier, holding the mutex, goes on to take `L`. The waiter is parked on the mutex's queue
/// (the notification moved it there without waking it), and the wait-for graph must show it
/// waiting for the mutex, not for a notification it already has.
#[test]
#[ignore = "run in a child process by the test below"]
fn child_a_requeued_condvar_waiter_and_its_notifier_deadlock() {
    let state = Arc::new((
        Mutex::named("requeue L", ()),
        Mutex::named("requeue M", false),
        Condvar::named("requeue cv"),
    ));
    let waiter = {
        let state = state.clone();
        thread::Builder::new()
            .name("waiter".into())
            .spawn(move || {
                let (l, m, cv) = &*state;
                let _l = l.lock();
                let mut ready = m.lock();
                while !*ready {
                    cv.wait(&mut ready);
                }
            })
            .unwrap()
    };
    // The waiter is in the registered phase of its wait: the mutex is free.
    until_registered("requeue cv", 1);
    let (l, m, cv) = &*state;
    let mut ready = m.lock();
    *ready = true;
    assert!(cv.notify_one());
    // Requeued: the waiter waits for the mutex this thread holds, and this thread for `L`.
    let _l = l.lock();
    drop(waiter);
    unreachable!("the deadlock is reported and the process exits (policy abort)");
}

#[test]
fn a_requeued_condvar_waiter_waits_for_the_mutex_in_the_wait_for_graph() {
    let run = child::run_test_in_child(
        "child_a_requeued_condvar_waiter_and_its_notifier_deadlock",
        &[],
        WAIT * 2,
    );
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let report = run.only_report("deadlock");
    let named = |name: &str| {
        report["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no resource {name}: {report:#}"))["id"]
            .as_u64()
            .unwrap()
    };
    let (l, m) = (named("requeue L"), named("requeue M"));
    let thread = |name: &str| {
        report["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no thread {name}: {report:#}"))
    };
    assert_eq!(thread("waiter")["waiting_for"]["resource"], m, "{report:#}");
    let notifier = report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["waiting_for"]["resource"] == l)
        .unwrap_or_else(|| panic!("nobody waits for L: {report:#}"));
    assert_eq!(notifier["holds"][0]["resource"], m, "{report:#}");
}
