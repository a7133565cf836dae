//! `hang` reports (SPEC §5): what `lockwatch run --timeout` shows of a command that did not
//! finish in time.
//!
//! Two kinds of `hang` report exist. A process that uses lockwatch answers the CLI's `SIGUSR1`
//! with a *dump* ([`dump_report`]): every thread the runtime knows, its state, its wait, the
//! holds it can see and its backtrace. The CLI then writes one *timeout* report of its own
//! ([`timeout_report`]): which command it killed, after how long, and which processes dumped.
//! Thread ids are per process, so the dumps stay separate reports rather than one merged list.

use crate::model::{thread_label, Report, ReportKind, ThreadState, SCHEMA};
use crate::reduce::{referenced_resources, thread_report};
use crate::snapshot::Snapshot;
use std::time::Duration;

/// The dump of one process: every thread in `snapshot` (sorted by id), with the resources
/// their waits and holds name, and a help line per blocked thread saying who holds what it
/// waits for.
///
/// The runtime completes the snapshot first: backtraces resolved, and for a wait on an owned
/// lock the owner's hold added to the owner (a running thread publishes no holds of its own).
pub fn dump_report(snapshot: &Snapshot, pid: u32, detected_at_ms: u64) -> Report {
    let mut threads: Vec<_> = snapshot.threads.iter().map(thread_report).collect();
    threads.sort_by_key(|t| t.id);
    let waiting = threads.iter().filter(|t| t.waiting_for.is_some()).count();
    let summary = format!(
        "process {pid} did not finish: {} known to lockwatch, {waiting} of them waiting",
        count(threads.len(), "thread", "threads"),
    );
    let mut help = Vec::new();
    for t in &threads {
        let Some(wait) = &t.waiting_for else { continue };
        let what = snapshot
            .resource(wait.resource)
            .map(|r| crate::model::resource_phrase(r.kind, r.name.as_deref(), r.id))
            .unwrap_or_else(|| format!("`#{}`", wait.resource));
        let timed = if t.state == ThreadState::TimedWait {
            " (a timed wait)"
        } else {
            ""
        };
        let holders: Vec<String> = threads
            .iter()
            .filter(|h| h.id != t.id)
            .filter_map(|h| {
                let hold = h.holds.iter().find(|x| x.resource == wait.resource)?;
                let doing = match (&h.state, &h.waiting_for) {
                    (ThreadState::Exited, _) => "has exited",
                    (_, Some(_)) => "is itself waiting",
                    _ => "is running",
                };
                Some(format!(
                    "held by thread `{}` since {}, which {doing}",
                    h.label(),
                    hold.location
                ))
            })
            .collect();
        let tail = if holders.is_empty() {
            String::new()
        } else {
            format!(", {}", holders.join("; "))
        };
        help.push(format!(
            "thread `{}` has waited {} ms for {what} at {}{timed}{tail}",
            thread_label(t.name.as_deref(), t.id),
            wait.since_ms,
            wait.location
        ));
    }
    Report {
        schema: SCHEMA.to_owned(),
        kind: ReportKind::Hang,
        summary,
        pid,
        detected_at_ms,
        resources: referenced_resources(snapshot, &threads),
        threads,
        cycle: Vec::new(),
        help,
        test: None,
    }
}

/// The CLI's own report on a command that outlived `--timeout`: `command` as the user typed it,
/// `pid` the command's process id, `dumped` the processes whose dump came back (their own
/// `hang` reports go with this one), `asked` how many processes were asked for one.
pub fn timeout_report(
    command: &str,
    timeout: Duration,
    pid: u32,
    detected_at_ms: u64,
    asked: usize,
    dumped: &[u32],
) -> Report {
    let summary = format!(
        "`{command}` did not finish within {} and was killed",
        format_duration(timeout)
    );
    let mut help = Vec::new();
    match (asked, dumped.len()) {
        (0, _) => help.push(
            "no process of the command had used a lockwatch primitive, so none could dump its \
             threads: the hang is outside lockwatch's primitives (a loop, I/O, a std lock)"
                .to_owned(),
        ),
        (_, 0) => help.push(format!(
            "{} asked for a dump of its threads, none answered in time",
            count(asked, "process was", "processes were")
        )),
        (_, n) => {
            let pids: Vec<String> = dumped.iter().map(u32::to_string).collect();
            help.push(format!(
                "{} dumped its threads (the `hang` report of process {}): look there for the \
                 thread that never finished",
                count(n, "process", "processes"),
                pids.join(", ")
            ));
            if n < asked {
                help.push(format!(
                    "{} asked for a dump did not answer in time",
                    count(asked - n, "process", "processes")
                ));
            }
        }
    }
    Report {
        schema: SCHEMA.to_owned(),
        kind: ReportKind::Hang,
        summary,
        pid,
        detected_at_ms,
        threads: Vec::new(),
        resources: Vec::new(),
        cycle: Vec::new(),
        help,
        test: None,
    }
}

