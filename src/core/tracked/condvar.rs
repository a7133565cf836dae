//! A tracked Condvar wait on the wait driver.
//!
//! The mutex's hold leaves the thread's record for the length of the wait and comes back when
//! the mutex is taken again, at the wait's call site. The wait itself is a quiet park first
//! (the mutex is released once the thread is queued), then, if it outlasts the grace period, a
//! registered wait that any running thread can end, parked for good until notified, timed out
//! or woken for a verdict. A notifier that finds the mutex held requeues the waiter onto it:
//! from then on the registered wait shows as a wait for the mutex, and the mutex's release
//! wakes it (often handing it the mutex). Otherwise taking the mutex back is a lock wait of
//! its own, registered with its backtrace if it lasts; it takes no verdict, since a panic from
//! there would return to a guard that does not hold its mutex.

use super::lock::{resume_hold, suspend_hold, wait_for_lock, LockProbe};
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

/// A registered Condvar wait, as the graph sees it: a wait for a notification, and once the
/// notifier requeued the waiter onto its mutex (see `crate::raw`'s condvar), a wait for the
/// mutex, which only its holder can end.
struct CondvarProbe<'a> {
    info: &'a ResourceInfo,
    waiter: &'a CondWaiter<'a>,
    /// The mutex the waiter takes back, as a lock wait on it sees it.
    mutex: LockProbe<'a, RawMutex>,
}

impl CondvarProbe<'_> {
    /// The mutex's probe while the waiter is parked on the mutex's queue.
    fn requeued(&self) -> Option<&LockProbe<'_, RawMutex>> {
        self.waiter.requeued().then_some(&self.mutex)
    }
}

impl Probe for CondvarProbe<'_> {
    fn resource_id(&self) -> u64 {
        match self.requeued() {
            Some(mutex) => mutex.resource_id(),
            None => self.info.id(),
        }
    }
    fn kind(&self) -> Kind {
        match self.requeued() {
            Some(mutex) => mutex.kind(),
            None => self.info.kind(),
        }
    }
    fn name(&self) -> Option<Arc<str>> {
        match self.requeued() {
            Some(mutex) => mutex.name(),
            None => self.info.name(),
        }
    }
    fn created_at(&self) -> &'static Location<'static> {
        match self.requeued() {
            Some(mutex) => mutex.created_at(),
            None => self.info.created_at(),
        }
    }
    /// Any thread that can still run may notify; once requeued, the mutex's holder.
    fn releasers(&self) -> Releasers {
        match self.requeued() {
            Some(mutex) => mutex.releasers(),
            None => Releasers::Anyone,
        }
    }
    /// Notified, even before the waiter has run: it is as free as the mutex it takes back,
    /// which is a wait of its own once it lasts, or, requeued, is what it waits for.
    fn available(&self) -> bool {
        match self.requeued() {
            Some(mutex) => mutex.available(),
            None => self.waiter.notified(),
        }
    }
    fn owner(&self) -> Option<(u64, Option<&'static Location<'static>>)> {
        self.requeued().and_then(|mutex| mutex.owner())
    }
    /// Wherever the waiter is parked: under its own token on the condvar, or on the mutex.
    fn interrupt(&self, token: usize) -> bool {
        debug_assert_eq!(token, self.waiter.token());
        self.waiter.interrupt()
    }
}

impl CondvarCore {
    /// Waits with `mutex` held by the caller, which holds it again on return (and on unwind);
    /// returns whether the deadline passed.
    #[inline]
    #[track_caller]
    pub(crate) fn wait(
        &self,
        mutex: &LockCore<RawMutex>,
        deadline: Option<Instant>,
        site: &'static Location<'static>,
    ) -> bool {
        if config::tracking().is_some() {
            let timed_out = wait(&self.raw, &self.info, mutex, deadline, site);
            // A verdict the wait took (policy `panic`), on the caller's line.
            wait::raise_held_verdict();
            return timed_out;
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
    let waiter = CondWaiter::new(mutex.raw(), Some(ctx.record.verdict_flag()));
    let quiet_end = wait::quiet_until(started, deadline);
    let park_again = deadline.is_none_or(|d| d > quiet_end);
    // The verdict posted for the wait, if it took one.
    let waited = std::panic::catch_unwind(AssertUnwindSafe(|| {
        cv.wait_as(&waiter, || {
            let first = cv.park(&waiter, true, Some(quiet_end));
            // The mutex is released from here until `retake` (unless the waiter holds it).
            if first == CvWake::Notified || !park_again {
                return None;
            }
            let probe = CondvarProbe {
                info,
                waiter: &waiter,
                mutex: LockProbe {
                    core: mutex,
                    access: Access::Exclusive,
                },
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
                match cv.park(&waiter, false, deadline) {
                    CvWake::Interrupted => {
                        if let Some(verdict) = registration.verdict() {
                            return Some(verdict);
                        }
                        // A stale verdict was discarded: park again, unless a notification
                        // ended the wait meanwhile (it was requeued onto the mutex).
                        if waiter.notified() {
                            return None;
                        }
                    }
                    CvWake::Notified | CvWake::TimedOut => return None,
                }
            })
        })
    }));
    // The wait has left the condvar's list: whether it was notified is settled.
    if !waiter.holds_mutex() {
        retake(ctx, mutex, site);
    }
    resume_hold(&mutex.meta, suspended, site);
    match waited {
        Ok(verdict) => {
            if let Some(message) = verdict {
                // Raised by `CondvarCore::wait`, on the caller's line, now that the mutex is
                // held again for the guard the panic unwinds through.
                wait::hold_verdict_message(message);
            }
            !waiter.notified()
        }
        // Only a bug gets here: nothing in the wait is meant to panic.
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Takes the mutex back after a wait.
fn retake(ctx: &ThreadCtx, mutex: &LockCore<RawMutex>, site: &'static Location<'static>) {
    if !mutex.raw().try_lock() {
        wait_for_lock(mutex, ctx, Op::Lock, Access::Exclusive, None, site, false);
    }
}
