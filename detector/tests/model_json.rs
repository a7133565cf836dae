//! The report model against the contract (SPEC §5): the example report round-trips, the two
//! shapes of `cycle` both parse, and foreign documents are rejected with a clear error.

use lockwatch_detector::{
    CycleEdge, Location, Op, ParseError, Report, ReportKind, ResourceKind, ThreadState, SCHEMA,
};
use serde_json::Value;

/// The SPEC §5 example, verbatim.
const SPEC_EXAMPLE: &str = r#"{
  "schema": "lockwatch.report/v1",
  "kind": "deadlock",
  "summary": "2 threads are deadlocked on 2 Mutexes",
  "pid": 4242,
  "detected_at_ms": 1764103000123,
  "threads": [
    {
      "id": 2, "name": "worker-a", "state": "blocked",
      "waiting_for": {"resource": 11, "op": "lock",
                      "location": {"file": "examples/abba.rs", "line": 21, "column": 23},
                      "since_ms": 3},
      "holds": [{"resource": 10, "op": "lock", "count": 1,
                 "location": {"file": "examples/abba.rs", "line": 19, "column": 23}}],
      "backtrace": [{"function": "abba::worker_a", "file": "examples/abba.rs", "line": 21, "column": 23}]
    }
  ],
  "resources": [
    {"id": 10, "kind": "Mutex", "name": "account A",
     "created_at": {"file": "examples/abba.rs", "line": 9, "column": 13}}
  ],
  "cycle": [{"thread": 2, "waits_for": 11, "held_by": 3}, {"thread": 3, "waits_for": 10, "held_by": 2}],
  "help": ["acquire `account A` before `account B` on every path"]
}"#;

#[test]
fn spec_example_parses_into_the_model() {
    let r = Report::from_json(SPEC_EXAMPLE).expect("the SPEC example is a valid report");
    assert_eq!(r.schema, SCHEMA);
    assert_eq!(r.kind(), ReportKind::Deadlock);
    assert_eq!(r.pid, 4242);
    assert_eq!(r.detected_at_ms, 1_764_103_000_123);
    let t = r.thread(2).expect("thread 2");
    assert_eq!(t.name.as_deref(), Some("worker-a"));
    assert_eq!(t.state, ThreadState::Blocked);
    let w = t.waiting_for.as_ref().expect("waiting_for");
    assert_eq!(w.op, Op::Lock);
    assert_eq!(w.location, Location::new("examples/abba.rs", 21, 23));
    assert_eq!(w.since_ms, 3);
    assert_eq!(t.holds[0].count, 1);
    assert!(t.holds[0].backtrace.is_empty());
    assert_eq!(t.backtrace[0].line, Some(21));
    let res = r.resource(10).expect("resource 10");
    assert_eq!(res.kind, ResourceKind::Mutex);
    assert_eq!(res.label(), "account A");
    assert_eq!(
        r.cycle[1],
        CycleEdge::Wait {
            thread: 3,
            waits_for: 10,
            held_by: 2
        }
    );
}

#[test]
fn spec_example_round_trips_to_the_same_json() {
    let r = Report::from_json(SPEC_EXAMPLE).expect("parses");
    let original: Value = serde_json::from_str(SPEC_EXAMPLE).expect("JSON");
    let written: Value = serde_json::from_str(&r.to_json()).expect("JSON");
    assert_eq!(written, original);
    let pretty: Value = serde_json::from_str(&r.to_json_pretty()).expect("JSON");
    assert_eq!(pretty, original);
    assert_eq!(Report::from_json(&r.to_json()).expect("parses"), r);
}

