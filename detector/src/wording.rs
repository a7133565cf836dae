//! The words lockwatch writes: every label, note and help line a renderer shows, and the
//! summaries and help lines of the reports themselves, apart from the algorithms that decide
//! what they say.
//!
//! A resource is always named through [`crate::resource_label`]/[`crate::resource_phrase`], a
//! thread through [`crate::thread_label`], so that one resource or thread reads the same in
//! every format.

mod findings;

pub(crate) use findings::{join_and, order_help, FindingText};

use crate::model::{
    thread_label, CycleEdge, Frame, Hold, Location, Op, Report, ReportKind, ResourceKind,
    ThreadReport, ThreadState, WaitingFor,
};

/// How a kind of finding is named in running text ("lock order inversion").
pub(crate) fn kind_title(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Deadlock => "deadlock",
        ReportKind::Stall => "stall",
        ReportKind::LockOrderInversion => "lock order inversion",
        ReportKind::LongWait => "long wait",
        ReportKind::Hang => "hang",
    }
}

/// A one-line description of each kind of finding, for SARIF's rule list.
pub(crate) fn kind_description(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Deadlock => {
            "Threads wait for each other in a cycle: none of them can ever run again."
        }
        ReportKind::Stall => {
            "Threads wait for an event, condition or barrier that nothing left running can \
             signal."
        }
        ReportKind::LockOrderInversion => {
            "Locks were taken in opposite orders on different paths: a deadlock waiting to \
             happen, even if this run did not freeze."
        }
        ReportKind::LongWait => "A thread waited longer than LOCKWATCH_LONG_WAIT_MS.",
        ReportKind::Hang => {
            "The command outlived lockwatch run's --timeout; the dump shows what every thread \
             was doing."
        }
    }
}

/// What to do about each kind of finding, for SARIF's rule help.
pub(crate) fn kind_help(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Deadlock => {
            "Break the cycle: take the locks in one order on every path, do not re-lock a \
             non-reentrant lock, and do not wait for a thread or task that waits for you. The \
             report's help lines name the change for this cycle."
        }
        ReportKind::Stall => {
            "Make sure the code that sets, notifies or arrives runs on every path and is not \
             itself waiting, or wait with a timeout."
        }
        ReportKind::LockOrderInversion => {
            "Choose one order for these locks and acquire them in that order on every path."
        }
        ReportKind::LongWait => {
            "Look at what the holder is doing: it may be blocked itself, or hold the lock \
             across slow work."
        }
        ReportKind::Hang => {
            "Read the threads' waits and backtraces: a thread spinning or blocked outside \
             lockwatch's primitives is the likely cause."
        }
    }
}

/// Whether a report is headlined as a warning (a potential problem the program survives),
/// unless the program handles it as an error.
pub(crate) fn is_warning(kind: ReportKind, as_error: bool) -> bool {
    !as_error && matches!(kind, ReportKind::LockOrderInversion | ReportKind::LongWait)
}

/// The headline after `error[kind]: `: the summary, without a leading repetition of the kind.
pub(crate) fn headline(report: &Report) -> &str {
    let title = kind_title(report.kind);
    report
        .summary
        .strip_prefix(title)
        .and_then(|s| s.strip_prefix(": "))
        .unwrap_or(&report.summary)
}

/// A resource of the report by id: its label, or `#id` when the report does not list it.
pub(crate) fn resource(report: &Report, id: u64) -> String {
    match report.resource(id) {
        Some(r) => r.label(),
        None => format!("#{id}"),
    }
}

/// A thread of the report by id: its label (name or `#id`).
pub(crate) fn thread(report: &Report, id: u64) -> String {
    let name = report.thread(id).and_then(|t| t.name.as_deref());
    thread_label(name, id)
}

/// The thread that created an order edge, by the name the edge carries.
fn edge_thread(thread: u64, thread_name: Option<&str>) -> String {
    thread_label(thread_name, thread)
}

