//! The parking_lot-style primitives — `Mutex`, `RwLock`, `ReentrantMutex`, `Condvar` — keep
//! parking_lot's surface and semantics (no poisoning), with or without instrumentation.
//!
//! Every test runs under a hard time limit; interleavings are forced with channels and
//! barriers. Sleeps only let a wait outlast something, never decide an outcome.

mod support;
use lockwatch::thread;
use lockwatch::{Condvar, Mutex, ReentrantMutex, RwLock};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// The hard bound on a whole test.
const LIMIT: Duration = Duration::from_secs(60);
/// Allowed lateness of a timed wait: generous, so a loaded machine never flakes.
const SLACK: Duration = Duration::from_secs(2);

/// A barrier whose wait gives up (failing the test) instead of hanging.
struct TimedBarrier {
    state: std::sync::Mutex<(usize, usize)>,
    cv: std::sync::Condvar,
    parties: usize,
}

impl TimedBarrier {
    fn new(parties: usize) -> TimedBarrier {
        TimedBarrier {
            state: std::sync::Mutex::new((0, 0)),
            cv: std::sync::Condvar::new(),
            parties,
        }
    }

    fn wait(&self) {
        let deadline = Instant::now() + WAIT;
        let mut state = self.state.lock().unwrap();
        let generation = state.1;
        state.0 += 1;
        if state.0 == self.parties {
            *state = (0, generation + 1);
            self.cv.notify_all();
            return;
        }
        while state.1 == generation {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "barrier: only {} of {} parties arrived within {WAIT:?}",
                state.0,
                self.parties
            );
            state = self.cv.wait_timeout(state, left).unwrap().0;
        }
    }
}

/// Polls `condition` until it holds, failing after [`WAIT`].
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------------
// Mutex
// ---------------------------------------------------------------------------------------------

#[test]
fn mutex_lock_gives_access_to_the_data() {
    bounded(LIMIT, || {
        let m = Mutex::new(vec![1, 2]);
        m.lock().push(3);
        assert_eq!(*m.lock(), [1, 2, 3]);
        let named = Mutex::named("balance", 100);
        *named.lock() -= 30;
        assert_eq!(*named.lock(), 70);
        let default: Mutex<u32> = Mutex::default();
        assert_eq!(*default.lock(), 0);
    });
}

#[test]
fn mutex_is_locked_only_while_a_guard_lives() {
    bounded(LIMIT, || {
        let m = Mutex::new(0);
        assert!(!m.is_locked());
        let guard = m.lock();
        assert!(m.is_locked());
        drop(guard);
        assert!(!m.is_locked());
    });
}

#[test]
fn mutex_try_lock_succeeds_when_free_and_fails_when_held() {
    bounded(LIMIT, || {
        let m = Arc::new(Mutex::new(5));
        {
            let guard = m.try_lock().expect("free mutex");
            assert_eq!(*guard, 5);
            // Held by this very thread: a try never waits, never deadlocks.
            assert!(m.try_lock().is_none());
            let other = m.clone();
            assert!(!join(thread::spawn(move || other.try_lock().is_some())));
        }
        let other = m.clone();
        assert!(join(thread::spawn(move || other.try_lock().is_some())));
    });
}

#[test]
fn mutex_try_lock_for_on_held_mutex_times_out() {
    bounded(LIMIT, || {
        let m = Arc::new(Mutex::new(()));
        let _guard = m.lock();
        let other = m.clone();
        let timeout = Duration::from_millis(200);
        let (got, elapsed) = join(thread::spawn(move || {
            let start = Instant::now();
            let got = other.try_lock_for(timeout).is_some();
            (got, start.elapsed())
        }));
        assert!(!got);
        assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
        assert!(elapsed < timeout + SLACK, "gave up late: {elapsed:?}");
    });
}

#[test]
fn mutex_try_lock_for_succeeds_when_the_holder_releases_during_the_wait() {
    bounded(LIMIT, || {
        let m = Arc::new(Mutex::new(0));
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let holder = {
            let m = m.clone();
            thread::spawn(move || {
                let mut guard = m.lock();
                held_tx.send(()).unwrap();
                recv(&go_rx, "go");
                *guard = 7;
            })
        };
        recv(&held_rx, "holder holds");
        go_tx.send(()).unwrap();
        let guard = m.try_lock_for(WAIT).expect("released within the timeout");
        assert_eq!(*guard, 7);
        drop(guard);
        join(holder);
    });
}

