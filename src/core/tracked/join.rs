//! A spawned thread's tracking, and its join on the wait driver: a wait for the thread's
//! completion flag that only that thread, by finishing, can end.

use super::wait::{self, WaitSpec};
use crate::config;
use crate::core::{Kind, Op};
use crate::raw::{Parked, RawEvent, Waiter};
use crate::rt::{self, with_ctx, Probe, ThreadRecord};
use lockwatch_detector::snapshot::Releasers;
use std::panic::Location;
use std::sync::Arc;
use std::time::Instant;

/// A spawned thread as the runtime knows it (`None` inside when tracking is off at spawn).
pub(crate) struct ThreadTracking(Option<Joined>);

/// The thread a join waits for: its record, pre-registered before it runs, and the resource a
/// join on it waits for.
struct Joined {
    record: Arc<ThreadRecord>,
    /// The id of the thread as a resource of the wait-for graph.
    resource_id: u64,
    spawned_at: &'static Location<'static>,
}

impl ThreadTracking {
    pub(crate) fn new(name: Option<&str>, spawned_at: &'static Location<'static>) -> Self {
        if !config::enabled() {
            return ThreadTracking(None);
        }
        ThreadTracking(Some(Joined {
            record: rt::preregister_thread(name.map(Arc::from)),
            resource_id: rt::next_resource_id(),
            spawned_at,
        }))
    }

    /// What the spawned thread runs first, moved into it.
    pub(crate) fn child(&self) -> ChildStart {
        ChildStart(self.0.as_ref().map(|joined| joined.record.clone()))
    }

    /// Forgets the pre-registered thread when dropped, unless [`AbandonUnlessStarted::started`]
    /// says it was started: std's spawn can fail, and can panic (a name with a NUL byte), and
    /// a thread that never runs must not stay behind as one that could end a wait.
    pub(crate) fn abandon_unless_started(&self) -> AbandonUnlessStarted<'_> {
        AbandonUnlessStarted(self.0.as_ref())
    }

    /// Waits until `done` is set (true) or `deadline` passes (false); `None` if the thread or
    /// the join is not tracked. A verdict the wait took (policy `panic`) is raised here, on the
    /// caller's line (see `wait::raise_held_verdict`).
    #[track_caller]
    pub(crate) fn join(
        &self,
        done: &RawEvent,
        deadline: Option<Instant>,
        site: &'static Location<'static>,
    ) -> Option<bool> {
        let joined = self.0.as_ref().filter(|_| config::enabled())?;
        let finished = wait(done, joined, deadline, site);
        if !finished && deadline.is_none() {
            wait::raise_held_verdict();
            // No verdict (a bug): an untimed join still waits for the thread.
            return None;
        }
        Some(finished)
    }
}

/// The start of a spawned thread's tracking, run on that thread.
pub(crate) struct ChildStart(Option<Arc<ThreadRecord>>);

impl ChildStart {
    pub(crate) fn adopt(self) {
        if let Some(record) = self.0 {
            rt::adopt_thread(record);
        }
    }
}

pub(crate) struct AbandonUnlessStarted<'a>(Option<&'a Joined>);

impl AbandonUnlessStarted<'_> {
    pub(crate) fn started(mut self) {
        self.0 = None;
    }
}

impl Drop for AbandonUnlessStarted<'_> {
    fn drop(&mut self) {
        if let Some(joined) = self.0 {
            rt::forget_thread(joined.record.id);
        }
    }
}

struct JoinProbe<'a> {
    done: &'a RawEvent,
    joined: &'a Joined,
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
fn wait(
    done: &RawEvent,
    joined: &Joined,
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
                // With a verdict, back unjoined for `ThreadTracking::join` to raise it;
                // without one (a stale one was discarded), park again.
                Parked::Interrupted => {
                    if registration.hold_verdict() {
                        return false;
                    }
                }
            }
        })
    });
    // This thread's locals are gone (a join in a thread-local destructor): wait untracked.
    tracked.unwrap_or_else(|| done.wait_as(deadline, Waiter::ANONYMOUS) == Parked::Acquired)
}
