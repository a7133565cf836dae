//! Delivering findings, on lockwatch's own threads, in the order the findings were claimed:
//! `lockwatch-reporter` builds each report (backtraces resolved), prints it to stderr, writes it
//! to the report directory and applies the policy; `lockwatch-handler` gives it to the user's
//! handler, after it is printed and, within bounds, before the policy applies.
//!
//! Nothing of this runs on the thread that found or is part of a finding, and a panic in any of
//! it is caught here and never reaches user code. A handler that blocks (it takes a lock a
//! frozen thread holds) holds up only later handler calls: detection goes on on the watchdog,
//! its wait is one more wait in the graph, and reports are still printed, written and acted on
//! (a verdict waits [`VERDICT_HANDLER_BOUND`] for the handler, an `abort` [`HANDLER_BOUND`]).

use super::runtime::runtime;
use crate::config::{self, Config, Format, OnDeadlock};
use crate::diag::{diag, write_stderr};
use lockwatch_detector::render::{self, TextRenderer};
use lockwatch_detector::Report;
use parking_lot::{Condvar, Mutex, RwLock};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The exit status of policy `abort`.
pub(crate) const ABORT_STATUS: i32 = 86;

type Handler = Arc<dyn Fn(&Report) + Send + Sync>;

/// Delivery's state: the handler, the reporter's queue, the handler's queue.
pub(crate) struct Delivery {
    /// The scanner, once it runs.
    scanner: std::sync::OnceLock<ScannerHooks>,
    /// The delivery threads are started.
    started: std::sync::Once,
    handler: RwLock<Option<Handler>>,
    report_seq: AtomicU64,
    /// Held while a report goes to stderr and to its file: two reports never interleave, and the
    /// process does not end half-way through a file (see [`finish_at_exit`]).
    output: Mutex<()>,
    queue: Mutex<Queue>,
    /// Wakes the reporter for a job.
    queued: Condvar,
    /// Signalled when the queue is empty and the reporter idle.
    idle: Condvar,
    /// The reporter thread runs: jobs are queued for it (else delivered where they arise).
    reporter_running: AtomicBool,
    /// lockwatch is ending the process (policy `abort`): its reports are out.
    exiting: AtomicBool,
    handling: Mutex<Handling>,
    to_handle: Condvar,
    handled: Condvar,
    /// The handler thread runs (else the reporter calls the handler itself).
    handler_running: AtomicBool,
}

impl Delivery {
    pub(crate) const fn new() -> Delivery {
        Delivery {
            scanner: std::sync::OnceLock::new(),
            started: std::sync::Once::new(),
            handler: RwLock::new(None),
            report_seq: AtomicU64::new(1),
            output: Mutex::new(()),
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                busy: false,
            }),
            queued: Condvar::new(),
            idle: Condvar::new(),
            reporter_running: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            handling: Mutex::new(Handling {
                reports: VecDeque::new(),
                given: 0,
                handled: 0,
            }),
            to_handle: Condvar::new(),
            handled: Condvar::new(),
            handler_running: AtomicBool::new(false),
        }
    }
}

fn delivery() -> &'static Delivery {
    &runtime().delivery
}

