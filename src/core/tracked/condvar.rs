//! A tracked Condvar wait on the wait driver.
//!
//! The mutex's hold leaves the thread's record for the length of the wait and comes back when
//! the mutex is taken again, at the wait's call site. The wait itself is a quiet park first
//! (the mutex is released once the thread is queued), then, if it outlasts the grace period, a
//! registered wait that any running thread can end, parked for good until notified, timed out
//! or woken for a verdict. Taking the mutex back is a lock wait of its own, registered with its
//! backtrace if it lasts; it takes no verdict, since a panic from there would return to a
//! guard that does not hold its mutex.

use super::lock::{resume_hold, suspend_hold, wait_for_lock};
use super::wait::{self, WaitSpec};
use crate::config;
use crate::core::condvar::wait_untracked;
use crate::core::{CondvarCore, Kind, LockCore, Op};
use crate::raw::{Access, CondWaiter, CvWake, RawCondvar, RawMutex};
use crate::rt::{with_ctx, Probe, ResourceInfo, ThreadCtx};
use lockwatch_detector::snapshot::Releasers;
use std::panic::{AssertUnwindSafe, Location};
use std::sync::Arc;
use std::time::Instant;

/// A registered Condvar wait, as the graph sees it.
struct CondvarProbe<'a> {
    cv: &'a RawCondvar,
    info: &'a ResourceInfo,
    waiter: &'a CondWaiter<'a>,
}

impl Probe for CondvarProbe<'_> {
    fn resource_id(&self) -> u64 {
        self.info.id()
    }
    fn kind(&self) -> Kind {
        self.info.kind()
    }
    fn name(&self) -> Option<Arc<str>> {
        self.info.name()
    }
    fn created_at(&self) -> &'static Location<'static> {
        self.info.created_at()
    }
    /// Any thread that can still run may notify.
    fn releasers(&self) -> Releasers {
        Releasers::Anyone
    }
    /// Notified, even before the waiter has run: it is as free as the mutex it takes back,
    /// which is a wait of its own once it lasts.
    fn available(&self) -> bool {
        self.waiter.notified()
    }
    fn owner(&self) -> Option<(u64, Option<&'static Location<'static>>)> {
        None
    }
    fn interrupt(&self, token: usize) -> bool {
        self.cv.interrupt(token)
    }
}

impl CondvarCore {
    /// Waits with `mutex` held by the caller, which holds it again on return (and on unwind);
    /// returns whether the deadline passed.
    #[inline]
    pub(crate) fn wait(
        &self,
        mutex: &LockCore<RawMutex>,
        deadline: Option<Instant>,
        site: &'static Location<'static>,
    ) -> bool {
        if config::tracking().is_some() {
            return wait(&self.raw, &self.info, mutex, deadline, site);
        }
        wait_untracked(&self.raw, mutex.raw(), deadline)
    }
}

/// Waits on `cv` with the mutex of `mutex` held by the caller; returns whether the deadline
/// passed. The mutex is held again on return, and on unwind.
fn wait(
    cv: &RawCondvar,
    info: &ResourceInfo,
    mutex: &LockCore<RawMutex>,
    deadline: Option<Instant>,
    site: &'static Location<'static>,
) -> bool {
    match with_ctx(|ctx| tracked(ctx, cv, info, mutex, deadline, site)) {
        Some(timed_out) => timed_out,
        // This thread's locals are gone (a wait in a thread-local destructor).
        None => wait_untracked(cv, mutex.raw(), deadline),
    }
}

fn tracked(
    ctx: &ThreadCtx,
    cv: &RawCondvar,
    info: &ResourceInfo,
    mutex: &LockCore<RawMutex>,
    deadline: Option<Instant>,
    site: &'static Location<'static>,
) -> bool {
    let started = Instant::now();
    let suspended = suspend_hold(&mutex.meta);
    let waiter = CondWaiter::new(Some(ctx.record.verdict_flag()));
    cv.enter();
    let quiet_end = wait::quiet_until(started, deadline);
    let park_again = deadline.is_none_or(|d| d > quiet_end);
    let first = cv.park(
        Some(mutex.raw()),
        Some(quiet_end),
        park_again,
        false,
        &waiter,
    );
    // The mutex is released from here until `retake`.
    let outside = first == CvWake::Interrupted || (first == CvWake::TimedOut && park_again);
    let waited = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if !outside {
            return (first, None);
        }
        let probe = CondvarProbe {
            cv,
            info,
            waiter: &waiter,
        };
        let spec = WaitSpec {
            op: Op::Wait,
            site,
            started,
            deadline,
            token: waiter.token(),
            interruptible: true,
        };
        wait::registered(ctx, &probe, &spec, |registration| loop {
            match cv.park(None, deadline, false, true, &waiter) {
                CvWake::Interrupted => {
                    if let Some(verdict) = registration.verdict() {
                        cv.settle(&waiter);
                        return (CvWake::Interrupted, Some(verdict));
                    }
                    // A stale verdict was discarded: still outside, park again.
                }
                woke => return (woke, None),
            }
        })
    }));
    cv.leave();
    retake(ctx, mutex, site);
    resume_hold(&mutex.meta, suspended, site);
    match waited {
        Ok((woke, verdict)) => {
            if let Some(message) = verdict {
                panic!("{message}");
            }
            woke == CvWake::TimedOut
        }
        Err(payload) => {
            // Unwinding while outside the queue: settle, so the count stays exact. (Only a
            // bug gets here: nothing in the registered phase is meant to panic.)
            if outside {
                cv.settle(&waiter);
            }
            std::panic::resume_unwind(payload)
        }
    }
}

/// Takes the mutex back after a wait.
fn retake(ctx: &ThreadCtx, mutex: &LockCore<RawMutex>, site: &'static Location<'static>) {
    if !mutex.raw().try_lock() {
        wait_for_lock(mutex, ctx, Op::Lock, Access::Exclusive, None, site, false);
    }
}
