//! A tracked join on the wait driver: a wait for a thread's completion flag that only that
//! thread, by finishing, can end.

use super::graph::Probe;
use super::registry::ThreadRecord;
use super::wait::{self, WaitSpec};
use super::with_ctx;
use crate::core::{Kind, Op};
use crate::raw::{Parked, RawEvent, Waiter};
use lockwatch_detector::snapshot::Releasers;
use std::panic::Location;
use std::sync::Arc;
use std::time::Instant;

/// The thread a join waits for, as the runtime knows it.
pub(crate) struct Joined<'a> {
    pub(crate) record: &'a Arc<ThreadRecord>,
    /// The id of the thread as a resource of the wait-for graph.
    pub(crate) resource_id: u64,
    pub(crate) spawned_at: &'static Location<'static>,
}

struct JoinProbe<'a> {
    done: &'a RawEvent,
    joined: &'a Joined<'a>,
}

impl Probe for JoinProbe<'_> {
    fn resource_id(&self) -> u64 {
        self.joined.resource_id
    }
    fn kind(&self) -> Kind {
        Kind::Thread
    }
    fn name(&self) -> Option<Arc<str>> {
        self.joined.record.name.clone()
    }
    fn created_at(&self) -> &'static Location<'static> {
        self.joined.spawned_at
    }
    /// Only the joined thread, by finishing.
    fn releasers(&self) -> Releasers {
        Releasers::Thread(self.joined.record.id)
    }
    fn available(&self) -> bool {
        self.done.is_set()
    }
    fn owner(&self) -> Option<(u64, Option<&'static Location<'static>>)> {
        Some((self.joined.record.id, None))
    }
    fn interrupt(&self, token: usize) -> bool {
        self.done.interrupt(token)
    }
}

/// Waits until `done` is set (true) or `deadline` passes (false).
pub(crate) fn wait(
    done: &RawEvent,
    joined: &Joined<'_>,
    deadline: Option<Instant>,
    site: &'static Location<'static>,
) -> bool {
    let started = Instant::now();
    match done.wait_as(
        Some(wait::quiet_until(started, deadline)),
        Waiter::ANONYMOUS,
    ) {
        Parked::Acquired => return true,
        _ if deadline.is_some_and(|d| Instant::now() >= d) => return false,
        _ => {}
    }
    let tracked = with_ctx(|ctx| {
        let probe = JoinProbe { done, joined };
        let spec = WaitSpec {
            op: Op::Join,
            site,
            started,
            deadline,
            token: ctx.id() as usize,
            interruptible: true,
        };
        wait::registered(ctx, &probe, &spec, |registration| loop {
            match done.wait_as(deadline, registration.waiter()) {
                Parked::Acquired => return true,
                Parked::TimedOut => return false,
                Parked::Interrupted => registration.take_verdict(),
            }
        })
    });
    // This thread's locals are gone (a join in a thread-local destructor): wait untracked.
    tracked.unwrap_or_else(|| done.wait_as(deadline, Waiter::ANONYMOUS) == Parked::Acquired)
}
