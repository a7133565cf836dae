//! The process-wide tables: live threads, what exited threads leaked, lock names.

use super::held::Held;
use super::mail::Mailbox;
use super::runtime::runtime;
use crate::primitive;
use backtrace::Backtrace;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A thread as the runtime knows it, shared between the thread and the detector.
pub(crate) struct ThreadRecord {
    pub(crate) id: u64,
    pub(crate) name: Option<Arc<str>>,
    /// One of lockwatch's own threads (the watchdog, running a user handler that takes a
    /// lock): never counted as a thread that could help a user thread.
    pub(crate) internal: bool,
    /// Ownerless locks this thread acquired and another thread released.
    mail: Mailbox,
    /// A verdict posted by another thread's scan: the message this thread must panic with
    /// (policy `panic`, when its wait closed a cycle the watchdog found), for the wait with
    /// that sequence number only.
    verdict: Mutex<Option<(u64, String)>>,
    /// On the [`primitive`] atomics: the raw primitives read it while parking.
    has_verdict: primitive::sync::atomic::AtomicBool,
    /// The kernel's id for the thread (0 until it runs, or where there is none): a thread
    /// whose lockwatch state is gone may still be running other thread-local destructors or
    /// `atexit` handlers, still holding guards it will release.
    os_tid: AtomicU64,
    /// When that OS thread started (0 if unknown), read when it exits holding locks: kernel
    /// ids are reused, and a new thread with the same id must not keep the old one "alive".
    os_started: AtomicU64,
}

impl ThreadRecord {
    pub(crate) fn new(id: u64, name: Option<Arc<str>>) -> ThreadRecord {
        let record = ThreadRecord {
            id,
            name,
            internal: INTERNAL.with(std::cell::Cell::get),
            mail: Mailbox::new(),
            verdict: Mutex::new(None),
            has_verdict: primitive::sync::atomic::AtomicBool::new(false),
            os_tid: AtomicU64::new(0),
            os_started: AtomicU64::new(0),
        };
        // Under loom an atomic comes into being on first use (see `crate::primitive`).
        #[cfg(loom)]
        record.has_verdict.load(Ordering::Relaxed);
        record
    }

    /// Records the calling thread's kernel id: called on the thread itself.
    fn note_os_thread(&self) {
        self.os_tid.store(current_os_tid(), Ordering::Relaxed);
    }

    /// Whether this is the main thread of the process `pid` (where the platform says: Linux,
    /// whose main thread's kernel id is the process id). The caller reads `pid` once for many
    /// records: it costs a system call.
    pub(crate) fn is_process_main_thread(&self, pid: u32) -> bool {
        let tid = self.os_tid.load(Ordering::Relaxed);
        tid != 0 && tid == u64::from(pid)
    }

    /// Whether the OS thread is certainly gone. `false` while it still runs (its
    /// thread-local destructors, or the process's exit handlers), and where the platform
    /// cannot tell.
    pub(crate) fn os_thread_gone(&self) -> bool {
        match self.os_tid.load(Ordering::Relaxed) {
            0 => true,
            tid => match os_thread_start(tid) {
                None => true,
                Some(started) => {
                    let recorded = self.os_started.load(Ordering::Relaxed);
                    recorded != 0 && started != recorded
                }
            },
        }
    }

    #[inline]
    pub(crate) fn has_mail(&self) -> bool {
        self.mail.has_mail()
    }

    pub(crate) fn take_mail(&self) -> Vec<u64> {
        self.mail.take()
    }

    /// Set while a verdict is posted and not yet taken: a waiter that sees it stops parking
    /// (see [`crate::raw::Waiter`]).
    pub(crate) fn verdict_flag(&self) -> &primitive::sync::atomic::AtomicBool {
        &self.has_verdict
    }

    pub(crate) fn post_verdict(&self, wait_seq: u64, message: String) {
        *self.verdict.lock() = Some((wait_seq, message));
        self.has_verdict.store(true, Ordering::Release);
    }

    /// The verdict for the wait `wait_seq`, if one was posted. A verdict for an earlier wait
    /// (that ended before it arrived) is discarded.
    pub(crate) fn take_verdict(&self, wait_seq: u64) -> Option<String> {
        if !self.has_verdict.load(Ordering::Acquire) {
            return None;
        }
        self.has_verdict.store(false, Ordering::Relaxed);
        match self.verdict.lock().take() {
            Some((seq, message)) if seq == wait_seq => Some(message),
            _ => None,
        }
    }
}

