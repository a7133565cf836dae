//! The core with feature `detect`: every acquisition, release and wait is tracked on the
//! runtime ([`crate::rt`]).
//!
//! - `lock.rs`: [`LockCore`](crate::core::LockCore)'s tracked fast path and its slow paths;
//! - `wait.rs`: the wait driver every blocking primitive waits through (quiet phase, then a
//!   registered wait in the live graph, verdicts by unpark);
//! - `condvar.rs`: the Condvar wait on the driver;
//! - `join.rs`: a spawned thread's tracking and its join on the driver.

mod condvar;
mod join;
mod lock;
mod wait;

pub(crate) use crate::rt::{Meta as LockMeta, ResourceInfo};
pub(crate) use join::ThreadTracking;

use lockwatch_detector::Report;

/// Runs a scan now and returns what it finds (see [`crate::check`]).
pub(crate) fn check() -> Vec<Report> {
    crate::rt::check()
}

/// Installs the user's handler (see [`crate::set_handler`]).
pub(crate) fn set_handler(handler: impl Fn(&Report) + Send + Sync + 'static) {
    crate::rt::set_handler(handler);
}

/// The runtime's tables, for tests and tools (see `lockwatch::introspect`).
pub(crate) mod introspect {
    pub(crate) use crate::rt::{
        known_edges_size, live_thread_count as live_threads, order_graph_size, order_pending_size,
        registered_waits_on, wait_for_reports, waiting_thread_count as waiting_threads,
        write_order_graph,
    };
}