#[test]
fn mutex_try_lock_for_by_its_holder_times_out() {
    bounded(LIMIT, || {
        let m = Mutex::new(());
        let _guard = m.lock();
        let timeout = Duration::from_millis(100);
        let start = Instant::now();
        assert!(m.try_lock_for(timeout).is_none());
        let elapsed = start.elapsed();
        assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
        assert!(elapsed < timeout + SLACK, "gave up late: {elapsed:?}");
    });
}

#[test]
fn mutex_try_lock_for_with_a_huge_timeout_waits_for_the_release() {
    bounded(LIMIT, || {
        let m = Arc::new(Mutex::new(0));
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let holder = {
            let m = m.clone();
            thread::spawn(move || {
                let mut guard = m.lock();
                held_tx.send(()).unwrap();
                recv(&go_rx, "go");
                *guard = 3;
            })
        };
        recv(&held_rx, "holder holds");
        go_tx.send(()).unwrap();
        // Too far in the future to be a deadline: no timeout at all, not an overflow.
        assert_eq!(*m.try_lock_for(Duration::MAX).expect("acquired"), 3);
        join(holder);
    });
}

#[test]
fn mutex_get_mut_and_into_inner_need_no_locking() {
    bounded(LIMIT, || {
        let mut m = Mutex::new(String::from("a"));
        m.get_mut().push('b');
        assert_eq!(*m.lock(), "ab");
        assert!(!m.is_locked());
        assert_eq!(m.into_inner(), "ab");
    });
}

#[test]
fn mutex_debug_shows_the_data_or_locked() {
    bounded(LIMIT, || {
        let m = Mutex::new(12345);
        assert!(format!("{m:?}").contains("12345"));
        let guard = m.lock();
        assert!(!format!("{m:?}").contains("12345"));
        assert_eq!(format!("{guard:?}"), "12345");
        assert_eq!(format!("{guard}"), "12345");
    });
}

#[test]
fn mutex_is_not_poisoned_by_a_panic_while_held() {
    bounded(LIMIT, || {
        let m = Arc::new(Mutex::new(0));
        let other = m.clone();
        let handle = thread::spawn(move || {
            let mut guard = other.lock();
            *guard = 1;
            panic!("boom while holding a Mutex");
        });
        assert!(matches!(handle.join_timeout(WAIT), Ok(Err(_))));
        assert!(!m.is_locked());
        let mut guard = m.try_lock_for(WAIT).expect("the panic released the mutex");
        assert_eq!(*guard, 1, "the write before the panic is kept");
        *guard = 2;
        drop(guard);
        assert_eq!(*m.lock(), 2);
    });
}

#[test]
fn mutex_guard_releases_on_caught_panic() {
    bounded(LIMIT, || {
        let m = Mutex::new(0);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut guard = m.lock();
            *guard += 1;
            panic!("boom while holding a Mutex");
        }));
        assert!(result.is_err());
        assert!(!m.is_locked());
        assert_eq!(*m.lock(), 1);
    });
}

