//! The raw primitives on their own, without the runtime: hand-off, interrupts, the condvar's
//! counts. Every wait here is bounded, so a regression fails instead of hanging.

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

/// A condvar waiter parked on `cv` with `m`, reporting how its wait ended.
fn condvar_waiter(
    pair: &Arc<(RawMutex, RawCondvar)>,
    entered: &mpsc::Sender<()>,
    woke: &mpsc::Sender<CvWake>,
) -> thread::JoinHandle<()> {
    let (pair, entered, woke) = (pair.clone(), entered.clone(), woke.clone());
    thread::spawn(move || {
        let (m, cv) = (&pair.0, &pair.1);
        m.lock();
        cv.enter();
        entered.send(()).unwrap();
        let waiter = CondWaiter::new(None);
        let how = cv.park(Some(m), Some(Instant::now() + BOUND), false, false, &waiter);
        cv.leave();
        m.lock();
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
    // Each waiter entered under the mutex; once it is free again, all three are queued.
    for _ in 0..3 {
        m.lock();
        m.unlock();
    }
    eventually("three parked waiters", || {
        // The mutex is never held by a waiting thread.
        assert!(m.try_lock());
        m.unlock();
        cv.counts().0 == 3
    });
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
}

#[test]
fn a_notification_sent_between_two_parks_of_one_wait_is_owed_to_it() {
    let pair = Arc::new((RawMutex::new(), RawCondvar::new()));
    let (m, cv) = (&pair.0, &pair.1);
    let waiter = CondWaiter::new(None);
    m.lock();
    cv.enter();
    // The first park times out, and the thread means to park again: it is outside.
    assert_eq!(
        cv.park(Some(m), Some(soon()), true, false, &waiter),
        CvWake::TimedOut
    );
    assert!(!waiter.notified());
    // Nobody is parked, yet a notification finds the waiter outside and is owed to it.
    assert!(cv.notify_one());
    assert!(!cv.notify_one(), "one outside waiter, one notification");
    assert_eq!(
        cv.park(None, Some(Instant::now() + BOUND), false, true, &waiter),
        CvWake::Notified
    );
    assert!(waiter.notified());
    cv.leave();
    // Settling an outside waiter takes what is owed to it, and nothing else.
    let other = CondWaiter::new(None);
    cv.enter();
    m.lock();
    assert_eq!(
        cv.park(Some(m), Some(soon()), true, false, &other),
        CvWake::TimedOut
    );
    assert!(!cv.settle(&other));
    cv.leave();
    assert_eq!(cv.counts(), (0, 0, 0));
}

#[test]
fn an_interrupted_condvar_waiter_stays_counted_until_it_settles() {
    let pair = Arc::new((RawMutex::new(), RawCondvar::new()));
    let flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let (token_tx, token_rx) = mpsc::channel();
    let t = {
        let (pair, flag) = (pair.clone(), flag.clone());
        thread::spawn(move || {
            let (m, cv) = (&pair.0, &pair.1);
            let waiter = CondWaiter::new(Some(&flag));
            m.lock();
            cv.enter();
            let first = cv.park(Some(m), Some(Instant::now()), true, false, &waiter);
            assert_eq!(first, CvWake::TimedOut);
            token_tx.send(waiter.token()).unwrap();
            let second = cv.park(None, Some(Instant::now() + BOUND), false, true, &waiter);
            tx.send(second).unwrap();
            // Outside again: a notification now is owed to it, and settling takes it.
            let _ = rx_owed(&pair, &waiter);
            cv.leave();
        })
    };
    let token = token_rx.recv_timeout(BOUND).unwrap();
    let cv = &pair.1;
    eventually("the second park", || cv.interrupt(token));
    assert_eq!(rx.recv_timeout(BOUND).unwrap(), CvWake::Interrupted);
    t.join().unwrap();
    assert_eq!(cv.counts(), (0, 0, 0));
}

fn rx_owed(pair: &Arc<(RawMutex, RawCondvar)>, waiter: &CondWaiter<'_>) -> bool {
    let cv = &pair.1;
    assert!(cv.notify_one(), "the interrupted waiter still counts");
    let took = cv.settle(waiter);
    assert!(took);
    took
}