/// "waiting for", "waiting to read", ...: how a wait of `op` reads before the resource.
fn waiting_verb(op: Op) -> &'static str {
    match op {
        Op::Lock | Op::Acquire => "waiting for",
        Op::Read => "waiting to read",
        Op::Write => "waiting to write",
        Op::Wait => "waiting on",
        Op::Join => "waiting to join",
        Op::Result => "waiting for the result of",
        Op::Barrier => "waiting at",
    }
}

/// The threads that stand between a wait and its end: those holding the resource (for a read,
/// only writers hold it up) and, from the cycle, those it is queued behind.
fn blockers(report: &Report, t: &ThreadReport, w: &WaitingFor) -> (Vec<u64>, Vec<u64>) {
    let holds = |id: u64| {
        report.thread(id).is_some_and(|h| {
            h.holds
                .iter()
                .any(|x| x.resource == w.resource && (w.op != Op::Read || x.op == Op::Write))
        })
    };
    let mut held_by: Vec<u64> = Vec::new();
    let mut queued: Vec<u64> = Vec::new();
    for e in &report.cycle {
        if let CycleEdge::Wait {
            thread, held_by: h, ..
        } = e
        {
            if *thread == t.id {
                if holds(*h) {
                    held_by.push(*h);
                } else {
                    queued.push(*h);
                }
            }
        }
    }
    if matches!(w.op, Op::Lock | Op::Read | Op::Write | Op::Acquire) {
        for other in &report.threads {
            if holds(other.id) && !held_by.contains(&other.id) {
                held_by.push(other.id);
            }
        }
    }
    (held_by, queued)
}

/// A thread in a blocker list: "`beta`", "itself", "`loader`, which has exited".
fn blocker_name(report: &Report, waiter: u64, id: u64) -> String {
    if id == waiter {
        "itself".to_owned()
    } else if report
        .thread(id)
        .is_some_and(|h| h.state == ThreadState::Exited)
    {
        format!("`{}`, which has exited", thread(report, id))
    } else {
        format!("`{}`", thread(report, id))
    }
}

/// The label of the line where a thread waits: "thread `alpha` blocks here waiting for
/// `account B`, held by `beta`" (a long wait: "has waited 1200 ms here for ...").
pub(crate) fn wait_label(report: &Report, t: &ThreadReport, w: &WaitingFor) -> String {
    let what = resource(report, w.resource);
    let who = t.label();
    let mut label = if report.kind == ReportKind::LongWait {
        format!(
            "thread `{who}` has waited {} ms here for `{what}`",
            w.since_ms
        )
    } else if t.state == ThreadState::TimedWait {
        format!(
            "thread `{who}` is in a timed wait here, {} `{what}`",
            waiting_verb(w.op)
        )
    } else {
        format!("thread `{who}` blocks here {} `{what}`", waiting_verb(w.op))
    };
    let (held_by, queued) = blockers(report, t, w);
    let names = |ids: &[u64]| {
        let names: Vec<String> = ids.iter().map(|&h| blocker_name(report, t.id, h)).collect();
        names.join(" and ")
    };
    if !held_by.is_empty() {
        label.push_str(&format!(", held by {}", names(&held_by)));
    }
    let kind = report.resource(w.resource).map(|r| r.kind);
    // A thread joined is waited for, not queued behind: naming the resource says it all.
    if !queued.is_empty() && kind != Some(ResourceKind::Thread) {
        if kind == Some(ResourceKind::Task) {
            label.push_str(&format!(", still queued while {} is busy", names(&queued)));
        } else {
            label.push_str(&format!(", queued behind {}", names(&queued)));
        }
    }
    label
}

/// The label of the line where a thread acquired something it holds: "thread `alpha` acquired
/// `account A` here" (with the depth or permits, and "then exited" for an exited owner).
pub(crate) fn hold_label(report: &Report, t: &ThreadReport, h: &Hold) -> String {
    let mut label = format!(
        "thread `{}` acquired `{}` here",
        t.label(),
        resource(report, h.resource)
    );
    match (h.count, report.resource(h.resource).map(|r| r.kind)) {
        (0 | 1, _) => {}
        (n, Some(ResourceKind::Semaphore | ResourceKind::BoundedSemaphore)) => {
            label.push_str(&format!(" ({n} permits)"));
        }
        (n, _) => label.push_str(&format!(" (held {n} times)")),
    }
    if t.state == ThreadState::Exited {
        label.push_str(", then exited");
    }
    label
}