#[test]
fn mutex_gives_mutual_exclusion_counter_is_exact() {
    bounded(LIMIT, || {
        const THREADS: usize = 4;
        const ROUNDS: usize = 10_000;
        let m = Arc::new(Mutex::new(0usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        *m.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            join(t);
        }
        assert_eq!(*m.lock(), THREADS * ROUNDS);
    });
}

#[test]
fn mutex_waiter_proceeds_when_the_holder_releases() {
    bounded(LIMIT, || {
        let m = Arc::new(Mutex::new(0));
        let guard = m.lock();
        let (started_tx, started_rx) = mpsc::channel();
        let (acquired_tx, acquired_rx) = mpsc::channel();
        let waiter = {
            let m = m.clone();
            thread::spawn(move || {
                started_tx.send(()).unwrap();
                let mut guard = m.lock();
                *guard += 1;
                acquired_tx.send(()).unwrap();
            })
        };
        recv(&started_rx, "waiter started");
        assert_nothing_yet(&acquired_rx, "lock of a held Mutex");
        drop(guard);
        recv(&acquired_rx, "waiter acquired");
        join(waiter);
        assert_eq!(*m.lock(), 1);
    });
}

// ---------------------------------------------------------------------------------------------
// RwLock
// ---------------------------------------------------------------------------------------------

#[test]
fn rwlock_read_and_write_give_access_to_the_data() {
    bounded(LIMIT, || {
        let lock = RwLock::named("config", vec![1, 2]);
        assert_eq!(lock.read().len(), 2);
        lock.write().push(3);
        assert_eq!(*lock.read(), [1, 2, 3]);
        let default: RwLock<String> = RwLock::default();
        assert!(default.read().is_empty());
        assert!(!lock.is_locked());
    });
}

#[test]
fn rwlock_admits_many_readers_at_once() {
    bounded(LIMIT, || {
        const READERS: usize = 4;
        let lock = Arc::new(RwLock::new(42));
        // Every reader holds its guard while it waits for all the others: only concurrent
        // readers can pass this barrier.
        let inside = Arc::new(TimedBarrier::new(READERS + 1));
        let leave = Arc::new(TimedBarrier::new(READERS + 1));
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (lock, inside, leave) = (lock.clone(), inside.clone(), leave.clone());
                thread::spawn(move || {
                    let guard = lock.read();
                    inside.wait();
                    let value = *guard;
                    leave.wait();
                    value
                })
            })
            .collect();
        inside.wait();
        // Meanwhile: readers are in, so another reader gets in and a writer does not.
        assert!(lock.is_locked());
        assert!(!lock.is_locked_exclusive());
        assert_eq!(lock.try_read().map(|g| *g), Some(42));
        assert!(lock.try_write().is_none());
        leave.wait();
        for r in readers {
            assert_eq!(join(r), 42);
        }
        assert!(lock.try_write().is_some());
    });
}

#[test]
fn rwlock_read_taken_twice_by_one_thread_without_writers_succeeds() {
    bounded(LIMIT, || {
        let lock = RwLock::new(1);
        let a = lock.read();
        let b = lock.read();
        let c = lock.try_read().expect("shared with itself");
        assert_eq!(*a + *b + *c, 3);
        assert!(lock.try_write().is_none());
        drop((a, b, c));
        assert!(lock.try_write().is_some());
    });
}

#[test]
fn rwlock_try_write_for_while_readers_hold_times_out() {
    bounded(LIMIT, || {
        let lock = Arc::new(RwLock::new(0));
        let guard = lock.read();
        let other = lock.clone();
        let timeout = Duration::from_millis(200);
        let (got, elapsed) = join(thread::spawn(move || {
            let start = Instant::now();
            let got = other.try_write_for(timeout).is_some();
            (got, start.elapsed())
        }));
        assert!(!got);
        assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
        assert!(elapsed < timeout + SLACK, "gave up late: {elapsed:?}");
        drop(guard);
        assert!(lock.try_write().is_some());
    });
}

#[test]
fn rwlock_writer_excludes_readers_and_writers() {
    bounded(LIMIT, || {
        let lock = Arc::new(RwLock::new(0));
        let mut guard = lock.write();
        *guard = 1;
        assert!(lock.is_locked_exclusive());
        let other = lock.clone();
        let (read, write) = join(thread::spawn(move || {
            (other.try_read().is_some(), other.try_write().is_some())
        }));
        assert!(!read);
        assert!(!write);
        // The holder itself cannot get in either.
        assert!(lock.try_read().is_none());
        assert!(lock.try_write().is_none());
        drop(guard);
        assert!(!lock.is_locked());
        assert_eq!(*lock.try_read().expect("free"), 1);
    });
}

#[test]
fn rwlock_try_read_for_while_a_writer_holds_times_out() {
    bounded(LIMIT, || {
        let lock = Arc::new(RwLock::new(0));
        let _guard = lock.write();
        let other = lock.clone();
        let timeout = Duration::from_millis(200);
        let (got, elapsed) = join(thread::spawn(move || {
            let start = Instant::now();
            let got = other.try_read_for(timeout).is_some();
            (got, start.elapsed())
        }));
        assert!(!got);
        assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
        assert!(elapsed < timeout + SLACK, "gave up late: {elapsed:?}");
    });
}