/// What a thread still held when it exited (a leaked guard or an ownerless lock never
/// released): waits on those resources can only be ended by it, and it is gone.
pub(crate) struct ExitedThread {
    pub(crate) record: Arc<ThreadRecord>,
    pub(crate) holds: Vec<HeldCopy>,
}

/// A [`Held`] entry copied out of its thread's stack (for a registered wait, or for a thread
/// that exited), with where it was acquired under `LOCKWATCH_BACKTRACE=full`.
pub(crate) struct HeldCopy {
    pub(crate) held: Held,
    pub(crate) backtrace: Option<Backtrace>,
}

/// What exited threads leaked, by thread id. On the [`primitive`] mutex: the loom tests drive
/// the exit protocol on a table of their own.
pub(crate) type ExitedTable = primitive::sync::Mutex<HashMap<u64, ExitedThread>>;

/// The name of lock `id`, if it is named and has been used: for a report that knows the lock
/// only from a hold (the lock itself may be gone).
pub(crate) fn lock_name(id: u64) -> Option<String> {
    runtime().names.get(&id).map(|n| n.value().to_string())
}

thread_local! {
    /// Set on lockwatch's own threads before they touch anything.
    static INTERNAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The runtime id of this thread, kept where no destructor can take it away: a lock
    /// released after the thread's context is gone can still be struck from its record.
    static OWN_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts the calling thread as one of lockwatch's own.
pub(crate) fn count_as_internal() {
    INTERNAL.with(|i| i.set(true));
    runtime().internal_threads.fetch_add(1, Ordering::Relaxed);
}

/// One of lockwatch's own threads: `(name, ready, main)`.
pub(crate) type InternalThread = (&'static str, fn(), fn());

/// Starts lockwatch's own threads: `(name, ready, main)`, where `ready` runs (here) once the
/// thread exists, and from then on work can be queued for it.
///
/// Returns once all count themselves as lockwatch's own. Until then the OS counts a thread
/// lockwatch cannot place, which could end any wait on a `Lock` or a `Condvar`, so the first
/// scan would put off such a report by a whole watchdog period. Each thread counts itself from
/// inside, once the OS counts it, so the count of unknown threads is never underestimated.
pub(crate) fn spawn_internal(threads: &[InternalThread]) {
    let (counted_tx, counted) = std::sync::mpsc::channel::<()>();
    let mut started = 0;
    for &(name, ready, main) in threads {
        let counted_tx = counted_tx.clone();
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                count_as_internal();
                let _ = counted_tx.send(());
                main();
            });
        match spawned {
            Ok(_) => {
                ready();
                started += 1;
            }
            Err(e) => {
                crate::diag::diag!("lockwatch: warning: could not start the {name} thread: {e}")
            }
        }
    }
    // Bounded: a thread that cannot start in time only delays some reports.
    let by = std::time::Instant::now() + std::time::Duration::from_secs(1);
    for _ in 0..started {
        let left = by.saturating_duration_since(std::time::Instant::now());
        if counted.recv_timeout(left).is_err() {
            break;
        }
    }
}

/// The runtime id this thread had, even after its context was destroyed (0 if it never had
/// one).
pub(crate) fn own_id() -> u64 {
    OWN_ID.with(std::cell::Cell::get)
}

/// Lists a new thread, the current one (`os_thread`: its kernel id is recorded) or one about
/// to be started.
pub(crate) fn register(name: Option<Arc<str>>, os_thread: bool) -> Arc<ThreadRecord> {
    let id = runtime().next_thread_id.fetch_add(1, Ordering::Relaxed);
    let record = Arc::new(ThreadRecord::new(id, name));
    if os_thread {
        record.note_os_thread();
    }
    runtime().threads.insert(id, record.clone());
    record
}

/// The calling thread runs as `record` (its own registration, or the one made for it before
/// it started).
pub(crate) fn run_as(record: &ThreadRecord) {
    OWN_ID.with(|c| c.set(record.id));
    record.note_os_thread();
}

