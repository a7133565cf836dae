//! The semantics of CPython's `threading.Lock` and `threading.RLock` (as exercised by
//! `Lib/test/lock_tests.py`), for `lockwatch::Lock` and `lockwatch::RLock`.
//!
//! Every test runs under a hard time limit; interleavings are forced with channels, never with
//! sleeps (a short `recv_timeout` only checks that something has *not* happened yet).

mod support;
use lockwatch::thread;
use lockwatch::{Lock, RLock, SyncError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// The hard bound on a whole test.
const LIMIT: Duration = Duration::from_secs(60);
/// Allowed lateness of a timed acquisition: generous, so a loaded machine never flakes.
const SLACK: Duration = Duration::from_secs(2);

/// Whether another thread could acquire the RLock right now (and then releases it).
fn rlock_free_for_other_thread(lock: &Arc<RLock>) -> bool {
    let lock = lock.clone();
    join(thread::spawn(move || {
        let got = lock.try_acquire();
        if got {
            lock.release().expect("the acquirer releases");
        }
        got
    }))
}

// ---------------------------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------------------------

#[test]
fn lock_constructors_give_an_unlocked_lock() {
    bounded(LIMIT, || {
        for lock in [Lock::new(), Lock::named("config"), Lock::default()] {
            assert!(!lock.locked());
            assert!(lock.try_acquire());
            assert!(lock.locked());
            lock.release().unwrap();
        }
        let name = String::from("owned name");
        assert!(!Lock::named(name).locked());
        assert!(!Lock::named(Arc::<str>::from("arc name")).locked());
    });
}

#[test]
fn lock_debug_shows_its_state() {
    bounded(LIMIT, || {
        let lock = Lock::new();
        assert!(format!("{lock:?}").contains("false"));
        lock.acquire();
        assert!(format!("{lock:?}").contains("true"));
        lock.release().unwrap();
    });
}

#[test]
fn lock_acquire_then_release_leaves_it_unlocked() {
    bounded(LIMIT, || {
        let lock = Lock::new();
        lock.acquire();
        assert!(lock.locked());
        assert_eq!(lock.release(), Ok(()));
        assert!(!lock.locked());
        for _ in 0..100 {
            lock.acquire();
            lock.release().unwrap();
        }
        assert!(!lock.locked());
    });
}

#[test]
fn lock_dropped_while_held_does_not_panic() {
    bounded(LIMIT, || {
        {
            let lock = Lock::new();
            lock.acquire();
            assert!(lock.locked());
        } // dropped here, still held
        let lock = Lock::new();
        assert!(!lock.locked());
    });
}

#[test]
fn release_of_unlocked_lock_is_not_locked_error() {
    bounded(LIMIT, || {
        let lock = Lock::new();
        assert_eq!(lock.release(), Err(SyncError::NotLocked));
        lock.acquire();
        lock.release().unwrap();
        assert_eq!(lock.release(), Err(SyncError::NotLocked));
        assert!(!lock.locked());
        // The failed release changed nothing: the lock still works.
        assert!(lock.try_acquire());
        lock.release().unwrap();
    });
}

#[test]
fn not_locked_error_is_a_displayable_std_error() {
    let err: Box<dyn std::error::Error> = Box::new(SyncError::NotLocked);
    assert!(!err.to_string().is_empty());
    assert_ne!(
        SyncError::NotLocked.to_string(),
        SyncError::NotOwner.to_string()
    );
}

#[test]
fn try_acquire_of_free_lock_succeeds() {
    bounded(LIMIT, || {
        let lock = Lock::new();
        assert!(lock.try_acquire());
        assert!(lock.locked());
        lock.release().unwrap();
    });
}

#[test]
fn try_acquire_of_held_lock_fails_in_the_holder() {
    bounded(LIMIT, || {
        let lock = Lock::new();
        lock.acquire();
        assert!(!lock.try_acquire());
        assert!(lock.locked());
        lock.release().unwrap();
        assert!(!lock.locked());
    });
}

#[test]
fn try_acquire_of_held_lock_fails_in_another_thread() {
    bounded(LIMIT, || {
        let lock = Arc::new(Lock::new());
        lock.acquire();
        let other = lock.clone();
        assert!(!join(thread::spawn(move || other.try_acquire())));
        lock.release().unwrap();
        let other = lock.clone();
        assert!(join(thread::spawn(move || {
            let got = other.try_acquire();
            other.release().unwrap();
            got
        })));
    });
}

#[test]
fn acquire_timeout_of_free_lock_succeeds_at_once() {
    bounded(LIMIT, || {
        let lock = Lock::new();
        assert!(lock.acquire_timeout(Duration::ZERO));
        lock.release().unwrap();
        let start = Instant::now();
        assert!(lock.acquire_timeout(Duration::from_secs(30)));
        assert!(start.elapsed() < SLACK);
        lock.release().unwrap();
    });
}

#[test]
fn acquire_timeout_zero_of_held_lock_fails_at_once() {
    bounded(LIMIT, || {
        let lock = Lock::new();
        lock.acquire();
        let start = Instant::now();
        assert!(!lock.acquire_timeout(Duration::ZERO));
        assert!(start.elapsed() < SLACK);
        lock.release().unwrap();
    });
}

#[test]
fn acquire_timeout_of_lock_held_by_another_thread_fails_after_the_timeout() {
    bounded(LIMIT, || {
        let lock = Arc::new(Lock::new());
        lock.acquire();
        let other = lock.clone();
        let timeout = Duration::from_millis(200);
        let elapsed = join(thread::spawn(move || {
            let start = Instant::now();
            let got = other.acquire_timeout(timeout);
            (got, start.elapsed())
        }));
        assert!(!elapsed.0, "acquired a lock that was held");
        assert!(elapsed.1 >= timeout, "gave up early: {:?}", elapsed.1);
        assert!(elapsed.1 < timeout + SLACK, "gave up late: {:?}", elapsed.1);
        assert!(lock.locked());
        lock.release().unwrap();
    });
}

#[test]
fn lock_state_after_a_timed_out_acquire_is_unchanged() {
    // lock_tests.py: test_state_after_timeout.
    bounded(LIMIT, || {
        let lock = Lock::new();
        lock.acquire();
        let timeout = Duration::from_millis(20);
        let start = Instant::now();
        assert!(!lock.acquire_timeout(timeout));
        assert!(start.elapsed() >= timeout);
        assert!(lock.locked());
        lock.release().unwrap();
        assert!(!lock.locked());
        assert!(lock.try_acquire());
        lock.release().unwrap();
    });
}

#[test]
fn acquire_timeout_succeeds_when_the_holder_releases_during_the_wait() {
    bounded(LIMIT, || {
        let lock = Arc::new(Lock::new());
        lock.acquire();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let releaser = {
            let lock = lock.clone();
            thread::spawn(move || {
                recv(&go_rx, "go");
                lock.release().unwrap();
            })
        };
        // Whether the release comes before or during the wait, the wait must end with the lock.
        go_tx.send(()).unwrap();
        assert!(lock.acquire_timeout(WAIT));
        join(releaser);
        assert!(lock.locked());
        lock.release().unwrap();
    });
}

#[test]
fn acquire_timeout_with_a_huge_timeout_waits_for_the_release() {
    bounded(LIMIT, || {
        for reentrant in [false, true] {
            let lock = Arc::new(Lock::new());
            let rlock = Arc::new(RLock::new());
            let (held_tx, held_rx) = mpsc::channel();
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let holder = {
                let (lock, rlock) = (lock.clone(), rlock.clone());
                thread::spawn(move || {
                    rlock.acquire();
                    lock.acquire();
                    held_tx.send(()).unwrap();
                    recv(&go_rx, "go");
                    lock.release().unwrap();
                    rlock.release().unwrap();
                })
            };
            recv(&held_rx, "holder holds");
            go_tx.send(()).unwrap();
            // Too far in the future to be a deadline: no timeout at all, not an overflow.
            if reentrant {
                assert!(rlock.acquire_timeout(Duration::MAX));
                rlock.release().unwrap();
            } else {
                assert!(lock.acquire_timeout(Duration::MAX));
                lock.release().unwrap();
            }
            join(holder);
        }
    });
}

#[test]
fn lock_acquired_in_one_thread_can_be_released_by_another() {
    // lock_tests.py: LockTests.test_different_thread.
    bounded(LIMIT, || {
        let lock = Arc::new(Lock::new());
        let other = lock.clone();
        join(thread::spawn(move || other.acquire()));
        assert!(lock.locked());
        assert_eq!(lock.release(), Ok(()));
        assert!(!lock.locked());
        assert!(lock.try_acquire());
        lock.release().unwrap();
    });
}

#[test]
fn waiting_acquirer_proceeds_when_another_thread_releases() {
    // lock_tests.py: test_acquire_contended with one waiter, released by the main thread.
    bounded(LIMIT, || {
        let lock = Arc::new(Lock::new());
        lock.acquire();
        let (started_tx, started_rx) = mpsc::channel();
        let (acquired_tx, acquired_rx) = mpsc::channel();
        let waiter = {
            let lock = lock.clone();
            thread::spawn(move || {
                started_tx.send(()).unwrap();
                lock.acquire();
                acquired_tx.send(()).unwrap();
                lock.release().unwrap();
            })
        };
        recv(&started_rx, "waiter started");
        assert_nothing_yet(&acquired_rx, "acquisition of a held lock");
        lock.release().unwrap();
        recv(&acquired_rx, "waiter acquired after the release");
        join(waiter);
        assert!(!lock.locked());
    });
}

#[test]
fn lock_reacquired_by_its_holder_waits_until_another_thread_releases_it() {
    // lock_tests.py: LockTests.test_reacquire — a Lock is not reentrant.
    bounded(LIMIT, || {
        let lock = Arc::new(Lock::new());
        let (phase_tx, phase_rx) = mpsc::channel();
        let holder = {
            let lock = lock.clone();
            thread::spawn(move || {
                lock.acquire();
                phase_tx.send(1).unwrap();
                lock.acquire();
                phase_tx.send(2).unwrap();
            })
        };
        assert_eq!(recv(&phase_rx, "first acquire"), 1);
        assert_nothing_yet(&phase_rx, "re-acquisition of a held Lock");
        lock.release().unwrap();
        assert_eq!(recv(&phase_rx, "second acquire"), 2);
        join(holder);
        assert!(lock.locked());
        lock.release().unwrap();
    });
}

#[test]
fn lock_works_as_a_signal_released_by_a_third_thread() {
    bounded(LIMIT, || {
        let lock = Arc::new(Lock::named("signal"));
        // A acquires (and exits holding it).
        let a = {
            let lock = lock.clone();
            thread::Builder::new()
                .name("A".into())
                .spawn(move || lock.acquire())
                .unwrap()
        };
        join(a);
        assert!(lock.locked());
        // B blocks acquiring it.
        let (b_started_tx, b_started_rx) = mpsc::channel();
        let (b_acquired_tx, b_acquired_rx) = mpsc::channel();
        let b = {
            let lock = lock.clone();
            thread::Builder::new()
                .name("B".into())
                .spawn(move || {
                    b_started_tx.send(()).unwrap();
                    lock.acquire();
                    b_acquired_tx.send(()).unwrap();
                    lock.release().unwrap();
                })
                .unwrap()
        };
        recv(&b_started_rx, "B started");
        assert_nothing_yet(&b_acquired_rx, "B's acquisition of a held lock");
        // C releases it: B proceeds.
        let c = {
            let lock = lock.clone();
            thread::Builder::new()
                .name("C".into())
                .spawn(move || lock.release())
                .unwrap()
        };
        assert_eq!(join(c), Ok(()));
        recv(&b_acquired_rx, "B acquired after C released");
        join(b);
        assert!(!lock.locked());
        assert_eq!(lock.release(), Err(SyncError::NotLocked));
    });
}

#[test]
fn contended_acquirers_all_proceed_after_the_release() {
    // lock_tests.py: test_acquire_contended.
    bounded(LIMIT, || {
        const N: usize = 5;
        let lock = Arc::new(Lock::new());
        lock.acquire();
        let finished = Arc::new(AtomicUsize::new(0));
        let (started_tx, started_rx) = mpsc::channel();
        let threads: Vec<_> = (0..N)
            .map(|_| {
                let (lock, finished, started_tx) =
                    (lock.clone(), finished.clone(), started_tx.clone());
                thread::spawn(move || {
                    started_tx.send(()).unwrap();
                    lock.acquire();
                    lock.release().unwrap();
                    finished.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        for _ in 0..N {
            recv(&started_rx, "acquirer started");
        }
        std::thread::sleep(QUIET);
        assert_eq!(finished.load(Ordering::SeqCst), 0, "got a held lock");
        lock.release().unwrap();
        for t in threads {
            join(t);
        }
        assert_eq!(finished.load(Ordering::SeqCst), N);
        assert!(!lock.locked());
    });
}

#[test]
fn lock_gives_mutual_exclusion_counter_is_exact() {
    bounded(LIMIT, || {
        const THREADS: usize = 4;
        const ROUNDS: usize = 5_000;
        let lock = Arc::new(Lock::new());
        // Read-then-write increments: any overlap of two critical sections loses an update.
        let counter = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (lock, counter) = (lock.clone(), counter.clone());
                thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        lock.acquire();
                        let v = counter.load(Ordering::Relaxed);
                        std::hint::spin_loop();
                        counter.store(v + 1, Ordering::Relaxed);
                        lock.release().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            join(t);
        }
        assert_eq!(counter.load(Ordering::Relaxed), THREADS * ROUNDS);
        assert!(!lock.locked());
    });
}

#[test]
fn lock_guard_gives_mutual_exclusion_counter_is_exact() {
    bounded(LIMIT, || {
        const THREADS: usize = 4;
        const ROUNDS: usize = 5_000;
        let lock = Arc::new(Lock::new());
        let counter = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (lock, counter) = (lock.clone(), counter.clone());
                thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        let _guard = lock.lock();
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in threads {
            join(t);
        }
        assert_eq!(counter.load(Ordering::Relaxed), THREADS * ROUNDS);
        assert!(!lock.locked());
    });
}

#[test]
fn lock_guard_releases_on_drop() {
    // lock_tests.py: test_with.
    bounded(LIMIT, || {
        let lock = Lock::new();
        {
            let _guard = lock.lock();
            assert!(lock.locked());
            assert!(!lock.try_acquire());
        }
        assert!(!lock.locked());
        assert!(lock.try_acquire());
        lock.release().unwrap();
    });
}

#[test]
fn lock_guard_released_early_by_another_thread_drops_quietly() {
    bounded(LIMIT, || {
        let lock = Arc::new(Lock::new());
        let guard = lock.lock();
        let other = lock.clone();
        assert_eq!(join(thread::spawn(move || other.release())), Ok(()));
        assert!(!lock.locked());
        drop(guard);
        assert!(!lock.locked());
        assert_eq!(lock.release(), Err(SyncError::NotLocked));
    });
}

#[test]
fn lock_guard_releases_on_panic_unwind() {
    bounded(LIMIT, || {
        let lock = Arc::new(Lock::new());
        let other = lock.clone();
        let (caught, locked_after) = join(thread::spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| {
                let _guard = other.lock();
                assert!(other.locked());
                panic!("boom while holding a Lock");
            }));
            (result.is_err(), other.locked())
        }));
        assert!(caught);
        assert!(!locked_after);
        assert!(!lock.locked());
        assert!(lock.try_acquire());
        lock.release().unwrap();
    });
}

