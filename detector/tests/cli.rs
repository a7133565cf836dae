//! The `lockwatch` binary end to end: `run` on the workspace's example programs (built by
//! `cargo test` into `target/<profile>/examples`) and `render` on saved reports.
//!
//! Every run has a hard deadline: past it the test stops `lockwatch` (which forwards the
//! `SIGTERM` to its command's process group) and fails. Unix only: the commands run are
//! shell scripts, and `--timeout` works with signals.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The bound on one `lockwatch` run.
const LIMIT: Duration = Duration::from_secs(60);

/// The workspace root, where the examples' sources are.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the detector is a workspace member")
}

/// An example program of the `lockwatch` package, as `cargo test` built it for this profile.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "example {} is missing: `cargo test --workspace` builds the examples (or `cargo build \
         --examples -p lockwatch` before `cargo test -p lockwatch-detector`)",
        path.display()
    );
    path
}

fn scratch(tag: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("lockwatch-cli-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Outcome {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Outcome {
    fn no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked"),
            "lockwatch panicked:\n{}",
            self.stderr
        );
        self
    }
}

/// `lockwatch ARGS` in the workspace root with lockwatch's variables cleared (plus `env`),
/// bounded by [`LIMIT`].
fn lockwatch(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lockwatch"));
    command
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "LOCKWATCH",
        "LOCKWATCH_REPORT_DIR",
        "LOCKWATCH_ON_DEADLOCK",
        "LOCKWATCH_ORDER_GRAPH",
        "LOCKWATCH_FORMAT",
        "LOCKWATCH_HARNESS",
        "LOCKWATCH_LOCK_ORDER",
        "CLICOLOR_FORCE",
    ] {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn lockwatch");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            // lockwatch forwards SIGTERM to its command's group; then make sure.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(2));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "lockwatch {args:?} still running after {LIMIT:?}; stderr:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Outcome {
        status: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        elapsed: started.elapsed(),
    }
}

/// `lockwatch run FLAGS -- <example> ARGS`.
fn run_example(name: &str, flags: &[&str], args: &[&str]) -> Outcome {
    let path = example_path(name);
    let mut all: Vec<&str> = vec!["run"];
    all.extend(flags);
    all.push("--");
    all.push(path.to_str().unwrap());
    all.extend(args);
    lockwatch(&all, &[])
}

/// The line of `examples/<example>.rs` that contains `marker`, trimmed.
fn source_line(example: &str, marker: &str) -> String {
    let text = std::fs::read_to_string(root().join("examples").join(format!("{example}.rs")))
        .expect("example source");
    text.lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no line with {marker:?} in {example}.rs"))
        .trim()
        .to_owned()
}

/// Every report in a `--format json` rendering (one per line).
fn json_reports(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn of_kind<'a>(reports: &'a [Value], kind: &str) -> Vec<&'a Value> {
    reports.iter().filter(|r| r["kind"] == kind).collect()
}

// ---- run: exit statuses ----

#[test]
fn a_deadlock_exits_1_with_a_report_that_quotes_both_source_lines() {
    let run = run_example("abba", &[], &[]);
    run.no_panic();
    assert_eq!(run.status, Some(1), "stderr:\n{}", run.stderr);
    // The rendering comes after lockwatch's headline; the runtime's own copy comes before.
    let (_, rendered) = run
        .stderr
        .split_once("lockwatch: ")
        .expect("the headline before the reports");
    assert!(rendered.contains("error[deadlock]"), "{rendered}");
    for marker in ["abba: first lock", "abba: second lock"] {
        let line = source_line("abba", marker);
        assert!(rendered.contains(&line), "{line:?} not quoted:\n{rendered}");
    }
    // Which account comes first depends on which worker took its lock first.
    assert!(
        rendered.contains("help: acquire `account A` before `account B` on every path")
            || rendered.contains("help: acquire `account B` before `account A` on every path"),
        "{rendered}"
    );
}

#[test]
fn a_valid_program_exits_0_with_no_findings() {
    let run = run_example("bank_paths", &[], &["transfer"]);
    run.no_panic();
    assert_eq!(run.status, Some(0), "stderr:\n{}", run.stderr);
    assert!(run.stdout.contains("transfer done"), "output is streamed");
    assert!(
        run.stderr.contains("lockwatch: no findings"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_inversion_fails_only_when_fail_on_names_it() {
    let warned = run_example("lock_order_inversion", &[], &[]);
    assert_eq!(warned.status, Some(0), "stderr:\n{}", warned.stderr);
    assert!(
        warned.stderr.contains("1 lock_order_inversion"),
        "{}",
        warned.stderr
    );
    let failed = run_example(
        "lock_order_inversion",
        &["--fail-on", "lock_order_inversion"],
        &[],
    );
    failed.no_panic();
    assert_eq!(failed.status, Some(1), "stderr:\n{}", failed.stderr);
}

#[test]
fn the_command_s_own_failure_status_is_passed_on() {
    let exited = lockwatch(&["run", "--", "sh", "-c", "exit 7"], &[]);
    assert_eq!(exited.status, Some(7), "{}", exited.stderr);
    let killed = lockwatch(&["run", "--", "sh", "-c", "kill -TERM $$"], &[]);
    assert_eq!(killed.status, Some(128 + 15), "{}", killed.stderr);
    let missing = lockwatch(&["run", "--", "/nonexistent/program"], &[]);
    assert_eq!(missing.status, Some(2));
    assert!(
        missing.stderr.contains("cannot run `/nonexistent/program`"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_plain_sleep_that_outlives_the_timeout_exits_3() {
    let run = lockwatch(&["run", "--timeout", "1s", "--", "sleep", "30"], &[]);
    run.no_panic();
    assert_eq!(run.status, Some(3), "stderr:\n{}", run.stderr);
    assert!(
        run.elapsed < Duration::from_secs(15),
        "took {:?}",
        run.elapsed
    );
    assert!(
        run.stderr
            .contains("`sleep 30` did not finish within 1 s and was killed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("no process of the command had used"));
}

// ---- run: the environment and the report directory ----

#[test]
fn run_sets_lockwatch_s_variables_unless_the_caller_did() {
    let script = r#"echo "policy=$LOCKWATCH_ON_DEADLOCK graph=$LOCKWATCH_ORDER_GRAPH dir=$LOCKWATCH_REPORT_DIR harness=${LOCKWATCH_HARNESS:-unset}"; test -d "$LOCKWATCH_REPORT_DIR""#;
    let run = lockwatch(&["run", "--", "sh", "-c", script], &[]);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let line = run.stdout.trim();
    assert!(line.starts_with("policy=abort graph="), "{line}");
    assert!(line.contains("harness=unset"), "{line}");
    let dir = line
        .split("dir=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        line.contains(&format!("graph={dir}/order-%p.json")),
        "{line}"
    );
    assert!(
        Path::new(dir).starts_with(std::env::temp_dir()),
        "{dir} is not a temporary directory"
    );
    assert!(!Path::new(dir).exists(), "{dir} is left behind");

    let run = lockwatch(
        &["run", "--", "sh", "-c", script],
        &[("LOCKWATCH_ON_DEADLOCK", "report")],
    );
    assert!(run.stdout.starts_with("policy=report "), "{}", run.stdout);
}

#[test]
fn cargo_test_runs_under_the_libtest_harness_setting() {
    // A stand-in `cargo` that prints what it was given.
    let bin = scratch("fake-cargo");
    let cargo = bin.join("cargo");
    std::fs::write(&cargo, "#!/bin/sh\necho \"harness=$LOCKWATCH_HARNESS\"\n").unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&cargo)
        .status()
        .unwrap();
    let cargo = cargo.to_str().unwrap();
    let test = lockwatch(&["run", "--", cargo, "test", "-p", "x"], &[]);
    assert_eq!(test.stdout.trim(), "harness=libtest", "{}", test.stderr);
    let nextest = lockwatch(&["run", "--", cargo, "nextest", "run"], &[]);
    assert_eq!(nextest.stdout.trim(), "harness=libtest");
    let build = lockwatch(&["run", "--", cargo, "build"], &[]);
    assert_eq!(build.stdout.trim(), "harness=");
    let set = lockwatch(
        &["run", "--", cargo, "test"],
        &[("LOCKWATCH_HARNESS", "none")],
    );
    assert_eq!(set.stdout.trim(), "harness=none");
    let _ = std::fs::remove_dir_all(bin);
}

#[test]
fn a_report_directory_the_caller_set_is_kept_with_the_cli_s_own_reports() {
    let dir = scratch("kept");
    // A report from an earlier run is not this run's.
    std::fs::write(dir.join("1-1-deadlock.json"), "not even JSON").unwrap();
    let run = lockwatch(
        &["run", "--timeout", "1s", "--", "sleep", "30"],
        &[("LOCKWATCH_REPORT_DIR", dir.to_str().unwrap())],
    );
    assert_eq!(run.status, Some(3), "{}", run.stderr);
    assert!(run
        .stderr
        .contains(&format!("(reports in {})", dir.display())));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("-0-hang.json")),
        "{names:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ---- run: lock order across processes ----

#[test]
fn an_inversion_no_single_process_saw_is_found_across_the_processes_of_a_run() {
    // Each process names its own hierarchy file here; with `%p` in the default
    // `LOCKWATCH_ORDER_GRAPH` (next test) the runtime does it by itself.
    let bank = example_path("bank_paths");
    let bank = bank.to_str().unwrap();
    let script = format!(
        "LOCKWATCH_ORDER_GRAPH=$LOCKWATCH_REPORT_DIR/order-101.json {bank} transfer && \
         LOCKWATCH_ORDER_GRAPH=$LOCKWATCH_REPORT_DIR/order-102.json {bank} reconcile"
    );
    let out = scratch("crossproc").join("reports.json");
    let run = lockwatch(
        &[
            "run",
            "--fail-on",
            "lock_order_inversion",
            "--format",
            "json",
            "--output",
            out.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[],
    );
    run.no_panic();
    assert_eq!(run.status, Some(1), "stderr:\n{}", run.stderr);
    let reports = json_reports(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let r = &reports[0];
    assert_eq!(r["kind"], "lock_order_inversion");
    assert_eq!(
        r["summary"],
        "lock order inversion: `accounts` → `audit` → `accounts` across 2 processes"
    );
    let pids: Vec<&Value> = r["cycle"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["pid"])
        .collect();
    assert_eq!(pids, vec![101, 102]);
    let transfer_audit = source_line("bank_paths", "transfer takes audit");
    let edge = &r["cycle"][0]["location"];
    assert_eq!(edge["file"], "examples/bank_paths.rs");
    let text = std::fs::read_to_string(root().join("examples/bank_paths.rs")).unwrap();
    let line = edge["line"].as_u64().unwrap() as usize;
    assert_eq!(text.lines().nth(line - 1).unwrap().trim(), transfer_audit);
    let _ = std::fs::remove_dir_all(out.parent().unwrap());
}

#[test]

fn two_processes_taking_two_locks_in_opposite_orders_are_an_inversion() {
    // needs %p from branch order: each process must write its own order-<pid>.json.
    let bank = example_path("bank_paths");
    let bank = bank.to_str().unwrap();
    let script = format!("{bank} transfer && {bank} reconcile");
    let out = scratch("crossproc-pid").join("reports.json");
    let run = lockwatch(
        &[
            "run",
            "--fail-on",
            "lock_order_inversion",
            "--format",
            "json",
            "--output",
            out.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[],
    );
    assert_eq!(run.status, Some(1), "stderr:\n{}", run.stderr);
    let reports = json_reports(&std::fs::read_to_string(&out).unwrap());
    let inversions = of_kind(&reports, "lock_order_inversion");
    assert_eq!(inversions.len(), 1, "{reports:#?}");
    let pids: Vec<u64> = inversions[0]["cycle"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pid"].as_u64().expect("a pid on every edge"))
        .collect();
    assert_eq!(pids.len(), 2);
    assert_ne!(pids[0], pids[1], "two processes");
    let _ = std::fs::remove_dir_all(out.parent().unwrap());
}

// ---- run: --timeout and the dumps ----

#[test]
fn a_timeout_shows_the_dump_of_a_program_that_spins_holding_a_lock_another_thread_waits_for() {
    let out = scratch("hang").join("reports.json");
    let run = run_example(
        "spin_holding",
        &[
            "--timeout",
            "2s",
            "--format",
            "json",
            "--output",
            out.to_str().unwrap(),
        ],
        &[],
    );
    run.no_panic();
    assert_eq!(run.status, Some(3), "stderr:\n{}", run.stderr);
    assert!(
        run.elapsed < Duration::from_secs(20),
        "took {:?}",
        run.elapsed
    );
    let reports = json_reports(&std::fs::read_to_string(&out).unwrap());
    let hangs = of_kind(&reports, "hang");
    assert_eq!(
        hangs.len(),
        2,
        "a dump and the CLI's own report: {reports:#?}"
    );
    let (dump, timeout) = (hangs[0], hangs[1]);
    assert!(
        timeout["summary"]
            .as_str()
            .unwrap()
            .ends_with("did not finish within 2 s and was killed"),
        "{timeout}"
    );
    assert!(timeout["help"][0]
        .as_str()
        .unwrap()
        .contains(&format!("process {}", dump["pid"])));

    let threads = dump["threads"].as_array().unwrap();
    let thread = |name: &str| {
        threads
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no thread {name} in {dump}"))
    };
    let state = dump["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "state")
        .expect("the lock waited for");
    let worker = thread("worker");
    assert_eq!(worker["state"], "blocked");
    assert_eq!(worker["waiting_for"]["resource"], state["id"]);
    let waits_at = source_line("spin_holding", "worker waits for state");
    let line = worker["waiting_for"]["location"]["line"].as_u64().unwrap() as usize;
    let text = std::fs::read_to_string(root().join("examples/spin_holding.rs")).unwrap();
    assert_eq!(text.lines().nth(line - 1).unwrap().trim(), waits_at);
    assert!(
        !worker["backtrace"].as_array().unwrap().is_empty(),
        "the waiter's backtrace"
    );
    let main = thread("main");
    assert_eq!(main["state"], "running");
    let hold = &main["holds"][0];
    assert_eq!(hold["resource"], state["id"]);
    let held_at = source_line("spin_holding", "main takes state");
    let line = hold["location"]["line"].as_u64().unwrap() as usize;
    assert_eq!(text.lines().nth(line - 1).unwrap().trim(), held_at);
    let _ = std::fs::remove_dir_all(out.parent().unwrap());
}

// ---- render ----

/// A valid report, as the runtime writes it.
const REPORT: &str = r#"{
  "schema": "lockwatch.report/v1", "kind": "deadlock",
  "summary": "2 threads are deadlocked on 2 Mutexes", "pid": 4242, "detected_at_ms": 1,
  "threads": [
    {"id": 2, "name": "worker-a", "state": "blocked",
     "waiting_for": {"resource": 11, "op": "lock",
                     "location": {"file": "examples/abba.rs", "line": 25, "column": 21}, "since_ms": 3},
     "holds": [{"resource": 10, "op": "lock", "count": 1,
                "location": {"file": "examples/abba.rs", "line": 23, "column": 25}}],
     "backtrace": []}
  ],
  "resources": [
    {"id": 10, "kind": "Mutex", "name": "account A", "created_at": {"file": "examples/abba.rs", "line": 40, "column": 12}},
    {"id": 11, "kind": "Mutex", "name": "account B", "created_at": {"file": "examples/abba.rs", "line": 41, "column": 12}}
  ],
  "cycle": [], "help": ["acquire `account A` before `account B` on every path"]
}"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn render_quotes_the_source_under_the_source_root() {
    let dir = scratch("render");
    let good = write(&dir, "good.json", REPORT);
    let root = root().to_str().unwrap();
    let run = lockwatch(&["render", &good, "--source-root", root], &[]);
    run.no_panic();
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let second_lock = source_line("abba", "abba: second lock");
    assert!(run.stdout.contains("error[deadlock]"), "{}", run.stdout);
    assert!(run.stdout.contains(&second_lock), "{}", run.stdout);
    let json = lockwatch(&["render", "--format", "json", &good], &[]);
    let reports = json_reports(&json.stdout);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["pid"], 4242);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn render_reads_back_what_run_wrote_in_json() {
    let dir = scratch("roundtrip");
    let saved = dir.join("abba.json");
    let run = run_example(
        "abba",
        &["--format", "json", "--output", saved.to_str().unwrap()],
        &[],
    );
    assert_eq!(run.status, Some(1), "{}", run.stderr);
    let render = lockwatch(&["render", saved.to_str().unwrap()], &[]);
    render.no_panic();
    assert_eq!(render.status, Some(0), "{}", render.stderr);
    assert!(
        render.stdout.contains("error[deadlock]"),
        "{}",
        render.stdout
    );
    assert!(render
        .stdout
        .contains(&source_line("abba", "abba: first lock")));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn each_bad_file_is_one_line_naming_it_and_the_others_still_render() {
    let dir = scratch("bad");
    let good = write(&dir, "good.json", REPORT);
    let malformed = write(
        &dir,
        "malformed.json",
        "{\"schema\": \"lockwatch.report/v1\", ",
    );
    let foreign = write(&dir, "foreign.json", r#"{"name": "not a report"}"#);
    let version = write(
        &dir,
        "version.json",
        &REPORT.replace("lockwatch.report/v1", "lockwatch.report/v2"),
    );
    let shape = write(
        &dir,
        "shape.json",
        r#"{"schema": "lockwatch.report/v1", "kind": "deadlock"}"#,
    );
    // A report of the schema without one of its lists (here `threads`): malformed too.
    let listless = {
        let mut value: serde_json::Value = serde_json::from_str(REPORT).unwrap();
        value.as_object_mut().unwrap().remove("threads");
        write(&dir, "listless.json", &value.to_string())
    };
    let missing = dir.join("missing.json").to_str().unwrap().to_owned();
    let run = lockwatch(
        &[
            "render", &malformed, &good, &foreign, &version, &shape, &listless, &missing,
        ],
        &[],
    );
    run.no_panic();
    assert_eq!(run.status, Some(2), "{}", run.stderr);
    assert!(
        run.stdout.contains("error[deadlock]"),
        "the good file renders"
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 6, "one line per bad file:\n{}", run.stderr);
    let expect = [
        (&malformed, "not a lockwatch report"),
        (&foreign, "no `schema` field"),
        (&version, "unsupported schema `lockwatch.report/v2`"),
        (&shape, "not a lockwatch report"),
        (&listless, "threads"),
        (&missing, "cannot read"),
    ];
    for (line, (file, what)) in lines.iter().zip(expect) {
        assert!(
            line.starts_with(&format!("lockwatch: error: {file}: ")) && line.contains(what),
            "{line:?} should name {file} and say {what:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_flags_are_one_line_naming_the_flag() {
    // A directory that does not exist (a fixed path such as `/nonexistent` may, on some
    // machine).
    let missing =
        std::env::temp_dir().join(format!("lockwatch-no-such-dir-{}", std::process::id()));
    let missing = missing.to_str().expect("a UTF-8 temporary directory");
    let cases: [(&[&str], &str); 7] = [
        (&["render", "--format", "pdf", "r.json"], "--format"),
        (&["render", "--bogus", "r.json"], "--bogus"),
        (&["render"], "FILE"),
        (&["run", "--timeout", "soon", "--", "true"], "--timeout"),
        (&["run", "--fail-on", "deadlok", "--", "true"], "deadlok"),
        (&["run", "--timeout", "1s"], "CMD"),
        (
            &["render", "--source-root", missing, "r.json"],
            "--source-root",
        ),
    ];
    for (args, named) in cases {
        let run = lockwatch(args, &[]);
        run.no_panic();
        assert_eq!(run.status, Some(2), "{args:?}: {}", run.stderr);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}:\n{}", run.stderr);
        assert!(
            lines[0].starts_with("lockwatch: error: ") && lines[0].contains(named),
            "{args:?}: {:?} should name {named}",
            lines[0]
        );
    }
}

#[test]
fn run_renders_in_every_format_its_consumers_read() {
    for (format, starts) in [
        ("sarif", "{"),
        ("github", "::error "),
        ("dot", "digraph"),
        ("svg", "<svg"),
    ] {
        let run = run_example("abba", &["--format", format], &[]);
        run.no_panic();
        assert_eq!(run.status, Some(1), "{format}: {}", run.stderr);
        let (_, rendered) = run
            .stderr
            .split_once("lockwatch: ")
            .expect("the headline before the reports");
        let body = rendered.split_once('\n').map_or("", |(_, rest)| rest);
        assert!(
            body.lines().any(|l| l.trim_start().starts_with(starts)),
            "{format}: no line starts with {starts:?}:\n{rendered}"
        );
    }
}

// ---- the runtime's side of --timeout ----

/// Starts `spin_holding` directly and waits for its first line (it holds its locks by then).
fn start_spinner(env: &[(&str, &str)]) -> std::process::Child {
    use std::io::BufRead;
    let mut command = Command::new(example_path("spin_holding"));
    command
        .current_dir(root())
        .env_remove("LOCKWATCH_REPORT_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn spin_holding");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("never lets go"), "{line}");
    child
}

fn signal(child: &std::process::Child, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Waits (bounded) for the child to end; its exit status.
fn wait_bounded(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn sigusr1_writes_a_dump_into_the_report_directory_and_the_program_runs_on() {
    let dir = scratch("sigusr1");
    let mut child = start_spinner(&[
        ("LOCKWATCH_REPORT_DIR", dir.to_str().unwrap()),
        ("NEXTEST_TEST_NAME", "bank::spins_forever"),
    ]);
    // The worker blocks on `state` a moment after the line; a dump then has its wait. Until
    // then a dump may come without it, so ask again until one has it.
    let started = Instant::now();
    let dump = loop {
        assert!(started.elapsed() < LIMIT, "no dump with the worker's wait");
        signal(&child, "USR1");
        std::thread::sleep(Duration::from_millis(200));
        let dumps: Vec<Value> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_str().unwrap().ends_with("-hang.json"))
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect();
        if let Some(d) = dumps.into_iter().find(|d| {
            d["threads"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "worker" && t["state"] == "blocked")
        }) {
            break d;
        }
    };
    assert_eq!(dump["pid"], child.id());
    assert_eq!(dump["test"], "bank::spins_forever");
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGUSR1 must not end it"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn without_a_report_directory_sigusr1_keeps_its_default_action() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = start_spinner(&[]);
    signal(&child, "USR1");
    let status = wait_bounded(&mut child, LIMIT);
    if status.is_none() {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert_eq!(
        status.and_then(|s| s.signal()),
        Some(libc::SIGUSR1),
        "SIGUSR1 ends it"
    );
}
