//! Golden tests of the text renderer: each case builds a report in code with fixed values,
//! renders it, and compares with `tests/golden/<case>.txt`.
//!
//! Sources are read from `tests/fixtures/` (never from the real examples, which may change);
//! `LOCKWATCH_BLESS=1 cargo test -p lockwatch-detector --test render_golden` rewrites the
//! golden files.

use std::fs;
use std::path::{Path, PathBuf};

use lockwatch_detector::{
    analyze, build_report, long_wait_report, CycleEdge, Frame, Hold, HoldSnap, Location, LockInfo,
    Op, OrderEdge, OrderGraph, Releasers, Report, ReportKind, ResourceKind, ResourceReport,
    ResourceSnap, Snapshot, TextRenderer, ThreadReport, ThreadSnap, ThreadState, WaitSnap,
    WaitingFor, SCHEMA,
};

/// Every case below, by golden file name. A golden file without a case fails
/// `every_golden_file_has_a_case`.
const CASES: &[&str] = &[
    "deadlock_abba",
    "deadlock_abba_color",
    "deadlock_abba_no_source",
    "self_deadlock_lock",
    "leaked_guard",
    "stall_event",
    "recursive_read",
    "inversion_abba",
    "inversion_three_threads",
    "long_wait",
    "hang",
];

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    manifest().join("tests/fixtures")
}

fn renderer() -> TextRenderer {
    TextRenderer::plain().with_source_root(fixtures())
}