#[test]
fn cycle_parses_both_wait_and_order_edges() {
    let text = SPEC_EXAMPLE.replace(
        r#""cycle": [{"thread": 2, "waits_for": 11, "held_by": 3}, {"thread": 3, "waits_for": 10, "held_by": 2}]"#,
        r#""cycle": [
            {"from": 10, "to": 11, "thread": 2,
             "location": {"file": "examples/abba.rs", "line": 21, "column": 23}},
            {"from": 11, "to": 10, "thread": 3,
             "location": {"file": "examples/abba.rs", "line": 29, "column": 23},
             "from_location": {"file": "examples/abba.rs", "line": 27, "column": 23},
             "thread_name": "worker-b",
             "backtrace": [{"function": "abba::worker_b"}]}
        ]"#,
    );
    let r = Report::from_json(&text).expect("order edges parse");
    assert_eq!(
        r.cycle[0],
        CycleEdge::Order {
            from: 10,
            to: 11,
            thread: 2,
            location: Location::new("examples/abba.rs", 21, 23),
            from_location: None,
            thread_name: None,
            backtrace: Vec::new(),
            pid: None,
        }
    );
    match &r.cycle[1] {
        CycleEdge::Order {
            from_location,
            thread_name,
            backtrace,
            ..
        } => {
            assert_eq!(
                from_location.as_ref(),
                Some(&Location::new("examples/abba.rs", 27, 23))
            );
            assert_eq!(thread_name.as_deref(), Some("worker-b"));
            assert_eq!(backtrace[0].function, "abba::worker_b");
            assert_eq!(backtrace[0].file, None);
        }
        other => panic!("expected an order edge, got {other:?}"),
    }
    // Optional fields are left out when empty, so a minimal edge writes back as it was read.
    let first = serde_json::to_value(&r.cycle[0]).expect("serialises");
    assert_eq!(
        first,
        serde_json::json!({"from": 10, "to": 11, "thread": 2,
            "location": {"file": "examples/abba.rs", "line": 21, "column": 23}})
    );
    let wait = serde_json::to_value(CycleEdge::Wait {
        thread: 1,
        waits_for: 2,
        held_by: 3,
    })
    .expect("serialises");
    assert_eq!(
        wait,
        serde_json::json!({"thread": 1, "waits_for": 2, "held_by": 3})
    );
}

#[test]
fn every_list_of_the_schema_is_required_even_empty() {
    let lists = ["threads", "resources", "cycle", "help"];
    let with = |skip: Option<&str>| {
        let mut fields = vec![
            r#""schema": "lockwatch.report/v1""#.to_owned(),
            r#""kind": "hang", "summary": "s", "pid": 1, "detected_at_ms": 2"#.to_owned(),
        ];
        fields.extend(
            lists
                .iter()
                .filter(|&&l| Some(l) != skip)
                .map(|l| format!("\"{l}\": []")),
        );
        format!("{{{}}}", fields.join(", "))
    };
    let r = Report::from_json(&with(None)).expect("a report with empty lists parses");
    assert_eq!(r.kind, ReportKind::Hang);
    assert!(r.threads.is_empty() && r.resources.is_empty() && r.cycle.is_empty());
    assert!(r.help.is_empty());
    for list in lists {
        let error = Report::from_json(&with(Some(list)))
            .expect_err("a report without one of its lists is malformed")
            .to_string();
        assert!(error.contains(list), "{list}: {error}");
    }
}

#[test]
fn every_kind_state_and_op_uses_its_contract_name() {
    for (kind, name) in [
        (ReportKind::Deadlock, "deadlock"),
        (ReportKind::Stall, "stall"),
        (ReportKind::LockOrderInversion, "lock_order_inversion"),
        (ReportKind::LongWait, "long_wait"),
        (ReportKind::Hang, "hang"),
    ] {
        assert_eq!(serde_json::to_value(kind).expect("kind"), Value::from(name));
        assert_eq!(kind.as_str(), name);
    }
    for (state, name) in [
        (ThreadState::Blocked, "blocked"),
        (ThreadState::TimedWait, "timed_wait"),
        (ThreadState::Running, "running"),
        (ThreadState::Exited, "exited"),
    ] {
        assert_eq!(
            serde_json::to_value(state).expect("state"),
            Value::from(name)
        );
    }
    for op in [
        Op::Lock,
        Op::Read,
        Op::Write,
        Op::Acquire,
        Op::Wait,
        Op::Join,
        Op::Result,
        Op::Barrier,
    ] {
        assert_eq!(
            serde_json::to_value(op).expect("op"),
            Value::from(op.as_str())
        );
    }
    assert_eq!(
        serde_json::to_value(ResourceKind::BoundedSemaphore).expect("kind"),
        Value::from("BoundedSemaphore")
    );
}

#[test]
fn foreign_schema_is_rejected_with_its_name() {
    let text = SPEC_EXAMPLE.replace("lockwatch.report/v1", "sarif/2.1.0");
    let err = Report::from_json(&text).expect_err("foreign schema");
    assert!(matches!(err, ParseError::ForeignSchema(Some(ref s)) if s == "sarif/2.1.0"));
    assert_eq!(
        err.to_string(),
        "unsupported schema `sarif/2.1.0` (expected `lockwatch.report/v1`)"
    );
}

