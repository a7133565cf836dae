//! # lockwatch
//!
//! A deadlock-detecting concurrency runtime. It gives Rust programs the primitives of Python's
//! `threading` ([`Lock`], [`RLock`], [`thread`] with joins) and the ones Rust programs already
//! use ([`Mutex`], [`RwLock`], [`ReentrantMutex`], [`Condvar`], with parking_lot's surface and
//! no poisoning). Every primitive records who holds it and who waits for it in one global
//! wait-for graph; when a program freezes, lockwatch says so — the cycle, the thread names, the
//! source lines, the backtraces and a `help:` line — instead of hanging in silence.
//!
//! ```no_run
//! use lockwatch::Lock;
//! let lock = Lock::named("config");
//! lock.acquire();
//! lock.acquire(); // never returns: lockwatch reports the frozen program
//! ```
//!
//! ## The model
//!
//! Each blocking wait is an edge *thread → resource → the threads that can release it*. The
//! thread that blocks has the graph checked at once, and a watchdog re-checks it every
//! `LOCKWATCH_WATCHDOG_MS`; reports are printed and handed to the handler on lockwatch's own
//! threads. Graph reduction removes every thread that can still run (running
//! code, in a timed wait, or unknown to lockwatch), then every wait such a thread can end; the
//! threads left can never run again. A finding is confirmed on a second snapshot before it is
//! reported, so a release racing with the check never yields a report. Lock-order tracking
//! warns of inversions (A then B here, B then A there) that did not freeze this run.
//!
//! ## The cost
//!
//! An uncontended acquisition tries the raw parking_lot lock, stores the owner and the call
//! site in the lock and pushes an entry on a thread-local stack: no global lock, no allocation.
//! Nested acquisitions look their ordering edge up in a per-thread cache. Only an acquisition
//! that waits longer than 10 ms registers in the global graph and captures a backtrace,
//! unresolved; symbols are resolved only when a report is written. The README's Performance
//! section has the measured ratios against parking_lot and std.
//!
//! Without the default feature `detect`, every type is a thin wrapper over parking_lot with the
//! same API and size; at run time `LOCKWATCH=off` turns tracking off as well.
//!
//! ## Threads lockwatch never saw
//!
//! A thread that never touched a lockwatch primitive could still release an ownerless
//! primitive (a [`Lock`]). On Linux lockwatch counts the process's threads
//! (`/proc/self/status`), so such a thread keeps those waits from being reported. On other
//! platforms it cannot count them and assumes one may exist: cycles of owned locks (Mutex,
//! RwLock, ReentrantMutex, RLock, joins) are still reported, but a wait that any thread could
//! end (a Lock taken twice, a Condvar nobody notifies) is not. Under Rust's test harness the
//! harness's main thread only coordinates tests: with `LOCKWATCH_HARNESS=libtest` ([`Harness`])
//! it does not count, and such waits inside a `#[test]` are reported. On Linux that is also the
//! default, when the executable is a test binary built with the harness (lockwatch reads its
//! symbol table once, when a scan first needs to know).
//!
//! ## Configuration
//!
//! Environment variables (`LOCKWATCH`, `LOCKWATCH_ON_DEADLOCK`, `LOCKWATCH_LOCK_ORDER`,
//! `LOCKWATCH_REPORT_DIR`, `LOCKWATCH_FORMAT`, `LOCKWATCH_WATCHDOG_MS`,
//! `LOCKWATCH_LONG_WAIT_MS`, `LOCKWATCH_ORDER_GRAPH`, `LOCKWATCH_BACKTRACE`,
//! `LOCKWATCH_HARNESS`) are read once; the
//! same settings have a typed API, [`Config`].

#![warn(missing_docs)]

mod condvar;
mod config;
mod core;
mod diag;
mod error;
mod lock;
mod mutex;
mod primitive;
mod raw;
mod reentrant;
#[cfg(feature = "detect")]
mod rt;
mod rwlock;
pub mod thread;