fn check(case: &str, actual: &str) {
    assert!(CASES.contains(&case), "add `{case}` to CASES");
    let path = manifest().join("tests/golden").join(format!("{case}.txt"));
    if std::env::var("LOCKWATCH_BLESS").is_ok_and(|v| v == "1") {
        fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run with LOCKWATCH_BLESS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{case}: rendering differs from {} (LOCKWATCH_BLESS=1 rewrites it)\n\
             --- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}

fn loc(file: &str, line: u32, column: u32) -> Location {
    Location::new(file, line, column)
}

fn frame(function: &str, file: &str, line: u32) -> Frame {
    Frame {
        function: function.to_owned(),
        file: Some(file.to_owned()),
        line: Some(line),
        column: Some(23),
    }
}

const ABBA: &str = "examples/abba.rs";

/// The SPEC §5 example, completed with the second thread.
fn abba_report() -> Report {
    let thread = |id: u64, name: &str, waits: u64, holds: u64, line: u32, main: bool| {
        let mut backtrace = vec![frame(
            &format!("abba::{}", name.replace('-', "_")),
            ABBA,
            line + 2,
        )];
        if main {
            backtrace.push(frame("abba::main", ABBA, 14));
        }
        ThreadReport {
            id,
            name: Some(name.to_owned()),
            state: ThreadState::Blocked,
            waiting_for: Some(WaitingFor {
                resource: waits,
                op: Op::Lock,
                location: loc(ABBA, line + 2, 23),
                since_ms: 3,
            }),
            holds: vec![Hold {
                resource: holds,
                op: Op::Lock,
                count: 1,
                location: loc(ABBA, line, 23),
                backtrace: Vec::new(),
            }],
            backtrace,
        }
    };
    Report {
        schema: SCHEMA.to_owned(),
        kind: ReportKind::Deadlock,
        summary: "2 threads are deadlocked on 2 Mutexes".to_owned(),
        pid: 4242,
        detected_at_ms: 1_764_103_000_123,
        test: None,
        threads: vec![
            thread(2, "worker-a", 11, 10, 19, true),
            thread(3, "worker-b", 10, 11, 27, false),
        ],
        resources: vec![
            ResourceReport {
                id: 10,
                kind: ResourceKind::Mutex,
                name: Some("account A".to_owned()),
                created_at: loc(ABBA, 9, 13),
            },
            ResourceReport {
                id: 11,
                kind: ResourceKind::Mutex,
                name: Some("account B".to_owned()),
                created_at: loc(ABBA, 10, 13),
            },
        ],
        cycle: vec![
            CycleEdge::Wait {
                thread: 2,
                waits_for: 11,
                held_by: 3,
            },
            CycleEdge::Wait {
                thread: 3,
                waits_for: 10,
                held_by: 2,
            },
        ],
        help: vec!["acquire `account A` before `account B` on every path".to_owned()],
    }
}

#[test]
fn deadlock_abba() {
    check("deadlock_abba", &renderer().render(&abba_report()));
}

#[test]
fn deadlock_abba_color() {
    let r = TextRenderer::styled().with_source_root(fixtures());
    check("deadlock_abba_color", &r.render(&abba_report()));
}

#[test]
fn deadlock_abba_no_source() {
    let r = TextRenderer::plain().with_source_root(fixtures().join("missing"));
    check("deadlock_abba_no_source", &r.render(&abba_report()));
}

// ---- reports built from snapshots, so the goldens also pin the summary and help text ----

fn resource(
    id: u64,
    kind: ResourceKind,
    name: &str,
    file: &str,
    line: u32,
    rel: Releasers,
) -> ResourceSnap {
    ResourceSnap {
        id,
        kind,
        name: Some(name.to_owned()),
        created_at: loc(file, line, 17),
        releasers: rel,
        available: false,
    }
}

fn thread(id: u64, name: &str, state: ThreadState) -> ThreadSnap {
    ThreadSnap {
        id,
        name: Some(name.to_owned()),
        state,
        wait: None,
        holds: Vec::new(),
        backtrace: Vec::new(),
    }
}

fn wait(resource: u64, op: Op, at: Location, seq: u64) -> Option<WaitSnap> {
    Some(WaitSnap {
        resource,
        op,
        location: at,
        since_ms: 120,
        seq,
    })
}

fn hold(resource: u64, op: Op, at: Location) -> HoldSnap {
    HoldSnap {
        resource,
        op,
        count: 1,
        location: at,
        backtrace: Vec::new(),
    }
}

fn only_report(s: &Snapshot) -> Report {
    let findings = analyze(s);
    assert_eq!(findings.len(), 1, "{findings:?}");
    build_report(s, &findings[0], 4242, 1_764_103_000_123)
}

#[test]
fn self_deadlock_lock() {
    let file = "examples/lock_twice.rs";
    let mut main = thread(1, "main", ThreadState::Blocked);
    main.wait = wait(20, Op::Acquire, loc(file, 11, 9), 2);
    main.holds = vec![hold(20, Op::Acquire, loc(file, 6, 25))];
    main.backtrace = vec![
        frame("lock_twice::reload", file, 11),
        frame("lock_twice::main", file, 7),
    ];
    let s = Snapshot {
        threads: vec![main],
        resources: vec![resource(
            20,
            ResourceKind::Lock,
            "config",
            file,
            5,
            Releasers::HoldersOrAnyone,
        )],
        unknown_threads_can_run: false,
    };
    check("self_deadlock_lock", &renderer().render(&only_report(&s)));
}

#[test]
fn leaked_guard() {
    let file = "examples/leaked_guard.rs";
    let mut main = thread(1, "main", ThreadState::Blocked);
    main.wait = wait(30, Op::Lock, loc(file, 10, 20), 9);
    let mut loader = thread(4, "loader", ThreadState::Exited);
    loader.holds = vec![hold(30, Op::Lock, loc(file, 9, 47))];
    let s = Snapshot {
        threads: vec![main, loader],
        resources: vec![resource(
            30,
            ResourceKind::Mutex,
            "db",
            file,
            6,
            Releasers::Holders,
        )],
        unknown_threads_can_run: false,
    };
    check("leaked_guard", &renderer().render(&only_report(&s)));
}

#[test]
fn stall_event() {
    let file = "examples/event.rs";
    let mut main = thread(1, "main", ThreadState::Blocked);
    main.wait = wait(40, Op::Wait, loc(file, 6, 11), 1);
    let s = Snapshot {
        threads: vec![main],
        resources: vec![resource(
            40,
            ResourceKind::Event,
            "ready",
            file,
            5,
            Releasers::Anyone,
        )],
        unknown_threads_can_run: false,
    };
    check("stall_event", &renderer().render(&only_report(&s)));
}

#[test]
fn recursive_read() {
    let file = "examples/recursive_read.rs";
    let mut main = thread(1, "main", ThreadState::Blocked);
    main.wait = wait(50, Op::Read, loc(file, 10, 23), 12);
    main.holds = vec![hold(50, Op::Read, loc(file, 7, 23))];
    let mut writer = thread(2, "writer", ThreadState::Blocked);
    writer.wait = wait(50, Op::Write, loc(file, 9, 80), 11);
    let s = Snapshot {
        threads: vec![main, writer],
        resources: vec![resource(
            50,
            ResourceKind::RwLock,
            "table",
            file,
            6,
            Releasers::WritersAndQueuedWriters,
        )],
        unknown_threads_can_run: false,
    };
    check("recursive_read", &renderer().render(&only_report(&s)));
}

fn lock_info(id: u64, name: Option<&str>, file: &str, line: u32) -> LockInfo {
    LockInfo {
        id,
        kind: ResourceKind::Mutex,
        name: name.map(str::to_owned),
        created_at: loc(file, line, 13),
    }
}

#[test]
fn inversion_abba() {
    let mut g = OrderGraph::new();
    let a = || lock_info(10, Some("account A"), ABBA, 9);
    let b = || lock_info(11, Some("account B"), ABBA, 10);
    let edge = |thread: u64, name: &str, line: u32| OrderEdge {
        thread,
        thread_name: Some(name.to_owned()),
        location: loc(ABBA, line, 23),
        from_location: loc(ABBA, line - 2, 23),
        from_op: Op::Lock,
        gates: Vec::new(),
        backtrace: vec![frame(
            &format!("abba::{}", name.replace('-', "_")),
            ABBA,
            line,
        )],
    };
    assert!(g.insert_edge(a(), b(), edge(2, "worker-a", 21)).is_empty());
    let found = g.insert_edge(b(), a(), edge(3, "worker-b", 29));
    assert_eq!(found.len(), 1);
    let report = g.inversion_report(&found[0], 4242, 1_764_103_000_123);
    check("inversion_abba", &renderer().render(&report));
    // Handled like a deadlock (`LOCKWATCH_LOCK_ORDER=error`): the same text, headlined as an
    // error.
    let as_error = renderer().as_error().render(&report);
    let warning = renderer().render(&report);
    assert!(
        warning.starts_with("warning: lock order inversion"),
        "{warning}"
    );
    assert!(
        as_error.starts_with("error: lock order inversion"),
        "{as_error}"
    );
    assert_eq!(
        as_error.lines().skip(1).collect::<Vec<_>>(),
        warning.lines().skip(1).collect::<Vec<_>>()
    );
}

#[test]
fn inversion_three_threads() {
    // Sources are not available here: the locations are printed without snippets.
    let file = "src/dining.rs";
    let mut g = OrderGraph::new();
    let fork = |id: u64| {
        let name = (id != 3).then(|| format!("fork {id}"));
        lock_info(id, name.as_deref(), file, 3 + id as u32)
    };
    let edge = |thread: u64, name: Option<&str>, line: u32| OrderEdge {
        thread,
        thread_name: name.map(str::to_owned),
        location: loc(file, line, 27),
        from_location: loc(file, line - 1, 27),
        from_op: Op::Lock,
        gates: Vec::new(),
        backtrace: Vec::new(),
    };
    assert!(g
        .insert_edge(fork(1), fork(2), edge(5, Some("philosopher-0"), 20))
        .is_empty());
    assert!(g
        .insert_edge(fork(2), fork(3), edge(6, Some("philosopher-1"), 20))
        .is_empty());
    let found = g.insert_edge(fork(3), fork(1), edge(7, None, 31));
    assert_eq!(found, vec![vec![(1, 2), (2, 3), (3, 1)]]);
    let report = g.inversion_report(&found[0], 4242, 1_764_103_000_123);
    check("inversion_three_threads", &renderer().render(&report));
}

#[test]
fn long_wait() {
    let mut worker = thread(2, "worker-a", ThreadState::Blocked);
    worker.wait = wait(11, Op::Lock, loc(ABBA, 21, 23), 7);
    worker.wait.as_mut().expect("wait").since_ms = 1200;
    worker.holds = vec![hold(10, Op::Lock, loc(ABBA, 19, 23))];
    let mut holder = thread(3, "worker-b", ThreadState::Running);
    holder.holds = vec![hold(11, Op::Lock, loc(ABBA, 27, 23))];
    let s = Snapshot {
        threads: vec![worker, holder],
        resources: vec![
            resource(
                10,
                ResourceKind::Mutex,
                "account A",
                ABBA,
                9,
                Releasers::Holders,
            ),
            resource(
                11,
                ResourceKind::Mutex,
                "account B",
                ABBA,
                10,
                Releasers::Holders,
            ),
        ],
        unknown_threads_can_run: false,
    };
    let report = long_wait_report(&s, 2, 4242, 1_764_103_000_123);
    check("long_wait", &renderer().render(&report));
}

#[test]
fn hang() {
    let report = Report {
        schema: SCHEMA.to_owned(),
        kind: ReportKind::Hang,
        summary: "`cargo run --example spin` did not finish within 30 s".to_owned(),
        pid: 4242,
        detected_at_ms: 1_764_103_000_123,
        test: None,
        threads: vec![ThreadReport {
            id: 1,
            name: None,
            state: ThreadState::Running,
            waiting_for: None,
            holds: Vec::new(),
            backtrace: vec![Frame {
                function: "spin::main".to_owned(),
                file: None,
                line: None,
                column: None,
            }],
        }],
        resources: Vec::new(),
        cycle: Vec::new(),
        help: Vec::new(),
    };
    check("hang", &renderer().render(&report));
}

#[test]
fn display_is_the_plain_renderer() {
    let r = abba_report();
    let plain = TextRenderer::plain().with_source_root(fixtures().join("missing"));
    // Display reads sources relative to the current directory, where `examples/abba.rs` is
    // not (cargo runs tests in the package directory).
    assert!(!Path::new(ABBA).exists());
    assert_eq!(r.to_string(), plain.render(&r));
}

#[test]
fn rendering_is_deterministic() {
    let r = abba_report();
    assert_eq!(renderer().render(&r), renderer().render(&r));
}

#[test]
fn every_golden_file_has_a_case() {
    let dir = manifest().join("tests/golden");
    let mut orphans = Vec::new();
    for entry in fs::read_dir(&dir).expect("golden directory") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let case = name.strip_suffix(".txt").unwrap_or(&name).to_owned();
        if !CASES.contains(&case.as_str()) {
            orphans.push(name);
        }
    }
    assert!(
        orphans.is_empty(),
        "golden files without a case: {orphans:?}"
    );
}
