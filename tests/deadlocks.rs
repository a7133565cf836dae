//! Every kind of deadlock the core runtime detects, each forced deterministically in an
//! example program run as a child process with `LOCKWATCH_ON_DEADLOCK=abort`; the report it
//! writes is checked field by field.
#![cfg(feature = "detect")]

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

fn id(v: &Value) -> u64 {
    v["id"].as_u64().unwrap()
}

fn assert_common_fields(report: &Value, kind: &str) {
    assert_eq!(report["schema"], "lockwatch.report/v1");
    assert_eq!(report["kind"], kind);
    assert!(report["pid"].as_u64().unwrap() > 0);
    assert!(report["detected_at_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(!report["summary"].as_str().unwrap().is_empty());
    assert!(
        !report["help"].as_array().unwrap().is_empty(),
        "no help: {report:#}"
    );
}

/// The cycle's edges, as (thread, waits_for, held_by).
fn cycle(report: &Value) -> Vec<(u64, u64, u64)> {
    report["cycle"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["thread"].as_u64().unwrap(),
                e["waits_for"].as_u64().unwrap(),
                e["held_by"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn abba_is_reported_with_both_threads_accounts_and_lines() {
    let run = run_example("abba", &[], LIMIT);
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let report = run.only_report("deadlock");
    assert_common_fields(report, "deadlock");
    // The inversion is warned about too, though both threads froze holding their edges: a
    // thread about to block for good hands its deferred edges to the graph first.
    assert_eq!(
        run.reports_of_kind("lock_order_inversion").len(),
        1,
        "stderr:\n{}",
        run.stderr
    );

    let a = resource(report, "account A");
    let b = resource(report, "account B");
    assert_eq!(a["kind"], "Mutex");
    assert_eq!(b["kind"], "Mutex");
    assert_eq!(a["created_at"]["file"], "examples/abba.rs");

    let first = site("abba", "first lock", ".lock(");
    let second = site("abba", "second lock", ".lock(");
    let worker_a = thread(report, "worker-a");
    let worker_b = thread(report, "worker-b");
    for (worker, held, wanted) in [(worker_a, a, b), (worker_b, b, a)] {
        assert_eq!(worker["state"], "blocked");
        let wait = &worker["waiting_for"];
        assert_eq!(wait["resource"], id(wanted));
        assert_eq!(wait["op"], "lock");
        assert_location(&wait["location"], "abba", second);
        let holds = worker["holds"].as_array().unwrap();
        assert_eq!(holds.len(), 1, "{worker:#}");
        assert_eq!(holds[0]["resource"], id(held));
        assert_eq!(holds[0]["op"], "lock");
        assert_eq!(holds[0]["count"], 1);
        assert_location(&holds[0]["location"], "abba", first);
        assert!(backtrace_has(worker, "transfer"), "backtrace: {worker:#}");
    }

    let edges = cycle(report);
    assert_eq!(edges.len(), 2);
    let (ta, tb) = (id(worker_a), id(worker_b));
    assert!(edges.contains(&(ta, id(b), tb)), "{edges:?}");
    assert!(edges.contains(&(tb, id(a), ta)), "{edges:?}");
    let help = report["help"].to_string();
    assert!(
        help.contains("account A") && help.contains("account B"),
        "{help}"
    );

    // The text report went to stderr too.
    assert!(run.stderr.contains("deadlock"), "{}", run.stderr);
    assert!(run.stderr.contains("worker-a"), "{}", run.stderr);
    assert!(
        run.elapsed < Duration::from_secs(5),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn frozen_lock_acquired_twice_is_a_deadlock_on_itself() {
    let run = run_example("frozen", &[], LIMIT);
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    // The RLock half ran to completion first.
    assert!(run.stdout.contains("with an RLock"), "{}", run.stdout);
    let report = run.only_report("deadlock");
    assert_common_fields(report, "deadlock");
    let lock = resource(report, "ledger lock");
    assert_eq!(lock["kind"], "Lock");
    let worker = thread(report, "ledger-worker");
    assert_eq!(worker["state"], "blocked");
    assert_eq!(worker["waiting_for"]["resource"], id(lock));
    assert_eq!(worker["waiting_for"]["op"], "acquire");
    assert_location(
        &worker["waiting_for"]["location"],
        "frozen",
        site("frozen", "second acquire", ".acquire("),
    );
    let holds = worker["holds"].as_array().unwrap();
    assert_eq!(holds[0]["resource"], id(lock));
    assert_location(
        &holds[0]["location"],
        "frozen",
        site("frozen", "first acquire", ".acquire("),
    );
    assert_eq!(cycle(report), vec![(id(worker), id(lock), id(worker))]);
    assert!(backtrace_has(worker, "record"), "{worker:#}");
    assert!(report["help"].to_string().contains("RLock"), "{report:#}");
}

#[test]
fn frozen_example_ends_by_itself_under_the_default_policy() {
    let path = example_path("frozen");
    let output = std::process::Command::new(path)
        .env_remove("LOCKWATCH_ON_DEADLOCK")
        .env_remove("LOCKWATCH_REPORT_DIR")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("the worker froze"), "{stdout}");
    assert!(stderr.contains("ledger lock"), "{stderr}");
}

#[test]
fn mutex_locked_twice_is_reported_at_once() {
    let run = run_example("mutex_twice", &[], LIMIT);
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let report = run.only_report("deadlock");
    assert_common_fields(report, "deadlock");
    let config = resource(report, "config");
    assert_eq!(config["kind"], "Mutex");
    let main = thread(report, "main");
    assert_location(
        &main["waiting_for"]["location"],
        "mutex_twice",
        site("mutex_twice", "second lock", ".lock("),
    );
    assert_location(
        &main["holds"][0]["location"],
        "mutex_twice",
        site("mutex_twice", "first lock", ".lock("),
    );
    assert_eq!(cycle(report), vec![(id(main), id(config), id(main))]);
    assert!(backtrace_has(main, "refresh"), "{main:#}");
    assert!(
        report["help"].to_string().contains("ReentrantMutex"),
        "{report:#}"
    );
    assert!(
        run.elapsed < Duration::from_secs(5),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn join_on_a_thread_that_waits_for_the_joiner_is_a_deadlock() {
    let run = run_example("join_cycle", &[], LIMIT);
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let report = run.only_report("deadlock");
    assert_common_fields(report, "deadlock");
    let main = thread(report, "main");
    let child = thread(report, "child");
    let state = resource(report, "state");
    let child_resource = resource(report, "child");
    assert_eq!(child_resource["kind"], "Thread");
    assert_eq!(main["waiting_for"]["op"], "join");
    assert_eq!(main["waiting_for"]["resource"], id(child_resource));
    assert_location(
        &main["waiting_for"]["location"],
        "join_cycle",
        site("join_cycle", "main joins child", ".join("),
    );
    assert_eq!(child["waiting_for"]["resource"], id(state));
    assert_location(
        &child["waiting_for"]["location"],
        "join_cycle",
        site("join_cycle", "child waits for state", ".lock("),
    );
    let edges = cycle(report);
    assert_eq!(edges.len(), 2, "{edges:?}");
    assert!(edges.contains(&(id(main), id(child_resource), id(child))));
    assert!(edges.contains(&(id(child), id(state), id(main))));
    // A joined thread is waited for, not queued behind.
    assert!(
        run.stderr
            .contains("thread `main` waits for thread `child` to finish")
            && !run.stderr.contains("queued behind"),
        "{}",
        run.stderr
    );
}

#[test]
fn write_under_own_read_is_a_deadlock() {
    let run = run_example("rwlock_upgrade", &[], LIMIT);
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let report = run.only_report("deadlock");
    assert_common_fields(report, "deadlock");
    let cache = resource(report, "cache");
    assert_eq!(cache["kind"], "RwLock");
    let main = thread(report, "main");
    assert_eq!(main["waiting_for"]["op"], "write");
    assert_eq!(main["holds"][0]["op"], "read");
    assert_location(
        &main["waiting_for"]["location"],
        "rwlock_upgrade",
        site("rwlock_upgrade", "write", ".write("),
    );
    assert_eq!(cycle(report), vec![(id(main), id(cache), id(main))]);
}

#[test]
fn recursive_read_behind_a_queued_writer_is_a_deadlock() {
    let run = run_example("recursive_read", &[], LIMIT);
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let report = run.only_report("deadlock");
    assert_common_fields(report, "deadlock");
    let table = resource(report, "routing table");
    let reader = thread(report, "reader");
    let writer = thread(report, "writer");
    assert_eq!(reader["waiting_for"]["op"], "read");
    assert_location(
        &reader["waiting_for"]["location"],
        "recursive_read",
        site("recursive_read", "second read", ".read("),
    );
    assert_eq!(writer["waiting_for"]["op"], "write");
    let edges = cycle(report);
    assert!(
        edges.contains(&(id(reader), id(table), id(writer))),
        "{edges:?}"
    );
    assert!(
        edges.contains(&(id(writer), id(table), id(reader))),
        "{edges:?}"
    );
}

#[test]
fn waiting_for_a_lock_whose_owner_exited_is_a_deadlock() {
    let run = run_example("leaked_guard", &[], LIMIT);
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let report = run.only_report("deadlock");
    assert_common_fields(report, "deadlock");
    let cache = resource(report, "cache");
    let main = thread(report, "main");
    let leaker = thread(report, "leaker");
    assert_eq!(leaker["state"], "exited");
    assert_location(
        &leaker["holds"][0]["location"],
        "leaked_guard",
        site("leaked_guard", "leaked lock", ".lock("),
    );
    assert_eq!(cycle(report), vec![(id(main), id(cache), id(leaker))]);
    assert!(report["help"].to_string().contains("leaker"), "{report:#}");
}

#[test]
fn three_thread_cycle_across_mutex_rwlock_and_lock() {
    let run = run_example("three_way", &[], LIMIT);
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let report = run.only_report("deadlock");
    assert_common_fields(report, "deadlock");
    let inventory = resource(report, "inventory");
    let prices = resource(report, "prices");
    let audit = resource(report, "audit");
    assert_eq!(inventory["kind"], "Mutex");
    assert_eq!(prices["kind"], "RwLock");
    assert_eq!(audit["kind"], "Lock");
    let alpha = thread(report, "alpha");
    let beta = thread(report, "beta");
    let gamma = thread(report, "gamma");
    let edges = cycle(report);
    assert_eq!(edges.len(), 3, "{edges:?}");
    assert!(edges.contains(&(id(alpha), id(prices), id(beta))));
    assert!(edges.contains(&(id(beta), id(audit), id(gamma))));
    assert!(edges.contains(&(id(gamma), id(inventory), id(alpha))));
    assert_location(
        &gamma["waiting_for"]["location"],
        "three_way",
        site("three_way", "gamma wants inventory", ".lock("),
    );
}

#[test]
fn condvar_nobody_can_notify_is_a_stall() {
    let run = run_example("condvar_stall", &[], LIMIT);
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let report = run.only_report("stall");
    assert_common_fields(report, "stall");
    assert_eq!(report["cycle"], serde_json::json!([]));
    let consumer = thread(report, "consumer");
    let ready = resource(report, "item ready");
    assert_eq!(ready["kind"], "Condvar");
    assert_eq!(consumer["waiting_for"]["op"], "wait");
    assert_eq!(consumer["waiting_for"]["resource"], id(ready));
    assert_location(
        &consumer["waiting_for"]["location"],
        "condvar_stall",
        site("condvar_stall", "waits for an item", ".wait("),
    );
    // The mutex is released while waiting: the consumer holds nothing.
    assert_eq!(consumer["holds"], serde_json::json!([]));
    let main = thread(report, "main");
    assert_eq!(main["waiting_for"]["op"], "join");
}

#[test]
fn policy_panic_panics_the_thread_that_closed_the_cycle() {
    let run = run_example("abba", &[("LOCKWATCH_ON_DEADLOCK", "panic")], LIMIT);
    assert_eq!(run.status, Some(0), "stderr:\n{}", run.stderr);
    assert!(run.stdout.contains("transfer abandoned"), "{}", run.stdout);
    assert!(run.stdout.contains("transfer done"), "{}", run.stdout);
    assert_eq!(run.reports_of_kind("deadlock").len(), 1);
    // The panic names the program's line where the thread blocked, not one of lockwatch's.
    let panicked: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("panicked at"))
        .collect();
    assert_eq!(panicked.len(), 1, "{}", run.stderr);
    assert!(
        panicked[0].contains("panicked at examples/abba.rs:"),
        "{}",
        panicked[0]
    );
}

#[test]
fn json_format_writes_one_object_per_finding_to_stderr() {
    let run = run_example("mutex_twice", &[("LOCKWATCH_FORMAT", "json")], LIMIT);
    assert_eq!(run.status, Some(86));
    let objects: Vec<Value> = run
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(objects.len(), 1, "{}", run.stderr);
    assert_eq!(objects[0], run.reports[0]);
}

#[test]
fn report_files_are_named_pid_seq_kind() {
    let run = run_example("mutex_twice", &[], LIMIT);
    assert_eq!(run.report_files.len(), 1);
    let name = run.report_files[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let pid = run.reports[0]["pid"].as_u64().unwrap();
    assert!(name.starts_with(&format!("{pid}-")), "{name}");
    assert!(name.ends_with("-deadlock.json"), "{name}");
}

#[test]
fn lockwatch_off_disables_detection() {
    // With detection off the example really freezes: the time limit is the verdict.
    let path = example_path("mutex_twice");
    let mut child = std::process::Command::new(path)
        .env("LOCKWATCH", "off")
        .env("LOCKWATCH_ON_DEADLOCK", "abort")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert!(
        still_running,
        "exited: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stderr.is_empty());
}

#[test]
fn bad_environment_values_are_one_line_errors() {
    let run = run_example(
        "mutex_twice",
        &[
            ("LOCKWATCH_WATCHDOG_MS", "fast"),
            ("LOCKWATCH_BACKTRACE", "some"),
        ],
        LIMIT,
    );
    assert_eq!(run.status, Some(86), "{}", run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("lockwatch: error: invalid"))
        .collect();
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    assert!(errors
        .iter()
        .any(|l| l.contains("LOCKWATCH_WATCHDOG_MS") && l.contains("milliseconds")));
    assert!(errors
        .iter()
        .any(|l| l.contains("LOCKWATCH_BACKTRACE") && l.contains("`full`")));
}

#[test]
fn backtrace_off_leaves_backtraces_empty() {
    let run = run_example("abba", &[("LOCKWATCH_BACKTRACE", "off")], LIMIT);
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let report = run.only_report("deadlock");
    for t in report["threads"].as_array().unwrap() {
        assert_eq!(t["backtrace"], serde_json::json!([]), "{t:#}");
    }
}

#[test]
fn backtrace_full_also_shows_where_each_held_lock_was_acquired() {
    let run = run_example("abba", &[("LOCKWATCH_BACKTRACE", "full")], LIMIT);
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    let report = run.only_report("deadlock");
    let worker = thread(report, "worker-a");
    let hold_trace = &worker["holds"][0]["backtrace"];
    let frames = hold_trace
        .as_array()
        .unwrap_or_else(|| panic!("{worker:#}"));
    assert!(
        frames
            .iter()
            .any(|f| f["function"].as_str().unwrap().ends_with("transfer")),
        "{hold_trace:#}"
    );
}

#[test]
fn deadlock_is_reported_by_the_blocking_thread_without_the_watchdog() {
    // With a watchdog period of 100 s only the scan the blocking thread asks for reports in time.
    // Detection takes milliseconds (see the benchmarks); the bound leaves room for a debug
    // build loading its symbols on a loaded machine.
    let run = run_example("mutex_twice", &[("LOCKWATCH_WATCHDOG_MS", "100000")], LIMIT);
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    assert!(
        run.elapsed < Duration::from_secs(5),
        "took {:?}",
        run.elapsed
    );
}

/// Every example is a scenario some test runs: a new example without a test fails here.
#[test]
fn every_example_is_exercised_by_a_test() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut tests = String::new();
    // The CLI's tests (detector/tests/cli.rs) run some examples under `lockwatch run`.
    let test_dirs = [root.join("tests"), root.join("detector").join("tests")];
    for entry in test_dirs.iter().flat_map(|d| std::fs::read_dir(d).unwrap()) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            // Whitespace removed, so a call rustfmt split over lines still matches.
            let text = std::fs::read_to_string(&path).unwrap();
            tests.extend(text.chars().filter(|c| !c.is_whitespace()));
        }
    }
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            tests.contains(&format!("run_example(\"{name}\"")),
            "examples/{name}.rs is not run by any test"
        );
    }
}

/// Under cargo-nextest a report names the test it froze in (`NEXTEST_TEST_NAME`).
#[test]
fn a_report_names_the_nextest_test_it_came_from() {
    let run = run_example(
        "mutex_twice",
        &[("NEXTEST_TEST_NAME", "bank::transfer_twice")],
        LIMIT,
    );
    assert_eq!(run.status, Some(86), "stderr:\n{}", run.stderr);
    assert_eq!(run.only_report("deadlock")["test"], "bank::transfer_twice");
    // Empty, as outside nextest (this test may itself run under nextest).
    let plain = run_example("mutex_twice", &[("NEXTEST_TEST_NAME", "")], LIMIT);
    assert!(plain.only_report("deadlock").get("test").is_none());
}
