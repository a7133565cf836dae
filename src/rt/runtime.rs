//! The one [`Runtime`]: all of lockwatch's process-wide state, made on first use.
//!
//! Each part of the runtime keeps its state in a field here, of a type its own module defines
//! (`detect::Detection`, `report::Delivery`, `order::OrderState`, …), and reaches it through
//! [`runtime`]. This module names those types and nothing else of theirs: it calls no part.
//! Settings stay in [`crate::config`], beneath the runtime: they exist without feature
//! `detect` too (`Config::current`), and the runtime only reads them.
//! Per-thread state is not here: each thread's own is in its thread-local (`local`).

use super::detect::Detection;
use super::graph::LiveGraph;
use super::order::OrderState;
use super::registry::{ExitedTable, ThreadRecord};
use super::report::Delivery;
use dashmap::DashMap;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, OnceLock};

pub(crate) struct Runtime {
    /// Live threads, by runtime id.
    pub(crate) threads: DashMap<u64, Arc<ThreadRecord>>,
    /// What exited threads leaked.
    pub(crate) exited: ExitedTable,
    /// Names of named locks that have been used, by id, so a report can name a held lock
    /// without touching the lock itself.
    pub(crate) names: DashMap<u64, Arc<str>>,
    /// The live wait-for graph.
    pub(crate) graph: Mutex<LiveGraph>,
    /// Threads lockwatch runs for itself (the watchdog), not counted as unknown threads.
    pub(crate) internal_threads: AtomicUsize,
    /// Lock-order tracking's shared state.
    pub(crate) order: OrderState,
    /// Scans, claimed findings, verdicts.
    pub(crate) detection: Detection,
    /// Reports on their way out.
    pub(crate) delivery: Delivery,
    /// The next thread id; ids are never reused.
    pub(crate) next_thread_id: AtomicU64,
    /// The next resource id; ids are never reused (addresses are), so a per-thread cache of
    /// ordering edges can never go stale.
    pub(crate) next_resource_id: AtomicU64,
    /// The next registered wait's sequence number.
    pub(crate) next_wait_seq: AtomicU64,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The runtime, made on first use. Making it touches no other state.
#[inline]
pub(crate) fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| Runtime {
        threads: DashMap::new(),
        exited: ExitedTable::new(HashMap::new()),
        names: DashMap::new(),
        graph: Mutex::new(LiveGraph::default()),
        internal_threads: AtomicUsize::new(0),
        order: OrderState::new(),
        detection: Detection::new(),
        delivery: Delivery::new(),
        next_thread_id: AtomicU64::new(1),
        next_resource_id: AtomicU64::new(1),
        next_wait_seq: AtomicU64::new(1),
    })
}
