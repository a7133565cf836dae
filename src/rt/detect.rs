//! Detection: graph reduction on a snapshot, confirmed on a second snapshot, by one scanner at
//! a time.
//!
//! # Who does what
//!
//! - A thread that registers an untimed wait only asks for a scan ([`scan_blocked`]) and goes
//!   on to block: it never scans, renders, writes or runs the user's handler, so nothing it
//!   does there can hide (or join) the wait it is in.
//! - The watchdog thread (`lockwatch-watchdog`) is the scanner. It scans when asked, and every
//!   `LOCKWATCH_WATCHDOG_MS` while some thread waits. Requests that arrive while a scan runs
//!   are all served by the next one: with a thousand threads blocking at once there are a few
//!   scans, each with one shared snapshot per step, not a thousand.
//! - A scan claims each confirmed finding not claimed before (in [`Reported`]) and hands it to
//!   the reporter thread (`lockwatch-reporter`, in `report`) with what the report needs copied
//!   from the live graph; the reporter builds, prints and writes in claim order and applies
//!   the policy (the verdict of policy `panic` goes to the waiting thread); the handler thread
//!   (`lockwatch-handler`) calls the user's handler, in the same order.
//! - `lockwatch::check()` scans on its caller's thread, in turn with the watchdog, and returns
//!   what it claims without printing it; under policy `abort` the reporter runs a last scan
//!   before the exit.
//!
//! # Lock order
//!
//! A thread holding one of these locks (fields of [`Detection`] and of the `Runtime`) only
//! takes locks further down a line, never up:
//!
//! ```text
//! scanner → verdicts → runtime graph → runtime exited    (target choice, trace copies)
//! scanner → verdicts → reported                          (claims)
//! scanner → report queue                                 (hand-off to the reporter)
//! scanner → long_reported
//! requests                                               (leaf: nothing taken under it)
//! ```
//!
//! No lock of this module is held while user code runs; a thread blocked in a wait holds none
//! of them (it may wait on `REQUESTS` and `VERDICTS` through their condition variables only).

use super::graph::{self, snapshot, ReportTraces};
use super::registry;
use super::report::{self, Draft, Emitted};
use super::runtime::runtime;
use crate::config;
use crate::diag::diag;
use lockwatch_detector::reduce::{self, Finding};
use lockwatch_detector::snapshot::{Snapshot, ThreadSnap};
use lockwatch_detector::Report;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, HashSet};
use std::sync::Once;
use std::time::{Duration, Instant};

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

#[derive(Clone, PartialEq, Eq, Hash)]
enum Identity {
    Cycle(FindingKey),
    Stall(FindingKey),
}

/// A snapshot with its threads indexed by id: a scan looks threads up once per finding edge,
/// and a thousand findings over a thousand threads made the linear lookups add up.
struct Indexed {
    snapshot: Snapshot,
    threads: HashMap<u64, usize>,
}