/// The label of the acquisition that makes an order edge: "thread `worker-a` takes `account
/// B` here while holding `account A`".
pub(crate) fn order_label(report: &Report, edge: &CycleEdge) -> Option<String> {
    let CycleEdge::Order {
        from,
        to,
        thread,
        thread_name,
        ..
    } = edge
    else {
        return None;
    };
    Some(format!(
        "thread `{}` takes `{}` here while holding `{}`",
        edge_thread(*thread, thread_name.as_deref()),
        resource(report, *to),
        resource(report, *from)
    ))
}

/// The label of where the held lock of an order edge was taken.
pub(crate) fn order_from_label(report: &Report, edge: &CycleEdge) -> Option<String> {
    let CycleEdge::Order {
        from,
        thread,
        thread_name,
        ..
    } = edge
    else {
        return None;
    };
    Some(format!(
        "thread `{}` acquired `{}` here",
        edge_thread(*thread, thread_name.as_deref()),
        resource(report, *from)
    ))
}

/// What a thread that is not blocked is doing, as a note: "thread `#1` is running".
pub(crate) fn state_note(t: &ThreadReport) -> Option<String> {
    let state = match t.state {
        ThreadState::Blocked => return None,
        ThreadState::TimedWait => "is in a timed wait",
        ThreadState::Running => "is running",
        ThreadState::Exited => "has exited",
    };
    Some(format!("thread `{}` {state}", t.label()))
}

/// The chain of a deadlock's cycle: in words for up to [`WORDED_CYCLE`] edges ("cycle: thread
/// `a` waits for `B`, held by thread `b`, which waits for `A`, held by thread `a`"), as arrows
/// beyond; for an inversion, each order with its thread.
pub(crate) fn cycle_note(report: &Report) -> Option<String> {
    let waits: Vec<(u64, u64, u64)> = report
        .cycle
        .iter()
        .filter_map(|e| match e {
            CycleEdge::Wait {
                thread,
                waits_for,
                held_by,
            } => Some((*thread, *waits_for, *held_by)),
            CycleEdge::Order { .. } => None,
        })
        .collect();
    if waits.len() > WORDED_CYCLE {
        let mut chain: Vec<String> = Vec::new();
        for &(t, r, _) in &waits {
            chain.push(format!("`{}`", thread(report, t)));
            chain.push(format!("`{}`", resource(report, r)));
        }
        if let Some(&(_, _, last)) = waits.last() {
            chain.push(format!("`{}`", thread(report, last)));
        }
        return Some(format!(
            "cycle of {} threads (each waits for the resource after it, which the next one \
             holds):\n  {}",
            waits.len(),
            chain.join(" → ")
        ));
    }
    if !waits.is_empty() {
        let parts: Vec<String> = waits
            .iter()
            .enumerate()
            .map(|(k, &(t, r, h))| {
                let subject = if k == 0 {
                    format!("thread `{}`", thread(report, t))
                } else {
                    "which".to_owned()
                };
                let holds = report
                    .thread(h)
                    .is_some_and(|x| x.holds.iter().any(|x| x.resource == r));
                let kind = report.resource(r).map(|x| x.kind);
                if kind == Some(ResourceKind::Thread) {
                    // A join: the thread waited for is the next one of the cycle.
                    return format!(
                        "{subject} waits for thread `{}` to finish",
                        thread(report, h)
                    );
                }
                let releaser = if t == h {
                    "held by itself".to_owned()
                } else if holds {
                    format!("held by thread `{}`", thread(report, h))
                } else if kind == Some(ResourceKind::Task) {
                    format!("queued while thread `{}` is busy", thread(report, h))
                } else {
                    format!("queued behind thread `{}`", thread(report, h))
                };
                format!("{subject} waits for `{}`, {releaser}", resource(report, r))
            })
            .collect();
        return Some(format!("cycle: {}", parts.join(", ")));
    }
    let orders: Vec<String> = report
        .cycle
        .iter()
        .filter_map(|e| match e {
            CycleEdge::Order {
                from,
                to,
                thread,
                thread_name,
                ..
            } => Some(format!(
                "`{}` before `{}` (thread `{}`)",
                resource(report, *from),
                resource(report, *to),
                edge_thread(*thread, thread_name.as_deref())
            )),
            CycleEdge::Wait { .. } => None,
        })
        .collect();
    (!orders.is_empty()).then(|| format!("lock order taken: {}", orders.join(", ")))
}