#[test]
fn rwlock_timed_acquisitions_succeed_when_the_lock_frees_during_the_wait() {
    bounded(LIMIT, || {
        let lock = Arc::new(RwLock::new(0));
        for write in [false, true] {
            let (held_tx, held_rx) = mpsc::channel();
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let writer = {
                let lock = lock.clone();
                thread::spawn(move || {
                    let mut guard = lock.write();
                    held_tx.send(()).unwrap();
                    recv(&go_rx, "go");
                    *guard += 1;
                })
            };
            recv(&held_rx, "writer holds");
            go_tx.send(()).unwrap();
            if write {
                let guard = lock.try_write_for(WAIT).expect("freed within the timeout");
                assert_eq!(*guard, 2);
            } else {
                let guard = lock.try_read_for(WAIT).expect("freed within the timeout");
                assert_eq!(*guard, 1);
            }
            join(writer);
        }
    });
}

#[test]
fn rwlock_writers_are_exclusive_counter_is_exact() {
    bounded(LIMIT, || {
        const WRITERS: usize = 3;
        const READERS: usize = 2;
        const ROUNDS: usize = 5_000;
        // Both halves change together under the write lock; a reader sees them differ only if
        // it overlapped a writer.
        let lock = Arc::new(RwLock::new((0usize, 0usize)));
        let torn = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for _ in 0..WRITERS {
            let lock = lock.clone();
            threads.push(thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let mut guard = lock.write();
                    guard.0 += 1;
                    std::hint::spin_loop();
                    guard.1 += 1;
                }
            }));
        }
        for _ in 0..READERS {
            let (lock, torn) = (lock.clone(), torn.clone());
            threads.push(thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let guard = lock.read();
                    if guard.0 != guard.1 {
                        torn.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in threads {
            join(t);
        }
        assert_eq!(
            torn.load(Ordering::Relaxed),
            0,
            "a reader saw a writer's half-done work"
        );
        assert_eq!(*lock.read(), (WRITERS * ROUNDS, WRITERS * ROUNDS));
    });
}

#[test]
fn rwlock_get_mut_and_into_inner_need_no_locking() {
    bounded(LIMIT, || {
        let mut lock = RwLock::new(vec![1]);
        lock.get_mut().push(2);
        assert_eq!(*lock.read(), [1, 2]);
        assert_eq!(lock.into_inner(), [1, 2]);
    });
}

#[test]
fn rwlock_is_not_poisoned_by_a_panic_while_writing() {
    bounded(LIMIT, || {
        let lock = Arc::new(RwLock::new(0));
        let other = lock.clone();
        let handle = thread::spawn(move || {
            let mut guard = other.write();
            *guard = 9;
            panic!("boom while holding a write lock");
        });
        assert!(matches!(handle.join_timeout(WAIT), Ok(Err(_))));
        assert!(!lock.is_locked());
        assert_eq!(*lock.try_read_for(WAIT).expect("released by the panic"), 9);
        *lock.write() = 10;
        assert_eq!(*lock.read(), 10);
    });
}

// ---------------------------------------------------------------------------------------------
// ReentrantMutex
// ---------------------------------------------------------------------------------------------

/// A thread that answers "could you take this ReentrantMutex right now?".
struct Prober {
    ask: Option<mpsc::Sender<()>>,
    answers: mpsc::Receiver<bool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Prober {
    fn new<T: Send + 'static>(mutex: Arc<ReentrantMutex<T>>) -> Prober {
        let (ask, questions) = mpsc::channel::<()>();
        let (answer, answers) = mpsc::channel();
        let handle = thread::spawn(move || {
            while questions.recv().is_ok() {
                let got = mutex.try_lock().is_some();
                if answer.send(got).is_err() {
                    break;
                }
            }
        });
        Prober {
            ask: Some(ask),
            answers,
            handle: Some(handle),
        }
    }

    fn can_lock(&self) -> bool {
        self.ask.as_ref().unwrap().send(()).unwrap();
        recv(&self.answers, "prober answer")
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.ask.take();
        if let Some(handle) = self.handle.take() {
            if !std::thread::panicking() {
                join(handle);
            }
        }
    }
}

#[test]
fn reentrant_mutex_owner_reenters_without_blocking() {
    bounded(LIMIT, || {
        let m = ReentrantMutex::named("counter", Cell::new(0));
        let outer = m.lock();
        let inner = m.lock();
        let innermost = m.try_lock().expect("the owner re-enters with try_lock");
        let timed = m
            .try_lock_for(Duration::ZERO)
            .expect("the owner re-enters with try_lock_for");
        inner.set(inner.get() + 1);
        // Every guard gives `&T` to the same data.
        assert!(std::ptr::eq(&*outer, &*innermost));
        assert_eq!(timed.get(), 1);
        assert!(m.is_owned_by_current_thread());
        drop((timed, innermost, inner));
        outer.set(outer.get() + 1);
        drop(outer);
        assert!(!m.is_locked());
        assert!(!m.is_owned_by_current_thread());
        assert_eq!(m.lock().get(), 2);
    });
}

