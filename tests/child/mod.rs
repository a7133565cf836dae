//! Running one test of the current test binary as a child process, for scenarios that must
//! start the process's lockwatch state afresh (its settings, its environment) or that end it
//! (`LOCKWATCH_ON_DEADLOCK=abort`). The child is an `#[ignore]`d test, run with `--ignored
//! --exact`, under the default test harness (the one an ordinary `cargo test` uses).
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a child run ended.
pub(crate) struct ChildRun {
    /// The exit status, `None` if it was killed (it outlived its time).
    pub(crate) status: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// Every report the child wrote to its `LOCKWATCH_REPORT_DIR`, in file-name order.
    pub(crate) reports: Vec<Value>,
}

impl ChildRun {
    /// The reports of one kind.
    pub(crate) fn reports_of_kind(&self, kind: &str) -> Vec<&Value> {
        self.reports.iter().filter(|r| r["kind"] == kind).collect()
    }
}

fn scratch_dir(test: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "lockwatch-child-{}-{}-{n}",
        std::process::id(),
        test.replace("::", "-")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the ignored test `test` of this binary in a child process with
/// `LOCKWATCH_ON_DEADLOCK=abort`, a fresh report directory, no other `LOCKWATCH*` variable of
/// ours, and `env`. Once `limit` has passed the child is killed (`status` is then `None`).
pub(crate) fn run_test_in_child(test: &str, env: &[(&str, &str)], limit: Duration) -> ChildRun {
    let dir = scratch_dir(test);
    let mut command = Command::new(std::env::current_exe().expect("test executable path"));
    command
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LOCKWATCH") {
            command.env_remove(key);
        }
    }
    command
        .env("LOCKWATCH_ON_DEADLOCK", "abort")
        .env("LOCKWATCH_REPORT_DIR", &dir);
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn the child test");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let reports = files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", p.display()))
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    ChildRun {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        reports,
    }
}
