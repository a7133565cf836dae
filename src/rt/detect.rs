//! Detection: graph reduction on a snapshot, confirmed on a second snapshot, run by the thread
//! that blocks and re-run by the watchdog.

use super::graph::{self, snapshot};
use super::registry;
use super::report::{self, Emitted};
use crate::config;
use lockwatch_detector::reduce::{self, Finding};
use lockwatch_detector::snapshot::Snapshot;
use lockwatch_detector::Report;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Once;
use std::time::Duration;

/// How long to wait before re-taking the snapshot that confirms a finding. A release racing
/// with the first snapshot shows up as a changed or vanished wait in the second.
const CONFIRM_PAUSE: Duration = Duration::from_millis(10);

/// What makes a finding the same finding: `(thread, wait seq)` pairs.
type FindingKey = Vec<(u64, u64)>;

#[derive(Default)]
struct Reported {
    /// Deadlocks, by the waits of the threads on their cycle: threads that later block behind
    /// the cycle do not make it a new deadlock.
    cycles: HashSet<FindingKey>,
    /// Every wait of every reported stall: a stall that grows is the same stall.
    stalled_waits: HashSet<(u64, u64)>,
}

impl Reported {
    fn contains(&self, key: &Identity) -> bool {
        match key {
            Identity::Cycle(k) => self.cycles.contains(k),
            Identity::Stall(k) => k.iter().any(|w| self.stalled_waits.contains(w)),
        }
    }