#[test]
fn reentrant_mutex_excludes_other_threads_until_every_level_is_released() {
    bounded(LIMIT, || {
        let m = Arc::new(ReentrantMutex::new(RefCell::new(Vec::new())));
        let prober = Prober::new(m.clone());
        assert!(prober.can_lock());
        let levels: Vec<_> = (0..3).map(|_| m.lock()).collect();
        levels[2].borrow_mut().push(1);
        let mut levels = levels;
        while let Some(level) = levels.pop() {
            assert!(m.is_locked());
            assert!(
                !prober.can_lock(),
                "free with {} levels held",
                levels.len() + 1
            );
            drop(level);
        }
        assert!(!m.is_locked());
        assert!(prober.can_lock());
        assert_eq!(*m.lock().borrow(), [1]);
    });
}

#[test]
fn reentrant_mutex_blocked_locker_proceeds_after_the_last_level() {
    bounded(LIMIT, || {
        let m = Arc::new(ReentrantMutex::new(Cell::new(0)));
        let outer = m.lock();
        let inner = m.lock();
        let (started_tx, started_rx) = mpsc::channel();
        let (acquired_tx, acquired_rx) = mpsc::channel();
        let locker = {
            let m = m.clone();
            thread::spawn(move || {
                started_tx.send(()).unwrap();
                let guard = m.lock();
                guard.set(guard.get() + 1);
                acquired_tx.send(()).unwrap();
            })
        };
        recv(&started_rx, "locker started");
        assert_nothing_yet(&acquired_rx, "lock of an owned ReentrantMutex");
        drop(inner);
        assert_nothing_yet(&acquired_rx, "lock with one level still held");
        drop(outer);
        recv(&acquired_rx, "locker acquired");
        join(locker);
        assert_eq!(m.lock().get(), 1);
    });
}

#[test]
fn reentrant_mutex_try_lock_for_from_another_thread_times_out() {
    bounded(LIMIT, || {
        let m = Arc::new(ReentrantMutex::new(()));
        let _guard = m.lock();
        let other = m.clone();
        let timeout = Duration::from_millis(200);
        let (got, elapsed, owned) = join(thread::spawn(move || {
            let start = Instant::now();
            let got = other.try_lock_for(timeout).is_some();
            (got, start.elapsed(), other.is_owned_by_current_thread())
        }));
        assert!(!got);
        assert!(!owned);
        assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
        assert!(elapsed < timeout + SLACK, "gave up late: {elapsed:?}");
    });
}

#[test]
fn reentrant_mutex_gives_mutual_exclusion_counter_is_exact() {
    bounded(LIMIT, || {
        const THREADS: usize = 4;
        const ROUNDS: usize = 5_000;
        let m = Arc::new(ReentrantMutex::new(Cell::new(0usize)));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        let outer = m.lock();
                        let inner = m.lock();
                        inner.set(outer.get() + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            join(t);
        }
        assert_eq!(m.lock().get(), THREADS * ROUNDS);
    });
}

#[test]
fn reentrant_mutex_get_mut_and_into_inner_need_no_locking() {
    bounded(LIMIT, || {
        let mut m = ReentrantMutex::new(1);
        *m.get_mut() += 1;
        assert_eq!(*m.lock(), 2);
        assert_eq!(m.into_inner(), 2);
    });
}

#[test]
fn reentrant_mutex_releases_every_level_on_panic_unwind() {
    bounded(LIMIT, || {
        let m = Arc::new(ReentrantMutex::new(()));
        let result = catch_unwind(AssertUnwindSafe(|| {
            let _outer = m.lock();
            let _inner = m.lock();
            panic!("boom while holding a ReentrantMutex twice");
        }));
        assert!(result.is_err());
        assert!(!m.is_locked());
        let prober = Prober::new(m.clone());
        assert!(prober.can_lock());
    });
}

// ---------------------------------------------------------------------------------------------
// Condvar
// ---------------------------------------------------------------------------------------------

