//! Lock-order inversions: reported for every path that could deadlock, never for the valid
//! patterns. In-process tests share one handler and tell their findings apart by lock names;
//! settings that differ from the defaults are tested in child processes.
#![cfg(feature = "detect")]

mod common;

use common::*;
use lockwatch::{Lock, Mutex, RLock, Report, ReportKind, RwLock};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

static SEEN: std::sync::Mutex<Vec<Report>> = std::sync::Mutex::new(Vec::new());

fn install_collector() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        lockwatch::set_handler(|report| SEEN.lock().unwrap().push(report.clone()));
    });
}

/// Inversion reports naming any lock whose name starts with `prefix`.
fn inversions(prefix: &str) -> Vec<Report> {
    lockwatch::introspect::wait_for_reports(Duration::from_secs(10));
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|r| r.kind() == ReportKind::LockOrderInversion)
        .filter(|r| {
            r.resources
                .iter()
                .any(|res| res.name.as_deref().is_some_and(|n| n.starts_with(prefix)))
        })
        .cloned()
        .collect()
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) {
    lockwatch::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .unwrap()
        .join_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{name} still running after 30 s"))
        .unwrap();
}

fn order_edges(report: &Report) -> Vec<(u64, u64)> {
    report
        .cycle
        .iter()
        .map(|e| match e {
            lockwatch::detector::CycleEdge::Order { from, to, .. } => (*from, *to),
            other => panic!("not an order edge: {other:?}"),
        })
        .collect()
}