#[test]
fn a_document_without_schema_is_not_a_report() {
    let err = Report::from_json(r#"{"kind": "deadlock"}"#).expect_err("no schema");
    assert!(matches!(err, ParseError::ForeignSchema(None)));
    assert!(err.to_string().contains("no `schema` field"));
}

#[test]
fn malformed_json_and_wrong_shapes_are_json_errors() {
    let err = Report::from_json("{not json").expect_err("malformed");
    assert!(matches!(err, ParseError::Json(_)));
    assert!(err.to_string().starts_with("not a lockwatch report: "));
    let err = Report::from_json(r#"{"schema": "lockwatch.report/v1", "kind": "meltdown"}"#)
        .expect_err("unknown kind");
    assert!(matches!(err, ParseError::Json(_)));
}

#[test]
fn labels_name_unnamed_resources_and_threads_by_id() {
    use lockwatch_detector::{resource_label, resource_phrase, thread_label};
    assert_eq!(resource_label(ResourceKind::Mutex, None, 11), "Mutex#11");
    assert_eq!(resource_label(ResourceKind::Mutex, Some("db"), 11), "db");
    assert_eq!(
        resource_phrase(ResourceKind::Event, Some("ready"), 3),
        "Event `ready`"
    );
    assert_eq!(resource_phrase(ResourceKind::Event, None, 3), "`Event#3`");
    assert_eq!(thread_label(None, 7), "#7");
    assert_eq!(thread_label(Some("main"), 7), "main");
    assert_eq!(ResourceKind::Mutex.plural(), "Mutexes");
    assert_eq!(ResourceKind::RwLock.article(), "an");
    assert_eq!(ResourceKind::Semaphore.article(), "a");
}

/// The SPEC example with its backtrace written as debug info gives it (absolute), plus frames
/// from another file of the project and from a dependency.
fn report_with_absolute_frames(root: &str) -> Report {
    let mut report = Report::from_json(SPEC_EXAMPLE).unwrap();
    let frame = |function: &str, file: String, line: u32| lockwatch_detector::Frame {
        function: function.to_owned(),
        file: Some(file),
        line: Some(line),
        column: Some(1),
    };
    report.threads[0].backtrace = vec![
        frame("abba::worker_a", format!("{root}examples/abba.rs"), 21),
        frame(
            "abba::helpers::spawn",
            format!("{root}examples/helpers.rs"),
            7,
        ),
        frame(
            "dep::run",
            "/home/u/.cargo/registry/src/index/dep-1.0/examples/abba.rs".to_owned(),
            3,
        ),
    ];
    report
}

fn frame_files(report: &Report) -> Vec<&str> {
    report.threads[0]
        .backtrace
        .iter()
        .map(|f| f.file.as_deref().unwrap())
        .collect()
}

#[test]
fn backtrace_paths_become_relative_to_the_root_the_locations_reveal() {
    for root in ["/work/project/", "/tmp/probe/"] {
        let mut report = report_with_absolute_frames(root);
        report.relativize_frame_paths();
        assert_eq!(
            frame_files(&report),
            [
                "examples/abba.rs",
                "examples/helpers.rs",
                // Same file name, but not at a location's line: a dependency, left absolute.
                "/home/u/.cargo/registry/src/index/dep-1.0/examples/abba.rs",
            ],
            "root {root}"
        );
    }
}

#[test]
fn without_a_frame_at_a_location_line_a_frame_in_a_location_file_gives_the_root() {
    // A wait inside a macro: the location is the macro's call, the frame its definition.
    let mut report = report_with_absolute_frames("/work/project/");
    report.threads[0].backtrace[0].line = Some(99);
    report.relativize_frame_paths();
    let files = frame_files(&report);
    assert_eq!(files[..2], ["examples/abba.rs", "examples/helpers.rs"]);
    assert!(files[2].starts_with("/home/u/.cargo/"), "{files:?}");
}

#[test]
fn a_dependency_frame_alone_never_gives_the_root() {
    let mut report = report_with_absolute_frames("/work/project/");
    report.threads[0].backtrace.drain(..2);
    let before = report.clone();
    report.relativize_frame_paths();
    assert_eq!(report, before);
}
