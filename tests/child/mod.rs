//! Running one test of the current test binary as a child process, for scenarios that must
//! start the process's lockwatch state afresh (its settings, its environment) or that end it
//! (`LOCKWATCH_ON_DEADLOCK=abort`). The child is an `#[ignore]`d test, run with `--ignored
//! --exact`, under the default test harness (the one an ordinary `cargo test` uses).
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

/// How a child run ended (`status` is `None` if it was killed for outliving its time).
pub(crate) use common::Run as ChildRun;

/// Runs the ignored test `test` of this binary in a child process with
/// `LOCKWATCH_ON_DEADLOCK=abort`, a fresh report directory, no other `LOCKWATCH*` variable of
/// ours, and `env`. Once `limit` has passed the child is killed (`status` is then `None`).
pub(crate) fn run_test_in_child(test: &str, env: &[(&str, &str)], limit: Duration) -> ChildRun {
    let dir = common::scratch_dir(&test.replace("::", "-"));
    let mut command = Command::new(std::env::current_exe().expect("test executable path"));
    command.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
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
    let run = common::run_bounded(command, &dir, limit);
    let _ = std::fs::remove_dir_all(&dir);
    run
}
