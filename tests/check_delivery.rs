//! A deadlock that `lockwatch::check()` finds before the runtime does is delivered all the
//! same (SPEC §4: the handler receives every finding; `abort` prints, writes the report and
//! exits 86): a program that polls `check()` cannot keep a deadlock from its report, nor a CI
//! job from failing. (It used to be returned only: nothing printed, no file, no policy.)
#![cfg(feature = "detect")]

mod child;

use child::run_test_in_child;
use lockwatch::{Mutex, ReportKind};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
#[ignore = "run in a child process by the test below"]
fn child_polls_check_while_two_threads_deadlock() {
    let a = Arc::new(Mutex::named("polled a", ()));
    let b = Arc::new(Mutex::named("polled b", ()));
    let both_hold_one = Arc::new(Barrier::new(2));
    for (first, second) in [(a.clone(), b.clone()), (b, a)] {
        let both_hold_one = both_hold_one.clone();
        lockwatch::thread::spawn(move || {
            let _first = first.lock();
            both_hold_one.wait();
            let _second = second.lock();
        });
    }
    // No pause between scans: this thread's scan comes first more often than not.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lockwatch::check()
        .iter()
        .any(|r| r.kind() == ReportKind::Deadlock)
    {
        assert!(
            Instant::now() < deadline,
            "check() never found the deadlock"
        );
    }
    // Delivered under `abort`: the process ends before this sleep does.
    std::thread::sleep(Duration::from_secs(20));
    panic!("still running after check() found a deadlock");
}

#[test]
fn a_deadlock_check_finds_is_printed_written_and_ends_the_process_under_abort() {
    for _ in 0..3 {
        let run = run_test_in_child(
            "child_polls_check_while_two_threads_deadlock",
            // The watchdog kept quiet: the blocked threads' own scans are the only rivals.
            &[("LOCKWATCH_WATCHDOG_MS", "100000")],
            LIMIT,
        );
        assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
        assert_eq!(
            run.reports_of_kind("deadlock").len(),
            1,
            "stderr:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("error[deadlock]") && run.stderr.contains("polled a"),
            "stderr:\n{}",
            run.stderr
        );
    }
}
