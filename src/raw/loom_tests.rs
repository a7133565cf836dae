//! Model checks of the raw primitives' hand-rolled protocols (`--cfg loom`, see
//! [`crate::primitive`]): the ownerless hand-off of a `Lock`'s permit, the mutex's parked bit
//! and interrupts, and the condvar's notify path, including a notification sent while the
//! waiter is between the two parks of one wait. A lost wake-up shows as a loom deadlock (every
//! thread parked); a double wake as a failed count.

use super::*;
use crate::primitive::parking;
use crate::primitive::sync::atomic::AtomicUsize;
use crate::primitive::sync::Arc;
use crate::primitive::thread;

/// Takes the first look at freshly made primitives before any thread is spawned: under loom
/// an atomic comes into being on first use (see `primitive`), and its creation must happen
/// before other threads touch it, as a constructor's would.
fn created(_first_reads: &[&dyn std::fmt::Debug]) {}

/// Runs `body` under loom twice: releases that retry, and releases that hand over.
fn model(body: impl Fn() + Sync + Send + 'static) {
    let body = std::sync::Arc::new(body);
    for fair in [false, true] {
        let body = body.clone();
        let mut builder = loom::model::Builder::new();
        // Bounded as loom's documentation advises: every bug these protocols could have needs
        // at most two preemptions, and the unbounded space of the three-thread cases takes
        // hours on two cores.
        builder.preemption_bound = Some(builder.preemption_bound.unwrap_or(2).min(2));
        builder.check(move || {
            parking::set_fair(fair);
            body();
        });
    }
}

#[test]
fn loom_a_lock_released_by_a_thread_that_never_acquired_it_passes_to_its_waiter() {
    model(|| {
        let permit = Arc::new(RawSemaphore::new(1));
        assert!(permit.try_acquire());
        let waiter = {
            let permit = permit.clone();
            thread::spawn(move || {
                permit.acquire();
                // The waiter holds the only permit: nobody else can take it.
                assert!(!permit.try_acquire());
                permit.release();
            })
        };
        let releaser = {
            let permit = permit.clone();
            thread::spawn(move || permit.release())
        };
        releaser.join().unwrap();
        waiter.join().unwrap();
        assert_eq!(permit.available(), 1);
    });
}

#[test]
fn loom_the_mutex_excludes_and_wakes_its_waiter() {
    model(|| {
        let mutex = Arc::new(RawMutex::new());
        let count = Arc::new(AtomicUsize::new(0));
        created(&[&mutex.is_locked(), &count.load(Ordering::Relaxed)]);
        let others: Vec<_> = (0..2)
            .map(|_| {
                let (mutex, count) = (mutex.clone(), count.clone());
                thread::spawn(move || {
                    mutex.lock();
                    let n = count.load(Ordering::Relaxed);
                    count.store(n + 1, Ordering::Relaxed);
                    mutex.unlock();
                })
            })
            .collect();
        for t in others {
            t.join().unwrap();
        }
        assert_eq!(count.load(Ordering::Relaxed), 2);
        assert!(!mutex.is_locked());
    });
}

#[test]
fn loom_an_interrupted_mutex_waiter_leaves_without_the_lock() {
    model(|| {
        let mutex = Arc::new(RawMutex::new());
        let flag = Arc::new(AtomicBool::new(false));
        created(&[&mutex.is_locked(), &flag.load(Ordering::Relaxed)]);
        mutex.lock();
        let waiter = {
            let (mutex, flag) = (mutex.clone(), flag.clone());
            thread::spawn(move || {
                let waiter = Waiter {
                    token: 1,
                    interrupted: Some(&flag),
                };
                mutex.lock_as(None, waiter)
            })
        };
        // A verdict: the flag, then the wake-up (as `wake_for_verdict` does).
        flag.store(true, Ordering::Release);
        mutex.interrupt(1);
        assert_eq!(waiter.join().unwrap(), Parked::Interrupted);
        // The lock is still held, by this thread, and unlocks normally.
        assert!(mutex.is_locked());
        mutex.unlock();
        assert!(mutex.try_lock());
    });
}