#[test]
fn condvar_notify_without_waiters_wakes_nobody() {
    bounded(LIMIT, || {
        let cv = Condvar::new();
        assert!(!cv.notify_one());
        assert_eq!(cv.notify_all(), 0);
        let named = Condvar::named("ready");
        assert!(!named.notify_one());
        assert_eq!(named.notify_all(), 0);
        assert!(!Condvar::default().notify_one());
    });
}

/// State shared by the waiters of the notify tests: `tokens` are handed out by the notifier and
/// each waiter that wakes takes one, so exactly as many waiters proceed as were let through.
#[derive(Default)]
struct Gate {
    waiting: usize,
    tokens: usize,
    passed: usize,
}

fn spawn_gate_waiters(n: usize, pair: &Arc<(Mutex<Gate>, Condvar)>) -> Vec<thread::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let pair = pair.clone();
            thread::spawn(move || {
                let (m, cv) = &*pair;
                let mut gate = m.lock();
                gate.waiting += 1;
                cv.wait_while(&mut gate, |g| g.tokens == 0);
                gate.tokens -= 1;
                gate.waiting -= 1;
                gate.passed += 1;
            })
        })
        .collect()
}

/// Waits until `n` waiters are inside `Condvar::wait`. A waiter counts itself under the mutex
/// and releases the mutex only by waiting, so once the notifier holds the mutex and sees `n`,
/// all `n` are waiting.
fn wait_for_waiters(pair: &(Mutex<Gate>, Condvar), n: usize) {
    eventually("waiters waiting", || pair.0.lock().waiting == n);
}

#[test]
fn condvar_notify_one_wakes_one_of_two_waiters() {
    bounded(LIMIT, || {
        let pair = Arc::new((Mutex::new(Gate::default()), Condvar::new()));
        let waiters = spawn_gate_waiters(2, &pair);
        wait_for_waiters(&pair, 2);
        {
            let mut gate = pair.0.lock();
            gate.tokens += 1;
            pair.1.notify_one();
        }
        eventually("one waiter passed", || pair.0.lock().passed == 1);
        // Let a second, wrong wake-up have its chance: still only one may pass.
        std::thread::sleep(QUIET);
        {
            let gate = pair.0.lock();
            assert_eq!(gate.passed, 1);
            assert_eq!(gate.waiting, 1);
        }
        {
            let mut gate = pair.0.lock();
            gate.tokens += 1;
            pair.1.notify_one();
        }
        for w in waiters {
            join(w);
        }
        let gate = pair.0.lock();
        assert_eq!((gate.passed, gate.waiting, gate.tokens), (2, 0, 0));
    });
}

#[test]
fn condvar_notify_all_wakes_every_waiter() {
    bounded(LIMIT, || {
        const N: usize = 4;
        let pair = Arc::new((Mutex::new(Gate::default()), Condvar::new()));
        let waiters = spawn_gate_waiters(N, &pair);
        wait_for_waiters(&pair, N);
        {
            let mut gate = pair.0.lock();
            gate.tokens = N;
            pair.1.notify_all();
        }
        for w in waiters {
            join(w);
        }
        let gate = pair.0.lock();
        assert_eq!((gate.passed, gate.waiting, gate.tokens), (N, 0, 0));
    });
}

/// How long the notifier holds the mutex before notifying in the return-value tests: longer
/// than any internal time slice of a waiter, so a waiter that leaves the condvar's queue
/// between slices would be caught.
const OUTLAST_SLICES: Duration = Duration::from_millis(250);

#[test]
fn condvar_notify_one_returns_true_while_a_thread_waits() {
    bounded(LIMIT, || {
        let pair = Arc::new((Mutex::new(Gate::default()), Condvar::new()));
        let waiters = spawn_gate_waiters(1, &pair);
        wait_for_waiters(&pair, 1);
        let mut gate = pair.0.lock();
        // The waiter is inside `wait` (it counted itself and released the mutex), and stays
        // there: it cannot return while this thread holds the mutex.
        assert_eq!(gate.waiting, 1);
        std::thread::sleep(OUTLAST_SLICES);
        gate.tokens += 1;
        assert!(pair.1.notify_one(), "a thread in wait() was not woken");
        drop(gate);
        for w in waiters {
            join(w);
        }
    });
}

