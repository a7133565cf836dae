//! `LOCKWATCH_HARNESS` (SPEC §4) under the default test harness, the one an ordinary
//! `cargo test` runs: its main thread coordinates tests and never touches lockwatch. With
//! `libtest` that thread does not count as one that could release a `Lock`, so a test that
//! acquires a Lock twice is reported. So it is with the variable unset, on Linux, where
//! lockwatch can tell that libtest runs the process (this binary is a libtest test binary);
//! with `none` it is not (the coordinator then counts as a thread that might release the
//! Lock). Each scenario runs in a child process with `LOCKWATCH_ON_DEADLOCK=abort`.
#![cfg(feature = "detect")]

mod child;

use child::{run_test_in_child, ChildRun};
use lockwatch::Lock;
use std::time::Duration;

/// The bound on a child that must be reported (and so exit).
const LIMIT: Duration = Duration::from_secs(20);
/// How long a child that must not be reported is watched: ten times the default latency.
const QUIET: Duration = Duration::from_secs(1);

fn freeze_on_a_lock_taken_twice() -> ! {
    let lock = Lock::named("frozen");
    lock.acquire();
    // Never returns: no thread is left that could release it.
    lock.acquire();
    unreachable!("acquired a Lock twice with nobody to release it");
}

fn assert_frozen_lock_reported(run: &ChildRun) {
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let deadlocks = run.reports_of_kind("deadlock");
    assert_eq!(deadlocks.len(), 1, "stderr:\n{}", run.stderr);
    let resources = deadlocks[0]["resources"].as_array().unwrap();
    assert!(
        resources
            .iter()
            .any(|r| r["name"] == "frozen" && r["kind"] == "Lock"),
        "{:#}",
        deadlocks[0]
    );
}

#[test]
#[ignore = "run in a child process by the tests below"]
fn child_acquires_a_lock_twice() {
    freeze_on_a_lock_taken_twice();
}

#[test]
fn a_lock_acquired_twice_in_a_test_is_reported_under_harness_libtest() {
    let run = run_test_in_child(
        "child_acquires_a_lock_twice",
        &[("LOCKWATCH_HARNESS", "libtest")],
        LIMIT,
    );
    assert_frozen_lock_reported(&run);
}

/// An ordinary `cargo test`, with nothing set: on Linux lockwatch reads from the executable
/// that libtest runs it, and reports the frozen test.
#[test]
#[cfg(target_os = "linux")]
fn a_lock_acquired_twice_in_a_test_is_reported_with_the_harness_left_unset() {
    let run = run_test_in_child("child_acquires_a_lock_twice", &[], LIMIT);
    assert_frozen_lock_reported(&run);
}

#[test]
fn a_lock_acquired_twice_in_a_test_is_not_reported_under_harness_none() {
    let run = run_test_in_child(
        "child_acquires_a_lock_twice",
        &[("LOCKWATCH_HARNESS", "none")],
        QUIET,
    );
    assert_eq!(run.status, None, "it ended; stderr:\n{}", run.stderr);
    assert!(run.reports.is_empty(), "stderr:\n{}", run.stderr);
}

#[test]
#[ignore = "run in a child process by the test below"]
fn child_fails_a_spawn_inside_std_then_acquires_a_lock_twice() {
    let spawn = std::panic::catch_unwind(|| {
        lockwatch::thread::Builder::new()
            .name("a\0b".into())
            .spawn(|| {})
    });
    assert!(spawn.is_err(), "std accepted a thread name with a NUL byte");
    freeze_on_a_lock_taken_twice();
}

/// A spawn that panicked inside std left its pre-registered thread behind, a thread lockwatch
/// took to be running, which could release the Lock: the frozen test was never reported.
#[test]
fn a_spawn_that_panicked_inside_std_leaves_no_thread_behind_to_hide_a_frozen_lock() {
    let run = run_test_in_child(
        "child_fails_a_spawn_inside_std_then_acquires_a_lock_twice",
        &[("LOCKWATCH_HARNESS", "libtest")],
        LIMIT,
    );
    assert_frozen_lock_reported(&run);
}

#[test]
#[ignore = "run in a child process by the test below"]
fn child_takes_a_mutex_and_reads_its_harness() {
    drop(lockwatch::Mutex::new(()).lock());
    println!("harness: {:?}", lockwatch::Config::current().harness);
}

#[test]
fn a_bad_harness_value_is_a_one_line_error_and_the_default_is_used() {
    let run = run_test_in_child(
        "child_takes_a_mutex_and_reads_its_harness",
        &[("LOCKWATCH_HARNESS", "nextest")],
        LIMIT,
    );
    assert_eq!(run.status, Some(0), "stderr:\n{}", run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("lockwatch: "))
        .collect();
    assert_eq!(
        errors,
        [
            "lockwatch: error: invalid LOCKWATCH_HARNESS=\"nextest\": expected `libtest` or `none`; using the default"
        ]
    );
    assert!(
        run.stdout.contains("harness: None"),
        "stdout:\n{}",
        run.stdout
    );
}

#[test]
#[ignore = "run in a child process by the test below"]
fn child_reads_its_harness() {
    println!("harness: {:?}", lockwatch::Config::current().harness);
}

#[test]
fn the_harness_setting_reads_both_values() {
    for (value, expected) in [("libtest", "Libtest"), ("none", "None")] {
        let run = run_test_in_child(
            "child_reads_its_harness",
            &[("LOCKWATCH_HARNESS", value)],
            LIMIT,
        );
        assert_eq!(run.status, Some(0), "stderr:\n{}", run.stderr);
        assert!(
            run.stdout.contains(&format!("harness: {expected}")),
            "stdout:\n{}",
            run.stdout
        );
    }
}