#[test]
fn lock_guard_releases_when_its_thread_dies_of_a_panic() {
    bounded(LIMIT, || {
        let lock = Arc::new(Lock::new());
        let other = lock.clone();
        let handle = thread::spawn(move || {
            let _guard = other.lock();
            panic!("boom while holding a Lock");
        });
        match handle.join_timeout(WAIT) {
            Ok(Err(_)) => {}
            Ok(Ok(())) => panic!("the thread did not panic"),
            Err(_) => panic!("thread still running"),
        }
        assert!(!lock.locked());
        assert!(lock.acquire_timeout(WAIT));
        lock.release().unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// RLock
// ---------------------------------------------------------------------------------------------

#[test]
fn rlock_constructors_give_an_unowned_lock() {
    bounded(LIMIT, || {
        for lock in [RLock::new(), RLock::named("registry"), RLock::default()] {
            assert!(!lock.is_owned());
            assert!(lock.try_acquire());
            assert!(lock.is_owned());
            lock.release().unwrap();
            assert!(!lock.is_owned());
        }
        assert!(format!("{:?}", RLock::new()).contains("RLock"));
    });
}

#[test]
fn rlock_reentered_n_times_needs_n_releases() {
    // lock_tests.py: RLockTests.test_reacquire.
    bounded(LIMIT, || {
        const N: usize = 10;
        let lock = Arc::new(RLock::new());
        for _ in 0..N {
            lock.acquire();
        }
        for level in (1..=N).rev() {
            assert!(lock.is_owned());
            assert!(
                !rlock_free_for_other_thread(&lock),
                "free with {level} levels still held"
            );
            lock.release().unwrap();
        }
        assert!(!lock.is_owned());
        assert!(rlock_free_for_other_thread(&lock));
        assert_eq!(lock.release(), Err(SyncError::NotOwner));
    });
}

#[test]
fn rlock_release_when_unlocked_is_not_owner_error() {
    // lock_tests.py: RLockTests.test_release_unacquired.
    bounded(LIMIT, || {
        let lock = RLock::new();
        assert_eq!(lock.release(), Err(SyncError::NotOwner));
        lock.acquire();
        lock.acquire();
        lock.release().unwrap();
        lock.acquire();
        lock.release().unwrap();
        lock.release().unwrap();
        assert_eq!(lock.release(), Err(SyncError::NotOwner));
        assert!(!lock.is_owned());
        assert!(lock.try_acquire());
        lock.release().unwrap();
    });
}

#[test]
fn rlock_release_from_non_owner_thread_is_not_owner_error() {
    // lock_tests.py: RLockTests.test_different_thread.
    bounded(LIMIT, || {
        let lock = Arc::new(RLock::new());
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let owner = {
            let lock = lock.clone();
            thread::spawn(move || {
                lock.acquire();
                lock.acquire();
                held_tx.send(()).unwrap();
                recv(&release_rx, "release");
                assert!(lock.is_owned());
                lock.release().unwrap();
                lock.release().unwrap();
                assert_eq!(lock.release(), Err(SyncError::NotOwner));
            })
        };
        recv(&held_rx, "owner holds the RLock");
        assert!(!lock.is_owned());
        assert_eq!(lock.release(), Err(SyncError::NotOwner));
        assert_eq!(lock.release(), Err(SyncError::NotOwner));
        // The failed releases took nothing from the owner.
        assert!(!lock.try_acquire());
        assert!(!rlock_free_for_other_thread(&lock));
        release_tx.send(()).unwrap();
        join(owner);
        assert!(lock.try_acquire());
        lock.release().unwrap();
    });
}

#[test]
fn rlock_release_from_another_thread_when_unlocked_is_not_owner_error() {
    bounded(LIMIT, || {
        let lock = Arc::new(RLock::new());
        let other = lock.clone();
        assert_eq!(
            join(thread::spawn(move || other.release())),
            Err(SyncError::NotOwner)
        );
        // Also after the lock has been used and fully released.
        lock.acquire();
        lock.release().unwrap();
        let other = lock.clone();
        assert_eq!(
            join(thread::spawn(move || other.release())),
            Err(SyncError::NotOwner)
        );
    });
}

#[test]
fn rlock_is_owned_only_in_the_owner_thread() {
    // lock_tests.py: RLockTests.test__is_owned / test_thread_recursion.
    bounded(LIMIT, || {
        let lock = Arc::new(RLock::new());
        assert!(!lock.is_owned());
        lock.acquire();
        assert!(lock.is_owned());
        lock.acquire();
        assert!(lock.is_owned());
        let other = lock.clone();
        assert!(!join(thread::spawn(move || other.is_owned())));
        lock.release().unwrap();
        assert!(lock.is_owned());
        lock.release().unwrap();
        assert!(!lock.is_owned());
    });
}

#[test]
fn rlock_try_acquire_by_its_owner_reenters() {
    bounded(LIMIT, || {
        let lock = Arc::new(RLock::new());
        lock.acquire();
        assert!(lock.try_acquire());
        assert!(lock.try_acquire());
        lock.release().unwrap();
        lock.release().unwrap();
        assert!(lock.is_owned(), "two releases undid three acquisitions");
        assert!(!rlock_free_for_other_thread(&lock));
        lock.release().unwrap();
        assert!(!lock.is_owned());
        assert!(rlock_free_for_other_thread(&lock));
    });
}

#[test]
fn rlock_try_acquire_of_lock_owned_by_another_thread_fails() {
    bounded(LIMIT, || {
        let lock = Arc::new(RLock::new());
        lock.acquire();
        assert!(!rlock_free_for_other_thread(&lock));
        lock.release().unwrap();
        assert!(rlock_free_for_other_thread(&lock));
    });
}

#[test]
fn rlock_acquire_timeout_by_its_owner_reenters_at_once() {
    bounded(LIMIT, || {
        let lock = RLock::new();
        lock.acquire();
        let start = Instant::now();
        assert!(lock.acquire_timeout(Duration::from_secs(30)));
        assert!(lock.acquire_timeout(Duration::ZERO));
        assert!(start.elapsed() < SLACK);
        for _ in 0..3 {
            lock.release().unwrap();
        }
        assert_eq!(lock.release(), Err(SyncError::NotOwner));
    });
}

#[test]
fn rlock_acquire_timeout_of_lock_owned_by_another_thread_fails_after_the_timeout() {
    bounded(LIMIT, || {
        let lock = Arc::new(RLock::new());
        lock.acquire();
        let other = lock.clone();
        let timeout = Duration::from_millis(200);
        let (got, elapsed, owned) = join(thread::spawn(move || {
            let start = Instant::now();
            let got = other.acquire_timeout(timeout);
            (got, start.elapsed(), other.is_owned())
        }));
        assert!(!got);
        assert!(!owned);
        assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
        assert!(elapsed < timeout + SLACK, "gave up late: {elapsed:?}");
        assert!(lock.is_owned());
        lock.release().unwrap();
    });
}

#[test]
fn rlock_waiting_acquirer_proceeds_when_the_owner_releases_every_level() {
    bounded(LIMIT, || {
        let lock = Arc::new(RLock::new());
        lock.acquire();
        lock.acquire();
        let (started_tx, started_rx) = mpsc::channel();
        let (acquired_tx, acquired_rx) = mpsc::channel();
        let waiter = {
            let lock = lock.clone();
            thread::spawn(move || {
                started_tx.send(()).unwrap();
                lock.acquire();
                acquired_tx.send(lock.is_owned()).unwrap();
                lock.release().unwrap();
            })
        };
        recv(&started_rx, "waiter started");
        assert_nothing_yet(&acquired_rx, "acquisition of an owned RLock");
        lock.release().unwrap();
        assert_nothing_yet(&acquired_rx, "acquisition with one level still held");
        lock.release().unwrap();
        assert!(recv(&acquired_rx, "waiter acquired"));
        join(waiter);
    });
}

#[test]
fn rlock_gives_mutual_exclusion_counter_is_exact() {
    bounded(LIMIT, || {
        const THREADS: usize = 4;
        const ROUNDS: usize = 5_000;
        let lock = Arc::new(RLock::new());
        let counter = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (lock, counter) = (lock.clone(), counter.clone());
                thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        lock.acquire();
                        lock.acquire();
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                        lock.release().unwrap();
                        lock.release().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            join(t);
        }
        assert_eq!(counter.load(Ordering::Relaxed), THREADS * ROUNDS);
    });
}

#[test]
fn rlock_guards_nest_and_release_one_level_each() {
    bounded(LIMIT, || {
        let lock = Arc::new(RLock::new());
        let outer = lock.lock();
        let inner = lock.lock();
        drop(inner);
        assert!(lock.is_owned());
        assert!(!rlock_free_for_other_thread(&lock));
        drop(outer);
        assert!(!lock.is_owned());
        assert!(rlock_free_for_other_thread(&lock));
    });
}

#[test]
fn rlock_guard_mixes_with_explicit_acquire_and_release() {
    bounded(LIMIT, || {
        let lock = Arc::new(RLock::new());
        let guard = lock.lock();
        lock.acquire();
        lock.release().unwrap();
        assert!(lock.is_owned());
        drop(guard);
        assert!(!lock.is_owned());
        assert_eq!(lock.release(), Err(SyncError::NotOwner));
        assert!(rlock_free_for_other_thread(&lock));
    });
}

#[test]
fn rlock_guard_releases_every_level_on_panic_unwind() {
    bounded(LIMIT, || {
        let lock = Arc::new(RLock::new());
        let other = lock.clone();
        let (caught, owned_after) = join(thread::spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| {
                let _outer = other.lock();
                let _inner = other.lock();
                panic!("boom while holding an RLock twice");
            }));
            (result.is_err(), other.is_owned())
        }));
        assert!(caught);
        assert!(!owned_after);
        assert!(rlock_free_for_other_thread(&lock));
        assert!(lock.acquire_timeout(WAIT));
        lock.release().unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// With instrumentation: the valid programs above are not reported.
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "detect")]
mod detect {
    use super::*;