fn id_of(report: &Report, name: &str) -> u64 {
    report
        .resources
        .iter()
        .find(|r| r.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no `{name}` in {report:#?}"))
        .id
}

#[test]
fn ab_then_ba_on_threads_that_never_overlap_is_reported_once() {
    install_collector();
    let a = Arc::new(Mutex::named("ab/a", 0));
    let b = Arc::new(Mutex::named("ab/b", 0));
    for round in 0..20 {
        let (a1, b1) = (a.clone(), b.clone());
        spawn_named("forward", move || {
            let _a = a1.lock();
            let _b = b1.lock();
        });
        let (a2, b2) = (a.clone(), b.clone());
        spawn_named("backward", move || {
            let _b = b2.lock();
            let _a = a2.lock();
        });
        let found = inversions("ab/");
        assert_eq!(found.len(), 1, "round {round}: {found:#?}");
    }
    let report = &inversions("ab/")[0];
    let (ia, ib) = (id_of(report, "ab/a"), id_of(report, "ab/b"));
    let edges = order_edges(report);
    assert_eq!(edges.len(), 2);
    assert!(
        edges.contains(&(ia, ib)) && edges.contains(&(ib, ia)),
        "{edges:?}"
    );
    let threads: Vec<_> = report
        .threads
        .iter()
        .filter_map(|t| t.name.clone())
        .collect();
    assert!(threads.contains(&"forward".to_string()), "{threads:?}");
    assert!(threads.contains(&"backward".to_string()), "{threads:?}");
    for edge in &report.cycle {
        if let lockwatch::detector::CycleEdge::Order {
            location,
            from_location,
            ..
        } = edge
        {
            assert_eq!(location.file, "tests/lock_order.rs");
            assert!(from_location.is_some());
        }
    }
    assert!(report
        .help
        .iter()
        .any(|h| h.contains("ab/a") && h.contains("ab/b")));
    let text = report.to_string();
    assert!(text.contains("possible interleaving"), "{text}");
}

/// The edge of a thread that has ended since: the report shows it as exited, not running.
/// (A std thread: its join returns only once its thread-local destructors, which take it out
/// of the runtime's registry, have run.)
#[test]
fn a_thread_that_has_ended_is_shown_as_exited() {
    install_collector();
    let a = Arc::new(Mutex::named("ended/a", ()));
    let b = Arc::new(Mutex::named("ended/b", ()));
    {
        let (a, b) = (a.clone(), b.clone());
        std::thread::Builder::new()
            .name("ended".into())
            .spawn(move || {
                let _a = a.lock();
                let _b = b.lock();
            })
            .unwrap()
            .join()
            .unwrap();
    }
    {
        let _b = b.lock();
        let _a = a.lock();
    }
    let found = inversions("ended/");
    assert_eq!(found.len(), 1, "{found:#?}");
    let state_of = |name: &str| {
        found[0]
            .threads
            .iter()
            .find(|t| t.name.as_deref() == Some(name))
            .map(|t| t.state)
    };
    use lockwatch::detector::ThreadState;
    assert_eq!(state_of("ended"), Some(ThreadState::Exited));
    assert_eq!(
        state_of("a_thread_that_has_ended_is_shown_as_exited"),
        Some(ThreadState::Running)
    );
}

#[test]
fn three_cycle_across_mutex_rwlock_and_lock_built_by_one_thread_is_reported() {
    install_collector();
    let m = Mutex::named("tri/mutex", ());
    let r = RwLock::named("tri/rwlock", ());
    let l = Lock::named("tri/lock");
    {
        let _m = m.lock();
        let _r = r.write();
    }
    {
        let _r = r.read();
        let _l = l.lock();
    }
    assert!(inversions("tri/").is_empty());
    {
        let _l = l.lock();
        let _m = m.lock();
    }
    let found = inversions("tri/");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(order_edges(&found[0]).len(), 3);
    // Each lock appears among the thread's holds the way it was held when the next was taken:
    // the RwLock by a read (its edge to the Lock), not as a plain `lock`.
    let report = &found[0];
    let hold_op = |name: &str| {
        let id = id_of(report, name);
        report.threads[0]
            .holds
            .iter()
            .find(|h| h.resource == id)
            .map(|h| h.op)
    };
    assert_eq!(hold_op("tri/mutex"), Some(lockwatch::detector::Op::Lock));
    assert_eq!(hold_op("tri/rwlock"), Some(lockwatch::detector::Op::Read));
    assert_eq!(hold_op("tri/lock"), Some(lockwatch::detector::Op::Acquire));
}

#[test]
fn try_lock_paths_are_not_reported() {
    install_collector();
    let a = Mutex::named("try/a", ());
    let b = Mutex::named("try/b", ());
    for _ in 0..100 {
        {
            let _a = a.lock();
            let _b = b.try_lock();
        }
        {
            let _b = b.lock();
            let _a = a.try_lock();
            let _a2 = a.try_lock_for(Duration::from_millis(1));
        }
    }
    assert!(inversions("try/").is_empty());
}

#[test]
fn locks_recreated_at_the_same_line_in_alternating_orders_are_not_reported() {
    install_collector();
    for i in 0..1_000 {
        let first = Mutex::named("recreated/first", ());
        let second = Mutex::named("recreated/second", ());
        if i % 2 == 0 {
            let _f = first.lock();
            let _s = second.lock();
        } else {
            let _s = second.lock();
            let _f = first.lock();
        }
    }
    assert!(inversions("recreated/").is_empty());
}

#[test]
fn consistent_order_with_mixed_reads_and_writes_is_not_reported() {
    install_collector();
    let outer = Arc::new(Mutex::named("consistent/outer", 0u64));
    let table = Arc::new(RwLock::named("consistent/table", 0u64));
    let inner = Arc::new(Mutex::named("consistent/inner", 0u64));
    let start = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (outer, table, inner, start) =
                (outer.clone(), table.clone(), inner.clone(), start.clone());
            lockwatch::thread::spawn(move || {
                start.wait();
                for i in 0..20_000u64 {
                    let _o = outer.lock();
                    if (i + t) % 3 == 0 {
                        *table.write() += 1;
                    } else {
                        let _r = table.read();
                        *inner.lock() += 1;
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join_timeout(Duration::from_secs(60))
            .ok()
            .unwrap()
            .unwrap();
    }
    assert!(inversions("consistent/").is_empty());
}

#[test]
fn a_cycle_whose_every_edge_was_taken_under_one_gate_lock_is_not_reported() {
    install_collector();
    let gate = Arc::new(Mutex::named("gated/gate", ()));
    let a = Arc::new(Mutex::named("gated/a", ()));
    let b = Arc::new(Mutex::named("gated/b", ()));
    let (g1, a1, b1) = (gate.clone(), a.clone(), b.clone());
    spawn_named("gated-forward", move || {
        let _g = g1.lock();
        let _a = a1.lock();
        let _b = b1.lock();
    });
    let (g2, a2, b2) = (gate.clone(), a.clone(), b.clone());
    spawn_named("gated-backward", move || {
        let _g = g2.lock();
        let _b = b2.lock();
        let _a = a2.lock();
    });
    assert!(
        inversions("gated/").is_empty(),
        "{:#?}",
        inversions("gated/")
    );
    // The same inversion without the gate is reported.
    spawn_named("ungated", move || {
        let _b = b.lock();
        let _a = a.lock();
    });
    assert_eq!(inversions("gated/").len(), 1);
}

#[test]
fn reentrant_reacquire_creates_no_edge() {
    install_collector();
    let r = RLock::named("reentry/rlock");
    let m = Mutex::named("reentry/mutex", ());
    let _outer = r.lock();
    let _m = m.lock();
    let _inner = r.lock(); // re-entry while holding `m`: no edge m -> r
    assert!(inversions("reentry/").is_empty());
}

#[test]
fn dropped_locks_leave_the_order_graph() {
    install_collector();
    let outer = Mutex::named("cleanup/outer", ());
    let (nodes_before, edges_before) = lockwatch::introspect::order_graph_size();
    let (_, known_before) = lockwatch::introspect::known_edges_size();
    for _ in 0..100_000 {
        let inner = Mutex::new(());
        let _o = outer.lock();
        let _i = inner.lock();
    }
    let (nodes_after, edges_after) = lockwatch::introspect::order_graph_size();
    let (_, known_after) = lockwatch::introspect::known_edges_size();
    assert!(
        known_after <= known_before + 50,
        "known edges grew from {known_before} to {known_after}"
    );
    // Other tests may add nodes concurrently: the growth must be far below one per lock.
    assert!(
        nodes_after <= nodes_before + 50 && edges_after <= edges_before + 50,
        "before ({nodes_before}, {edges_before}) after ({nodes_after}, {edges_after})"
    );
}

#[test]
fn example_warns_and_finishes_under_warn() {
    let run = run_example(
        "lock_order_inversion",
        &[("LOCKWATCH_ON_DEADLOCK", "report")],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("done"));
    let report = run.only_report("lock_order_inversion");
    assert_eq!(report["schema"], "lockwatch.report/v1");
    let cycle = report["cycle"].as_array().unwrap();
    assert_eq!(cycle.len(), 2);
    let audit = site("lock_order_inversion", "audit takes journal", ".lock(");
    let audit_from = site("lock_order_inversion", "audit takes ledger", ".lock(");
    let edge = cycle
        .iter()
        .find(|e| e["location"]["line"] == audit.0)
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_location(&edge["location"], "lock_order_inversion", audit);
    assert_location(&edge["from_location"], "lock_order_inversion", audit_from);
    let auditor = thread(report, "auditor");
    assert_eq!(edge["thread"], auditor["id"]);
    assert!(
        run.stderr.contains("possible interleaving"),
        "{}",
        run.stderr
    );
}

#[test]
fn lock_order_error_is_handled_like_a_deadlock() {
    let run = run_example(
        "lock_order_inversion",
        &[("LOCKWATCH_LOCK_ORDER", "error")],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, Some(86), "{}", run.stderr);
    run.only_report("lock_order_inversion");
    // It stops the program, so it reads as an error, not a warning.
    assert!(
        run.stderr.contains("error[lock_order_inversion]: "),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("warning[lock_order_inversion]"),
        "{}",
        run.stderr
    );
}

#[test]
fn lock_order_off_reports_nothing() {
    let run = run_example(
        "lock_order_inversion",
        &[("LOCKWATCH_LOCK_ORDER", "off")],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert!(run.reports.is_empty(), "{:?}", run.reports);
}

#[test]
fn order_graph_is_written_at_exit_as_json_and_dot() {
    let dir = std::env::temp_dir().join(format!("lockwatch-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["hierarchy.json", "hierarchy.dot"] {
        let path = dir.join(file);
        let _ = std::fs::remove_file(&path);
        let run = run_example(
            "lock_order_inversion",
            &[("LOCKWATCH_ORDER_GRAPH", path.to_str().unwrap())],
            Duration::from_secs(20),
        );
        assert_eq!(run.status, Some(0), "{}", run.stderr);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("ledger") && text.contains("journal"),
            "{text}"
        );
        assert!(text.contains("examples/lock_order_inversion.rs"), "{text}");
        if file.ends_with(".dot") {
            assert!(text.starts_with("digraph"), "{text}");
        } else {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["nodes"].as_array().unwrap().len(), 2);
            assert_eq!(json["edges"].as_array().unwrap().len(), 2);
        }
    }
}

#[test]
fn backtrace_full_adds_where_each_edge_was_taken() {
    let run = run_example(
        "lock_order_inversion",
        &[("LOCKWATCH_BACKTRACE", "full")],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let report = run.only_report("lock_order_inversion");
    for edge in report["cycle"].as_array().unwrap() {
        let frames = edge["backtrace"]
            .as_array()
            .unwrap_or_else(|| panic!("no backtrace on {edge:#}"));
        assert!(
            frames.iter().any(|f| {
                let function = f["function"].as_str().unwrap();
                function.ends_with("audit") || function.ends_with("compact")
            }),
            "{edge:#}"
        );
    }
}

/// A Lock released by a thread other than its acquirer, then re-acquired by a third thread and
/// released by the first: the hold must move with the lock, or a stale entry makes a false
/// ordering edge.
#[test]
fn lock_released_on_behalf_of_others_leaves_no_stale_ordering() {
    install_collector();
    let signal = Arc::new(Lock::named("handoff/signal"));
    let other = Arc::new(Mutex::named("handoff/other", ()));
    signal.acquire(); // acquired by the test thread
    let s = signal.clone();
    spawn_named("releaser", move || s.release().unwrap());
    let (s, o) = (signal.clone(), other.clone());
    let (holding_tx, holding_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let third = lockwatch::thread::Builder::new()
        .name("third".into())
        .spawn(move || {
            s.acquire();
            holding_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            // `signal` was released by the test thread meanwhile: not held any more.
            let _o = o.lock();
        })
        .unwrap();
    holding_rx.recv().unwrap();
    signal.release().unwrap(); // the test thread releases the third thread's hold
    go_tx.send(()).unwrap();
    third.join().unwrap();
    let (s, o) = (signal.clone(), other.clone());
    spawn_named("reverse", move || {
        let _o = o.lock();
        s.acquire();
        s.release().unwrap();
    });
    assert!(
        inversions("handoff/").is_empty(),
        "{:#?}",
        inversions("handoff/")
    );
}

/// `M`, then `A`, then a wait on `M`'s condvar: `M` is re-taken while `A` is held, the reverse
/// of the first nesting.
#[test]
fn condvar_reacquire_under_another_lock_is_an_ordering() {
    install_collector();
    let m = Mutex::named("cvorder/m", ());
    let a = Mutex::named("cvorder/a", ());
    let cv = lockwatch::Condvar::new();
    let mut g = m.lock();
    let _a = a.lock(); // edge m -> a
    let _ = cv.wait_for(&mut g, Duration::from_millis(1)); // re-takes m holding a: a -> m
    let found = inversions("cvorder/");
    assert_eq!(found.len(), 1, "{found:#?}");
}