impl Indexed {
    fn new(snapshot: Snapshot) -> Indexed {
        let threads = snapshot
            .threads
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i))
            .collect();
        Indexed { snapshot, threads }
    }

    fn thread(&self, id: u64) -> Option<&ThreadSnap> {
        self.threads.get(&id).map(|&i| &self.snapshot.threads[i])
    }

    /// The sequence number of `thread`'s wait (0 if it is not waiting).
    fn wait_seq(&self, thread: u64) -> u64 {
        self.thread(thread)
            .and_then(|t| t.wait.as_ref())
            .map_or(0, |w| w.seq)
    }

    fn identity(&self, finding: &Finding) -> Identity {
        if finding.cycle.is_empty() {
            return Identity::Stall(finding.key.clone());
        }
        // A chain that ends at an exited owner is known by the owner and the leaked resources
        // its threads wait on: the same however many threads queue up behind them later, and
        // whichever of them the chain starts from; new when a thread comes to wait on another
        // of them.
        if let Some(last) = finding.cycle.last() {
            let owner = self
                .thread(last.held_by)
                .filter(|t| t.state == lockwatch_detector::ThreadState::Exited);
            if let Some(owner) = owner {
                let leaked: HashSet<u64> = owner.holds.iter().map(|h| h.resource).collect();
                let mut key: FindingKey = vec![(owner.id, u64::MAX)];
                key.extend(
                    finding
                        .threads
                        .iter()
                        .filter_map(|&t| self.thread(t)?.wait.as_ref())
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
                let wait = self.thread(edge.thread)?.wait.as_ref()?;
                Some((edge.thread, wait.seq))
            })
            .collect();
        key.sort_unstable();
        key.dedup();
        Identity::Cycle(key)
    }

    /// The part of the snapshot a report of `threads` reads: those threads and the resources
    /// their waits and holds name. A report keeps only this, so a thousand findings queued for
    /// the reporter do not keep a thousand copies of everything.
    fn trimmed(&self, threads: &[u64]) -> Snapshot {
        let mut kept: Vec<ThreadSnap> = threads
            .iter()
            .filter_map(|&t| self.thread(t))
            .cloned()
            .collect();
        kept.sort_by_key(|t| t.id);
        kept.dedup_by_key(|t| t.id);
        let named: HashSet<u64> = kept
            .iter()
            .flat_map(|t| {
                t.wait
                    .iter()
                    .map(|w| w.resource)
                    .chain(t.holds.iter().map(|h| h.resource))
            })
            .collect();
        Snapshot {
            threads: kept,
            resources: self
                .snapshot
                .resources
                .iter()
                .filter(|r| named.contains(&r.id))
                .cloned()
                .collect(),
            unknown_threads_can_run: self.snapshot.unknown_threads_can_run,
        }
    }
}

/// Detection's state: claimed findings, the scanner's turn, scan requests, verdict windows, the watchdog.
pub(crate) struct Detection {
    /// Findings already claimed (reported, or returned by `check`).
    reported: Mutex<Option<Reported>>,
    /// Waits already reported as long.
    long_reported: Mutex<Option<HashSet<u64>>>,
    /// One scan at a time: the watchdog's, `check()`'s, and the reporter's last scan under
    /// `abort`. Held for the whole scan, pause included.
    scanner: Mutex<()>,
    requests: Mutex<Requests>,
    /// Wakes the watchdog for a request.
    requested: Condvar,
    /// Wakes threads waiting for a scan to be done.
    scanned: Condvar,
    verdicts: Mutex<Windows>,
    verdict_posted: Condvar,
    watchdog: Once,
}

impl Detection {
    pub(crate) const fn new() -> Detection {
        Detection {
            reported: Mutex::new(None),
            long_reported: Mutex::new(None),
            scanner: Mutex::new(()),
            requests: Mutex::new(Requests {
                requested: 0,
                done: 0,
            }),
            requested: Condvar::new(),
            scanned: Condvar::new(),
            verdicts: Mutex::new(Windows {
                awaiting: Vec::new(),
                promised: Vec::new(),
            }),
            verdict_posted: Condvar::new(),
            watchdog: Once::new(),
        }
    }
}

fn detection() -> &'static Detection {
    &runtime().detection
}

fn already_reported(key: &Identity) -> bool {
    detection()
        .reported
        .lock()
        .as_ref()
        .is_some_and(|r| r.contains(key))
}

