//! Golden tests of the renderers: each case builds a report in code with fixed values, renders
//! it, and compares with `tests/golden/<case>.<ext>`.
//!
//! Seven fixtures are rendered in every format (`txt`, `json`, `sarif`, `github`, `dot`,
//! `svg`): a 2-thread deadlock, an 8-thread one, a self-deadlock, a stall, a lock-order
//! inversion, a pool of tasks and a hang dump. A few more shapes are rendered as text only.
//! Sources are read from `tests/fixtures/` (never from the real examples, which may change).
//! `LOCKWATCH_BLESS=1 cargo test -p lockwatch-detector --test render_golden` rewrites the
//! golden files; `every_golden_file_has_a_case` fails on a golden file nothing renders.
//!
//! `write_renderings` (ignored) writes every fixture in every format, and all of them together
//! in each format, into `$LOCKWATCH_RENDER_DIR`: `.ci/consumers.sh` hands those files to the
//! real consumers (sarif-multitool, a JSON-schema validator, Graphviz, rsvg-convert).

use std::fs;
use std::path::{Path, PathBuf};

use lockwatch_detector::render::{render, Format, RenderOptions, Sources};
use lockwatch_detector::{
    analyze, build_report, long_wait_report, sources, CycleEdge, Frame, Hold, HoldSnap, Location,
    LockInfo, Op, OrderEdge, OrderGraph, Releasers, Report, ReportKind, ResourceKind,
    ResourceReport, ResourceSnap, Snapshot, TextRenderer, ThreadReport, ThreadSnap, ThreadState,
    WaitSnap, WaitingFor, SCHEMA,
};

/// The fixtures every renderer is checked on.
const FIXTURES: &[&str] = &[
    "deadlock_abba",
    "deadlock_eight_threads",
    "self_deadlock_lock",
    "stall_event",
    "inversion_abba",
    "pool_tasks",
    "hang",
];

/// Shapes checked in text only.
const TEXT_CASES: &[&str] = &[
    "deadlock_abba_color",
    "deadlock_abba_no_source",
    "leaked_guard",
    "recursive_read",
    "inversion_three_threads",
    "long_wait",
];

/// Each format and the extension of its golden files.
const FORMATS: [(Format, &str); 6] = [
    (Format::Text, "txt"),
    (Format::Json, "json"),
    (Format::Sarif, "sarif"),
    (Format::Github, "github"),
    (Format::Dot, "dot"),
    (Format::Svg, "svg"),
];

fn fixture(name: &str) -> Report {
    match name {
        "deadlock_abba" => abba_report(),
        "deadlock_eight_threads" => eight_philosophers_report(),
        "self_deadlock_lock" => self_deadlock_lock_report(),
        "stall_event" => stall_event_report(),
        "inversion_abba" => inversion_abba_report(),
        "pool_tasks" => pool_report(),
        "hang" => hang_report(),
        _ => panic!("no fixture `{name}`"),
    }
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    manifest().join("tests/fixtures")
}

fn renderer() -> TextRenderer {
    TextRenderer::plain().with_source_root(fixtures())
}

/// The options a fixture is rendered with: its sources from `tests/fixtures/`.
fn options(reports: &[Report]) -> RenderOptions {
    RenderOptions {
        color: false,
        sources: sources::load(reports, Some(&fixtures())),
    }
}

fn bless() -> bool {
    std::env::var("LOCKWATCH_BLESS").is_ok_and(|v| v == "1")
}

