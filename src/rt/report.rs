//! Delivering findings, on lockwatch's own thread `lockwatch-reporter`: the report is built
//! (backtraces resolved), printed to stderr, written to the report directory and given to the
//! user's handler, in the order the findings were claimed; then the policy applies.
//!
//! Nothing of this runs on the thread that found or is part of a finding: a handler that takes
//! a lock a frozen thread holds blocks the reporter only (detection goes on, on the watchdog,
//! and its wait on that lock is one more wait in the graph), and a panic in any of it is caught
//! here and never reaches user code.

use super::registry;
use crate::config::{self, Config, Format, OnDeadlock};
use crate::diag::{diag, write_stderr};
use lockwatch_detector::render::TextRenderer;
use lockwatch_detector::Report;
use parking_lot::{Condvar, Mutex, RwLock};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The exit status of policy `abort`.
pub(crate) const ABORT_STATUS: i32 = 86;

type Handler = Arc<dyn Fn(&Report) + Send + Sync>;

static HANDLER: RwLock<Option<Handler>> = RwLock::new(None);
static REPORT_SEQ: AtomicU64 = AtomicU64::new(1);
/// Held while a report goes to stderr and to its file: two reports never interleave, and the
/// process does not end half-way through a file (see [`finish_at_exit`]).
static OUTPUT: Mutex<()> = Mutex::new(());

pub(crate) fn set_handler(handler: impl Fn(&Report) + Send + Sync + 'static) {
    // The old handler is dropped after the lock is released: its destructor may do anything.
    let old = HANDLER.write().replace(Arc::new(handler));
    drop(old);
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A report, or what the reporter builds it from (resolving backtraces takes a while).
pub(crate) enum Draft {
    Ready(Report),
    Later(Box<dyn FnOnce() -> Report + Send>),
}

/// What a finding is, which decides the policy that applies to it.
pub(crate) enum Emitted {
    /// A deadlock or stall. Under policy `panic`, `verdict` is the thread, and its wait, that
    /// panics once the report is out.
    Stuck { verdict: Option<(u64, u64)> },
    /// A lock-order inversion under `LOCKWATCH_LOCK_ORDER=error`, found by the calling thread's
    /// acquisition, which is the thread that panics under policy `panic`.
    Inversion,
    /// Informational (long wait, inversion under `warn`): print and go on.
    Warning,
}

impl Emitted {
    /// Whether the policy applies (a deadlock, or an inversion that counts as one).
    fn stops(&self) -> bool {
        !matches!(self, Emitted::Warning)
    }
}

struct Job {
    draft: Draft,
    how: Emitted,
    /// Set once the job is done, for a submitter that waits for it.
    delivered: Option<Arc<Delivered>>,
}

#[derive(Default)]
struct Delivered {
    done: Mutex<bool>,
    signal: Condvar,
}

impl Delivered {
    fn set(&self) {
        *self.done.lock() = true;
        self.signal.notify_all();
    }

    /// Waits until set, or until `by`; whether it was set.
    fn wait_until(&self, by: Option<Instant>) -> bool {
        let mut done = self.done.lock();
        while !*done {
            match by {
                Some(by) => {
                    if self.signal.wait_until(&mut done, by).timed_out() {
                        break;
                    }
                }
                None => self.signal.wait(&mut done),
            }
        }
        *done
    }
}

/// The reporter's queue, in claim order.
struct Queue {
    jobs: VecDeque<Job>,
    /// The reporter is delivering a job taken off the queue.
    busy: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    jobs: VecDeque::new(),
    busy: false,
});
/// Wakes the reporter for a job.
static QUEUED: Condvar = Condvar::new();
/// Signalled when the queue is empty and the reporter idle.
static IDLE: Condvar = Condvar::new();
/// The reporter thread runs: jobs are queued for it (else delivered where they arise).
static REPORTER_RUNNING: AtomicBool = AtomicBool::new(false);
/// lockwatch is ending the process (policy `abort`): its reports are out.
static EXITING: AtomicBool = AtomicBool::new(false);