/// Marks a finding claimed; false if it already was.
fn claim(key: &Identity) -> bool {
    let mut reported = detection().reported.lock();
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

/// What one scan confirmed, on its confirming snapshot.
struct Confirmation {
    snapshot: Indexed,
    findings: Vec<Confirmed>,
    /// When the confirming snapshot was taken: the time of detection, not of the report.
    detected_at_ms: u64,
}

impl Confirmation {
    /// What the reporter needs to build the report of `finding`, copied now, while its
    /// threads' waits are still registered.
    fn draft(&self, finding: &Finding) -> FindingDraft {
        let snapshot = self.snapshot.trimmed(&finding.threads);
        let traces = graph::collect_traces(&snapshot, &finding.threads);
        FindingDraft {
            snapshot,
            finding: finding.clone(),
            traces,
            detected_at_ms: self.detected_at_ms,
        }
    }
}

/// A claimed deadlock or stall whose report is still to be built (its backtraces resolved).
pub(crate) struct FindingDraft {
    snapshot: Snapshot,
    finding: Finding,
    traces: ReportTraces,
    detected_at_ms: u64,
}

impl FindingDraft {
    pub(crate) fn build(self) -> Report {
        let FindingDraft {
            mut snapshot,
            finding,
            traces,
            detected_at_ms,
        } = self;
        traces.apply(&mut snapshot);
        let mut report =
            reduce::build_report(&snapshot, &finding, std::process::id(), detected_at_ms);
        report.relativize_frame_paths();
        report
    }
}

/// Reduction on a snapshot, then confirmation on a second one after a pause: only findings
/// whose threads are still in the very same waits are kept. The caller holds the scanner lock (`Detection::scanner`).
fn confirmed_findings() -> Option<Confirmation> {
    let candidates: HashSet<Identity> = {
        let first = snapshot();
        let findings = reduce::analyze(&first);
        if findings.is_empty() {
            // The common case: nothing is stuck, and no thread index is needed.
            return None;
        }
        let first = Indexed::new(first);
        findings
            .iter()
            .map(|f| first.identity(f))
            .filter(|key| !already_reported(key))
            .collect()
    };
    if candidates.is_empty() {
        return None;
    }
    std::thread::sleep(CONFIRM_PAUSE);
    let second = Indexed::new(snapshot());
    let detected_at_ms = report::now_ms();
    let findings: Vec<Confirmed> = reduce::analyze(&second.snapshot)
        .into_iter()
        .map(|finding| Confirmed {
            identity: second.identity(&finding),
            finding,
        })
        .filter(|c| candidates.contains(&c.identity))
        .collect();
    if findings.is_empty() {
        None
    } else {
        Some(Confirmation {
            snapshot: second,
            findings,
            detected_at_ms,
        })
    }
}

/// Scan requests: the `requested`-th request is served once `done >= requested`, by a scan
/// that began after it was made.
struct Requests {
    requested: u64,
    done: u64,
}

/// Asks the watchdog for a scan now rather than at its next period; returns the request's
/// number.
fn request_scan() -> u64 {
    let mut requests = detection().requests.lock();
    requests.requested += 1;
    let number = requests.requested;
    drop(requests);
    detection().requested.notify_one();
    number
}

/// Asks the watchdog to scan now rather than at its next period: a thread ended, a Condvar
/// waiter registered.
pub(crate) fn kick_watchdog() {
    request_scan();
}

/// The waits that can take a verdict only before they park (policy `panic`), and the
/// verdicts promised to them.
struct Windows {
    /// `(thread, wait seq)` of the waits in [`await_verdict`], not yet parked.
    awaiting: Vec<(u64, u64)>,
    /// Those whose finding a scan claimed, naming them to panic: the reporter posts their
    /// verdict once the report is out.
    promised: Vec<(u64, u64)>,
}

/// How long a wait in its window waits for the scan it asked for.
const SCAN_BOUND: Duration = Duration::from_secs(2);
/// How long it waits for a promised verdict: the report is built and the handler runs first.
const VERDICT_BOUND: Duration = Duration::from_secs(10);

fn panic_policy() -> bool {
    config::current().read().on_deadlock == config::OnDeadlock::Panic
}

/// A thread registered an untimed wait: it asks for a scan and goes on to block.
///
/// Under policy `panic`, a wait that cannot take a verdict once it parks (an RwLock writer
/// parks in one piece inside parking_lot) first waits here for that scan, and for the verdict
/// it brings if its wait is the one that must panic, and panics with it.
pub(crate) fn scan_blocked(current: u64) {
    let window = if panic_policy() {
        match graph::current_wait(current) {
            Some((seq, false)) => {
                detection().verdicts.lock().awaiting.push((current, seq));
                Some(seq)
            }
            _ => None,
        }
    } else {
        None
    };
    let request = request_scan();
    if let Some(seq) = window {
        if let Some(message) = await_verdict(current, seq, request) {
            // A second panic while unwinding would abort the process: the report is out, let
            // the first unwind finish.
            if !std::thread::panicking() {
                panic!("{message}");
            }
        }
    }
}

/// Waits for the scan `request` and any verdict it promised to `(thread, seq)`; closes the
/// window either way.
fn await_verdict(thread: u64, seq: u64, request: u64) -> Option<String> {
    let scanned_by = Instant::now() + SCAN_BOUND;
    {
        let mut requests = detection().requests.lock();
        while requests.done < request {
            if detection()
                .scanned
                .wait_until(&mut requests, scanned_by)
                .timed_out()
            {
                break;
            }
        }
    }
    let key = (thread, seq);
    let posted_by = Instant::now() + VERDICT_BOUND;
    {
        let mut windows = detection().verdicts.lock();
        while windows.promised.contains(&key) {
            if detection()
                .verdict_posted
                .wait_until(&mut windows, posted_by)
                .timed_out()
            {
                break;
            }
        }
        // Under the same lock as the scanner's choice: once out of `awaiting`, no scan names
        // this wait to panic (it could not).
        windows.awaiting.retain(|w| *w != key);
        windows.promised.retain(|w| *w != key);
    }
    let record = runtime().threads.get(&thread)?.clone();
    record.take_verdict(seq)
}

/// Called by the reporter once it has posted the verdict for `(thread, seq)`.
pub(crate) fn verdict_posted(thread: u64, seq: u64) {
    detection()
        .verdicts
        .lock()
        .promised
        .retain(|w| *w != (thread, seq));
    detection().verdict_posted.notify_all();
}

/// How old a wait that cannot take a verdict may be and still be left to the scan it asked
/// for (see [`panic_target`]).
const ITS_OWN_SCAN_MS: u64 = 500;

/// The wait that panics under policy `panic`: the one that closed the cycle, unless it cannot
/// take a verdict (an RwLock writer parked in one piece); then another wait of the finding that
/// can. `None`: the finding is left for a later scan.
///
/// A wait that can take a verdict only in its window before it parks may not have opened that
/// window yet (it registers, then opens it and asks for a scan). The scan it asks for finds it
/// in its window; until then, and for at most [`ITS_OWN_SCAN_MS`] (it cannot miss it, but the
/// cost of a miss would be a silent hang), a finding no other wait can panic for is left alone.
/// After that it is reported without the panic.
fn panic_target(found: &Indexed, finding: &Finding, windows: &Windows) -> Option<(u64, u64)> {
    let candidates = std::iter::once(finding.closing_thread)
        .chain(finding.cycle.iter().map(|e| e.thread))
        .chain(finding.threads.iter().copied());
    for thread in candidates {
        let seq = found.wait_seq(thread);
        if windows.awaiting.contains(&(thread, seq)) || graph::takes_verdicts(thread, seq) {
            return Some((thread, seq));
        }
    }
    let closing = finding.closing_thread;
    let young = found
        .thread(closing)
        .and_then(|t| t.wait.as_ref())
        .is_some_and(|w| w.since_ms < ITS_OWN_SCAN_MS);
    (!young).then(|| (closing, found.wait_seq(closing)))
}

/// Claims every confirmed finding not claimed before and hands it to the reporter.
fn scan_and_report() {
    let _scanner = detection().scanner.lock();
    for (draft, verdict) in claim_for_delivery() {
        report::submit(
            Draft::Later(Box::new(move || draft.build())),
            Emitted::Stuck { verdict },
        );
    }
}

/// Claims every confirmed finding not claimed before, each with the verdict its delivery
/// carries under policy `panic` (a finding no thread of which can take a verdict now is left
/// for a later scan). The caller holds the scanner lock.
fn claim_for_delivery() -> Vec<(FindingDraft, Option<(u64, u64)>)> {
    let Some(found) = confirmed_findings() else {
        return Vec::new();
    };
    let panic_policy = panic_policy();
    let mut claimed = Vec::new();
    for Confirmed { finding, identity } in &found.findings {
        let verdict = if panic_policy {
            let mut windows = detection().verdicts.lock();
            let Some(target) = panic_target(&found.snapshot, finding, &windows) else {
                continue;
            };
            if !claim(identity) {
                continue;
            }
            if windows.awaiting.contains(&target) {
                windows.promised.push(target);
            }
            Some(target)
        } else {
            if !claim(identity) {
                continue;
            }
            None
        };
        claimed.push((found.draft(finding), verdict));
    }
    claimed
}

/// Under policy `abort`, right before the exit: every finding that exists now and was not
/// claimed yet (a scan in progress claims its findings first: it is waited for, within a
/// bound). No verdicts under `abort`.
pub(crate) fn final_scan() -> Vec<FindingDraft> {
    let Some(_scanner) = detection().scanner.try_lock_for(Duration::from_secs(2)) else {
        return Vec::new();
    };
    claim_for_delivery()
        .into_iter()
        .map(|(draft, _)| draft)
        .collect()
}

/// Scan by the watchdog.
fn scan_watchdog() {
    scan_and_report();
    check_long_waits();
}

fn check_long_waits() {
    let Some(threshold) = config::current().read().long_wait else {
        return;
    };
    let _scanner = detection().scanner.lock();
    let threshold_ms = threshold.as_millis() as u64;
    let snapshot = snapshot();
    // Forget waits that have ended, so the table stays as small as the set of current waits.
    if let Some(reported) = detection().long_reported.lock().as_mut() {
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
        if !detection()
            .long_reported
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
        let traces = graph::collect_traces(&snapshot, &involved);
        let waiter = thread.id;
        report::submit(
            Draft::Later(Box::new(move || {
                traces.apply(&mut snapshot);
                let mut report =
                    reduce::long_wait_report(&snapshot, waiter, std::process::id(), detected_at_ms);
                report.relativize_frame_paths();
                report
            })),
            Emitted::Warning,
        );
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

/// `lockwatch::check()`: a scan on demand, on the caller's thread (in turn with the
/// watchdog's). Findings are returned, and delivered as the watchdog's are.
pub(crate) fn check() -> Vec<Report> {
    // A bug in the analysis must not become a panic in the caller.
    let claimed = std::panic::catch_unwind(|| {
        let _scanner = detection().scanner.lock();
        claim_for_delivery()
    });
    let Ok(claimed) = claimed else {
        diag!("lockwatch: internal error: a scan panicked; the program continues");
        return Vec::new();
    };
    claimed
        .into_iter()
        .filter_map(|(draft, verdict)| {
            match std::panic::catch_unwind(|| {
                let mut report = draft.build();
                report::annotate(&mut report);
                report
            }) {
                Ok(report) => {
                    // Delivered like any finding (printed, written, handled, the policy
                    // applied): the caller's scan only came first.
                    report::submit(Draft::Ready(report.clone()), Emitted::Stuck { verdict });
                    Some(report)
                }
                Err(_) => {
                    diag!("lockwatch: internal error: building a report panicked");
                    None
                }
            }
        })
        .collect()
}

/// How many threads have a registered wait (for benchmarks that wait for them all).
pub(crate) fn waiting_thread_count() -> usize {
    runtime().graph.lock().waiting_count()
}

/// Starts lockwatch's own threads, the watchdog and the delivery threads (see
/// [`report::ensure_started`]), on the first registered wait: a program that never waits never
/// pays for them. Returns once they count as lockwatch's own (see
/// [`registry::spawn_internal`]).
pub(crate) fn ensure_watchdog() {
    detection().watchdog.call_once(|| {
        // What delivery needs of the scanner, handed over before any report can be made.
        report::connect_scanner(report::ScannerHooks {
            last_scan: || {
                final_scan()
                    .into_iter()
                    .map(|draft| Draft::Later(Box::new(move || draft.build())))
                    .collect()
            },
            verdict_posted,
        });
        report::ensure_started();
        registry::spawn_internal(&[("lockwatch-watchdog", || {}, watchdog_main)]);
    });
}

fn watchdog_main() {
    loop {
        let period = config::current().read().watchdog_period;
        let serving = {
            // Sleeps one period, or less when a thread asks for a scan. Every request made
            // until the scan starts is served by it.
            let mut requests = detection().requests.lock();
            if requests.requested == requests.done {
                detection().requested.wait_for(&mut requests, period);
            }
            requests.requested
        };
        if runtime().graph.lock().waiting_count() > 0 {
            // A bug in a scan must not end detection for the rest of the process.
            if std::panic::catch_unwind(scan_watchdog).is_err() {
                diag!("lockwatch: error: a watchdog scan panicked; detection continues");
            }
        }
        detection().requests.lock().done = serving;
        detection().scanned.notify_all();
    }
}