/// The part of a thread's exit that races with foreign releases (see [`super::mail`]): what
/// the thread still holds moves to `exited`, then `unlist` takes it out of the live table,
/// then its mailbox closes. Afterwards every hold it had is either in `exited` or released,
/// whenever each foreign release ran.
///
/// `holds` reads the mail the thread has and copies what it still holds.
pub(crate) fn retire(
    record: &Arc<ThreadRecord>,
    holds: impl FnOnce() -> Vec<HeldCopy>,
    exited: &ExitedTable,
    unlist: impl FnOnce(),
) {
    let holds = holds();
    if !holds.is_empty() {
        let tid = record.os_tid.load(Ordering::Relaxed);
        if tid != 0 {
            let started = os_thread_start(tid).unwrap_or(0);
            record.os_started.store(started, Ordering::Relaxed);
        }
        exited.lock().insert(
            record.id,
            ExitedThread {
                record: record.clone(),
                holds,
            },
        );
    }
    unlist();
    // Releases posted since the copy above: struck from the exited record. Later ones are
    // refused by the closed mailbox and find that record themselves.
    let late = record.mail.close();
    strike(exited, record.id, &late);
}

/// Tells thread `acquirer` that a Lock it acquired was released by someone else.
pub(crate) fn send_foreign_release(acquirer: u64, lock_id: u64) {
    let rt = runtime();
    // A clone, not the map's guard: the post must not rest on the map's shard lock.
    let record = rt.threads.get(&acquirer).map(|r| r.value().clone());
    deliver_release(record.as_deref(), &rt.exited, acquirer, lock_id);
}

/// Strikes the hold of `lock_id` from thread `acquirer`'s record: through its mailbox while it
/// runs (`record`, if it is still listed), else from what it leaked in `exited`.
pub(crate) fn deliver_release(
    record: Option<&ThreadRecord>,
    exited: &ExitedTable,
    acquirer: u64,
    lock_id: u64,
) {
    if record.is_some_and(|r| r.mail.post(lock_id)) {
        return;
    }
    // The acquirer has exited: what it held is no longer stuck with it.
    strike(exited, acquirer, &[lock_id]);
}

/// Removes the holds of `lock_ids` from what exited thread `thread` leaked, and the thread
/// once it leaked nothing more.
fn strike(exited: &ExitedTable, thread: u64, lock_ids: &[u64]) {
    if lock_ids.is_empty() {
        return;
    }
    let mut exited = exited.lock();
    if let Some(gone) = exited.get_mut(&thread) {
        gone.holds.retain(|h| !lock_ids.contains(&h.held.id));
        if gone.holds.is_empty() {
            exited.remove(&thread);
        }
    }
}

/// How many threads the runtime knows are alive (tests check it returns to its baseline).
pub(crate) fn live_thread_count() -> usize {
    runtime().threads.len()
}

/// The calling thread's kernel id, or 0 where there is none to check.
fn current_os_tid() -> u64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` takes no arguments, cannot fail and touches no memory.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        u64::try_from(tid).unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// When the process's thread with kernel id `tid` started (in clock ticks since boot), or
/// `None` if the process has no such thread. Where the platform cannot say, the thread is
/// taken as gone: what it held then counts as leaked, as it always did there.
fn os_thread_start(tid: u64) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        // Field 22 (`starttime`); the fields after the command name, which is in parentheses
        // and may itself contain spaces and parentheses, start at field 3.
        let after_name = &stat[stat.rfind(')')? + 1..];
        Some(after_name.split_whitespace().nth(19)?.parse().unwrap_or(0))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = tid;
        None
    }
}

/// How many OS threads the process has, where the platform says.
pub(crate) fn os_thread_count() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// A pre-registered thread that never started.
pub(crate) fn forget_thread(id: u64) {
    runtime().threads.remove(&id);
}

#[cfg(all(test, target_os = "linux", not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_live_thread_has_a_stable_start_time_and_a_missing_one_has_none() {
        let tid = current_os_tid();
        assert_ne!(tid, 0);
        let started = os_thread_start(tid).expect("this thread exists");
        assert_ne!(started, 0);
        assert_eq!(os_thread_start(tid), Some(started));
        // Above the kernel's largest thread id.
        assert_eq!(os_thread_start(u64::from(u32::MAX)), None);
    }

    #[test]
    fn an_exited_thread_is_gone_and_a_running_one_is_not() {
        let record = ThreadRecord::new(0, None);
        record.note_os_thread();
        assert!(!record.os_thread_gone());
        let other = std::thread::spawn(|| {
            let record = ThreadRecord::new(0, None);
            record.note_os_thread();
            let tid = record.os_tid.load(Ordering::Relaxed);
            record
                .os_started
                .store(os_thread_start(tid).unwrap(), Ordering::Relaxed);
            record
        })
        .join()
        .unwrap();
        // The kernel removes a joined thread's task entry once it has exited.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !other.os_thread_gone() {
            assert!(std::time::Instant::now() < deadline, "still listed");
            std::thread::yield_now();
        }
    }
}
