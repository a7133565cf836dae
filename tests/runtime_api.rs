//! The runtime's programmatic surface: `Config`, `set_handler`, `check`, long waits. One test
//! function, because the settings are process-wide.
#![cfg(feature = "detect")]

mod support;

use lockwatch::{Config, Mutex, OnDeadlock, Report, ReportKind};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

#[test]
fn config_handler_check_and_long_waits() {
    let mut config = Config::from_env();
    config.long_wait = Some(Duration::from_millis(50));
    config.watchdog_period = Duration::from_millis(10);
    config.on_deadlock = OnDeadlock::Report;
    config.install();
    assert_eq!(Config::current().long_wait, Some(Duration::from_millis(50)));

    let (tx, rx) = mpsc::channel::<Report>();
    let tx = std::sync::Mutex::new(tx);
    lockwatch::set_handler(move |r| {
        let _ = tx.lock().unwrap().send(r.clone());
    });

    // A healthy program: nothing to report.
    assert!(lockwatch::check().is_empty());

    // Long wait: `holder` keeps `slow db` until the waiter's long wait is reported (at most
    // 10 s), while `waiter` waits for it.
    let db = Arc::new(Mutex::named("slow db", 0));
    let held = Arc::new(Barrier::new(2));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = {
        let (db, held) = (db.clone(), held.clone());
        lockwatch::thread::Builder::new()
            .name("holder".into())
            .spawn(move || {
                let _g = db.lock();
                held.wait();
                let _ = release_rx.recv_timeout(Duration::from_secs(10));
            })
            .unwrap()
    };
    held.wait();
    let waiter = {
        let db = db.clone();
        lockwatch::thread::Builder::new()
            .name("waiter".into())
            .spawn(move || *db.lock() += 1)
            .unwrap()
    };
    let report = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("a long_wait report");
    assert_eq!(report.kind(), ReportKind::LongWait);
    let waiting = report
        .threads
        .iter()
        .find(|t| t.name.as_deref() == Some("waiter"))
        .expect("the waiter");
    let wait = waiting.waiting_for.as_ref().unwrap();
    assert!(wait.since_ms >= 50, "{wait:?}");
    let holder_report = report
        .threads
        .iter()
        .find(|t| t.name.as_deref() == Some("holder"))
        .expect("the holder");
    assert_eq!(holder_report.holds[0].resource, wait.resource);
    assert_eq!(holder_report.holds[0].location.file, "tests/runtime_api.rs");
    drop(release_tx);
    holder.join().unwrap();
    waiter.join().unwrap();
    // Reported once per wait, not once per watchdog period. (The join above may itself be a
    // long wait, reported on its own: only reports of the waiter's wait count here.)
    std::thread::sleep(Duration::from_millis(100));
    let again: Vec<Report> = rx
        .try_iter()
        .filter(|r| {
            r.threads
                .iter()
                .any(|t| t.name.as_deref() == Some("waiter") && t.waiting_for.is_some())
        })
        .collect();
    assert!(again.is_empty(), "the same wait reported again: {again:#?}");

    // A real deadlock in-process: reported once through the handler; `check` does not
    // return it again.
    let a = Arc::new(Mutex::named("api A", ()));
    let b = Arc::new(Mutex::named("api B", ()));
    support::spawn_abba_deadlock(&a, &b);
    let deadlock = loop {
        let r = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the in-process deadlock is reported");
        if r.kind() == ReportKind::Deadlock {
            break r;
        }
    };
    assert_eq!(deadlock.cycle.len(), 2);
    assert!(lockwatch::check().is_empty());
}
