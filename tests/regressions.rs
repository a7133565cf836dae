//! Regression tests, each named after what broke.

mod support;

use lockwatch::{Condvar, Mutex};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Deadlock reports naming a resource `name`, collected by one handler shared by every test here (the
/// handler is process-wide and tests run in parallel), polled until `deadline` passes.
#[cfg(feature = "detect")]
fn reports_naming(name: &str, wait: Duration) -> Vec<lockwatch::Report> {
    use std::sync::OnceLock;
    static SEEN: std::sync::Mutex<Vec<lockwatch::Report>> = std::sync::Mutex::new(Vec::new());
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| lockwatch::set_handler(|r| SEEN.lock().unwrap().push(r.clone())));
    let deadline = std::time::Instant::now() + wait;
    loop {
        let found: Vec<_> = SEEN
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.kind() == lockwatch::ReportKind::Deadlock)
            .filter(|r| r.resources.iter().any(|x| x.name.as_deref() == Some(name)))
            .cloned()
            .collect();
        if !found.is_empty() || std::time::Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A Condvar wait that unwinds (here: parking_lot refuses a second mutex on one condvar) used
/// to drop a temporary parking_lot guard *and* the caller's guard: the mutex was unlocked
/// twice, and two threads could then hold it at once.
#[test]
fn condvar_wait_that_panics_unlocks_the_mutex_once() {
    let cv = Arc::new(Condvar::new());
    let mutexes = [Arc::new(Mutex::new(0u32)), Arc::new(Mutex::new(0u32))];
    let (parked_tx, parked_rx) = mpsc::channel();
    // Two waiters on one condvar with two different mutexes: parking_lot panics in whichever
    // parks second (a sliced wait can make that either of them).
    let waiters: Vec<_> = mutexes
        .iter()
        .map(|m| {
            let (cv, m, parked_tx) = (cv.clone(), m.clone(), parked_tx.clone());
            std::thread::spawn(move || {
                let mut g = m.lock();
                parked_tx.send(()).unwrap();
                // Bounded, so a regression cannot hang the test.
                let _ = cv.wait_for(&mut g, Duration::from_secs(2));
            })
        })
        .collect();
    parked_rx.recv().unwrap();
    parked_rx.recv().unwrap();
    let outcomes: Vec<_> = waiters.into_iter().map(|w| w.join()).collect();
    // Whatever unwound released its mutex exactly once: both are free now, and a fresh hold
    // excludes another.
    for m in &mutexes {
        let held = m
            .try_lock_for(Duration::from_secs(5))
            .expect("the mutex is free");
        assert!(m.try_lock().is_none(), "a mutex was unlocked twice");
        drop(held);
        assert!(!m.is_locked());
    }
    let _ = outcomes;
}

/// Two threads deadlock; a third then blocks behind them. It used to be reported as a second,
/// different deadlock because the finding's identity included the threads behind the cycle.
#[cfg(feature = "detect")]
#[test]
fn a_thread_blocking_behind_a_reported_deadlock_does_not_report_it_again() {
    use lockwatch::ReportKind;
    reports_naming("again A", Duration::ZERO);
    let a = Arc::new(Mutex::named("again A", ()));
    let b = Arc::new(Mutex::named("again B", ()));
    support::spawn_abba_deadlock(&a, &b);
    let first = reports_naming("again A", Duration::from_secs(10));
    assert_eq!(first.len(), 1, "the deadlock is reported once: {first:#?}");
    assert_eq!(first[0].kind(), ReportKind::Deadlock);
    let behind = a.clone();
    std::thread::spawn(move || drop(behind.lock()));
    std::thread::sleep(Duration::from_millis(500));
    let all = reports_naming("again A", Duration::ZERO);
    assert_eq!(all.len(), 1, "reported a second time: {all:#?}");
}

/// A notifier that keeps the mutex and then joins the waiter it notified: the waiter can never
/// re-take the mutex. It used to count as able to run because a notification was pending.
#[cfg(feature = "detect")]
#[test]
fn notifier_that_keeps_the_mutex_and_joins_the_notified_waiter_is_a_deadlock() {
    use lockwatch::ReportKind;
    reports_naming("kept mutex", Duration::ZERO);
    // Runs on its own thread, which stays deadlocked; the test thread only watches.
    std::thread::spawn(|| {
        let pair = Arc::new((Mutex::named("kept mutex", false), Condvar::named("kept cv")));
        let (waiting_tx, waiting_rx) = mpsc::channel();
        let waiter = {
            let pair = pair.clone();
            lockwatch::thread::Builder::new()
                .name("notified".into())
                .spawn(move || {
                    let mut ready = pair.0.lock();
                    waiting_tx.send(()).unwrap();
                    while !*ready {
                        pair.1.wait(&mut ready);
                    }
                })
                .unwrap()
        };
        waiting_rx.recv().unwrap();
        let mut ready = pair.0.lock(); // only free once the waiter is inside `wait`
        *ready = true;
        pair.1.notify_one();
        let _ = waiter.join(); // still holding the mutex: the waiter can never return
        drop(ready);
    });
    let reports = reports_naming("kept mutex", Duration::from_secs(10));
    let report = reports.first().expect("the deadlock is reported");
    assert_eq!(report.kind(), ReportKind::Deadlock, "{report}");
    assert_eq!(report.cycle.len(), 2, "{report}");
    // Notified within its quiet phase, the waiter then blocks re-taking the mutex: that is a
    // registered wait of its own, with its backtrace (its entry used to have none).
    let notified = report
        .threads
        .iter()
        .find(|t| t.name.as_deref() == Some("notified"))
        .expect("the notified waiter is in the report");
    let wait = notified.waiting_for.as_ref().expect("it waits");
    assert_eq!(wait.op, lockwatch::detector::Op::Lock, "{report}");
    assert!(!notified.backtrace.is_empty(), "no backtrace: {report}");
}

/// The held-lock stack is filled in place by the inlined fast path and grows past its initial
/// room. Holds released out of order must leave exactly the ones still held, and a deadlock
/// report must list those and no others.
#[cfg(feature = "detect")]
#[test]
fn holds_released_out_of_order_past_the_stack_room_are_reported_exactly() {
    reports_naming("stack A", Duration::ZERO);
    let a = Arc::new(Mutex::named("stack A", ()));
    let b = Arc::new(Mutex::named("stack B", ()));
    let kept = Arc::new(Mutex::named("stack kept", ()));
    let both = Arc::new(std::sync::Barrier::new(2));
    let deep = {
        let (a, b, kept, both) = (a.clone(), b.clone(), kept.clone(), both.clone());
        move || {
            let many: Vec<Mutex<()>> = (0..40).map(|_| Mutex::new(())).collect();
            let mut guards: Vec<Option<lockwatch::MutexGuard<'_, ()>>> =
                many.iter().map(|m| Some(m.lock())).collect();
            let _kept = kept.lock();
            // Evens oldest first, then odds newest first: each release but the last is of a
            // hold below the top of the stack.
            for i in (0..40).step_by(2) {
                guards[i] = None;
            }
            for i in (1..40).step_by(2).rev() {
                guards[i] = None;
            }
            let _a = a.lock();
            both.wait();
            let _b = b.lock();
        }
    };
    std::thread::Builder::new()
        .name("deep".into())
        .spawn(deep)
        .unwrap();
    std::thread::spawn(move || {
        let _b = b.lock();
        both.wait();
        let _a = a.lock();
    });
    let found = reports_naming("stack A", Duration::from_secs(10));
    assert_eq!(found.len(), 1, "one deadlock: {found:#?}");
    let report = &found[0];
    let deep = report
        .threads
        .iter()
        .find(|t| t.name.as_deref() == Some("deep"))
        .expect("thread `deep` is in the report");
    let mut held: Vec<&str> = deep
        .holds
        .iter()
        .map(|h| {
            report
                .resources
                .iter()
                .find(|r| r.id == h.resource)
                .and_then(|r| r.name.as_deref())
                .unwrap_or("<unnamed>")
        })
        .collect();
    held.sort_unstable();
    assert_eq!(held, ["stack A", "stack kept"], "{report}");
    // The backtrace ends where the thread's own code begins: the user's closure, not the
    // start-up frames beyond it (which would load the C library's debug info).
    let functions: Vec<&str> = deep.backtrace.iter().map(|f| f.function.as_str()).collect();
    assert!(
        functions.iter().any(|f| f.starts_with("regressions::")),
        "{functions:?}"
    );
    assert!(
        !functions
            .iter()
            .any(|f| f.contains("start_thread") || f.contains("clone")),
        "{functions:?}"
    );
}

/// A lock leaked by a thread that exited: the deadlock is reported once, with the whole chain
/// of threads it holds up, and a thread that queues up behind later is no new finding.
#[cfg(feature = "detect")]
#[test]
fn a_chain_to_an_exited_owner_is_reported_once_with_every_thread_it_holds_up() {
    reports_naming("leaked L", Duration::ZERO);
    let leaked = Arc::new(Mutex::named("leaked L", ()));
    let middle = Arc::new(Mutex::named("leaked M", ()));
    {
        let leaked = leaked.clone();
        std::thread::Builder::new()
            .name("leaker".into())
            .spawn(move || std::mem::forget(leaked.lock()))
            .unwrap()
            .join()
            .unwrap();
    }
    let (holding, held) = mpsc::channel();
    {
        let (leaked, middle) = (leaked.clone(), middle.clone());
        std::thread::Builder::new()
            .name("first".into())
            .spawn(move || {
                let _m = middle.lock();
                holding.send(()).unwrap();
                drop(leaked.lock());
            })
            .unwrap();
    }
    held.recv().unwrap();
    {
        let middle = middle.clone();
        std::thread::Builder::new()
            .name("second".into())
            .spawn(move || drop(middle.lock()))
            .unwrap();
    }
    let found = reports_naming("leaked L", Duration::from_secs(10));
    assert!(!found.is_empty());
    // Either `second` queued before detection (the chain starts there) or after it; give it
    // time to be seen, then check nothing new was reported.
    std::thread::sleep(Duration::from_millis(500));
    let all = reports_naming("leaked L", Duration::ZERO);
    assert_eq!(all.len(), 1, "reported again: {all:#?}");
    let report = &all[0];
    let names = |id: u64| report.thread(id).and_then(|t| t.name.clone());
    let chain: Vec<Option<String>> = match &report.cycle[..] {
        [lockwatch::detector::CycleEdge::Wait {
            thread, held_by, ..
        }] => {
            vec![names(*thread), names(*held_by)]
        }
        [lockwatch::detector::CycleEdge::Wait { thread: a, .. }, lockwatch::detector::CycleEdge::Wait {
            thread: b, held_by, ..
        }] => vec![names(*a), names(*b), names(*held_by)],
        other => panic!("unexpected chain {other:?}"),
    };
    assert_eq!(chain.last(), Some(&Some("leaker".to_owned())), "{report}");
    assert!(chain.contains(&Some("first".to_owned())), "{report}");
}

/// A thread that exited leaking two locks: a waiter on the second, coming after the first was
/// reported, is a finding of its own. It used to be folded into the first, never reported.
#[cfg(feature = "detect")]
#[test]
fn a_second_lock_leaked_by_the_same_exited_thread_is_reported_when_waited_on() {
    reports_naming("two leaks 1", Duration::ZERO);
    let first = Arc::new(Mutex::named("two leaks 1", ()));
    let second = Arc::new(Mutex::named("two leaks 2", ()));
    {
        let (first, second) = (first.clone(), second.clone());
        std::thread::spawn(move || {
            std::mem::forget(first.lock());
            std::mem::forget(second.lock());
        })
        .join()
        .unwrap();
    }
    std::thread::spawn(move || drop(first.lock()));
    let reported = reports_naming("two leaks 1", Duration::from_secs(10));
    assert_eq!(reported.len(), 1, "{reported:#?}");
    std::thread::spawn(move || drop(second.lock()));
    // The first report lists both leaked locks among the exited thread's holds: look for a
    // report with a thread waiting on the second.
    let waits_on_second = |r: &lockwatch::Report| {
        let second = r
            .resources
            .iter()
            .find(|x| x.name.as_deref() == Some("two leaks 2"))
            .map(|x| x.id);
        r.threads
            .iter()
            .any(|t| t.waiting_for.as_ref().map(|w| w.resource) == second)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !reports_naming("two leaks 2", Duration::ZERO)
        .iter()
        .any(waits_on_second)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the wait on the second leaked lock was not reported"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