#[test]
fn loom_a_notification_under_the_mutex_is_never_lost() {
    model(|| {
        let pair = Arc::new((RawMutex::new(), RawCondvar::new(), AtomicBool::new(false)));
        created(&[
            &pair.0.is_locked(),
            &pair.1.counts(),
            &pair.2.load(Ordering::Relaxed),
        ]);
        let waiter = {
            let pair = pair.clone();
            thread::spawn(move || {
                let (mutex, cv, ready) = (&pair.0, &pair.1, &pair.2);
                mutex.lock();
                while !ready.load(Ordering::Relaxed) {
                    cv.enter();
                    let me = CondWaiter::new(None);
                    let woke = cv.park(Some(mutex), None, false, false, &me);
                    assert_eq!(woke, CvWake::Notified);
                    cv.leave();
                    mutex.lock();
                }
                mutex.unlock();
            })
        };
        let (mutex, cv, ready) = (&pair.0, &pair.1, &pair.2);
        mutex.lock();
        ready.store(true, Ordering::Relaxed);
        cv.notify_one();
        mutex.unlock();
        waiter.join().unwrap();
    });
}

#[test]
fn loom_a_notification_between_the_two_parks_of_a_wait_is_owed_not_lost() {
    model(|| {
        let pair = Arc::new((RawMutex::new(), RawCondvar::new(), AtomicBool::new(false)));
        created(&[
            &pair.0.is_locked(),
            &pair.1.counts(),
            &pair.2.load(Ordering::Relaxed),
        ]);
        let waiter = {
            let pair = pair.clone();
            thread::spawn(move || {
                let (mutex, cv, ready) = (&pair.0, &pair.1, &pair.2);
                mutex.lock();
                if !ready.load(Ordering::Relaxed) {
                    cv.enter();
                    let me = CondWaiter::new(None);
                    // The quiet park, which may time out; then the registered one, untimed.
                    let first = cv.park(
                        Some(mutex),
                        Some(std::time::Instant::now()),
                        true,
                        false,
                        &me,
                    );
                    if first == CvWake::TimedOut {
                        assert_eq!(cv.park(None, None, false, true, &me), CvWake::Notified);
                    }
                    assert!(me.notified());
                    cv.leave();
                    mutex.lock();
                }
                assert!(ready.load(Ordering::Relaxed));
                mutex.unlock();
            })
        };
        let (mutex, cv, ready) = (&pair.0, &pair.1, &pair.2);
        mutex.lock();
        ready.store(true, Ordering::Relaxed);
        let woke = cv.notify_one();
        mutex.unlock();
        waiter.join().unwrap();
        // Whether the waiter was parked, outside, or not yet waiting, the count is exact.
        assert_eq!(cv.counts(), (0, 0, 0));
        let _ = woke;
    });
}

#[test]
fn loom_one_notify_one_wakes_at_most_one_of_two_waiters() {
    model(|| {
        let pair = Arc::new((RawMutex::new(), RawCondvar::new(), AtomicUsize::new(0)));
        created(&[
            &pair.0.is_locked(),
            &pair.1.counts(),
            &pair.2.load(Ordering::Relaxed),
        ]);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let pair = pair.clone();
                thread::spawn(move || {
                    let (mutex, cv, woken) = (&pair.0, &pair.1, &pair.2);
                    mutex.lock();
                    cv.enter();
                    let me = CondWaiter::new(None);
                    // Bounded: the one left waiting times out (a wait that is never notified
                    // would otherwise park for good and loom would call it a deadlock).
                    let first = cv.park(
                        Some(mutex),
                        Some(std::time::Instant::now()),
                        false,
                        false,
                        &me,
                    );
                    if first == CvWake::Notified {
                        woken.fetch_add(1, Ordering::Relaxed);
                    }
                    cv.leave();
                    mutex.lock();
                    mutex.unlock();
                })
            })
            .collect();
        let (mutex, cv, woken) = (&pair.0, &pair.1, &pair.2);
        mutex.lock();
        let reported = cv.notify_one();
        mutex.unlock();
        for w in waiters {
            w.join().unwrap();
        }
        let woken = woken.load(Ordering::Relaxed);
        assert!(woken <= 1, "one notify_one woke {woken} waiters");
        assert_eq!(usize::from(reported), woken);
    });
}
