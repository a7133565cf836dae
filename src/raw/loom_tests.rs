//! Model checks of the raw primitives' hand-rolled protocols (`--cfg loom`, see
//! [`crate::primitive`]): the ownerless hand-off of a `Lock`'s permit, the mutex's parked bit
//! and interrupts, and the condvar's notify path: a notification sent while the waiter is
//! between the two parks of one wait, the requeue of a notified waiter onto the mutex (by
//! notify_one and notify_all), a time-out racing that requeue, and a verdict's wake-up of a
//! requeued waiter. A lost wake-up shows as a loom deadlock (every thread parked); a double
//! wake as a failed count.

use super::*;
use crate::primitive::parking;
use crate::primitive::sync::atomic::AtomicUsize;
use crate::primitive::sync::Arc;
use crate::primitive::thread;
use std::time::Instant;

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

/// The untracked wait: one park, then the mutex again unless it was handed over.
fn wait_once(m: &RawMutex, cv: &RawCondvar, waiter: &CondWaiter<'_>, deadline: Option<Instant>) {
    cv.wait_as(waiter, || cv.park(waiter, true, deadline));
    if !waiter.holds_mutex() {
        m.lock();
    }
}

/// A mutex, a condvar and a flag, made and first touched before any thread shares them.
fn condvar_state() -> Arc<(RawMutex, RawCondvar, AtomicBool)> {
    let state = Arc::new((RawMutex::new(), RawCondvar::new(), AtomicBool::new(false)));
    created(&[
        &state.0.bits(),
        &state.1.queued(),
        &state.2.load(Ordering::Relaxed),
    ]);
    state
}

#[test]
fn loom_a_notification_under_the_mutex_requeues_and_the_unlock_wakes() {
    model(|| {
        let state = condvar_state();
        let waiter = {
            let state = state.clone();
            thread::spawn(move || {
                let (m, cv, ready) = (&state.0, &state.1, &state.2);
                m.lock();
                while !ready.load(Ordering::Relaxed) {
                    let me = CondWaiter::new(m, None);
                    wait_once(m, cv, &me, None);
                    // No spurious wake-ups: only the one notification ends a wait.
                    assert!(me.notified());
                }
                m.unlock();
            })
        };
        let (m, cv, ready) = (&state.0, &state.1, &state.2);
        m.lock();
        ready.store(true, Ordering::Relaxed);
        cv.notify_one();
        m.unlock();
        waiter.join().unwrap();
        // Nothing left over: no parked bit set for a thread that is not there.
        assert_eq!(m.bits(), (false, false));
        assert_eq!(cv.queued(), 0);
    });
}

#[test]
fn loom_a_notification_between_the_two_parks_of_a_wait_is_owed_not_lost() {
    model(|| {
        let state = condvar_state();
        let waiter = {
            let state = state.clone();
            thread::spawn(move || {
                let (m, cv, ready) = (&state.0, &state.1, &state.2);
                m.lock();
                if !ready.load(Ordering::Relaxed) {
                    let me = CondWaiter::new(m, None);
                    cv.wait_as(&me, || {
                        // The quiet park, which may time out; then the registered one, untimed.
                        let first = cv.park(&me, true, Some(Instant::now()));
                        if first == CvWake::TimedOut {
                            assert_eq!(cv.park(&me, false, None), CvWake::Notified);
                        }
                    });
                    assert!(me.notified());
                    if !me.holds_mutex() {
                        m.lock();
                    }
                }
                assert!(ready.load(Ordering::Relaxed));
                m.unlock();
            })
        };
        let (m, cv, ready) = (&state.0, &state.1, &state.2);
        m.lock();
        ready.store(true, Ordering::Relaxed);
        cv.notify_one();
        m.unlock();
        waiter.join().unwrap();
        assert_eq!(m.bits(), (false, false));
        assert_eq!(cv.queued(), 0);
    });
}

