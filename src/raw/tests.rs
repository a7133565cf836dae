//! The raw primitives on their own, without the runtime: hand-off, interrupts, the condvar's
//! queue and its requeueing onto the mutex. Every wait here is bounded, so a regression fails
//! instead of hanging.

use super::*;
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc, Barrier};
use std::thread;

const BOUND: Duration = Duration::from_secs(10);

fn soon() -> Instant {
    Instant::now() + Duration::from_millis(20)
}

/// Waits until `cond` holds, failing the test after [`BOUND`].
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::yield_now();
    }
}

#[test]
fn mutex_excludes_and_times_out() {
    let m = RawMutex::new();
    assert!(m.try_lock());
    assert!(!m.try_lock());
    assert!(!m.try_lock_until(soon()));
    m.unlock();
    assert!(m.try_lock_until(soon()));
    m.unlock();
    assert!(!m.is_locked());
}

#[test]
fn mutex_counts_under_contention() {
    let m = Arc::new((RawMutex::new(), AtomicUsize::new(0)));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            thread::spawn(move || {
                for _ in 0..20_000 {
                    m.0.lock();
                    // Not atomic as a whole: only mutual exclusion keeps the count exact.
                    let n = m.1.load(Ordering::Relaxed);
                    m.1.store(n + 1, Ordering::Relaxed);
                    m.0.unlock();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(m.1.load(Ordering::Relaxed), 80_000);
}

#[test]
fn an_interrupted_mutex_waiter_leaves_and_the_lock_stays_taken() {
    let m = Arc::new(RawMutex::new());
    let flag = Arc::new(AtomicBool::new(false));
    m.lock();
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let (m, flag) = (m.clone(), flag.clone());
        thread::spawn(move || {
            let w = Waiter {
                token: 7,
                interrupted: Some(&flag),
            };
            let first = m.lock_as(Some(Instant::now() + BOUND), w);
            tx.send(first).unwrap();
        })
    };
    // Only the parked waiter is woken, and only by its own token.
    eventually("the waiter to park", || !m.interrupt(8) && m.interrupt(7));
    assert_eq!(rx.recv_timeout(BOUND).unwrap(), Parked::Interrupted);
    waiter.join().unwrap();
    assert!(m.is_locked());
    m.unlock();
    assert!(m.try_lock());
    m.unlock();
    // A flag set before parking stops the park at once.
    flag.store(true, Ordering::Release);
    m.lock();
    let w = Waiter {
        token: 7,
        interrupted: Some(&flag),
    };
    assert_eq!(
        m.lock_as(Some(Instant::now() + BOUND), w),
        Parked::Interrupted
    );
    m.unlock();
}

#[test]
fn a_permit_can_be_given_back_by_a_thread_that_never_took_it() {
    let s = Arc::new(RawSemaphore::new(1));
    assert!(s.try_acquire());
    assert_eq!(s.available(), 0);
    let waiter = {
        let s = s.clone();
        thread::spawn(move || s.try_acquire_until(Instant::now() + BOUND))
    };
    let releaser = {
        let s = s.clone();
        thread::spawn(move || s.release())
    };
    releaser.join().unwrap();
    assert!(waiter.join().unwrap(), "the waiter got the released permit");
    assert_eq!(s.available(), 0);
    s.release();
    assert_eq!(s.available(), 1);
    assert!(!RawSemaphore::new(0).try_acquire_until(soon()));
}

#[test]
fn permits_pass_between_many_threads() {
    let s = Arc::new((RawSemaphore::new(1), AtomicUsize::new(0)));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            thread::spawn(move || {
                for _ in 0..10_000 {
                    s.0.acquire();
                    let n = s.1.load(Ordering::Relaxed);
                    s.1.store(n + 1, Ordering::Relaxed);
                    s.0.release();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(s.1.load(Ordering::Relaxed), 40_000);
    assert_eq!(s.0.available(), 1);
}

#[test]
fn an_event_wakes_every_waiter_and_can_be_cleared() {
    let e = Arc::new(RawEvent::new());
    let barrier = Arc::new(Barrier::new(4));
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let (e, barrier) = (e.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                e.wait_as(Some(Instant::now() + BOUND), Waiter::ANONYMOUS)
            })
        })
        .collect();
    barrier.wait();
    e.set();
    for w in waiters {
        assert_eq!(w.join().unwrap(), Parked::Acquired);
    }
    e.clear();
    assert!(!e.is_set());
    assert_eq!(e.wait_as(Some(soon()), Waiter::ANONYMOUS), Parked::TimedOut);
}

/// A condvar wait on `cv` with `m`, from a thread that holds `m`, as the wait driver's
/// untracked path does it: one park, then the mutex again unless it was handed over. Sends
/// `()` on `entered` once queued, while it still holds the mutex.
fn wait_once(
    m: &RawMutex,
    cv: &RawCondvar,
    waiter: &CondWaiter<'_>,
    deadline: Instant,
    entered: Option<&mpsc::Sender<()>>,
) -> CvWake {
    let how = cv.wait_as(waiter, || {
        if let Some(entered) = entered {
            entered.send(()).unwrap();
        }
        cv.park(waiter, true, Some(deadline))
    });
    if !waiter.holds_mutex() {
        m.lock();
    }
    how
}

/// A thread in a condvar wait on `cv` with `m`, reporting how its wait ended.
fn condvar_waiter(
    pair: &Arc<(RawMutex, RawCondvar)>,
    entered: &mpsc::Sender<()>,
    woke: &mpsc::Sender<CvWake>,
) -> thread::JoinHandle<()> {
    let (pair, entered, woke) = (pair.clone(), entered.clone(), woke.clone());
    thread::spawn(move || {
        let (m, cv) = (&pair.0, &pair.1);
        m.lock();
        let waiter = CondWaiter::new(m, None);
        let how = wait_once(m, cv, &waiter, Instant::now() + BOUND, Some(&entered));
        assert!(waiter.notified());
        m.unlock();
        woke.send(how).unwrap();
    })
}

#[test]
fn notify_one_wakes_exactly_one_waiter_and_the_mutex_is_free_meanwhile() {
    let pair = Arc::new((RawMutex::new(), RawCondvar::new()));
    let (entered_tx, entered) = mpsc::channel();
    let (woke_tx, woke) = mpsc::channel();
    let threads: Vec<_> = (0..3)
        .map(|_| condvar_waiter(&pair, &entered_tx, &woke_tx))
        .collect();
    for _ in 0..3 {
        entered.recv_timeout(BOUND).unwrap();
    }
    let (m, cv) = (&pair.0, &pair.1);
    // Each waiter said so holding the mutex, which it releases only once parked: once the
    // mutex is free, all three are parked.
    m.lock();
    m.unlock();
    for _ in 0..1000 {
        // The mutex is never held by a waiting thread (each released it as it parked).
        assert!(m.try_lock());
        m.unlock();
    }
    assert_eq!(cv.queued(), 3);
    m.lock();
    assert!(cv.notify_one());
    m.unlock();
    assert_eq!(woke.recv_timeout(BOUND).unwrap(), CvWake::Notified);
    assert!(
        woke.recv_timeout(Duration::from_millis(100)).is_err(),
        "a second waiter woke"
    );
    m.lock();
    assert_eq!(cv.notify_all(), 2);
    m.unlock();
    for _ in 0..2 {
        assert_eq!(woke.recv_timeout(BOUND).unwrap(), CvWake::Notified);
    }
    for t in threads {
        t.join().unwrap();
    }
    assert!(!cv.notify_one(), "nobody waits any more");
    assert_eq!(m.bits(), (false, false));
}

#[test]
fn a_notification_sent_between_two_parks_of_one_wait_is_owed_to_it() {
    let (m, cv) = (RawMutex::new(), RawCondvar::new());
    let waiter = CondWaiter::new(&m, None);
    m.lock();
    cv.wait_as(&waiter, || {
        // The first park times out, and the thread means to park again: it is between parks.
        assert_eq!(cv.park(&waiter, true, Some(soon())), CvWake::TimedOut);
        assert!(!waiter.notified());
        // Nobody is parked, yet the notification is the waiter's.
        assert!(cv.notify_one());
        assert!(!cv.notify_one(), "one waiter, one notification");
        assert!(waiter.notified());
        assert_eq!(
            cv.park(&waiter, false, Some(Instant::now() + BOUND)),
            CvWake::Notified
        );
    });
    assert!(waiter.notified() && !waiter.holds_mutex());
    // A wait that times out and ends takes nothing that was not sent to it.
    let other = CondWaiter::new(&m, None);
    m.lock();
    cv.wait_as(&other, || {
        assert_eq!(cv.park(&other, true, Some(soon())), CvWake::TimedOut);
    });
    assert!(!other.notified());
    // A notification after the last park timed out, before the wait ended, still ends it.
    let late = CondWaiter::new(&m, None);
    m.lock();
    cv.wait_as(&late, || {
        assert_eq!(cv.park(&late, true, Some(soon())), CvWake::TimedOut);
        assert!(cv.notify_one());
    });
    assert!(late.notified());
    assert_eq!(cv.queued(), 0);
    assert_eq!(m.bits(), (false, false));
}

#[test]
fn a_notification_before_the_first_park_leaves_the_mutex_held() {
    let (m, cv) = (RawMutex::new(), RawCondvar::new());
    let waiter = CondWaiter::new(&m, None);
    m.lock();
    let how = cv.wait_as(&waiter, || {
        assert!(cv.notify_one());
        cv.park(&waiter, true, Some(Instant::now() + BOUND))
    });
    assert_eq!(how, CvWake::Notified);
    assert!(waiter.holds_mutex(), "the mutex was never released");
    // The requeue that found nobody parked left the mutex's release on the fast path.
    assert_eq!(m.bits(), (true, false));
    m.unlock();
}

#[test]
fn an_interrupted_condvar_waiter_stays_queued_until_its_wait_ends() {
    let (m, cv) = (RawMutex::new(), RawCondvar::new());
    let flag = AtomicBool::new(false);
    let waiter = CondWaiter::new(&m, Some(&flag));
    let (parked_tx, parked) = mpsc::channel();
    thread::scope(|s| {
        let t = s.spawn(|| {
            m.lock();
            cv.wait_as(&waiter, || {
                assert_eq!(
                    cv.park(&waiter, true, Some(Instant::now())),
                    CvWake::TimedOut
                );
                parked_tx.send(()).unwrap();
                let second = cv.park(&waiter, false, Some(Instant::now() + BOUND));
                assert_eq!(second, CvWake::Interrupted);
                assert!(!waiter.notified());
                // Still queued: a notification now is its own.
                assert!(cv.notify_one(), "the interrupted waiter still waits");
            });
            assert!(waiter.notified());
        });
        parked.recv_timeout(BOUND).unwrap();
        eventually("the second park", || waiter.interrupt());
        t.join().unwrap();
    });
    assert_eq!(cv.queued(), 0);
}

/// Starts a condvar wait on another thread of `scope` and returns once it is parked, with
/// `m` held by the caller: a waiter releases the mutex only once it is parked.
fn parked_waiter<'s, 'e>(
    scope: &'s thread::Scope<'s, 'e>,
    m: &'e RawMutex,
    cv: &'e RawCondvar,
    waiter: &'e CondWaiter<'e>,
    deadline: Instant,
) -> thread::ScopedJoinHandle<'s, CvWake> {
    let (locked_tx, locked) = mpsc::channel();
    let t = scope.spawn(move || {
        m.lock();
        locked_tx.send(()).unwrap();
        let how = wait_once(m, cv, waiter, deadline, None);
        m.unlock();
        how
    });
    locked.recv_timeout(BOUND).unwrap();
    m.lock();
    t
}

#[test]
fn a_notification_under_the_mutex_requeues_the_waiter_and_the_unlock_wakes_it() {
    let (m, cv) = (RawMutex::new(), RawCondvar::new());
    let waiter = CondWaiter::new(&m, None);
    thread::scope(|s| {
        let t = parked_waiter(s, &m, &cv, &waiter, Instant::now() + BOUND);
        assert!(cv.notify_one());
        // Not woken: moved onto the mutex's queue, with the mutex's parked bit set.
        assert!(waiter.requeued());
        assert_eq!(m.bits(), (true, true));
        assert!(!t.is_finished());
        m.unlock();
        assert_eq!(t.join().unwrap(), CvWake::Notified);
    });
    assert!(waiter.notified());
    assert_eq!(m.bits(), (false, false));
}

#[test]
fn a_requeued_waiter_is_interrupted_by_its_token_on_the_mutex_queue() {
    let (m, cv) = (RawMutex::new(), RawCondvar::new());
    let flag = AtomicBool::new(false);
    let waiter = CondWaiter::new(&m, Some(&flag));
    thread::scope(|s| {
        let t = parked_waiter(s, &m, &cv, &waiter, Instant::now() + BOUND);
        assert!(cv.notify_one());
        assert!(waiter.requeued());
        assert_eq!(m.bits(), (true, true));
        // A verdict: the flag, then the wake-up by token, which finds it on the mutex's queue.
        flag.store(true, Ordering::Release);
        assert!(waiter.interrupt());
        // It leaves the mutex's queue without the lock, which stays this thread's, and waits
        // for it as any thread does.
        eventually("the interrupted waiter to wait for the mutex again", || {
            m.bits() == (true, true)
        });
        m.unlock();
        assert_eq!(t.join().unwrap(), CvWake::Interrupted);
    });
    // Interrupted, yet notified: the wait is over, and it took the mutex back.
    assert!(waiter.notified() && !waiter.holds_mutex());
    assert_eq!(m.bits(), (false, false));
}

#[test]
fn a_requeued_waiter_that_times_out_on_the_mutex_queue_is_notified() {
    // The notification must reach the waiter before its deadline: on a loaded machine a
    // short one may pass first, and the attempt is repeated with a longer one.
    let requeued = [20, 200, 2_000].into_iter().any(|ms| {
        let (m, cv) = (RawMutex::new(), RawCondvar::new());
        let waiter = CondWaiter::new(&m, None);
        let (locked_tx, locked) = mpsc::channel();
        let (woke_tx, woke) = mpsc::channel();
        let go = Barrier::new(2);
        thread::scope(|s| {
            let t = s.spawn(|| {
                m.lock();
                locked_tx.send(()).unwrap();
                let deadline = Instant::now() + Duration::from_millis(ms);
                let how = cv.wait_as(&waiter, || cv.park(&waiter, true, Some(deadline)));
                woke_tx.send(how).unwrap();
                // Takes the mutex back once the parked bit has been looked at.
                go.wait();
                m.lock();
                m.unlock();
            });
            locked.recv_timeout(BOUND).unwrap();
            m.lock();
            if !cv.notify_one() {
                // Timed out before the notification: not the case under test.
                go.wait();
                m.unlock();
                assert_eq!(woke.recv_timeout(BOUND).unwrap(), CvWake::TimedOut);
                t.join().unwrap();
                return false;
            }
            assert!(waiter.requeued());
            // This thread holds the mutex throughout: only the deadline can end the park.
            let how = woke.recv_timeout(BOUND);
            // The parked bit before the mutex goes back: it was the last thread on the
            // mutex's queue, so it cleared the bit as it timed out.
            let bits = m.bits();
            go.wait();
            m.unlock();
            t.join().unwrap();
            assert_eq!(how.unwrap(), CvWake::Notified);
            assert_eq!(bits, (true, false));
            assert!(waiter.notified() && !waiter.holds_mutex());
            assert_eq!(m.bits(), (false, false));
            true
        })
    });
    assert!(
        requeued,
        "the waiter always timed out before the notification"
    );
}

#[test]
fn notify_all_under_the_mutex_requeues_every_waiter() {
    let (m, cv) = (RawMutex::new(), RawCondvar::new());
    let waiters: Vec<_> = (0..3).map(|_| CondWaiter::new(&m, None)).collect();
    thread::scope(|s| {
        let threads: Vec<_> = waiters
            .iter()
            .map(|w| {
                let t = parked_waiter(s, &m, &cv, w, Instant::now() + BOUND);
                m.unlock();
                t
            })
            .collect();
        m.lock();
        assert_eq!(cv.notify_all(), 3);
        assert!(waiters.iter().all(CondWaiter::requeued));
        assert_eq!(m.bits(), (true, true));
        m.unlock();
        for t in threads {
            assert_eq!(t.join().unwrap(), CvWake::Notified);
        }
    });
    assert_eq!(cv.queued(), 0);
    assert_eq!(m.bits(), (false, false));
}

#[test]
fn a_notification_with_the_mutex_free_wakes_the_waiter() {
    let (m, cv) = (RawMutex::new(), RawCondvar::new());
    let waiter = CondWaiter::new(&m, None);
    thread::scope(|s| {
        let t = parked_waiter(s, &m, &cv, &waiter, Instant::now() + BOUND);
        m.unlock();
        assert!(cv.notify_one());
        assert_eq!(t.join().unwrap(), CvWake::Notified);
    });
    assert!(waiter.notified() && !waiter.requeued());
    assert_eq!(m.bits(), (false, false));
}

#[test]
fn waiters_are_notified_in_order_and_one_that_times_out_leaves_from_the_middle() {
    let (m, cv) = (RawMutex::new(), RawCondvar::new());
    let waiters: Vec<_> = (0..3).map(|_| CondWaiter::new(&m, None)).collect();
    let deadlines = [BOUND, Duration::from_millis(20), BOUND];
    thread::scope(|s| {
        let mut threads: Vec<_> = waiters
            .iter()
            .zip(deadlines)
            .map(|(w, d)| {
                let t = parked_waiter(s, &m, &cv, w, Instant::now() + d);
                m.unlock();
                t
            })
            .collect();
        let last = threads.pop().unwrap();
        assert_eq!(threads.pop().unwrap().join().unwrap(), CvWake::TimedOut);
        assert_eq!(cv.queued(), 2);
        assert!(cv.notify_one());
        let first = threads.pop().unwrap();
        assert_eq!(first.join().unwrap(), CvWake::Notified);
        assert!(!waiters[2].notified(), "the first waiter is notified first");
        assert!(cv.notify_one());
        assert_eq!(last.join().unwrap(), CvWake::Notified);
    });
    assert!(!waiters[1].notified());
    assert_eq!(cv.queued(), 0);
    assert!(!cv.notify_one());
}