pub use condvar::{Condvar, WaitTimeoutResult};
pub use config::{BacktraceMode, Config, Format, Harness, LockOrder, OnDeadlock};
pub use error::SyncError;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use mutex::{Mutex, MutexGuard};
pub use reentrant::{ReentrantMutex, ReentrantMutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use lockwatch_detector::{Report, ReportKind};

/// The report model and its renderers, re-exported from `lockwatch-detector`.
pub use lockwatch_detector as detector;

/// Runs a scan now and returns what it finds. Each finding is returned once: a deadlock
/// already reported (by the runtime or an earlier call) is not returned again. A finding this
/// scan is first to see is also delivered as the runtime's own are: printed, written to
/// `LOCKWATCH_REPORT_DIR`, passed to the handler, and the policy applies (under `abort` the
/// process exits; under `panic` the thread whose wait closed the cycle panics), so a program
/// that polls `check()` cannot keep a deadlock from its report.
///
/// ```
/// let m = lockwatch::Mutex::named("healthy", 0);
/// *m.lock() += 1;
/// assert!(lockwatch::check().is_empty());
/// ```
///
/// Without feature `detect` nothing is tracked and this returns nothing.
pub fn check() -> Vec<Report> {
    core::check()
}

/// Calls `handler` with every finding, after it is printed and before the policy applies (a
/// verdict of policy `panic` waits at most 1 s for it, `abort` 5 s). A panic in the handler is
/// caught and ignored. The handler runs on lockwatch's own thread `lockwatch-handler`, one
/// report at a time in the order they were found, never on a thread that is part of a finding:
/// it may take a lock a frozen thread holds, which holds up only later handler calls.
///
/// ```
/// use lockwatch::{Report, ReportKind};
/// lockwatch::set_handler(|report: &Report| {
///     if report.kind() == ReportKind::Deadlock {
///         // e.g. hand `report.to_json()` to the test harness or a crash reporter
///         eprintln!("{}", report.to_json());
///     }
/// });
/// ```
///
/// Without feature `detect` there are no findings and the handler is never called.
pub fn set_handler(handler: impl Fn(&Report) + Send + Sync + 'static) {
    core::set_handler(handler);
}

/// Introspection for tests and tools: sizes of the runtime's tables (all empty without
/// feature `detect`).
#[doc(hidden)]
pub mod introspect {
    use crate::core::introspect as runtime;

    /// Threads the runtime currently knows to be alive.
    pub fn live_threads() -> usize {
        runtime::live_threads()
    }

    /// Threads whose wait is registered in the wait-for graph.
    pub fn waiting_threads() -> usize {
        runtime::waiting_threads()
    }

    /// (locks, edges) in the lock-order graph.
    pub fn order_graph_size() -> (usize, usize) {
        runtime::order_graph_size()
    }

    /// (sources, edges) in the shared table of known ordering edges.
    pub fn known_edges_size() -> (usize, usize) {
        runtime::known_edges_size()
    }

    /// How many waits on resources named `name` are registered in the live wait-for graph
    /// (waits that outlasted their quiet grace period).
    pub fn registered_waits_on(name: &str) -> usize {
        runtime::registered_waits_on(name)
    }

    /// Waits (up to `limit`) until every report found so far has been printed, written and
    /// given to the handler, which runs on lockwatch's own thread; whether it has.
    pub fn wait_for_reports(limit: std::time::Duration) -> bool {
        runtime::wait_for_reports(std::time::Instant::now() + limit)
    }

    /// Ordering edges that threads keep in their own buffers (edges into locks that were never
    /// a source; see the lock-order notes in the README): they follow the locks too.
    pub fn order_pending_size() -> usize {
        runtime::order_pending_size()
    }

    /// Writes the lock-order graph to `LOCKWATCH_ORDER_GRAPH` now (it is also written at exit).
    pub fn write_order_graph() {
        runtime::write_order_graph()
    }
}