thread_local! {
    static ON_REPORTER: Cell<bool> = const { Cell::new(false) };
    /// The panic of policy `panic` for an inversion this thread's acquisition found, raised by
    /// [`guard_bookkeeping`] once out of the lock-order code.
    static POLICY_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// How long a thread whose acquisition found an inversion waits for its report to be out (the
/// reporter may be stuck in a handler).
const INVERSION_BOUND: Duration = Duration::from_secs(2);
/// Under policy `abort`, how long the handlers may run once every report is written.
const HANDLER_BOUND: Duration = Duration::from_secs(5);
/// At the process's exit, how long it waits for reports still queued or being written.
const EXIT_BOUND: Duration = Duration::from_secs(1);

/// Hands a finding to the reporter (claim order is queue order).
pub(crate) fn submit(draft: Draft, how: Emitted) {
    submit_job(Job {
        draft,
        how,
        delivered: None,
    });
}

fn submit_job(job: Job) {
    super::detect::ensure_watchdog();
    if !REPORTER_RUNNING.load(Ordering::Acquire) {
        // The reporter could not start: better here than never.
        deliver(job);
        return;
    }
    QUEUE.lock().jobs.push_back(job);
    QUEUED.notify_one();
}

/// A report the lock-order code found on the calling thread, which waits for it to be out
/// (within [`INVERSION_BOUND`]: the reporter may be stuck in a handler) before it goes on, as a
/// deadlock's thread would. Under `LOCKWATCH_LOCK_ORDER=error` the policy then applies: `abort`
/// ends the process (on the reporter, which never completes this delivery), `panic` makes this
/// thread panic as it leaves [`guard_bookkeeping`].
pub(crate) fn emit(report: Report, how: Emitted) {
    let inversion = matches!(how, Emitted::Inversion);
    let message = format!("deadlock detected: {}", report.summary);
    let delivered = Arc::new(Delivered::default());
    submit_job(Job {
        draft: Draft::Ready(report),
        how,
        delivered: Some(delivered.clone()),
    });
    if ON_REPORTER.with(Cell::get) {
        // Found by a handler's own locking: the reporter delivers it after the handler returns.
        return;
    }
    let on_deadlock = config::current().read().on_deadlock;
    if inversion && on_deadlock == OnDeadlock::Abort {
        delivered.wait_until(None);
    } else {
        delivered.wait_until(Some(Instant::now() + INVERSION_BOUND));
    }
    if inversion && on_deadlock == OnDeadlock::Panic {
        let _ = POLICY_PANIC.try_with(|p| *p.borrow_mut() = Some(message));
    }
}

/// Runs lock-order bookkeeping (`f`) so that a panic inside it never reaches the user's code;
/// then raises the policy's own panic if `f` found an inversion that calls for one.
pub(crate) fn guard_bookkeeping(f: impl FnOnce()) {
    if std::panic::catch_unwind(AssertUnwindSafe(f)).is_err() {
        diag!("lockwatch: internal error: lock-order tracking panicked; the program continues");
    }
    let message = POLICY_PANIC
        .try_with(|p| p.borrow_mut().take())
        .ok()
        .flatten();
    if let Some(message) = message {
        // A second panic while unwinding would abort the process.
        if !std::thread::panicking() {
            panic!("{message}");
        }
    }
}

/// The reporter thread: delivers jobs in order, for the rest of the process.
pub(crate) fn reporter_main() {
    ON_REPORTER.with(|r| r.set(true));
    install_exit_hook();
    REPORTER_RUNNING.store(true, Ordering::Release);
    // Loading debug info takes a while the first time: do it now, before the first report
    // needs it (jobs queue up meanwhile).
    let _ = std::panic::catch_unwind(super::trace::warm_up);
    loop {
        let job = {
            let mut queue = QUEUE.lock();
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    queue.busy = true;
                    break job;
                }
                queue.busy = false;
                IDLE.notify_all();
                QUEUED.wait(&mut queue);
            }
        };
        deliver(job);
    }
}

/// Runs `f`, turning a panic into an error line: nothing the reporter does may end it.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(_) => {
            diag!("lockwatch: internal error: {what} panicked; the program continues");
            None
        }
    }
}

fn build(draft: Draft) -> Option<Report> {
    match draft {
        Draft::Ready(report) => Some(report),
        Draft::Later(build) => guarded("building a report", build),
    }
}

fn deliver(job: Job) {
    let Job {
        draft,
        how,
        delivered,
    } = job;
    let config = config::current().read().clone();
    let report = build(draft);
    if let Some(report) = &report {
        write_out(report, &how, &config);
    }
    if how.stops() && config.on_deadlock == OnDeadlock::Abort {
        abort_after(report, &config);
    }
    if let Some(report) = &report {
        call_handler(report);
    }
    if let (OnDeadlock::Panic, Emitted::Stuck { verdict: Some(v) }) = (config.on_deadlock, &how) {
        post_verdict(report.as_ref(), *v);
    }
    if let Some(delivered) = delivered {
        delivered.set();
    }
}

/// Posts the panic of policy `panic` to the thread whose wait `seq` must end in it.
fn post_verdict(report: Option<&Report>, (thread, seq): (u64, u64)) {
    // The panic's own location is in lockwatch; a test's failure output shows only the
    // message, so it names the line the thread is stuck on.
    let message = match report {
        Some(report) => {
            let stuck_at = report
                .thread(thread)
                .and_then(|t| t.waiting_for.as_ref())
                .map(|w| format!(" (this thread waits at {})", w.location))
                .unwrap_or_default();
            format!("deadlock detected: {}{stuck_at}", report.summary)
        }
        None => "deadlock detected (lockwatch could not build the report)".to_owned(),
    };
    let record = registry::runtime().threads.get(&thread).map(|r| r.clone());
    if let Some(record) = record {
        record.post_verdict(seq, message);
    }
    super::wake_for_verdict(thread, seq);
    super::detect::verdict_posted(thread, seq);
}

