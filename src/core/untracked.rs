//! The core without feature `detect`: every primitive is its raw primitive alone, and there is
//! no runtime. The same methods and functions as `tracked/`, each doing only the raw part.

use super::condvar::wait_untracked;
use super::{CondvarCore, Kind, LockCore, Mode, Op};
use crate::raw::{Access, RawEvent, RawLock, RawMutex};
use lockwatch_detector::Report;
use std::panic::Location;
use std::sync::Arc;
use std::time::Instant;

/// A lock's metadata: nothing.
pub(crate) struct LockMeta;

impl LockMeta {
    pub(crate) const fn new(_kind: Kind, _created_at: &'static Location<'static>) -> LockMeta {
        LockMeta
    }

    pub(crate) fn named(
        _kind: Kind,
        _name: Arc<str>,
        _created_at: &'static Location<'static>,
    ) -> LockMeta {
        LockMeta
    }
}

/// A waitable resource's metadata: nothing.
pub(crate) type ResourceInfo = LockMeta;

impl<R: RawLock> LockCore<R> {
    /// Acquires with `access`, blocking according to `mode`. Returns whether it got the lock.
    #[inline(always)]
    pub(crate) fn acquire(&self, _op: Op, access: Access, mode: Mode) -> bool {
        self.acquire_untracked(access, mode)
    }

    /// Releases `access`.
    ///
    /// # Safety
    /// The lock is held with this access (by this thread, or for an ownerless lock by anyone).
    #[inline(always)]
    pub(crate) unsafe fn release(&self, access: Access) {
        // SAFETY: the caller holds the lock with this access (function contract).
        unsafe { self.raw.release(access) }
    }

    /// A reentrant re-acquisition or partial release: nothing to record.
    #[inline]
    pub(crate) fn note_reentry(&self, _delta: i32) {}
}

impl CondvarCore {
    /// Waits with `mutex` held by the caller, which holds it again on return; returns whether
    /// the deadline passed.
    #[inline]
    pub(crate) fn wait(
        &self,
        mutex: &LockCore<RawMutex>,
        deadline: Option<Instant>,
        _site: &'static Location<'static>,
    ) -> bool {
        wait_untracked(&self.raw, mutex.raw(), deadline)
    }
}

/// A spawned thread's tracking: none.
pub(crate) struct ThreadTracking;

impl ThreadTracking {
    pub(crate) fn new(_name: Option<&str>, _spawned_at: &'static Location<'static>) -> Self {
        ThreadTracking
    }

    /// What the spawned thread runs first: nothing.
    pub(crate) fn child(&self) -> ChildStart {
        ChildStart
    }

    pub(crate) fn abandon_unless_started(&self) -> AbandonUnlessStarted {
        AbandonUnlessStarted
    }

    /// A join is never tracked: the caller waits on its own.
    #[track_caller]
    pub(crate) fn join(
        &self,
        _done: &RawEvent,
        _deadline: Option<Instant>,
        _site: &'static Location<'static>,
    ) -> Option<bool> {
        None
    }
}

pub(crate) struct ChildStart;

impl ChildStart {
    pub(crate) fn adopt(self) {}
}

pub(crate) struct AbandonUnlessStarted;

impl AbandonUnlessStarted {
    pub(crate) fn started(self) {}
}

/// Nothing is tracked: nothing is found.
pub(crate) fn check() -> Vec<Report> {
    Vec::new()
}

/// There are no findings: the handler is never called.
pub(crate) fn set_handler(handler: impl Fn(&Report) + Send + Sync + 'static) {
    drop(handler);
}

/// The runtime's tables, which do not exist.
pub(crate) mod introspect {
    pub(crate) fn live_threads() -> usize {
        0
    }
    pub(crate) fn waiting_threads() -> usize {
        0
    }
    pub(crate) fn order_graph_size() -> (usize, usize) {
        (0, 0)
    }
    pub(crate) fn known_edges_size() -> (usize, usize) {
        (0, 0)
    }
    pub(crate) fn registered_waits_on(_name: &str) -> usize {
        0
    }
    pub(crate) fn wait_for_reports(_deadline: std::time::Instant) -> bool {
        true
    }
    pub(crate) fn order_pending_size() -> usize {
        0
    }
    pub(crate) fn write_order_graph() {}
}