#[test]
fn condvar_notify_all_returns_the_number_of_waiting_threads() {
    bounded(LIMIT, || {
        const N: usize = 3;
        let pair = Arc::new((Mutex::new(Gate::default()), Condvar::new()));
        let waiters = spawn_gate_waiters(N, &pair);
        wait_for_waiters(&pair, N);
        let mut gate = pair.0.lock();
        std::thread::sleep(OUTLAST_SLICES);
        gate.tokens = N;
        assert_eq!(pair.1.notify_all(), N);
        drop(gate);
        for w in waiters {
            join(w);
        }
    });
}

#[test]
fn condvar_wait_for_without_notification_times_out() {
    bounded(LIMIT, || {
        let m = Mutex::new(0);
        let cv = Condvar::new();
        let mut guard = m.lock();
        let timeout = Duration::from_millis(200);
        let start = Instant::now();
        let result = cv.wait_for(&mut guard, timeout);
        let elapsed = start.elapsed();
        assert!(result.timed_out());
        assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
        assert!(elapsed < timeout + SLACK, "gave up late: {elapsed:?}");
        // The guard is held again after the wait.
        *guard += 1;
        assert!(m.is_locked());
        assert!(m.try_lock().is_none());
        drop(guard);
        assert_eq!(*m.lock(), 1);
    });
}

#[test]
fn condvar_wait_for_notified_in_time_does_not_time_out() {
    bounded(LIMIT, || {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let mut ready = pair.0.lock();
        let notifier = {
            let pair = pair.clone();
            thread::spawn(move || {
                // Gets the mutex only once the waiter is inside `wait_for`.
                *pair.0.lock() = true;
                pair.1.notify_one();
            })
        };
        let deadline = Instant::now() + WAIT;
        while !*ready {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "never notified");
            // A spurious wake-up may return early; a timeout must not happen.
            let result = pair.1.wait_for(&mut ready, left);
            assert!(!result.timed_out() || *ready);
        }
        drop(ready);
        join(notifier);
    });
}

#[test]
fn condvar_wait_for_zero_times_out_at_once() {
    bounded(LIMIT, || {
        let m = Mutex::new(());
        let cv = Condvar::new();
        let mut guard = m.lock();
        let start = Instant::now();
        assert!(cv.wait_for(&mut guard, Duration::ZERO).timed_out());
        assert!(start.elapsed() < SLACK);
    });
}

#[test]
fn condvar_wait_for_with_a_huge_timeout_waits_for_the_notification() {
    bounded(LIMIT, || {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let mut ready = pair.0.lock();
        let notifier = {
            let pair = pair.clone();
            thread::spawn(move || {
                *pair.0.lock() = true;
                pair.1.notify_all();
            })
        };
        while !*ready {
            assert!(!pair.1.wait_for(&mut ready, Duration::MAX).timed_out());
        }
        drop(ready);
        join(notifier);
    });
}

#[test]
fn condvar_wait_until_a_past_deadline_times_out_at_once() {
    bounded(LIMIT, || {
        let m = Mutex::new(());
        let cv = Condvar::new();
        let mut guard = m.lock();
        let start = Instant::now();
        assert!(cv.wait_until(&mut guard, start).timed_out());
        assert!(start.elapsed() < SLACK);
    });
}

#[test]
fn condvar_wait_while_returns_once_the_condition_is_false() {
    bounded(LIMIT, || {
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let counter = {
            let pair = pair.clone();
            thread::spawn(move || {
                for _ in 0..5 {
                    *pair.0.lock() += 1;
                    pair.1.notify_all();
                }
            })
        };
        let mut value = pair.0.lock();
        pair.1.wait_while(&mut value, |v| *v < 5);
        assert_eq!(*value, 5);
        drop(value);
        join(counter);
    });
}

#[test]
fn condvar_wait_while_with_false_condition_does_not_wait() {
    bounded(LIMIT, || {
        let m = Mutex::new(1);
        let cv = Condvar::new();
        let mut guard = m.lock();
        let mut calls = 0;
        cv.wait_while(&mut guard, |_| {
            calls += 1;
            false
        });
        assert_eq!(calls, 1);
    });
}

