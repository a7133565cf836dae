//! Lock order at scale and the hierarchy file: many short-lived locks, a file that is the
//! same from run to run, its path's errors, and inversions reported once with a count.
//!
//! Scenarios that need their own settings run in a child process: this test binary run again
//! with `LOCKWATCH_SCALE_CHILD=<scenario>`, which makes [`child`] run that scenario.
#![cfg(feature = "detect")]

mod support;

use lockwatch::{Mutex, Report, ReportKind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

const CHILD: &str = "LOCKWATCH_SCALE_CHILD";

/// The entry point of the child runs; does nothing in an ordinary run.
#[test]
fn child() {
    let Ok(scenario) = std::env::var(CHILD) else {
        return;
    };
    match scenario.as_str() {
        "pairs" => four_threads_nesting_their_own_pairs(),
        "hundred_thousand" => hundred_thousand_named_locks(),
        "nothing" => {
            let a = Mutex::named("nothing/a", ());
            let b = Mutex::named("nothing/b", ());
            let _a = a.lock();
            let _b = b.lock();
        }
        "inverted_pairs" => {
            for _ in 0..2_000 {
                let a = Mutex::named("pair/a", ());
                let b = Mutex::named("pair/b", ());
                {
                    let _a = a.lock();
                    let _b = b.lock();
                }
                let _b = b.lock();
                let _a = a.lock();
            }
        }
        "many_classes" => {
            let outer = Mutex::named("classes/outer", ());
            let _o = outer.lock();
            for k in 0..5_000 {
                let inner = Mutex::named(format!("classes/{k}"), ());
                drop(inner.lock());
            }
        }
        "dropped_then_exit" => dropped_then_exit(),
        "deferred_overflow" => deferred_overflow(),
        other => panic!("unknown scenario {other}"),
    }
}

/// Four threads start at once and each nests a pair of its own: two unnamed locks created at
/// the same line by every thread, and a named pair per thread. Some are lockwatch threads,
/// some plain std threads (registered when they first take a lock, in whatever order).
fn four_threads_nesting_their_own_pairs() {
    let start = Arc::new(Barrier::new(4));
    let body = |t: usize, start: Arc<Barrier>| {
        move || {
            let (a, b) = (Mutex::new(0), Mutex::new(0));
            let x = Mutex::named(format!("pairs/{t}/x"), 0);
            let y = Mutex::named(format!("pairs/{t}/y"), 0);
            start.wait();
            for _ in 0..200 {
                let _a = a.lock();
                let _b = b.lock();
                let _x = x.lock();
                *y.lock() += 1;
            }
        }
    };
    let mut joins: Vec<Box<dyn FnOnce()>> = Vec::new();
    for t in 0..4 {
        if t % 2 == 0 {
            let h = lockwatch::thread::Builder::new()
                .name(format!("pairs-{t}"))
                .spawn(body(t, start.clone()))
                .unwrap();
            joins.push(Box::new(move || h.join().unwrap()));
        } else {
            let h = std::thread::spawn(body(t, start.clone()));
            joins.push(Box::new(move || h.join().unwrap()));
        }
    }
    for join in joins {
        join();
    }
}

struct ChildRun {
    status: Option<i32>,
    stderr: String,
    pid: u32,
}

fn run_child(scenario: &str, env: &[(&str, &Path)]) -> ChildRun {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, scenario)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("LOCKWATCH") {
            command.env_remove(k);
        }
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn the child");
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {scenario} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    ChildRun {
        status: status.code(),
        stderr: err.join().unwrap(),
        pid,
    }
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockwatch-scale-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir`, recursively, as paths relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Resident memory of this process, in bytes (`/proc/self/statm`, second field, in pages);
/// 0 where there is no such file.
fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// 100,000 short-lived locks, each with its own name, taken one after another under one
/// long-held lock: each is a new ordering edge. Fast even in a debug build, and nothing of
/// them is left once they are dropped. In a child process, so that no other test's memory
/// shows in its resident size.
fn hundred_thousand_named_locks() {
    let outer = Mutex::named("accounts", 0u64);
    let run = |n: u64| {
        let _o = outer.lock();
        for k in 0..n {
            let account = Mutex::named(format!("account-{k}"), k);
            *account.lock() += 1;
        }
    };
    run(1_000);
    let before = resident_bytes();
    let (nodes_before, _) = lockwatch::introspect::order_graph_size();
    let started = Instant::now();
    run(100_000);
    let took = started.elapsed();
    let (nodes_after, _) = lockwatch::introspect::order_graph_size();
    eprintln!(
        "took_ms={} grown={} pending={} nodes={}",
        took.as_millis(),
        resident_bytes().saturating_sub(before),
        lockwatch::introspect::order_pending_size(),
        nodes_after.saturating_sub(nodes_before)
    );
}

#[test]
fn a_hundred_thousand_named_locks_under_one_long_held_lock() {
    let child = run_child("hundred_thousand", &[]);
    assert_eq!(child.status, Some(0), "{}", child.stderr);
    let line = child
        .stderr
        .lines()
        .find(|l| l.starts_with("took_ms="))
        .unwrap_or_else(|| panic!("{}", child.stderr));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    // Measured inside the child, around the loop alone; the child's whole run is bounded by
    // `run_child`.
    assert!(field("took_ms") < 5_000, "{line}");
    assert_eq!(field("pending"), 0, "{line}");
    assert_eq!(field("nodes"), 0, "{line}");
    // 100,000 names and edges kept would be well over 10 MB.
    if cfg!(target_os = "linux") {
        assert!(field("grown") < 4 << 20, "{line}");
    }
}

/// The sizes of the order graph and of the deferred edges, on stderr for the parent.
fn print_order_sizes() {
    let (nodes, edges) = lockwatch::introspect::order_graph_size();
    eprintln!(
        "nodes={nodes} edges={edges} pending={}",
        lockwatch::introspect::order_pending_size()
    );
}

/// The sizes [`print_order_sizes`] printed, from a child's stderr.
fn order_sizes(child: &ChildRun) -> (u64, u64, u64) {
    let line = child
        .stderr
        .lines()
        .find(|l| l.starts_with("nodes="))
        .unwrap_or_else(|| panic!("{}", child.stderr));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    (field("nodes"), field("edges"), field("pending"))
}

/// Threads (one lockwatch thread, one plain thread) that take short-lived locks under a
/// long-lived lock and drop them, then end with nothing else recorded: the edges into the
/// last of them, kept by the thread until its next ordering, must not reach the graph when
/// the thread publishes what it kept at its exit (the long-lived lock would stay there).
fn dropped_then_exit() {
    let outer = Arc::new(Mutex::named("exit/outer", 0));
    let body = |outer: Arc<Mutex<i32>>| {
        move || {
            let _o = outer.lock();
            for k in 0..10 {
                let inner = Mutex::new(k);
                drop(inner.lock());
            }
        }
    };
    lockwatch::thread::spawn(body(outer.clone()))
        .join()
        .unwrap();
    std::thread::spawn(body(outer.clone())).join().unwrap();
    print_order_sizes();
}

/// More short-lived locks alive at once under one lock than a thread keeps to itself, half of
/// them dropped as soon as they were taken: the thread's edges overflow into the graph, and
/// every lock still leaves it when dropped.
fn deferred_overflow() {
    let outer = Mutex::named("overflow/outer", 0);
    {
        let _o = outer.lock();
        let mut kept = Vec::new();
        for k in 0..1_000 {
            let inner = Mutex::new(k);
            drop(inner.lock());
            if k % 2 == 1 {
                kept.push(inner);
            }
        }
        drop(kept);
    }
    drop(outer);
    print_order_sizes();
}

#[test]
fn short_lived_locks_dropped_before_their_thread_ends_leave_nothing() {
    let child = run_child("dropped_then_exit", &[]);
    assert_eq!(child.status, Some(0), "{}", child.stderr);
    assert_eq!(order_sizes(&child), (0, 0, 0), "{}", child.stderr);
}

#[test]
fn deferred_edges_that_overflow_into_the_graph_leave_it_with_their_locks() {
    let child = run_child("deferred_overflow", &[]);
    assert_eq!(child.status, Some(0), "{}", child.stderr);
    assert_eq!(order_sizes(&child), (0, 0, 0), "{}", child.stderr);
}

#[test]
fn the_hierarchy_file_is_the_same_whatever_the_scheduling() {
    let dir = scratch("stable");
    let mut texts = Vec::new();
    for run in 0..6 {
        let path = dir.join(format!("run-{run}.json"));
        let child = run_child("pairs", &[("LOCKWATCH_ORDER_GRAPH", &path)]);
        assert_eq!(child.status, Some(0), "{}", child.stderr);
        texts.push(std::fs::read(&path).unwrap());
    }
    for (run, text) in texts.iter().enumerate() {
        assert!(
            *text == texts[0],
            "run {run} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(&texts[0]),
            String::from_utf8_lossy(text)
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&texts[0]).unwrap();
    assert_eq!(json["schema"], "lockwatch.order/v1");
    // One class for the unnamed pair (same site for every thread) and four named pairs.
    assert_eq!(json["nodes"].as_array().unwrap().len(), 2 + 8, "{json:#}");
    let dot = dir.join("run.dot");
    let child = run_child("pairs", &[("LOCKWATCH_ORDER_GRAPH", &dot)]);
    assert_eq!(child.status, Some(0), "{}", child.stderr);
    let again = run_child("pairs", &[("LOCKWATCH_ORDER_GRAPH", &dot)]);
    assert_eq!(again.status, Some(0), "{}", again.stderr);
    assert!(std::fs::read_to_string(&dot)
        .unwrap()
        .starts_with("digraph"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn percent_p_in_the_path_is_the_process_id() {
    let dir = scratch("pid");
    let child = run_child(
        "nothing",
        &[("LOCKWATCH_ORDER_GRAPH", &dir.join("order-%p.json"))],
    );
    assert_eq!(child.status, Some(0), "{}", child.stderr);
    assert_eq!(
        files_under(&dir),
        [PathBuf::from(format!("order-{}.json", child.pid))]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_directory_or_a_path_under_a_file_is_a_one_line_error_that_leaves_nothing() {
    let dir = scratch("bad-path");
    std::fs::create_dir(dir.join("a-directory")).unwrap();
    std::fs::write(dir.join("a-file"), "kept").unwrap();
    for bad in [
        dir.join("a-directory"),
        dir.join("a-file").join("order.json"),
    ] {
        let child = run_child("nothing", &[("LOCKWATCH_ORDER_GRAPH", &bad)]);
        assert_eq!(child.status, Some(0), "{}", child.stderr);
        let errors: Vec<&str> = child
            .stderr
            .lines()
            .filter(|l| l.starts_with("lockwatch:"))
            .collect();
        assert_eq!(errors.len(), 1, "{}", child.stderr);
        assert!(
            errors[0].contains("LOCKWATCH_ORDER_GRAPH")
                && errors[0].contains(&*bad.to_string_lossy()),
            "{}",
            errors[0]
        );
        assert_eq!(files_under(&dir), [PathBuf::from("a-file")]);
        assert_eq!(std::fs::read_to_string(dir.join("a-file")).unwrap(), "kept");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// 2,000 pairs of fresh locks, created at the same lines with the same names, each taken in
/// both orders: one report, with the count.
#[test]
fn inversions_of_fresh_instances_of_the_same_classes_are_one_report_with_a_count() {
    let dir = scratch("pairs-reports");
    let reports = dir.join("reports");
    let child = run_child("inverted_pairs", &[("LOCKWATCH_REPORT_DIR", &reports)]);
    assert_eq!(child.status, Some(0), "{}", child.stderr);
    let files = files_under(&reports);
    assert_eq!(files.len(), 1, "{files:?}\n{}", child.stderr);
    let text = std::fs::read_to_string(reports.join(&files[0])).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["kind"], "lock_order_inversion");
    assert_eq!(json["occurrences"], 2_000, "{json:#}");
    assert!(json["summary"]
        .as_str()
        .unwrap()
        .contains("2000 occurrences"));
    // Still a valid report for every reader of the schema.
    let report = Report::from_json(&text).unwrap();
    assert_eq!(report.kind(), ReportKind::LockOrderInversion);
    // Printed once, then the count at exit.
    assert_eq!(
        child
            .stderr
            .matches("warning[lock_order_inversion]")
            .count(),
        1,
        "{}",
        child.stderr
    );
    assert_eq!(
        child
            .stderr
            .matches("(reported once) occurred 2000 times")
            .count(),
        1,
        "{}",
        child.stderr
    );
    assert!(
        child.stderr.contains("occurred 2000 times"),
        "{}",
        child.stderr
    );
    assert!(child.stderr.lines().count() < 100, "{}", child.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_hierarchy_is_bounded_and_says_so_once() {
    let dir = scratch("bound");
    let path = dir.join("order.json");
    let child = run_child("many_classes", &[("LOCKWATCH_ORDER_GRAPH", &path)]);
    assert_eq!(child.status, Some(0), "{}", child.stderr);
    assert_eq!(
        child.stderr.matches("lock-order hierarchy is full").count(),
        1,
        "{}",
        child.stderr
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), 4_096);
    assert_eq!(json["dropped"], 5_000 + 1 - 4_096);
    let _ = std::fs::remove_dir_all(&dir);
}

static SEEN: std::sync::Mutex<Vec<Report>> = std::sync::Mutex::new(Vec::new());

fn install_collector() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        lockwatch::set_handler(|report| SEEN.lock().unwrap().push(report.clone()));
    });
}

fn on_thread(name: &str, f: impl FnOnce() + Send + 'static) {
    let h = lockwatch::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .unwrap();
    support::join(h);
}

/// An inversion first seen only under a gate (which cannot deadlock), then taken without it:
/// the report cites the ungated acquisition.
#[test]
fn an_inversion_taken_without_its_gate_cites_the_ungated_acquisition() {
    install_collector();
    let gate = Arc::new(Mutex::named("cite/gate", ()));
    let a = Arc::new(Mutex::named("cite/a", ()));
    let b = Arc::new(Mutex::named("cite/b", ()));
    let (g1, a1, b1) = (gate.clone(), a.clone(), b.clone());
    on_thread("gated-forward", move || {
        let _g = g1.lock();
        let _a = a1.lock();
        let _b = b1.lock();
    });
    let (g2, a2, b2) = (gate.clone(), a.clone(), b.clone());
    on_thread("gated-backward", move || {
        let _g = g2.lock();
        let _b = b2.lock();
        let _a = a2.lock();
    });
    let ungated_line = line!() + 3;
    on_thread("ungated", move || {
        let _b = b.lock();
        let _a = a.lock();
    });
    // The handler runs on lockwatch's own thread.
    assert!(lockwatch::introspect::wait_for_reports(
        std::time::Duration::from_secs(10)
    ));
    let found: Vec<Report> = SEEN
        .lock()
        .unwrap()
        .iter()
        .filter(|r| {
            r.resources
                .iter()
                .any(|res| res.name.as_deref() == Some("cite/a"))
        })
        .cloned()
        .collect();
    assert_eq!(found.len(), 1, "{found:#?}");
    let report = &found[0];
    let id = |name: &str| {
        report
            .resources
            .iter()
            .find(|r| r.name.as_deref() == Some(name))
            .unwrap()
            .id
    };
    let (ia, ib) = (id("cite/a"), id("cite/b"));
    let back = report
        .cycle
        .iter()
        .find_map(|e| match e {
            lockwatch::detector::CycleEdge::Order {
                from,
                to,
                thread_name,
                location,
                ..
            } if (*from, *to) == (ib, ia) => Some((thread_name.clone(), location.line)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{report:#?}"));
    assert_eq!(back, (Some("ungated".to_owned()), ungated_line));
}