    #[test]
    fn lock_released_by_a_third_thread_for_an_exited_acquirer_is_not_reported() {
        bounded(LIMIT, || {
            const NAME: &str = "lock_semantics-signal-of-exited-acquirer";
            let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
            {
                let seen = seen.clone();
                lockwatch::set_handler(move |report| {
                    seen.lock().unwrap().push(report.to_json());
                });
            }
            let lock = Arc::new(Lock::named(NAME));
            {
                let lock = lock.clone();
                join(thread::spawn(move || lock.acquire()));
            }
            let (started_tx, started_rx) = mpsc::channel();
            let (acquired_tx, acquired_rx) = mpsc::channel();
            let waiter = {
                let lock = lock.clone();
                thread::spawn(move || {
                    started_tx.send(()).unwrap();
                    lock.acquire();
                    acquired_tx.send(()).unwrap();
                    lock.release().unwrap();
                })
            };
            recv(&started_rx, "waiter started");
            // Long enough for the watchdog (100 ms by default) to look at the wait.
            assert_nothing_yet(&acquired_rx, "acquisition of a held lock");
            std::thread::sleep(Duration::from_millis(250));
            let found: Vec<String> = lockwatch::check()
                .iter()
                .map(|r| r.to_json())
                .chain(seen.lock().unwrap().iter().cloned())
                .filter(|json| json.contains(NAME))
                .collect();
            lock.release().unwrap();
            recv(&acquired_rx, "waiter acquired");
            join(waiter);
            assert!(found.is_empty(), "a valid signal was reported: {found:#?}");
        });
    }
}
