//! `lockwatch run`: the command in its own process group, its reports collected from one
//! directory, rendered at the end (SPEC §6).
//!
//! The report directory is `LOCKWATCH_REPORT_DIR` if the caller set it (then it is kept, with
//! the CLI's own reports added, and only files that appeared during this run are read);
//! otherwise a fresh directory under the system's temporary directory, removed once the
//! reports are rendered (render with `--format json --output FILE` to keep them).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use lockwatch_detector::crossproc::{cross_process_inversions, Hierarchy};
use lockwatch_detector::hang::timeout_report;
use lockwatch_detector::{Report, ReportKind};

use crate::args::RunConfig;
use crate::output::{render_reports, use_color, Destination};
use crate::process;
use crate::status;

/// How long the processes asked for a dump get to write it before the group is killed.
const DUMP_GRACE: Duration = Duration::from_secs(3);
/// How often the command and the report directory are looked at.
const POLL: Duration = Duration::from_millis(20);

/// Runs the command and returns the exit status to end with.
pub(crate) fn run(config: &RunConfig) -> u8 {
    let dir = match ReportDir::new() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("lockwatch: error: cannot create a report directory: {e}");
            return status::USAGE;
        }
    };
    let result = run_in(config, &dir);
    dir.finish();
    result
}

fn run_in(config: &RunConfig, dir: &ReportDir) -> u8 {
    let program = &config.command[0];
    let mut command = Command::new(program);
    command.args(&config.command[1..]);
    let order_graph = dir.path.join("order-%p.json");
    // The caller's report directory, if set (and not empty), is `dir` itself.
    command.env("LOCKWATCH_REPORT_DIR", &dir.path);
    let defaults: [(&str, &OsStr); 2] = [
        ("LOCKWATCH_ON_DEADLOCK", OsStr::new("abort")),
        ("LOCKWATCH_ORDER_GRAPH", order_graph.as_os_str()),
    ];
    for (name, value) in defaults {
        if std::env::var_os(name).is_none() {
            command.env(name, value);
        }
    }
    if is_cargo_test(&config.command) && std::env::var_os("LOCKWATCH_HARNESS").is_none() {
        command.env("LOCKWATCH_HARNESS", "libtest");
    }
    let shown = shell_words(&config.command);
    let mut child = match process::spawn_in_group(&mut command) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("lockwatch: error: cannot run `{shown}`: {e}");
            return status::USAGE;
        }
    };
    let group = child.id();
    process::forward_terminal_signals(group);

    let started = Instant::now();
    let deadline = config.timeout.map(|t| started + t);
    let mut timed_out = None;
    let exit = loop {
        match child.try_wait() {
            Ok(Some(exit)) => break Some(exit),
            Ok(None) => {}
            Err(e) => {
                eprintln!("lockwatch: error: cannot wait for `{shown}`: {e}");
                break None;
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = Some(ask_for_dumps(&dir.path, group));
            process::signal_group(group, process::SIGKILL);
            if !cfg!(unix) {
                let _ = child.kill();
            }
            break child.wait().ok();
        }
        std::thread::sleep(POLL);
    };

    let mut unreadable = false;
    let mut reports = dir.read_reports(&mut unreadable);
    let hierarchies = dir.read_hierarchies(&mut unreadable);
    let mut concluded = cross_process_inversions(&hierarchies, std::process::id(), now_ms());
    for (seq, report) in concluded.iter().enumerate() {
        let name = format!("{}-{}-{}.json", report.pid, seq + 1, report.kind.as_str());
        dir.write(&name, report);
    }
    if let Some(asked) = &timed_out {
        let mut dumped: Vec<u32> = reports
            .iter()
            .filter(|r| r.kind == ReportKind::Hang && asked.contains(&r.pid))
            .map(|r| r.pid)
            .collect();
        dumped.sort_unstable();
        dumped.dedup();
        let report = timeout_report(
            &shown,
            config.timeout.unwrap_or_default(),
            group,
            now_ms(),
            asked.len(),
            &dumped,
        );
        // Seq 0: the runtime numbers its own reports from 1.
        dir.write(&format!("{group}-0-hang.json"), &report);
        concluded.push(report);
    }
    reports.append(&mut concluded);

    let destination = if config.output.is_some() {
        Destination::File
    } else {
        Destination::Stderr
    };
    let rendered = render_reports(&reports, config.format, None, use_color(destination));
    // A headline between the command's own output and the reports (the runtime printed each
    // report as it happened; this is every report of every process, together).
    eprintln!(
        "lockwatch: {}",
        tally(&reports, dir.kept.then_some(&dir.path))
    );
    match &config.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, rendered.as_bytes()) {
                eprintln!("lockwatch: error: cannot write {}: {e}", path.display());
                unreadable = true;
            }
        }
        None => {
            let _ = std::io::stderr().write_all(rendered.as_bytes());
        }
    }

    let kinds: Vec<ReportKind> = reports.iter().map(Report::kind).collect();
    status::of_run(
        &kinds,
        &config.fail_on,
        timed_out.is_some(),
        unreadable,
        exit.as_ref().map(command_status),
    )
}