#[test]
fn loom_one_notify_one_wakes_at_most_one_of_two_waiters() {
    model(|| {
        let state = Arc::new((RawMutex::new(), RawCondvar::new(), AtomicUsize::new(0)));
        created(&[
            &state.0.bits(),
            &state.1.queued(),
            &state.2.load(Ordering::Relaxed),
        ]);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let state = state.clone();
                thread::spawn(move || {
                    let (m, cv, woken) = (&state.0, &state.1, &state.2);
                    m.lock();
                    let me = CondWaiter::new(m, None);
                    // Bounded: the one left waiting times out (a wait that is never notified
                    // would otherwise park for good and loom would call it a deadlock).
                    wait_once(m, cv, &me, Some(Instant::now()));
                    if me.notified() {
                        woken.fetch_add(1, Ordering::Relaxed);
                    }
                    m.unlock();
                })
            })
            .collect();
        let (m, cv, woken) = (&state.0, &state.1, &state.2);
        m.lock();
        let reported = cv.notify_one();
        m.unlock();
        for w in waiters {
            w.join().unwrap();
        }
        let woken = woken.load(Ordering::Relaxed);
        assert!(woken <= 1, "one notify_one woke {woken} waiters");
        assert_eq!(usize::from(reported), woken);
        assert_eq!(m.bits(), (false, false));
    });
}

#[test]
fn loom_notify_all_requeues_every_waiter_and_each_gets_the_mutex() {
    model(|| {
        let state = Arc::new((
            RawMutex::new(),
            RawCondvar::new(),
            AtomicBool::new(false),
            AtomicUsize::new(0),
        ));
        created(&[
            &state.0.bits(),
            &state.1.queued(),
            &state.2.load(Ordering::Relaxed),
            &state.3.load(Ordering::Relaxed),
        ]);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let state = state.clone();
                thread::spawn(move || {
                    let (m, cv, ready, inside) = (&state.0, &state.1, &state.2, &state.3);
                    m.lock();
                    while !ready.load(Ordering::Relaxed) {
                        let me = CondWaiter::new(m, None);
                        wait_once(m, cv, &me, None);
                        assert!(me.notified());
                    }
                    // Mutual exclusion holds for requeued waiters woken one by one.
                    assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0);
                    inside.fetch_sub(1, Ordering::Relaxed);
                    m.unlock();
                })
            })
            .collect();
        let (m, cv, ready) = (&state.0, &state.1, &state.2);
        m.lock();
        ready.store(true, Ordering::Relaxed);
        cv.notify_all();
        m.unlock();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(m.bits(), (false, false));
        assert_eq!(cv.queued(), 0);
    });
}

#[test]
fn loom_a_timeout_racing_a_requeue_is_one_outcome_or_the_other() {
    model(|| {
        let state = condvar_state();
        let waiter = {
            let state = state.clone();
            thread::spawn(move || {
                let (m, cv) = (&state.0, &state.1);
                m.lock();
                let me = CondWaiter::new(m, None);
                // A wait_for that times out as soon as it can, perhaps on the mutex's queue
                // after a requeue.
                wait_once(m, cv, &me, Some(Instant::now()));
                let notified = me.notified();
                m.unlock();
                notified
            })
        };
        let (m, cv) = (&state.0, &state.1);
        m.lock();
        let sent = cv.notify_one();
        m.unlock();
        let notified = waiter.join().unwrap();
        // The notification reached the waiter exactly when notify_one says it did.
        assert_eq!(sent, notified);
        assert_eq!(m.bits(), (false, false));
        assert_eq!(cv.queued(), 0);
    });
}

#[test]
fn loom_a_requeued_waiter_is_interrupted_by_its_token() {
    model(|| {
        // Shared with the waiter's thread by reference, as the wait-for graph borrows a
        // waiter: leaked, since loom's threads are `'static` (a few bytes per execution).
        let state: &'static (RawMutex, RawCondvar, AtomicBool) = Box::leak(Box::new((
            RawMutex::new(),
            RawCondvar::new(),
            AtomicBool::new(false),
        )));
        let (m, cv, flag) = state;
        let me: &'static CondWaiter<'static> = Box::leak(Box::new(CondWaiter::new(m, Some(flag))));
        created(&[&m.bits(), &cv.queued(), &flag.load(Ordering::Relaxed)]);
        let waiter = thread::spawn(move || {
            m.lock();
            let how = cv.wait_as(me, || cv.park(me, true, None));
            if !me.holds_mutex() {
                m.lock();
            }
            m.unlock();
            how
        });
        // Once the waiter is queued, the mutex is free again only after it parked.
        while cv.queued() == 0 {
            thread::yield_now();
        }
        m.lock();
        assert!(cv.notify_one());
        assert!(me.requeued());
        assert_eq!(m.bits(), (true, true));
        // A verdict: the flag, then the wake-up by token, which finds it on the mutex's queue.
        flag.store(true, Ordering::Release);
        assert!(me.interrupt());
        m.unlock();
        assert_eq!(waiter.join().unwrap(), CvWake::Interrupted);
        assert!(me.notified());
        assert_eq!(m.bits(), (false, false));
    });
}
