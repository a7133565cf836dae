//! The runtime's global tables do not grow with a program's history: threads that exit leave
//! the thread registry, and locks that are dropped leave the lock-order graph.
//!
//! The tests here share those global tables, so they run one at a time (a file-local lock),
//! each under a hard time limit.
#![cfg(feature = "detect")]

mod support;
use lockwatch::introspect::{live_threads, order_graph_size};
use lockwatch::{Config, Lock, LockOrder, Mutex, RLock, ReentrantMutex, RwLock};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// The hard bound on a whole test (debug builds on a small machine are slow).
const LIMIT: Duration = Duration::from_secs(300);

/// Runs `body` as [`bounded`] does, one test at a time: they measure the same global tables.
/// The next test starts only once this one's body thread has exited (`bounded` joins it), so
/// no thread of a previous test is still registered when a baseline is taken.
fn serial_bounded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    bounded(LIMIT, body)
}

/// Polls `condition` until it holds or `WAIT` passes; returns whether it held.
fn within_wait(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn tracking_on() -> bool {
    Config::current().enabled
}

fn lock_order_on() -> bool {
    let config = Config::current();
    config.enabled && config.lock_order != LockOrder::Off
}

// ---------------------------------------------------------------------------------------------
// Thread registry
// ---------------------------------------------------------------------------------------------

#[test]
fn ten_thousand_exited_threads_leave_the_thread_registry_at_its_baseline() {
    serial_bounded(|| {
        const THREADS: usize = 10_000;
        const BATCH: usize = 64;
        let shared = Arc::new(Mutex::named("shared counter", 0usize));
        // Register this thread first, so the baseline counts it.
        *shared.lock() += 0;
        let baseline = live_threads();

        let mut started = 0;
        let mut batch_index = 0;
        while started < THREADS {
            let n = BATCH.min(THREADS - started);
            // Every other batch starts while the mutex is held, so its threads wait for it
            // (the slow path: registered waits) before they exit.
            let contended = batch_index % 2 == 0;
            let hold = contended.then(|| shared.lock());
            let mut tracked = Vec::new();
            let mut plain = Vec::new();
            for i in 0..n {
                let shared = shared.clone();
                let work = move || {
                    *shared.lock() += 1;
                };
                if i % 2 == 0 {
                    tracked.push(lockwatch::thread::spawn(work));
                } else {
                    plain.push(
                        std::thread::Builder::new()
                            .spawn(work)
                            .expect("spawn a std thread"),
                    );
                }
            }
            if batch_index == 0 && tracking_on() {
                // All of them are known while they wait: lockwatch threads from their spawn,
                // std threads from their first lock attempt.
                assert!(
                    within_wait(|| live_threads() >= baseline + n),
                    "{n} waiting threads not registered: {} live, baseline {baseline}",
                    live_threads()
                );
            }
            drop(hold);
            for handle in tracked {
                match handle.join_timeout(WAIT) {
                    Ok(Ok(())) => {}
                    Ok(Err(payload)) => std::panic::resume_unwind(payload),
                    Err(_) => panic!("a lockwatch thread still runs after {WAIT:?}"),
                }
            }
            for handle in plain {
                handle.join().expect("a std thread panicked");
            }
            started += n;
            batch_index += 1;
        }
        assert_eq!(*shared.lock(), THREADS);

        let settled = within_wait(|| live_threads() <= baseline);
        assert!(
            settled,
            "{THREADS} exited threads left {} live threads (baseline {baseline})",
            live_threads() - baseline.min(live_threads())
        );
    });
}

#[test]
fn threads_that_exit_while_holding_a_lock_leave_the_thread_registry() {
    serial_bounded(|| {
        const THREADS: usize = 200;
        let probe = Mutex::new(());
        drop(probe.lock());
        let baseline = live_threads();
        // A Lock acquired by a thread that exits still holding it (a signal released later by
        // another thread): the thread itself must still leave the registry.
        let locks: Vec<Arc<Lock>> = (0..THREADS).map(|_| Arc::new(Lock::new())).collect();
        for chunk in locks.chunks(50) {
            let handles: Vec<_> = chunk
                .iter()
                .map(|lock| {
                    let lock = lock.clone();
                    lockwatch::thread::spawn(move || lock.acquire())
                })
                .collect();
            for handle in handles {
                match handle.join_timeout(WAIT) {
                    Ok(Ok(())) => {}
                    Ok(Err(payload)) => std::panic::resume_unwind(payload),
                    Err(_) => panic!("a thread still runs after {WAIT:?}"),
                }
            }
        }
        for lock in &locks {
            assert!(lock.locked());
            lock.release().expect("released by another thread");
        }
        let settled = within_wait(|| live_threads() <= baseline);
        assert!(
            settled,
            "{} live threads after {THREADS} exited (baseline {baseline})",
            live_threads()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Lock-order graph
// ---------------------------------------------------------------------------------------------

#[test]
fn hundred_thousand_dropped_inner_mutexes_leave_the_lock_order_graph_at_its_baseline() {
    serial_bounded(|| {
        const INNER: usize = 100_000;
        let baseline = order_graph_size();
        let outer = Mutex::named("long-lived outer", 0usize);
        {
            let mut outer_guard = outer.lock();
            for i in 0..INNER {
                let inner = Mutex::new(i);
                let inner_guard = inner.lock();
                if i == 0 && lock_order_on() {
                    // In the graph, or (a lock never a source) kept by this thread until
                    // the lock is dropped or becomes a source.
                    let (locks, edges) = order_graph_size();
                    let deferred = lockwatch::introspect::order_pending_size();
                    assert!(
                        deferred >= 1 || (locks >= baseline.0 + 2 && edges > baseline.1),
                        "the nesting was not recorded: {:?}, baseline {baseline:?}",
                        (locks, edges)
                    );
                }
                *outer_guard += *inner_guard;
                drop(inner_guard);
                drop(inner);
            }
            assert_eq!(*outer_guard, INNER * (INNER - 1) / 2);
            // The inner locks are gone; only the outer one may still be known.
            let (locks, edges) = order_graph_size();
            assert_eq!(
                edges, baseline.1,
                "edges of {INNER} dropped locks remain in the lock-order graph \
                 ({locks} locks, {edges} edges; baseline {baseline:?})"
            );
            assert!(
                locks <= baseline.0 + 1,
                "{} dropped locks remain in the lock-order graph ({locks} locks, {edges} edges; \
                 baseline {baseline:?})",
                locks - baseline.0 - 1
            );
        }
        drop(outer);
        assert_eq!(
            order_graph_size(),
            baseline,
            "the lock-order graph did not return to its baseline after every lock was dropped"
        );
    });
}

#[test]
fn dropped_outer_mutexes_leave_the_lock_order_graph_at_its_baseline() {
    serial_bounded(|| {
        const OUTER: usize = 10_000;
        let baseline = order_graph_size();
        let inner = Mutex::named("long-lived inner", 0usize);
        for _ in 0..OUTER {
            let outer = Mutex::new(());
            let outer_guard = outer.lock();
            *inner.lock() += 1;
            drop(outer_guard);
            drop(outer);
        }
        let (locks, edges) = order_graph_size();
        assert_eq!(
            edges, baseline.1,
            "edges of {OUTER} dropped locks remain ({locks} locks, {edges} edges; baseline \
             {baseline:?})"
        );
        assert!(
            locks <= baseline.0 + 1,
            "{locks} locks remain, baseline {baseline:?}"
        );
        assert_eq!(*inner.lock(), OUTER);
        drop(inner);
        assert_eq!(order_graph_size(), baseline);
    });
}

#[test]
fn dropped_locks_of_every_kind_leave_the_lock_order_graph_at_its_baseline() {
    serial_bounded(|| {
        const ROUNDS: usize = 2_000;
        let baseline = order_graph_size();
        let outer = RwLock::named("outer rwlock", ());
        let used = AtomicUsize::new(0);
        {
            let _outer = outer.write();
            for _ in 0..ROUNDS {
                let rw = RwLock::new(0);
                drop(rw.read());
                *rw.write() += 1;
                let re = ReentrantMutex::new(());
                {
                    let _a = re.lock();
                    let _b = re.lock();
                }
                let rlock = RLock::new();
                rlock.acquire();
                rlock.acquire();
                rlock.release().unwrap();
                rlock.release().unwrap();
                let lock = Lock::new();
                lock.acquire();
                lock.release().unwrap();
                let m = Mutex::new(());
                {
                    // Nested under both the outer lock and another inner one.
                    let _m = m.lock();
                    let _l = lock.lock();
                }
                used.fetch_add(1, Ordering::Relaxed);
            }
        }
        assert_eq!(used.load(Ordering::Relaxed), ROUNDS);
        let (locks, edges) = order_graph_size();
        assert_eq!(
            edges, baseline.1,
            "edges of dropped locks remain ({locks} locks, {edges} edges; baseline {baseline:?})"
        );
        assert!(
            locks <= baseline.0 + 1,
            "{locks} locks remain, baseline {baseline:?}"
        );
        drop(outer);
        assert_eq!(order_graph_size(), baseline);
    });
}