fn call_handler(report: &Report) {
    let handler = HANDLER.read().clone();
    if let Some(handler) = handler {
        // A panicking handler must not take the reporter with it.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| handler(report)));
    }
}

/// Policy `abort`: every deadlock and stall that exists now is written before the process
/// exits. The findings already claimed (queued) come first, then those of a last scan; the
/// handlers run only after everything is written, within [`HANDLER_BOUND`].
fn abort_after(first: Option<Report>, config: &Config) -> ! {
    let mut written: Vec<Report> = first.into_iter().collect();
    let last_scan = guarded("the last scan", super::detect::final_scan).unwrap_or_default();
    let queued: Vec<Job> = QUEUE.lock().jobs.drain(..).collect();
    let rest = queued
        .into_iter()
        .map(|job| (job.draft, job.how))
        .chain(last_scan.into_iter().map(|draft| {
            (
                Draft::Later(Box::new(move || draft.build())),
                Emitted::Stuck { verdict: None },
            )
        }));
    for (draft, how) in rest {
        if let Some(report) = build(draft) {
            write_out(&report, &how, config);
            written.push(report);
        }
    }
    let timer = std::thread::Builder::new()
        .name("lockwatch-exit".into())
        .spawn(|| {
            std::thread::sleep(HANDLER_BOUND);
            diag!(
                "lockwatch: error: the report handler did not return within {} s; exiting",
                HANDLER_BOUND.as_secs()
            );
            exit_once(ABORT_STATUS);
        });
    drop(timer);
    for report in &written {
        call_handler(report);
    }
    exit_once(ABORT_STATUS)
}

/// Ends the process with `status`, once: a second caller (the handler timer racing the
/// reporter) waits for the first to finish the exit.
fn exit_once(status: i32) -> ! {
    if EXITING.swap(true, Ordering::AcqRel) {
        loop {
            std::thread::park();
        }
    }
    std::process::exit(status)
}

/// Renders `report` for stderr and writes it there and to the report directory.
fn write_out(report: &Report, how: &Emitted, config: &Config) {
    let Some(mut text) = guarded("rendering a report", || match config.format {
        Format::Json => report.to_json(),
        Format::Text => TextRenderer {
            color: std::io::stderr().is_terminal(),
            source_root: None,
            // Under `LOCKWATCH_LOCK_ORDER=error` an inversion stops the program like a deadlock.
            as_error: matches!(how, Emitted::Inversion),
        }
        .render(report),
    }) else {
        return;
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let _output = OUTPUT.lock();
    write_stderr(text.as_bytes());
    if let Some(dir) = &config.report_dir {
        if let Some(Err(e)) = guarded("writing a report file", || write_report_file(dir, report)) {
            diag!(
                "lockwatch: error: cannot write a report to {}: {e}",
                dir.display()
            );
        }
    }
}

/// Writes `<pid>-<seq>-<kind>.json` complete or not at all: a temporary file, then a rename;
/// the temporary file is removed if anything fails.
fn write_report_file(dir: &Path, report: &Report) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let seq = REPORT_SEQ.fetch_add(1, Ordering::Relaxed);
    let name = format!("{}-{}-{}.json", report.pid, seq, report.kind.as_str());
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(report.to_json_pretty().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, dir.join(name))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Arranges for [`finish_at_exit`] to run when the process exits.
fn install_exit_hook() {
    extern "C" fn finish_reports_at_exit() {
        // Never let a panic cross the C boundary.
        let _ = std::panic::catch_unwind(finish_at_exit);
    }
    // SAFETY: `atexit` only records the function pointer; the function is `extern "C"`, takes
    // nothing and catches every panic.
    unsafe {
        libc::atexit(finish_reports_at_exit);
    }
}

/// At the process's exit (`main` returned, `std::process::exit`): the reports already claimed
/// and the one being written get out first, within [`EXIT_BOUND`] (the reporter may be stuck in
/// a handler). Not when lockwatch itself exits (its reports are out) or the exit is the
/// reporter's own (a handler that exits).
fn finish_at_exit() {
    if EXITING.load(Ordering::Acquire) || ON_REPORTER.with(Cell::get) {
        return;
    }
    let by = Instant::now() + EXIT_BOUND;
    let mut queue = QUEUE.lock();
    while queue.busy || !queue.jobs.is_empty() {
        if IDLE.wait_until(&mut queue, by).timed_out() {
            break;
        }
    }
    drop(queue);
    // A report half-written when the wait above gave up is finished before the exit.
    drop(OUTPUT.try_lock_until(by));
}