    fn insert(&mut self, key: Identity) {
        match key {
            Identity::Cycle(k) => {
                self.cycles.insert(k);
            }
            Identity::Stall(k) => self.stalled_waits.extend(k),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Identity {
    Cycle(FindingKey),
    Stall(FindingKey),
}

fn identity(snapshot: &Snapshot, finding: &Finding) -> Identity {
    if finding.cycle.is_empty() {
        return Identity::Stall(finding.key.clone());
    }
    // A chain that ends at an exited owner is known by the owner and the leaked resources its
    // threads wait on: the same however many threads queue up behind them later, and whichever
    // of them the chain starts from; new when a thread comes to wait on another of them.
    if let Some(last) = finding.cycle.last() {
        let owner = snapshot
            .thread(last.held_by)
            .filter(|t| t.state == lockwatch_detector::ThreadState::Exited);
        if let Some(owner) = owner {
            let leaked: HashSet<u64> = owner.holds.iter().map(|h| h.resource).collect();
            let mut key: FindingKey = vec![(owner.id, u64::MAX)];
            key.extend(
                finding
                    .threads
                    .iter()
                    .filter_map(|&t| snapshot.thread(t)?.wait.as_ref())
                    .filter(|w| leaked.contains(&w.resource))
                    .map(|w| (owner.id, w.resource)),
            );
            key.sort_unstable();
            key.dedup();
            return Identity::Cycle(key);
        }
    }
    let mut key: FindingKey = finding
        .cycle
        .iter()
        .filter_map(|edge| {
            let wait = snapshot.thread(edge.thread)?.wait.as_ref()?;
            Some((edge.thread, wait.seq))
        })
        .collect();
    key.sort_unstable();
    key.dedup();
    Identity::Cycle(key)
}

/// Findings already reported.
static REPORTED: Mutex<Option<Reported>> = Mutex::new(None);
/// Waits already reported as long.
static LONG_REPORTED: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

fn already_reported(key: &Identity) -> bool {
    REPORTED.lock().as_ref().is_some_and(|r| r.contains(key))
}

/// Marks a finding reported; false if it already was.
fn claim(key: &Identity) -> bool {
    let mut reported = REPORTED.lock();
    let reported = reported.get_or_insert_with(Reported::default);
    if reported.contains(key) {
        return false;
    }
    reported.insert(key.clone());
    true
}

/// A confirmed finding with its identity.
struct Confirmed {
    finding: Finding,
    identity: Identity,
}

/// Reduction on a snapshot, then confirmation on a second one after a pause: only findings
/// whose threads are still in the very same waits are kept.
fn confirmed_findings() -> Option<(Snapshot, Vec<Confirmed>)> {
    let first = snapshot();
    let candidates: Vec<Identity> = reduce::analyze(&first)
        .iter()
        .map(|f| identity(&first, f))
        .filter(|key| !already_reported(key))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    std::thread::sleep(CONFIRM_PAUSE);
    let second = snapshot();
    let confirmed: Vec<Confirmed> = reduce::analyze(&second)
        .into_iter()
        .map(|finding| Confirmed {
            identity: identity(&second, &finding),
            finding,
        })
        .filter(|c| candidates.contains(&c.identity))
        .collect();
    if confirmed.is_empty() {
        None
    } else {
        Some((second, confirmed))
    }
}

/// The thread that panics under policy `panic`: the one whose wait closed the cycle, unless it
/// cannot take a verdict (an RwLock writer parks in one piece); then another thread of the
/// finding that can. The scanning thread itself can always panic.
fn panic_target(snapshot: &Snapshot, finding: &Finding, current: u64) -> (u64, u64) {
    let candidates = std::iter::once(finding.closing_thread)
        .chain(finding.cycle.iter().map(|e| e.thread))
        .chain(finding.threads.iter().copied());
    for thread in candidates {
        let seq = wait_seq(snapshot, thread);
        if thread == current || graph::takes_verdicts(thread, seq) {
            return (thread, seq);
        }
    }
    (
        finding.closing_thread,
        wait_seq(snapshot, finding.closing_thread),
    )
}

/// Whether a finding whose thread must panic is better left for that thread to report: one
/// that cannot take a verdict (an RwLock writer parks in one piece) and is not the scanning
/// thread would never panic if another thread claimed the finding first. It reports the
/// finding itself from the scan it runs when it registers its wait; only if that has not
/// happened after a while (it cannot be missed, but the cost of a miss would be a silent
/// hang) does another thread take it, reporting without the panic.
fn leave_to_its_thread(snapshot: &Snapshot, thread: u64, seq: u64, current: u64) -> bool {
    const ITS_OWN_SCAN: u64 = 500;
    if thread == current || graph::takes_verdicts(thread, seq) {
        return false;
    }
    snapshot
        .thread(thread)
        .and_then(|t| t.wait.as_ref())
        .is_some_and(|w| w.since_ms < ITS_OWN_SCAN)
}

/// The sequence number of `thread`'s wait in `snapshot` (0 if it is not waiting).
fn wait_seq(snapshot: &Snapshot, thread: u64) -> u64 {
    snapshot
        .thread(thread)
        .and_then(|t| t.wait.as_ref())
        .map_or(0, |w| w.seq)
}

fn build(mut snapshot: Snapshot, finding: &Finding) -> Report {
    // The time of detection (the confirming snapshot), not of the report's completion.
    let detected_at_ms = report::now_ms();
    graph::complete_for_report(&mut snapshot, &finding.threads);
    let mut report = reduce::build_report(&snapshot, finding, std::process::id(), detected_at_ms);
    report.relativize_frame_paths();
    report
}

/// Scan triggered by a thread that just registered an untimed wait.
pub(crate) fn scan_blocked(current: u64) {
    report_confirmed(current);
}

/// Scan by the watchdog.
fn scan_watchdog() {
    report_confirmed(0);
    check_long_waits();
}

/// Reports every confirmed finding not reported before; `current` is the scanning thread's
/// runtime id (0 for the watchdog), which decides who panics under policy `panic`.
fn report_confirmed(current: u64) {
    // A bug in the analysis must not become a panic in the user's `lock()`: only the policy's
    // own panic (in `emit`) may reach the caller.
    let found = std::panic::catch_unwind(|| {
        let (snapshot, findings) = confirmed_findings()?;
        let mut reports = Vec::new();
        let panic_policy = config::current().read().on_deadlock == config::OnDeadlock::Panic;
        for Confirmed { finding, identity } in &findings {
            let (panicking, seq) = panic_target(&snapshot, finding, current);
            if panic_policy && leave_to_its_thread(&snapshot, panicking, seq, current) {
                continue;
            }
            if !claim(identity) {
                continue;
            }
            reports.push((build(snapshot.clone(), finding), panicking, seq));
        }
        Some(reports)
    });
    let mut reports = match found {
        Ok(Some(reports)) => reports,
        Ok(None) => return,
        Err(_) => {
            eprintln!("lockwatch: internal error: a scan panicked; the program continues");
            return;
        }
    };
    // A report that makes this very thread panic goes last, so the others are out first.
    reports.sort_by_key(|&(_, panicking, _)| panicking == current);
    for (report, panicking, seq) in reports {
        report::emit(
            report,
            Emitted::Stuck {
                closing_thread: panicking,
                closing_seq: seq,
                current,
            },
        );
    }
}

fn check_long_waits() {
    let Some(threshold) = config::current().read().long_wait else {
        return;
    };
    let threshold_ms = threshold.as_millis() as u64;
    let snapshot = snapshot();
    // Forget waits that have ended, so the table stays as small as the set of current waits.
    if let Some(reported) = LONG_REPORTED.lock().as_mut() {
        let current: HashSet<u64> = snapshot
            .threads
            .iter()
            .filter_map(|t| t.wait.as_ref().map(|w| w.seq))
            .collect();
        reported.retain(|seq| current.contains(seq));
    }
    for thread in &snapshot.threads {
        let Some(wait) = &thread.wait else { continue };
        if wait.since_ms < threshold_ms {
            continue;
        }
        if !LONG_REPORTED
            .lock()
            .get_or_insert_with(HashSet::new)
            .insert(wait.seq)
        {
            continue;
        }
        let mut snapshot = snapshot.clone();
        let mut involved = vec![thread.id];
        if let Some((owner, site)) = graph::owner_of_wait(thread.id) {
            involved.push(owner);
            mark_owner_hold(&mut snapshot, owner, wait.resource, site);
        }
        // The time of detection, not of the report's completion: `since_ms` is measured
        // at the snapshot, and resolving symbols can take a while.
        let detected_at_ms = report::now_ms();
        graph::complete_for_report(&mut snapshot, &involved);
        let mut report =
            reduce::long_wait_report(&snapshot, thread.id, std::process::id(), detected_at_ms);
        report.relativize_frame_paths();
        report::emit(report, Emitted::Warning);
    }
}

/// A running owner's holds are not in the snapshot; add the one the long wait is about.
pub(crate) fn mark_owner_hold(
    snapshot: &mut Snapshot,
    owner: u64,
    resource: u64,
    site: Option<&'static std::panic::Location<'static>>,
) {
    let Some(site) = site else { return };
    let Some(t) = snapshot.threads.iter_mut().find(|t| t.id == owner) else {
        return;
    };
    if t.holds.iter().any(|h| h.resource == resource) {
        return;
    }
    let op = match snapshot.resources.iter().find(|r| r.id == resource) {
        Some(r) if r.kind == lockwatch_detector::ResourceKind::RwLock => {
            lockwatch_detector::Op::Write
        }
        Some(r) if r.kind == lockwatch_detector::ResourceKind::Lock => {
            lockwatch_detector::Op::Acquire
        }
        _ => lockwatch_detector::Op::Lock,
    };
    t.holds.push(lockwatch_detector::snapshot::HoldSnap {
        resource,
        op,
        count: 1,
        location: site.into(),
        backtrace: Vec::new(),
    });
}

/// `lockwatch::check()`: a scan on demand. Findings are returned, not printed, and count as
/// reported.
pub(crate) fn check() -> Vec<Report> {
    let Some((snapshot, findings)) = confirmed_findings() else {
        return Vec::new();
    };
    findings
        .iter()
        .filter(|c| claim(&c.identity))
        .map(|c| build(snapshot.clone(), &c.finding))
        .collect()
}

static WATCHDOG: Once = Once::new();
static KICK: Mutex<bool> = Mutex::new(false);
static KICKED: parking_lot::Condvar = parking_lot::Condvar::new();

/// Asks the watchdog to scan now rather than at its next period: for a thread that must not
/// scan itself (a Condvar waiter holds the user's mutex between the slices of its wait).
pub(crate) fn kick_watchdog() {
    *KICK.lock() = true;
    KICKED.notify_one();
}

/// Starts the watchdog on the first registered wait: a program that never waits never pays
/// for the thread.
///
/// Returns once the watchdog counts itself as one of lockwatch's own threads. Until
/// then the OS counts a thread lockwatch cannot place, which could end any wait on a `Lock` or a
/// `Condvar`, so the first scan (run right after this) would put off such a report by a whole
/// watchdog period. Each thread counts itself from inside, once the OS counts it, so the count
/// of unknown threads is never underestimated.
pub(crate) fn ensure_watchdog() {
    WATCHDOG.call_once(|| {
        let (counted_tx, counted) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("lockwatch-watchdog".into())
            .spawn(move || watchdog_main(counted_tx));
        match spawned {
            // Bounded: a thread that cannot start in time only delays some reports.
            Ok(_) => {
                let _ = counted.recv_timeout(Duration::from_secs(1));
            }
            Err(e) => eprintln!("lockwatch: warning: could not start the watchdog thread: {e}"),
        }
    });
}

/// Counts the calling thread as one of lockwatch's own.
pub(crate) fn count_as_internal() {
    registry::mark_internal();
    registry::runtime()
        .internal_threads
        .fetch_add(1, Ordering::Relaxed);
}

fn watchdog_main(counted: std::sync::mpsc::Sender<()>) {
    count_as_internal();
    let _ = counted.send(());
    // Loading debug info takes a while the first time: do it now, before the first scan needs
    // it. A scan asked for meanwhile (a kick) runs right after; a thread that blocks scans for
    // itself. On this thread rather than a helper of its own: a helper that exits leaves the
    // OS counting a thread lockwatch no longer does, for a moment, and a scan then would put
    // off a report by a whole period.
    let _ = std::panic::catch_unwind(super::trace::warm_up);
    loop {
        let period = config::current().read().watchdog_period;
        {
            // Sleeps one period, or less when a thread asks for a scan now.
            let mut kicked = KICK.lock();
            if !*kicked {
                KICKED.wait_for(&mut kicked, period);
            }
            *kicked = false;
        }
        if registry::runtime().graph.lock().waiting_count() == 0 {
            continue;
        }
        // A bug in a scan must not end detection for the rest of the process.
        if std::panic::catch_unwind(scan_watchdog).is_err() {
            eprintln!("lockwatch: error: a watchdog scan panicked; detection continues");
        }
    }
}