pub(crate) fn set_handler(handler: impl Fn(&Report) + Send + Sync + 'static) {
    // The old handler is dropped after the lock is released: its destructor may do anything.
    let old = delivery().handler.write().replace(Arc::new(handler));
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

/// Told where a report's file went (`LOCKWATCH_REPORT_DIR`), on the reporter thread.
pub(crate) type OnWritten = Box<dyn FnOnce(PathBuf) + Send>;

struct Job {
    draft: Draft,
    how: Emitted,
    /// For a submitter that updates the file later (the lock-order count, at exit).
    on_written: Option<OnWritten>,
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

thread_local! {
    /// Set on the reporter and the handler thread.
    static ON_DELIVERY_THREAD: Cell<bool> = const { Cell::new(false) };
    /// The panic of policy `panic` for an inversion this thread's acquisition found, raised by
    /// [`guard_bookkeeping`] once out of the lock-order code.
    static POLICY_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// How long a thread whose acquisition found an inversion under `LOCKWATCH_LOCK_ORDER=error`
/// and policy `panic` waits for its report to be out (the handler may be stuck).
const INVERSION_BOUND: Duration = Duration::from_secs(2);
/// Under policy `abort`, how long the handlers may run once every report is written.
const HANDLER_BOUND: Duration = Duration::from_secs(5);
/// Under policy `panic`, how long a verdict waits for the handler of its report.
const VERDICT_HANDLER_BOUND: Duration = Duration::from_secs(1);
/// At the process's exit, how long it waits for reports still queued or being written.
const EXIT_BOUND: Duration = Duration::from_secs(1);

/// Hands a finding to the reporter (claim order is queue order).
pub(crate) fn submit(draft: Draft, how: Emitted) {
    submit_job(Job {
        draft,
        how,
        on_written: None,
        delivered: None,
    });
}

fn submit_job(job: Job) {
    ensure_started();
    if !delivery().reporter_running.load(Ordering::Acquire) {
        // The reporter could not start: better here than never.
        deliver(job);
        return;
    }
    delivery().queue.lock().jobs.push_back(job);
    delivery().queued.notify_one();
}

/// A report the lock-order code found on the calling thread. A warning goes on at once (a
/// warning must not slow the program down, nor keep a burst of threads from reaching the waits
/// that deadlock them). Under `LOCKWATCH_LOCK_ORDER=error` the thread waits for the report to
/// be out, then the policy applies: `abort` ends the process (on the reporter, which never
/// completes this delivery), `panic` makes this thread panic as it leaves
/// [`guard_bookkeeping`] (after at most [`INVERSION_BOUND`]: the handler may be stuck).
pub(crate) fn emit(report: Report, how: Emitted, on_written: Option<OnWritten>) {
    if !matches!(how, Emitted::Inversion) {
        submit_job(Job {
            draft: Draft::Ready(report),
            how,
            on_written,
            delivered: None,
        });
        return;
    }
    let message = format!("deadlock detected: {}", report.summary);
    let delivered = Arc::new(Delivered::default());
    submit_job(Job {
        draft: Draft::Ready(report),
        how,
        on_written,
        delivered: Some(delivered.clone()),
    });
    if ON_DELIVERY_THREAD.with(Cell::get) {
        // Found by a handler's own locking: delivered after the handler returns.
        return;
    }
    match config::current().read().on_deadlock {
        OnDeadlock::Report => {}
        OnDeadlock::Abort => {
            delivered.wait_until(None);
        }
        OnDeadlock::Panic => {
            delivered.wait_until(Some(Instant::now() + INVERSION_BOUND));
            let _ = POLICY_PANIC.try_with(|p| *p.borrow_mut() = Some(message));
        }
    }
}

/// Waits until every report submitted so far has been printed, written and through the
/// handler, or until `by`; whether it was. For tests, which look at what the handler got.
pub(crate) fn wait_for_reports(by: Instant) -> bool {
    {
        let mut queue = delivery().queue.lock();
        while queue.busy || !queue.jobs.is_empty() {
            if delivery().idle.wait_until(&mut queue, by).timed_out() {
                return false;
            }
        }
    }
    let given = delivery().handling.lock().given;
    wait_handled(given, by)
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

/// The reporter thread exists: jobs are queued for it from now on.
/// What delivery needs of the scanner (`detect`), which sits above it: a last scan before the
/// exit of policy `abort`, and a word when a verdict is posted to a waiter.
pub(crate) struct ScannerHooks {
    /// Claims every finding that exists now.
    pub(crate) last_scan: fn() -> Vec<Draft>,
    /// The verdict for `(thread, wait seq)` is posted.
    pub(crate) verdict_posted: fn(u64, u64),
}

/// Connects the scanner, once: before it, there is no scan to run and no verdict to post.
pub(crate) fn connect_scanner(hooks: ScannerHooks) {
    let _ = delivery().scanner.set(hooks);
}

/// Starts the reporter and the handler thread, on the first report or registered wait.
pub(crate) fn ensure_started() {
    delivery().started.call_once(|| {
        super::registry::spawn_internal(&[
            ("lockwatch-reporter", reporter_ready, reporter_main),
            ("lockwatch-handler", handler_ready, handler_main),
        ]);
    });
}

fn reporter_ready() {
    install_exit_hook();
    delivery().reporter_running.store(true, Ordering::Release);
}

/// The handler thread exists: reports are queued for it from now on.
fn handler_ready() {
    delivery().handler_running.store(true, Ordering::Release);
}

/// The reporter thread: delivers jobs in order, for the rest of the process.
fn reporter_main() {
    ON_DELIVERY_THREAD.with(|r| r.set(true));
    // Loading debug info takes a while the first time: do it now, before the first report
    // needs it (jobs queue up meanwhile).
    let _ = std::panic::catch_unwind(super::trace::warm_up);
    loop {
        let job = {
            let mut queue = delivery().queue.lock();
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    queue.busy = true;
                    break job;
                }
                queue.busy = false;
                delivery().idle.notify_all();
                delivery().queued.wait(&mut queue);
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
    let mut report = match draft {
        Draft::Ready(report) => Some(report),
        Draft::Later(build) => guarded("building a report", build),
    }?;
    annotate(&mut report);
    Some(report)
}

/// What every report says about the process beyond the finding: the test it ran in under
/// cargo-nextest (`NEXTEST_TEST_NAME`), so a CI reader knows which test froze.
pub(crate) fn annotate(report: &mut Report) {
    if report.test.is_none() {
        report.test = std::env::var("NEXTEST_TEST_NAME")
            .ok()
            .filter(|name| !name.is_empty());
    }
}

fn deliver(job: Job) {
    let Job {
        draft,
        how,
        on_written,
        delivered,
    } = job;
    let config = config::current().read().clone();
    let report = build(draft).map(Arc::new);
    if let Some(report) = &report {
        if let (Some(path), Some(on_written)) = (write_out(report, &how, &config), on_written) {
            guarded("noting a report file", || on_written(path));
        }
    }
    if how.stops() && config.on_deadlock == OnDeadlock::Abort {
        abort_after(report, &config);
    }
    let handled = report
        .clone()
        .map(|report| hand_to_handler(report, delivered.clone()));
    if report.is_none() {
        if let Some(delivered) = delivered {
            delivered.set();
        }
    }
    if let (OnDeadlock::Panic, Emitted::Stuck { verdict: Some(v) }) = (config.on_deadlock, &how) {
        if let Some(ticket) = handled {
            wait_handled(ticket, Instant::now() + VERDICT_HANDLER_BOUND);
        }
        post_verdict(report.as_deref(), *v);
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
    let record = runtime().threads.get(&thread).map(|r| r.clone());
    if let Some(record) = record {
        record.post_verdict(seq, message);
    }
    super::graph::wake_for_verdict(thread, seq);
    if let Some(scanner) = delivery().scanner.get() {
        (scanner.verdict_posted)(thread, seq);
    }
}

fn call_handler(report: &Report) {
    let handler = delivery().handler.read().clone();
    if let Some(handler) = handler {
        // A panicking handler must not take its thread with it.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| handler(report)));
    }
}

/// Reports waiting for the user's handler, in claim order, numbered by ticket.
struct Handling {
    reports: VecDeque<(Arc<Report>, Option<Arc<Delivered>>)>,
    /// Tickets given out; the next report gets `given + 1`.
    given: u64,
    /// The reports up to this ticket have been through the handler.
    handled: u64,
}

/// Queues `report` for the user's handler; returns its ticket for [`wait_handled`]. `delivered`
/// is set once the handler returned.
fn hand_to_handler(report: Arc<Report>, delivered: Option<Arc<Delivered>>) -> u64 {
    if !delivery().handler_running.load(Ordering::Acquire) {
        call_handler(&report);
        if let Some(delivered) = delivered {
            delivered.set();
        }
        return 0;
    }
    let mut handling = delivery().handling.lock();
    handling.given += 1;
    let ticket = handling.given;
    handling.reports.push_back((report, delivered));
    drop(handling);
    delivery().to_handle.notify_one();
    ticket
}

/// Waits until the report with `ticket` and all before it have been through the handler, or
/// until `by`; whether they have.
fn wait_handled(ticket: u64, by: Instant) -> bool {
    let mut handling = delivery().handling.lock();
    while handling.handled < ticket {
        if delivery().handled.wait_until(&mut handling, by).timed_out() {
            break;
        }
    }
    handling.handled >= ticket
}

/// The handler thread: calls the user's handler with each report, in order.
fn handler_main() {
    ON_DELIVERY_THREAD.with(|r| r.set(true));
    loop {
        let (report, delivered) = {
            let mut handling = delivery().handling.lock();
            loop {
                if let Some(next) = handling.reports.pop_front() {
                    break next;
                }
                delivery().to_handle.wait(&mut handling);
            }
        };
        call_handler(&report);
        if let Some(delivered) = delivered {
            delivered.set();
        }
        delivery().handling.lock().handled += 1;
        delivery().handled.notify_all();
    }
}

/// Policy `abort`: every deadlock and stall that exists now is written before the process
/// exits. The findings already claimed (queued) come first, then those of a last scan; then
/// the handler gets every report, within [`HANDLER_BOUND`].
fn abort_after(first: Option<Arc<Report>>, config: &Config) -> ! {
    let mut written: Vec<Arc<Report>> = first.into_iter().collect();
    let last_scan = guarded("the last scan", || {
        delivery()
            .scanner
            .get()
            .map(|scanner| (scanner.last_scan)())
    })
    .flatten()
    .unwrap_or_default();
    let queued: Vec<Job> = delivery().queue.lock().jobs.drain(..).collect();
    let rest = queued.into_iter().map(|job| (job.draft, job.how)).chain(
        last_scan
            .into_iter()
            .map(|draft| (draft, Emitted::Stuck { verdict: None })),
    );
    for (draft, how) in rest {
        if let Some(report) = build(draft) {
            let _ = write_out(&report, &how, config);
            written.push(Arc::new(report));
        }
    }
    let by = Instant::now() + HANDLER_BOUND;
    let last = written
        .into_iter()
        .map(|report| hand_to_handler(report, None))
        .max();
    if let Some(last) = last {
        if !wait_handled(last, by) {
            diag!(
                "lockwatch: error: the report handler did not return within {} s; exiting",
                HANDLER_BOUND.as_secs()
            );
        }
    }
    exit_once(ABORT_STATUS)
}

/// Ends the process with `status`, once: a second caller (an inline delivery racing the
/// reporter) waits for the first to finish the exit.
fn exit_once(status: i32) -> ! {
    if delivery().exiting.swap(true, Ordering::AcqRel) {
        loop {
            std::thread::park();
        }
    }
    std::process::exit(status)
}

/// Renders `report` for stderr and writes it there and to the report directory.
/// Returns the report file written, if any.
fn write_out(report: &Report, how: &Emitted, config: &Config) -> Option<PathBuf> {
    let mut text = guarded("rendering a report", || match config.format {
        Format::Json => report.to_json(),
        Format::Text => TextRenderer {
            color: render::color_for_stderr(),
            source_root: None,
            // Under `LOCKWATCH_LOCK_ORDER=error` an inversion stops the program like a deadlock.
            as_error: matches!(how, Emitted::Inversion),
        }
        .render(report),
        // Only the typed API can ask for these; their sources are not read here.
        other => render::render(std::slice::from_ref(report), other, &Default::default()),
    })?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let _output = delivery().output.lock();
    write_stderr(text.as_bytes());
    let dir = config.report_dir.as_ref()?;
    match guarded("writing a report file", || write_report_file(dir, report))? {
        Ok(path) => Some(path),
        Err(e) => {
            diag!(
                "lockwatch: error: cannot write a report to {}: {e}",
                dir.display()
            );
            None
        }
    }
}

/// Writes `<pid>-<seq>-<kind>.json` complete or not at all: a temporary file, then a rename;
/// the temporary file is removed if anything fails. Not synced to disk: readers see the file
/// complete once renamed, and an fsync per report (about 10 ms each on ext4) made a burst of
/// reports take seconds.
pub(crate) fn write_report_file(dir: &Path, report: &Report) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let seq = delivery().report_seq.fetch_add(1, Ordering::Relaxed);
    let name = format!("{}-{}-{}.json", report.pid, seq, report.kind.as_str());
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(report.to_json_pretty().as_bytes())?;
        file.write_all(b"\n")?;
        drop(file);
        let path = dir.join(name);
        std::fs::rename(&tmp, &path)?;
        Ok(path)
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
/// and the one being written get out first, and through the handler, within [`EXIT_BOUND`] (the
/// handler may be stuck). Not when lockwatch itself exits (its reports are out) or the exit is the
/// reporter's own (a handler that exits).
fn finish_at_exit() {
    if delivery().exiting.load(Ordering::Acquire) || ON_DELIVERY_THREAD.with(Cell::get) {
        return;
    }
    let by = Instant::now() + EXIT_BOUND;
    wait_for_reports(by);
    // A report half-written when the wait above gave up is finished before the exit.
    drop(delivery().output.try_lock_until(by));
}