/// Compares `actual` with the golden file `name` (`case.ext`); `Err` describes a difference.
fn compare(name: &str, actual: &str) -> Result<(), String> {
    let path = manifest().join("tests/golden").join(name);
    if bless() {
        fs::write(&path, actual).expect("write golden file");
        return Ok(());
    }
    let expected = fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {}: {e}; run with LOCKWATCH_BLESS=1 to create it",
            path.display()
        )
    })?;
    if expected != actual {
        return Err(format!(
            "{name}: rendering differs from {} (LOCKWATCH_BLESS=1 rewrites it)\n\
             --- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ));
    }
    Ok(())
}

fn check(case: &str, actual: &str) {
    assert!(
        TEXT_CASES.contains(&case) || FIXTURES.contains(&case),
        "add `{case}` to TEXT_CASES"
    );
    if let Err(e) = compare(&format!("{case}.txt"), actual) {
        panic!("{e}");
    }
}

/// Every fixture in `format` against its golden file; all differences are listed at once.
fn check_format(format: Format) {
    let ext = FORMATS
        .iter()
        .find(|(f, _)| *f == format)
        .map(|(_, e)| *e)
        .expect("a format of FORMATS");
    let failures: Vec<String> = FIXTURES
        .iter()
        .filter_map(|&name| {
            let report = fixture(name);
            let reports = std::slice::from_ref(&report);
            let actual = render(reports, format, &options(reports));
            compare(&format!("{name}.{ext}"), &actual).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn text_goldens() {
    check_format(Format::Text);
}

#[test]
fn json_goldens() {
    check_format(Format::Json);
}

#[test]
fn sarif_goldens() {
    check_format(Format::Sarif);
}

#[test]
fn github_goldens() {
    check_format(Format::Github);
}

#[test]
fn dot_goldens() {
    check_format(Format::Dot);
}

#[test]
fn svg_goldens() {
    check_format(Format::Svg);
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

fn self_deadlock_lock_report() -> Report {
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
    only_report(&s)
}

fn leaked_guard_report() -> Report {
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
    only_report(&s)
}

#[test]
fn leaked_guard() {
    check("leaked_guard", &renderer().render(&leaked_guard_report()));
}

fn stall_event_report() -> Report {
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
    only_report(&s)
}

fn recursive_read_report() -> Report {
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
    only_report(&s)
}

#[test]
fn recursive_read() {
    check(
        "recursive_read",
        &renderer().render(&recursive_read_report()),
    );
}

fn lock_info(id: u64, name: Option<&str>, file: &str, line: u32) -> LockInfo {
    LockInfo {
        id,
        kind: ResourceKind::Mutex,
        name: name.map(str::to_owned),
        created_at: loc(file, line, 13),
    }
}

fn inversion_abba_report() -> Report {
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
    g.inversion_report(&found[0], 4242, 1_764_103_000_123)
}

#[test]
fn inversion_as_error_is_the_same_text_headlined_as_an_error() {
    // Handled like a deadlock (`LOCKWATCH_LOCK_ORDER=error`).
    let report = inversion_abba_report();
    let as_error = renderer().as_error().render(&report);
    let warning = renderer().render(&report);
    assert!(
        warning.starts_with("warning[lock_order_inversion]: "),
        "{warning}"
    );
    assert!(
        as_error.starts_with("error[lock_order_inversion]: "),
        "{as_error}"
    );
    assert_eq!(
        as_error.lines().skip(1).collect::<Vec<_>>(),
        warning.lines().skip(1).collect::<Vec<_>>()
    );
}

fn inversion_three_threads_report() -> Report {
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
    g.inversion_report(&found[0], 4242, 1_764_103_000_123)
}

#[test]
fn inversion_three_threads() {
    // Sources are not available here: the locations are printed without snippets.
    check(
        "inversion_three_threads",
        &renderer().render(&inversion_three_threads_report()),
    );
}

fn long_wait_report_fixture() -> Report {
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
    long_wait_report(&s, 2, 4242, 1_764_103_000_123)
}

#[test]
fn long_wait() {
    check("long_wait", &renderer().render(&long_wait_report_fixture()));
}

const PHILOSOPHERS: &str = "examples/philosophers.rs";

/// Eight philosophers, each holding the fork on its left and waiting for the one on its right.
fn eight_philosophers_report() -> Report {
    let threads = (0..8u64)
        .map(|i| {
            let mut t = thread(10 + i, &format!("philosopher-{i}"), ThreadState::Blocked);
            t.wait = wait(
                100 + (i + 1) % 8,
                Op::Lock,
                loc(PHILOSOPHERS, 23, 47),
                20 + i,
            );
            t.holds = vec![hold(100 + i, Op::Lock, loc(PHILOSOPHERS, 21, 26))];
            t.backtrace = vec![frame("philosophers::dine", PHILOSOPHERS, 23)];
            t
        })
        .collect();
    let resources = (0..8u64)
        .map(|i| {
            let mut r = resource(
                100 + i,
                ResourceKind::Mutex,
                &format!("fork {i}"),
                PHILOSOPHERS,
                7,
                Releasers::Holders,
            );
            r.created_at = loc(PHILOSOPHERS, 7, 33);
            r
        })
        .collect();
    only_report(&Snapshot {
        threads,
        resources,
        unknown_threads_can_run: false,
    })
}

const POOL: &str = "examples/pool.rs";

/// Two pool workers, each running a task that waits for the result of a task still queued: no
/// worker is left to run them. Built by hand from the report model, as the runtime's pool
/// reports it (a queued task's releasers are the pool's workers).
fn pool_report() -> Report {
    let worker = |id: u64, name: &str, task: u64, line: u32, column: u32| ThreadReport {
        id,
        name: Some(name.to_owned()),
        state: ThreadState::Blocked,
        waiting_for: Some(WaitingFor {
            resource: task,
            op: Op::Result,
            location: loc(POOL, line, column),
            since_ms: 40,
        }),
        holds: Vec::new(),
        backtrace: vec![
            frame("pool::main::{{closure}}", POOL, line),
            frame("lockwatch::pool::worker_loop", "src/pool.rs", 311),
            frame(
                "std::sys::backtrace::__rust_begin_short_backtrace",
                "library/std/src/sys/backtrace.rs",
                158,
            ),
        ],
    };
    let task = |id: u64, line: u32| ResourceReport {
        id,
        kind: ResourceKind::Task,
        name: None,
        created_at: loc(POOL, line, 22),
    };
    Report {
        schema: SCHEMA.to_owned(),
        kind: ReportKind::Deadlock,
        summary: "2 pool workers are deadlocked: each waits for a task that only a free worker \
                  could run"
            .to_owned(),
        pid: 4242,
        detected_at_ms: 1_764_103_000_123,
        test: None,
        threads: vec![
            worker(5, "pool-0", 21, 10, 15),
            worker(6, "pool-1", 22, 13, 61),
        ],
        resources: vec![task(21, 9), task(22, 13)],
        cycle: vec![
            CycleEdge::Wait {
                thread: 5,
                waits_for: 21,
                held_by: 6,
            },
            CycleEdge::Wait {
                thread: 6,
                waits_for: 22,
                held_by: 5,
            },
        ],
        help: vec![
            "do not wait for a task's result from inside a task of the same pool (every worker \
             can end up waiting), or give the pool more workers"
                .to_owned(),
        ],
    }
}

const SPIN: &str = "examples/spin.rs";

/// What `lockwatch run --timeout` renders for a program that spins forever holding a lock: the
/// main thread joins the spinner, which runs on with `state` held.
fn hang_report() -> Report {
    Report {
        schema: SCHEMA.to_owned(),
        kind: ReportKind::Hang,
        summary: "`cargo run --example spin` did not finish within 30 s".to_owned(),
        pid: 4242,
        detected_at_ms: 1_764_103_000_123,
        test: None,
        threads: vec![
            ThreadReport {
                id: 1,
                name: Some("main".to_owned()),
                state: ThreadState::Blocked,
                waiting_for: Some(WaitingFor {
                    resource: 3,
                    op: Op::Join,
                    location: loc(SPIN, 14, 22),
                    since_ms: 30_000,
                }),
                holds: Vec::new(),
                backtrace: vec![frame("spin::main", SPIN, 14)],
            },
            ThreadReport {
                id: 2,
                name: Some("spinner".to_owned()),
                state: ThreadState::Running,
                waiting_for: None,
                holds: vec![Hold {
                    resource: 4,
                    op: Op::Lock,
                    count: 1,
                    location: loc(SPIN, 9, 27),
                    backtrace: Vec::new(),
                }],
                backtrace: vec![
                    frame("spin::main::{{closure}}", SPIN, 11),
                    Frame {
                        function: "core::num::<impl u64>::wrapping_add".to_owned(),
                        file: None,
                        line: None,
                        column: None,
                    },
                ],
            },
        ],
        resources: vec![
            ResourceReport {
                id: 3,
                kind: ResourceKind::Thread,
                name: Some("spinner".to_owned()),
                created_at: loc(SPIN, 8, 66),
            },
            ResourceReport {
                id: 4,
                kind: ResourceKind::Mutex,
                name: Some("state".to_owned()),
                created_at: loc(SPIN, 6, 26),
            },
        ],
        cycle: Vec::new(),
        help: Vec::new(),
    }
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
fn text_renderer_is_render_with_loaded_sources() {
    for name in FIXTURES {
        let r = fixture(name);
        let reports = std::slice::from_ref(&r);
        assert_eq!(
            renderer().render(&r),
            render(reports, Format::Text, &options(reports)),
            "{name}"
        );
    }
}

#[test]
fn rendering_is_deterministic() {
    let r = abba_report();
    for (format, _) in FORMATS {
        let reports = std::slice::from_ref(&r);
        assert_eq!(
            render(reports, format, &options(reports)),
            render(reports, format, &options(reports)),
            "{format}"
        );
    }
}

#[test]
fn renderers_read_only_the_sources_handed_in() {
    // The same report with no sources: the text falls back to `file:line:col` notes, SARIF
    // has no snippets, GitHub no end columns; nothing is read from the fixtures directory.
    let r = abba_report();
    let bare = RenderOptions::default();
    let text = render(std::slice::from_ref(&r), Format::Text, &bare);
    assert!(text.contains("= note: examples/abba.rs:21:23: thread `worker-a` blocks here"));
    assert!(!text.contains("b.lock()"), "{text}");
    let sarif = render(std::slice::from_ref(&r), Format::Sarif, &bare);
    assert!(!sarif.contains("snippet"), "{sarif}");
    let github = render(std::slice::from_ref(&r), Format::Github, &bare);
    assert!(!github.contains("endColumn"), "{github}");
    let mut one = Sources::new();
    one.insert(ABBA, fs::read_to_string(fixtures().join(ABBA)).unwrap());
    let with = RenderOptions {
        color: false,
        sources: one,
    };
    let text = render(std::slice::from_ref(&r), Format::Text, &with);
    assert!(
        text.contains("21 |     let mut payee = b.lock();"),
        "{text}"
    );
}

#[test]
fn json_lines_parse_back_to_the_reports() {
    let reports: Vec<Report> = FIXTURES.iter().map(|n| fixture(n)).collect();
    let out = render(&reports, Format::Json, &RenderOptions::default());
    let back: Vec<Report> = out
        .lines()
        .map(|l| Report::from_json(l).expect("a report per line"))
        .collect();
    assert_eq!(back, reports);
}

fn sarif_of(reports: &[Report]) -> serde_json::Value {
    serde_json::from_str(&render(reports, Format::Sarif, &options(reports))).expect("JSON")
}

#[test]
fn sarif_has_one_result_per_report_and_a_thread_flow_per_thread() {
    let reports: Vec<Report> = FIXTURES.iter().map(|n| fixture(n)).collect();
    let log = sarif_of(&reports);
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    assert_eq!(run["columnKind"], "unicodeCodePoints");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), reports.len());
    for (r, res) in reports.iter().zip(results) {
        assert_eq!(res["ruleId"], r.kind.as_str());
        let index = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], r.kind.as_str());
        assert!(rules[index]["help"]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()));
        if r.kind != ReportKind::LockOrderInversion {
            let flows = res["codeFlows"][0]["threadFlows"].as_array().unwrap();
            let with_sites = r
                .threads
                .iter()
                .filter(|t| t.waiting_for.is_some() || !t.holds.is_empty())
                .count();
            assert_eq!(flows.len(), with_sites, "{}", r.summary);
        }
    }
    let eight = &results[1]["codeFlows"][0]["threadFlows"];
    assert_eq!(eight.as_array().unwrap().len(), 8);
}

#[test]
fn sarif_fingerprints_ignore_pid_time_and_ids() {
    let a = abba_report();
    let mut b = abba_report();
    b.pid = 1;
    b.detected_at_ms = 7;
    // Another run numbers threads and resources differently.
    for t in &mut b.threads {
        t.id += 100;
    }
    for e in &mut b.cycle {
        if let CycleEdge::Wait {
            thread, held_by, ..
        } = e
        {
            *thread += 100;
            *held_by += 100;
        }
    }
    let print = |r: &Report| {
        sarif_of(std::slice::from_ref(r))["runs"][0]["results"][0]["partialFingerprints"].clone()
    };
    assert_eq!(print(&a), print(&b));
    assert_ne!(print(&a), print(&self_deadlock_lock_report()));
}

#[test]
fn github_escapes_names_in_messages_and_properties() {
    let mut r = abba_report();
    r.threads[0].name = Some("worker,a: 100%\nx".to_owned());
    r.threads[0].waiting_for.as_mut().unwrap().location.file = "dir,x/a:b.rs".to_owned();
    let out = render(
        std::slice::from_ref(&r),
        Format::Github,
        &RenderOptions::default(),
    );
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("::error file=dir%2Cx/a%3Ab.rs,line=21,col=23,title="),
        "{first}"
    );
    assert!(
        first.contains("thread `worker,a: 100%25%0Ax` blocks here"),
        "{first}"
    );
    assert_eq!(
        out.lines().count(),
        2,
        "one annotation per blocked site: {out}"
    );
}

