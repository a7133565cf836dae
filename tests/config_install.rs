//! `Config::install()` as a process's very first lockwatch call: the installed settings, not
//! the environment's, drive the fast path from the first acquisition on. (The first call used
//! to read the environment after the install had published its flags, and the environment's
//! flags won.) Each scenario is a child process whose environment says otherwise.
#![cfg(feature = "detect")]

mod child;

use child::run_test_in_child;
use lockwatch::{Config, LockOrder, Mutex, Report, ReportKind};
use std::sync::mpsc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// Takes `a` then `b`, then `b` then `a`, on this thread, and returns the kind of the first
/// report that arrives within `wait` of the inversion.
fn invert_two_mutexes(wait: Duration) -> Vec<ReportKind> {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    lockwatch::set_handler(move |report: &Report| {
        let _ = tx.lock().unwrap().send(report.kind());
    });
    let a = Mutex::named("a", ());
    let b = Mutex::named("b", ());
    drop((a.lock(), b.lock()));
    let _b = b.lock();
    let _a = a.lock();
    rx.recv_timeout(wait).into_iter().collect()
}

#[test]
#[ignore = "run in a child process by the test below"]
fn child_installs_tracking_on_first_then_inverts_two_mutexes() {
    let mut config = Config::from_env();
    assert!(!config.enabled, "the parent sets LOCKWATCH=off");
    config.enabled = true;
    config.lock_order = LockOrder::Warn;
    config.install();
    assert!(Config::current().enabled);
    assert_eq!(
        invert_two_mutexes(Duration::from_secs(10)),
        [ReportKind::LockOrderInversion]
    );
}

#[test]
fn an_install_as_the_first_call_turns_tracking_on_over_lockwatch_off() {
    let run = run_test_in_child(
        "child_installs_tracking_on_first_then_inverts_two_mutexes",
        &[("LOCKWATCH", "off")],
        LIMIT,
    );
    assert_eq!(run.status, Some(0), "stderr:\n{}", run.stderr);
    assert!(run.stdout.contains("1 passed"), "stdout:\n{}", run.stdout);
}

#[test]
#[ignore = "run in a child process by the test below"]
fn child_installs_lock_order_off_first_then_inverts_two_mutexes() {
    let mut config = Config::from_env();
    assert_eq!(config.lock_order, LockOrder::Error, "the parent sets error");
    config.lock_order = LockOrder::Off;
    config.install();
    assert_eq!(invert_two_mutexes(Duration::from_secs(1)), []);
}

#[test]
fn an_install_as_the_first_call_turns_lock_order_off_over_the_environment() {
    let run = run_test_in_child(
        "child_installs_lock_order_off_first_then_inverts_two_mutexes",
        &[("LOCKWATCH_LOCK_ORDER", "error")],
        LIMIT,
    );
    assert_eq!(run.status, Some(0), "stderr:\n{}", run.stderr);
    assert!(run.stdout.contains("1 passed"), "stdout:\n{}", run.stdout);
}