/// A duration as a person writes it: `30 s`, `1.5 s`, `500 ms`, `2 min`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

/// "1 thread" / "3 threads".
fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Location, Op, ResourceKind};
    use crate::snapshot::{HoldSnap, Releasers, ResourceSnap, ThreadSnap, WaitSnap};

    fn spin_snapshot() -> Snapshot {
        let state = ResourceSnap {
            id: 7,
            kind: ResourceKind::Mutex,
            name: Some("state".to_owned()),
            created_at: Location::new("examples/spin.rs", 10, 17),
            releasers: Releasers::Holders,
            available: false,
        };
        Snapshot {
            threads: vec![
                ThreadSnap {
                    id: 3,
                    name: Some("waiter".to_owned()),
                    state: ThreadState::Blocked,
                    wait: Some(WaitSnap {
                        resource: 7,
                        op: Op::Lock,
                        location: Location::new("examples/spin.rs", 30, 20),
                        since_ms: 1200,
                        seq: 9,
                    }),
                    holds: Vec::new(),
                    backtrace: Vec::new(),
                },
                ThreadSnap {
                    id: 1,
                    name: Some("main".to_owned()),
                    state: ThreadState::Running,
                    wait: None,
                    holds: vec![HoldSnap {
                        resource: 7,
                        op: Op::Lock,
                        count: 1,
                        location: Location::new("examples/spin.rs", 22, 25),
                        backtrace: Vec::new(),
                    }],
                    backtrace: Vec::new(),
                },
            ],
            resources: vec![state],
            unknown_threads_can_run: false,
        }
    }

    #[test]
    fn a_dump_lists_every_thread_and_says_who_holds_what_a_waiter_waits_for() {
        let r = dump_report(&spin_snapshot(), 4242, 5);
        assert_eq!(r.kind, ReportKind::Hang);
        assert_eq!(r.pid, 4242);
        let ids: Vec<u64> = r.threads.iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![1, 3]);
        assert_eq!(
            r.summary,
            "process 4242 did not finish: 2 threads known to lockwatch, 1 of them waiting"
        );
        assert_eq!(
            r.help,
            vec![
                "thread `waiter` has waited 1200 ms for Mutex `state` at examples/spin.rs:30:20, \
                 held by thread `main` since examples/spin.rs:22:25, which is running"
            ]
        );
        assert_eq!(r.resources.len(), 1);
        assert_eq!(r.resources[0].name.as_deref(), Some("state"));
        // Round trip: the CLI reads dumps back from the report directory.
        assert_eq!(Report::from_json(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn a_timeout_report_says_whether_any_process_could_dump() {
        let none = timeout_report("sleep 30", Duration::from_secs(1), 77, 5, 0, &[]);
        assert_eq!(
            none.summary,
            "`sleep 30` did not finish within 1 s and was killed"
        );
        assert!(none.help[0].starts_with("no process of the command"));
        let one = timeout_report("cargo test", Duration::from_millis(1500), 77, 5, 2, &[80]);
        assert_eq!(
            one.summary,
            "`cargo test` did not finish within 1.5 s and was killed"
        );
        assert!(one.help[0].contains("1 process dumped its threads"));
        assert!(one.help[0].contains("process 80"));
        assert_eq!(
            one.help[1],
            "1 process asked for a dump did not answer in time"
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(format_duration(Duration::from_millis(500)), "500 ms");
        assert_eq!(format_duration(Duration::from_secs(30)), "30 s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2 min");
        assert_eq!(format_duration(Duration::from_millis(2500)), "2.5 s");
    }
}
