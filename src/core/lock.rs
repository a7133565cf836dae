//! The one instrumented lock: a raw lock plus the metadata the wait-for and lock-order graphs
//! need (nothing without feature `detect`). Every lock primitive is built on [`LockCore`]; its
//! `acquire`, `release` and `note_reentry` are implemented once per build (`tracked/lock.rs`,
//! `untracked.rs`), so each primitive is instrumented once.
//!
//! The uncontended tracked path stays local: it tries the raw lock, stores the owner and the
//! call site in the lock, and pushes an entry on a thread-local stack. Only an acquisition that
//! has to wait takes the `#[cold]` path that registers the wait in the global graph.

use super::hooks::LockMeta;
use super::{Kind, Mode};
use crate::raw::{Access, RawLock};
use std::panic::Location;
use std::sync::Arc;
use std::time::Instant;

/// `repr(C)`: the raw lock comes right after the metadata's hot fields and right before the
/// data of the primitive that embeds it (see `rt::Meta`).
#[repr(C)]
pub(crate) struct LockCore<R> {
    pub(super) meta: LockMeta,
    pub(super) raw: R,
}

impl<R: RawLock> LockCore<R> {
    /// An unnamed lock; `const` so primitives can be statics.
    #[inline]
    pub(crate) const fn new(raw: R, kind: Kind, created_at: &'static Location<'static>) -> Self {
        LockCore {
            raw,
            meta: LockMeta::new(kind, created_at),
        }
    }

    /// A lock with a name for reports (dropped without feature `detect`).
    #[inline]
    pub(crate) fn named(
        raw: R,
        kind: Kind,
        name: Arc<str>,
        created_at: &'static Location<'static>,
    ) -> Self {
        LockCore {
            raw,
            meta: LockMeta::named(kind, name, created_at),
        }
    }

    #[inline]
    pub(crate) fn raw(&self) -> &R {
        &self.raw
    }

    /// Acquires without any bookkeeping: tracking is off, or this thread's state is gone.
    #[inline(always)]
    pub(crate) fn acquire_untracked(&self, access: Access, mode: Mode) -> bool {
        match mode {
            Mode::Blocking => {
                self.raw.acquire(access);
                true
            }
            Mode::Try => self.raw.try_acquire(access),
            Mode::Until(deadline) => self
                .raw
                .acquire_for(access, deadline.saturating_duration_since(Instant::now())),
        }
    }
}