/// Asks every process of the group that answers `SIGUSR1` (a lockwatch process, which then
/// writes a dump) for a dump, and waits until each has written one, has gone, or
/// [`DUMP_GRACE`] is over. Returns the pids asked. Where the processes cannot be told apart
/// (no `/proc`), the whole group is asked and given the whole grace period.
fn ask_for_dumps(dir: &Path, group: u32) -> Vec<u32> {
    let deadline = Instant::now() + DUMP_GRACE;
    let Some(members) = process::members_catching_sigusr1(group) else {
        process::signal_group(group, process::SIGUSR1);
        while Instant::now() < deadline && process::signal_group(group, 0) {
            std::thread::sleep(POLL);
        }
        let mut dumped: Vec<u32> = dumps_in(dir).into_iter().collect();
        dumped.sort_unstable();
        return dumped;
    };
    let asked: Vec<u32> = members
        .into_iter()
        .filter(|&pid| process::signal_member(pid, group, process::SIGUSR1))
        .collect();
    while Instant::now() < deadline {
        let dumped = dumps_in(dir);
        let pending = asked
            .iter()
            .filter(|pid| !dumped.contains(pid) && process::is_live_member(**pid, group))
            .count();
        if pending == 0 {
            break;
        }
        std::thread::sleep(POLL);
    }
    asked
}

/// The pids that have written a `hang` report into `dir`.
fn dumps_in(dir: &Path) -> HashSet<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix("-hang.json")?;
            stem.split('-').next()?.parse().ok()
        })
        .collect()
}

/// The command's own status, as a shell reports it (128 + the signal that killed it).
fn command_status(exit: &ExitStatus) -> i32 {
    exit.code()
        .or_else(|| process::signal_status(exit))
        .unwrap_or(1)
}

/// `cargo test ...`, `cargo t ...`, `cargo nextest ...` (toolchain and flags before the
/// subcommand skipped): a run of test binaries under Rust's test harness.
fn is_cargo_test(command: &[OsString]) -> bool {
    let is_cargo = Path::new(&command[0])
        .file_stem()
        .is_some_and(|s| s == "cargo");
    let subcommand = command[1..].iter().find(|a| {
        let a = a.to_string_lossy();
        !a.starts_with('-') && !a.starts_with('+')
    });
    is_cargo && subcommand.is_some_and(|s| s == "test" || s == "t" || s == "nextest")
}

/// The command as a person would type it, for messages.
fn shell_words(command: &[OsString]) -> String {
    let words: Vec<String> = command
        .iter()
        .map(|w| {
            let w = w.to_string_lossy();
            if w.is_empty() || w.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)) {
                format!("'{}'", w.replace('\'', r"'\''"))
            } else {
                w.into_owned()
            }
        })
        .collect();
    words.join(" ")
}

/// "no findings", "2 findings: 1 deadlock, 1 hang", and where the reports are kept.
fn tally(reports: &[Report], kept: Option<&PathBuf>) -> String {
    let mut counts: Vec<(ReportKind, usize)> = Vec::new();
    for r in reports {
        match counts.iter_mut().find(|(k, _)| *k == r.kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.kind, 1)),
        }
    }
    counts.sort();
    let mut text = match reports.len() {
        0 => "no findings".to_owned(),
        n => {
            let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
            format!(
                "{n} finding{}: {}",
                if n == 1 { "" } else { "s" },
                parts.join(", ")
            )
        }
    };
    if let Some(dir) = kept {
        text.push_str(&format!(" (reports in {})", dir.display()));
    }
    text
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The directory every process of the run writes its reports and its lock hierarchy into.
struct ReportDir {
    path: PathBuf,
    /// The caller's (`LOCKWATCH_REPORT_DIR`): kept. Otherwise ours, removed at the end.
    kept: bool,
    /// Files already there before the run (in a caller's directory): not this run's.
    before: HashSet<OsString>,
}

