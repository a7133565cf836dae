//! Running example programs as child processes, with a hard time limit, and reading back the
//! reports they wrote.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The outcome of one child run.
pub(crate) struct Run {
    /// The exit status; `None` if it was killed (by a signal, or for outliving its time).
    pub(crate) status: Option<i32>,
    /// It outlived its time and was killed.
    pub(crate) killed: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// Every report file the child wrote, parsed, in file-name order.
    pub(crate) reports: Vec<Value>,
    pub(crate) report_files: Vec<PathBuf>,
    pub(crate) elapsed: Duration,
}

impl Run {
    pub(crate) fn reports_of_kind(&self, kind: &str) -> Vec<&Value> {
        self.reports.iter().filter(|r| r["kind"] == kind).collect()
    }

    pub(crate) fn only_report(&self, kind: &str) -> &Value {
        let found = self.reports_of_kind(kind);
        assert_eq!(
            found.len(),
            1,
            "expected one {kind} report, got {}: stderr:\n{}",
            found.len(),
            self.stderr
        );
        found[0]
    }
}

/// Where cargo put the example binaries for this build of the tests.
pub(crate) fn example_path(name: &str) -> PathBuf {
    ensure_examples_built();
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

pub(crate) fn scratch_dir(tag: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("lockwatch-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Builds the examples once per test binary, with the same profile as the tests, so a test
/// never runs a stale example (`cargo test --test NAME` alone does not build them).
fn ensure_examples_built() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let release = exe.components().any(|c| c.as_os_str() == "release");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "--examples", "-p", "lockwatch"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo build --examples");
        assert!(status.success(), "cargo build --examples failed");
    });
}

/// Runs an example with `LOCKWATCH_ON_DEADLOCK=abort` and a fresh report directory, killing
/// it (and failing) if it outlives `limit`.
pub(crate) fn run_example(name: &str, extra_env: &[(&str, &str)], limit: Duration) -> Run {
    let path = example_path(name);
    assert!(
        path.exists(),
        "example binary {} is missing (cargo test builds examples)",
        path.display()
    );
    let dir = scratch_dir(name);
    let mut command = Command::new(&path);
    command
        .env_remove("LOCKWATCH")
        .env_remove("LOCKWATCH_FORMAT")
        .env("LOCKWATCH_ON_DEADLOCK", "abort")
        .env("LOCKWATCH_REPORT_DIR", &dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let run = run_bounded(command, &dir, limit);
    if run.killed {
        panic!(
            "example {name} still running after {limit:?}; stderr:\n{}",
            run.stderr
        );
    }
    run
}

/// Runs `command` (its output piped here) and reads back the reports it wrote to `dir`,
/// killing it once `limit` has passed (then `killed` is set and `status` is `None`).
pub(crate) fn run_bounded(mut command: Command, dir: &Path, limit: Duration) -> Run {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn the child process");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let (status, killed) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status.code(), false);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    let mut report_files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    report_files.sort();
    let reports = report_files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", p.display()))
        })
        .collect();
    Run {
        status,
        killed,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        reports,
        report_files,
        elapsed,
    }
}

/// The 1-based line and the column of `call` on the line of `examples/<example>.rs` that
/// carries the comment `// <example>: <marker>`, as `#[track_caller]` reports it (the column
/// of the method name).
pub(crate) fn site(example: &str, marker: &str, call: &str) -> (u64, u64) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{example}.rs"));
    let source = std::fs::read_to_string(&path).unwrap();
    let tag = format!("// {example}: {marker}");
    let (index, line) = source
        .lines()
        .enumerate()
        .find(|(_, l)| l.trim_end().ends_with(&tag))
        .unwrap_or_else(|| panic!("no line tagged `{tag}` in {}", path.display()));
    let column = line
        .find(call)
        .unwrap_or_else(|| panic!("`{call}` not on line {}: {line}", index + 1));
    // `.lock(` -> the column of `lock`, 1-based.
    let skip = call.len() - call.trim_start_matches('.').len();
    ((index + 1) as u64, (column + skip + 1) as u64)
}

/// The thread of a report with this name.
pub(crate) fn thread<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no thread `{name}` in report:\n{report:#}"))
}

/// The resource of a report with this name.
pub(crate) fn resource<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no resource `{name}` in report:\n{report:#}"))
}

/// Asserts a `location` object points at `examples/<example>.rs`, `line`, `column`.
pub(crate) fn assert_location(location: &Value, example: &str, (line, column): (u64, u64)) {
    assert_eq!(
        location["file"],
        format!("examples/{example}.rs"),
        "location {location}"
    );
    assert_eq!(location["line"], line, "location {location}");
    assert_eq!(location["column"], column, "location {location}");
}

/// Whether some frame of a thread's backtrace is in `function` (a path suffix such as
/// `transfer` or `abba::transfer`).
pub(crate) fn backtrace_has(thread: &Value, function: &str) -> bool {
    thread["backtrace"].as_array().is_some_and(|frames| {
        frames.iter().any(|f| {
            f["function"]
                .as_str()
                .is_some_and(|name| name == function || name.ends_with(&format!("::{function}")))
        })
    })
}
