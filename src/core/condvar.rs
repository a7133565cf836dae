//! The one instrumented condition variable, as [`super::LockCore`] is the one instrumented
//! lock: the raw condvar plus what reports say about it (nothing without feature `detect`).
//! Its `wait` is implemented once per build (`tracked/condvar.rs`, `untracked.rs`).

use super::hooks::ResourceInfo;
use super::Kind;
use crate::raw::{CondWaiter, RawCondvar, RawMutex};
use std::panic::Location;
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct CondvarCore {
    pub(super) raw: RawCondvar,
    /// Empty, and unread, without feature `detect`.
    #[allow(dead_code)]
    pub(super) info: ResourceInfo,
}

impl CondvarCore {
    /// An unnamed condvar; `const` so it can be a static.
    #[inline]
    pub(crate) const fn new(created_at: &'static Location<'static>) -> Self {
        CondvarCore {
            raw: RawCondvar::new(),
            info: ResourceInfo::new(Kind::Condvar, created_at),
        }
    }

    /// A condvar with a name for reports (dropped without feature `detect`).
    #[inline]
    pub(crate) fn named(name: Arc<str>, created_at: &'static Location<'static>) -> Self {
        CondvarCore {
            raw: RawCondvar::new(),
            info: ResourceInfo::named(Kind::Condvar, name, created_at),
        }
    }

    #[inline]
    pub(crate) fn notify_one(&self) -> bool {
        self.raw.notify_one()
    }

    #[inline]
    pub(crate) fn notify_all(&self) -> usize {
        self.raw.notify_all()
    }
}

/// A wait nobody tracks: one park, then the mutex again unless its release handed it over.
/// Returns whether the deadline passed.
pub(super) fn wait_untracked(cv: &RawCondvar, mutex: &RawMutex, deadline: Option<Instant>) -> bool {
    let waiter = CondWaiter::new(mutex, None);
    cv.wait_as(&waiter, || cv.park(&waiter, true, deadline));
    if !waiter.holds_mutex() {
        mutex.lock();
    }
    // A notification that came after the park timed out still ends the wait as notified.
    !waiter.notified()
}