#[test]
fn condvar_wait_while_for_times_out_while_the_condition_holds() {
    bounded(LIMIT, || {
        let m = Mutex::new(false);
        let cv = Condvar::new();
        let mut guard = m.lock();
        let timeout = Duration::from_millis(200);
        let start = Instant::now();
        let result = cv.wait_while_for(&mut guard, |ready| !*ready, timeout);
        let elapsed = start.elapsed();
        assert!(result.timed_out());
        assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
        assert!(elapsed < timeout + SLACK, "gave up late: {elapsed:?}");
    });
}

#[test]
fn condvar_producer_consumer_queue_delivers_every_item_once() {
    bounded(LIMIT, || {
        const ITEMS: usize = 10_000;
        const PRODUCERS: usize = 2;
        const CONSUMERS: usize = 2;
        const CAPACITY: usize = 16;

        struct Queue {
            items: VecDeque<usize>,
            producers_done: usize,
        }
        struct Shared {
            queue: Mutex<Queue>,
            not_empty: Condvar,
            not_full: Condvar,
        }
        let shared = Arc::new(Shared {
            queue: Mutex::named(
                "queue",
                Queue {
                    items: VecDeque::new(),
                    producers_done: 0,
                },
            ),
            not_empty: Condvar::named("not empty"),
            not_full: Condvar::named("not full"),
        });

        let per_producer = ITEMS / PRODUCERS;
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let shared = shared.clone();
                thread::spawn(move || {
                    for i in p * per_producer..(p + 1) * per_producer {
                        let mut q = shared.queue.lock();
                        shared
                            .not_full
                            .wait_while(&mut q, |q| q.items.len() >= CAPACITY);
                        q.items.push_back(i);
                        drop(q);
                        shared.not_empty.notify_one();
                    }
                    shared.queue.lock().producers_done += 1;
                    shared.not_empty.notify_all();
                })
            })
            .collect();
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        let mut q = shared.queue.lock();
                        shared.not_empty.wait_while(&mut q, |q| {
                            q.items.is_empty() && q.producers_done < PRODUCERS
                        });
                        match q.items.pop_front() {
                            Some(item) => {
                                drop(q);
                                shared.not_full.notify_one();
                                got.push(item);
                            }
                            None => return got,
                        }
                    }
                })
            })
            .collect();

        for p in producers {
            join(p);
        }
        let mut seen = vec![false; ITEMS];
        let mut count = 0;
        for c in consumers {
            for item in join(c) {
                assert!(!seen[item], "item {item} delivered twice");
                seen[item] = true;
                count += 1;
            }
        }
        assert_eq!(count, ITEMS);
        assert!(seen.iter().all(|&s| s));
        assert!(shared.queue.lock().items.is_empty());
    });
}

// ---------------------------------------------------------------------------------------------
// With instrumentation: the valid programs above are not reported.
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "detect")]
mod detect {
    use super::*;

    /// Every report whose JSON mentions `name`, from the handler and from a scan now.
    fn reports_naming(seen: &std::sync::Mutex<Vec<String>>, name: &str) -> Vec<String> {
        lockwatch::check()
            .iter()
            .map(|r| r.to_json())
            .chain(seen.lock().unwrap().iter().cloned())
            .filter(|json| json.contains(name))
            .collect()
    }

    #[test]
    fn timed_waits_on_what_the_thread_itself_holds_are_not_reported() {
        bounded(LIMIT, || {
            let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
            {
                let seen = seen.clone();
                lockwatch::set_handler(move |report| {
                    seen.lock().unwrap().push(report.to_json());
                });
            }
            // Each timed wait outlasts the watchdog period (100 ms by default).
            let timeout = Duration::from_millis(250);

            let m = Mutex::named("rust_primitives-self-timed-mutex", ());
            let guard = m.lock();
            assert!(m.try_lock_for(timeout).is_none());
            drop(guard);

            let rw = RwLock::named("rust_primitives-self-timed-rwlock", ());
            let read = rw.read();
            assert!(rw.try_write_for(timeout).is_none());
            drop(read);
            let write = rw.write();
            assert!(rw.try_read_for(timeout).is_none());
            drop(write);

            let pair = (
                Mutex::named("rust_primitives-self-timed-condvar-mutex", ()),
                Condvar::named("rust_primitives-self-timed-condvar"),
            );
            let mut guard = pair.0.lock();
            assert!(pair.1.wait_for(&mut guard, timeout).timed_out());
            drop(guard);

            let found = reports_naming(&seen, "rust_primitives-self-timed");
            assert!(found.is_empty(), "a timed wait was reported: {found:#?}");
        });
    }
}