#[test]
fn dot_and_svg_escape_labels() {
    let mut r = abba_report();
    r.resources[0].name = Some("a \"<b>\" & \\N".to_owned());
    let reports = std::slice::from_ref(&r);
    let dot = render(reports, Format::Dot, &RenderOptions::default());
    assert!(dot.contains(r#"a \"<b>\" & \\N\nMutex"#), "{dot}");
    let svg = render(reports, Format::Svg, &RenderOptions::default());
    assert!(svg.contains("a &quot;&lt;b&gt;&quot; &amp; \\N"), "{svg}");
    assert!(!svg.contains("<b>"), "{svg}");
}

/// Writes every fixture, and all of them together, in every format into
/// `$LOCKWATCH_RENDER_DIR` for `.ci/consumers.sh`.
#[test]
#[ignore = "writes files for .ci/consumers.sh"]
fn write_renderings() {
    let dir =
        PathBuf::from(std::env::var_os("LOCKWATCH_RENDER_DIR").expect("set LOCKWATCH_RENDER_DIR"));
    fs::create_dir_all(&dir).expect("create LOCKWATCH_RENDER_DIR");
    let all: Vec<Report> = FIXTURES.iter().map(|n| fixture(n)).collect();
    for (format, ext) in FORMATS {
        for (name, r) in FIXTURES.iter().zip(&all) {
            let reports = std::slice::from_ref(r);
            let path = dir.join(format!("{name}.{ext}"));
            fs::write(&path, render(reports, format, &options(reports))).expect("write");
        }
        let path = dir.join(format!("all.{ext}"));
        fs::write(&path, render(&all, format, &options(&all))).expect("write");
    }
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
        let (case, ext) = name.split_once('.').unwrap_or((&name, ""));
        let rendered = (FIXTURES.contains(&case) && FORMATS.iter().any(|(_, e)| *e == ext))
            || (TEXT_CASES.contains(&case) && ext == "txt");
        if !rendered {
            orphans.push(name);
        }
    }
    assert!(
        orphans.is_empty(),
        "golden files without a case: {orphans:?}"
    );
}