/// The longest cycle [`cycle_note`] spells out in words.
const WORDED_CYCLE: usize = 3;

/// The interleaving of an inversion that would freeze, one column per thread (after lockdep's
/// "possible unsafe locking scenario"): every thread takes its first lock, then each asks for
/// its second. Several lines; `None` when the report has no order edges.
pub(crate) fn interleaving(report: &Report) -> Option<String> {
    let edges: Vec<(u64, u64, String)> = report
        .cycle
        .iter()
        .filter_map(|e| match e {
            CycleEdge::Order {
                from,
                to,
                thread,
                thread_name,
                ..
            } => Some((*from, *to, edge_thread(*thread, thread_name.as_deref()))),
            CycleEdge::Wait { .. } => None,
        })
        .collect();
    if edges.is_empty() {
        return None;
    }
    let mut headers: Vec<String> = Vec::new();
    for (_, _, who) in &edges {
        let mut h = who.clone();
        let mut n = 1;
        while headers.contains(&h) {
            n += 1;
            h = format!("{who} ({n})");
        }
        headers.push(h);
    }
    let call = |id: u64| {
        let verb = match report.resource(id).map(|r| r.kind) {
            Some(ResourceKind::Mutex | ResourceKind::ReentrantMutex | ResourceKind::RwLock)
            | None => "lock",
            Some(_) => "acquire",
        };
        format!("{verb}({});", resource(report, id))
    };
    let n = edges.len();
    let mut rows: Vec<(usize, String)> = Vec::new();
    for (k, (from, _, _)) in edges.iter().enumerate() {
        rows.push((k, call(*from)));
    }
    for (k, (_, to, _)) in edges.iter().enumerate() {
        rows.push((k, call(*to)));
    }
    let col: Vec<usize> = (0..n)
        .map(|k| {
            rows.iter()
                .filter(|(c, _)| *c == k)
                .map(|(_, s)| s.chars().count())
                .chain([headers[k].chars().count()])
                .max()
                .unwrap_or(0)
                + 4
        })
        .collect();
    let mut lines = vec![
        "possible interleaving that deadlocks:".to_owned(),
        String::new(),
    ];
    let mut head = String::new();
    let mut rule = String::new();
    for k in 0..n {
        head.push_str(&format!("{:w$}", headers[k], w = col[k]));
        let dashes = "-".repeat(headers[k].chars().count());
        rule.push_str(&format!("{dashes:w$}", w = col[k]));
    }
    lines.push(head.trim_end().to_owned());
    lines.push(rule.trim_end().to_owned());
    for (c, text) in &rows {
        let offset: usize = col[..*c].iter().sum();
        lines.push(format!("{}{text}", " ".repeat(offset)));
    }
    lines.push(String::new());
    lines.push("*** DEADLOCK ***".to_owned());
    Some(lines.join("\n"))
}

/// The frames worth showing: lockwatch's own, the standard library's and the runtime's start
/// frames are left out (the runtime removes most already; saved reports may be older).
pub(crate) fn shown_frames(frames: &[Frame]) -> Vec<&Frame> {
    const HIDDEN: &[&str] = &[
        "std::",
        "core::",
        "alloc::",
        "lockwatch::",
        "lockwatch_detector::",
        "backtrace::",
        "parking_lot::",
        "parking_lot_core::",
        "lock_api::",
        "__rust",
        "_start",
        "__libc_start",
        "start_thread",
        "clone",
        "<std::",
        "<core::",
        "<alloc::",
        "<lockwatch::",
    ];
    frames
        .iter()
        .filter(|f| !HIDDEN.iter().any(|h| f.function.starts_with(h)))
        .collect()
}