impl ReportDir {
    fn new() -> std::io::Result<ReportDir> {
        if let Some(dir) = std::env::var_os("LOCKWATCH_REPORT_DIR").filter(|d| !d.is_empty()) {
            let path = PathBuf::from(dir);
            std::fs::create_dir_all(&path)?;
            let before = std::fs::read_dir(&path)?
                .flatten()
                .map(|e| e.file_name())
                .collect();
            return Ok(ReportDir {
                path,
                kept: true,
                before,
            });
        }
        let base = std::env::temp_dir();
        let mut attempt = 0u32;
        loop {
            let path = base.join(format!(
                "lockwatch-run-{}-{}-{attempt}",
                std::process::id(),
                now_ms()
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    return Ok(ReportDir {
                        path,
                        kept: false,
                        before: HashSet::new(),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// This run's files whose names satisfy `wanted`, sorted by name.
    fn files(&self, wanted: impl Fn(&str) -> bool) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| !self.before.contains(&e.file_name()))
            .filter(|e| e.file_name().to_str().is_some_and(&wanted))
            .map(|e| e.path())
            .collect();
        files.sort();
        files
    }

    /// Every report this run's processes wrote, in the order they were made.
    fn read_reports(&self, unreadable: &mut bool) -> Vec<Report> {
        let mut reports = Vec::new();
        for path in
            self.files(|n| n.ends_with(".json") && !n.starts_with('.') && !n.starts_with("order-"))
        {
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| Report::from_json(&text).map_err(|e| e.to_string()));
            match parsed {
                Ok(report) => reports.push((path, report)),
                Err(e) => {
                    eprintln!("lockwatch: error: {}: {e}", path.display());
                    *unreadable = true;
                }
            }
        }
        reports.sort_by_key(|(path, r)| (r.detected_at_ms, r.pid, path.clone()));
        reports.into_iter().map(|(_, r)| r).collect()
    }

    /// The lock hierarchies this run's processes wrote (`order-<pid>.json`).
    fn read_hierarchies(&self, unreadable: &mut bool) -> Vec<Hierarchy> {
        let mut hierarchies = Vec::new();
        for path in self.files(|n| n.starts_with("order-") && n.ends_with(".json")) {
            let pid = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.strip_prefix("order-"))
                .and_then(|p| p.parse().ok());
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| Hierarchy::from_json(&text, pid).map_err(|e| e.to_string()));
            match parsed {
                Ok(h) => hierarchies.push(h),
                Err(e) => {
                    eprintln!("lockwatch: error: {}: {e}", path.display());
                    *unreadable = true;
                }
            }
        }
        hierarchies
    }

    /// Adds one of the CLI's own reports, complete or not at all (write, then rename).
    fn write(&self, name: &str, report: &Report) {
        let tmp = self.path.join(format!(".{name}.tmp"));
        let written = std::fs::write(&tmp, report.to_json_pretty() + "\n")
            .and_then(|()| std::fs::rename(&tmp, self.path.join(name)));
        if let Err(e) = written {
            eprintln!(
                "lockwatch: warning: cannot write {} into {}: {e}",
                name,
                self.path.display()
            );
        }
    }

    /// Removes the directory if it is ours.
    fn finish(&self) {
        if !self.kept {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                eprintln!(
                    "lockwatch: warning: cannot remove {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<OsString> {
        w.iter().map(OsString::from).collect()
    }

    #[test]
    fn cargo_test_and_nextest_are_recognised() {
        assert!(is_cargo_test(&words(&["cargo", "test"])));
        assert!(is_cargo_test(&words(&[
            "cargo", "+nightly", "-q", "test", "-p", "x"
        ])));
        assert!(is_cargo_test(&words(&["/usr/bin/cargo", "nextest", "run"])));
        assert!(is_cargo_test(&words(&["cargo", "t"])));
        assert!(!is_cargo_test(&words(&["cargo", "run", "--", "test"])));
        assert!(!is_cargo_test(&words(&["cargo"])));
        assert!(!is_cargo_test(&words(&["make", "test"])));
    }

    #[test]
    fn commands_are_shown_as_typed() {
        assert_eq!(shell_words(&words(&["sleep", "30"])), "sleep 30");
        assert_eq!(shell_words(&words(&["sh", "-c", "a; b"])), "sh -c 'a; b'");
        assert_eq!(shell_words(&words(&["echo", "it's"])), r"echo 'it'\''s'");
    }
}