/// A backtrace in a few lines: "backtrace of `worker-a`:" then `function (file:line)` per frame,
/// innermost first, at most [`MAX_FRAMES`] of them.
pub(crate) fn backtrace_note(whose: &str, frames: &[Frame]) -> Option<String> {
    let shown = shown_frames(frames);
    if shown.is_empty() {
        return None;
    }
    let mut lines = vec![format!("backtrace of {whose}:")];
    for f in shown.iter().take(MAX_FRAMES) {
        lines.push(format!("  {}", frame_text(f)));
    }
    if shown.len() > MAX_FRAMES {
        lines.push(format!("  ... {} more frames", shown.len() - MAX_FRAMES));
    }
    Some(lines.join("\n"))
}

/// The backtrace notes of several threads, threads with the same (shown) frames in one note:
/// eight philosophers at the same line read as one backtrace, not eight. Each entry is whose
/// frames they are, already quoted ("`worker-a`").
pub(crate) fn backtrace_notes(threads: &[(String, &[Frame])]) -> Vec<String> {
    let mut groups: Vec<(Vec<&Frame>, Vec<&str>)> = Vec::new();
    for (who, frames) in threads {
        let shown = shown_frames(frames);
        if shown.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(f, _)| *f == shown) {
            Some((_, whose)) => whose.push(who),
            None => groups.push((shown, vec![who])),
        }
    }
    groups
        .into_iter()
        .filter_map(|(frames, whose)| {
            let whose: Vec<String> = whose.iter().map(|w| (*w).to_owned()).collect();
            let whose = match whose.len() {
                1..=3 => join_and(&whose),
                n => format!("{} and {} more threads", whose[..2].join(", "), n - 2),
            };
            let frames: Vec<Frame> = frames.into_iter().cloned().collect();
            backtrace_note(&whose, &frames)
        })
        .collect()
}

/// How many frames a backtrace note shows.
pub(crate) const MAX_FRAMES: usize = 8;

/// One frame: "abba::worker_a (examples/abba.rs:21)".
pub(crate) fn frame_text(f: &Frame) -> String {
    match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{} ({file}:{line})", f.function),
        (Some(file), None) => format!("{} ({file})", f.function),
        _ => f.function.clone(),
    }
}

/// A location for a renderer that cannot quote the source: "examples/abba.rs:21:23: label".
pub(crate) fn located(loc: &Location, label: &str) -> String {
    format!("{loc}: {label}")
}

/// The wording of an order edge's site in the help of an inversion, used by the order graph
/// and by the cross-process merge (which names the thread's process).
pub(crate) fn reverse_acquisition_help(
    thread: &str,
    process: Option<u32>,
    taken: &str,
    held: &str,
    at: &Location,
) -> String {
    let in_process = process.map_or(String::new(), |p| format!(" of process {p}"));
    format!(
        "thread `{thread}`{in_process} takes {taken} while holding {held} at {at}: reverse this \
         acquisition"
    )
}

/// The summary of an inversion found across processes; `path` already closes the cycle.
pub(crate) fn cross_process_summary(path: &[String], processes: usize) -> String {
    format!(
        "lock order inversion: {} across {processes} process{}",
        path.join(" → "),
        if processes == 1 { "" } else { "es" }
    )
}

/// Why nobody reported an inversion found across processes, and what it means.
pub(crate) const CROSS_PROCESS_HELP: &str = "no single process took every edge of this cycle, \
     so none reported it; a process that runs all of these paths can deadlock";

/// The summary of a lock-order inversion: "lock order inversion: `A` → `B` → `A` across 2
/// threads"; `path` already closes the cycle.
pub(crate) fn inversion_summary(path: &[String], threads: usize) -> String {
    format!(
        "lock order inversion: {} across {threads} thread{}",
        path.join(" → "),
        if threads == 1 { "" } else { "s" }
    )
}
