//! The wait driver: how every blocking primitive waits once its first attempt failed.
//!
//! A wait has two phases:
//! 1. **Quiet**: the thread parks on the primitive for a grace period ([`GRACE`]) without
//!    touching any global state. Ordinary contention and short waits end here.
//! 2. **Registered**: the wait becomes an edge of the live wait-for graph, with the thread's
//!    backtrace, inside [`registered`]; an untimed wait asks for a scan; then the thread parks
//!    for the rest of its wait. It is never woken to poll: a scan that posts a verdict for it
//!    (policy `panic`) wakes it through its resource's [`Probe::interrupt`], by its park token.
//!
//! What runs under which lock: the graph lock (`Runtime::graph`) is taken to register, to
//! unregister and to wake a waiter for a verdict; `parking_lot_core`'s queue locks are taken
//! under it (a verdict's wake-up), never the other way round: code inside `parking_lot_core`
//! callbacks only touches atomics.

use crate::config::{self, BacktraceMode};
use crate::core::Op;
use crate::raw::Waiter;
use crate::rt::graph::{ProbePtr, WaitRecord};
use crate::rt::{self, detect, order, report, trace, Probe, ThreadCtx};
use std::cell::Cell;
use std::panic::Location;
use std::time::{Duration, Instant};

/// How long a wait stays quiet before it registers in the global graph. Ordinary contention
/// ends well within it, so it never pays for the graph or a backtrace.
pub(crate) const GRACE: Duration = Duration::from_millis(10);

/// The end of the quiet phase of a wait that began at `started`, for a wait that ends at
/// `deadline` at the latest.
pub(crate) fn quiet_until(started: Instant, deadline: Option<Instant>) -> Instant {
    let grace_end = started + GRACE;
    deadline.map_or(grace_end, |d| d.min(grace_end))
}

/// What a registered wait is.
pub(crate) struct WaitSpec {
    pub(crate) op: Op,
    pub(crate) site: &'static Location<'static>,
    /// When the wait began (before its quiet phase).
    pub(crate) started: Instant,
    /// A timed wait can always end: it is never part of a finding, and asks for no scan.
    pub(crate) deadline: Option<Instant>,
    /// The park token the waiter parks with, unique among the threads parked on its resource.
    pub(crate) token: usize,
    /// Whether the resource can wake the waiter for a verdict ([`Probe::interrupt`]).
    pub(crate) interruptible: bool,
}

/// A wait registered in the live graph, lent to the body of [`registered`].
pub(crate) struct Registration<'a> {
    ctx: &'a ThreadCtx,
    seq: u64,
    spec: &'a WaitSpec,
}

impl<'a> Registration<'a> {
    /// How the waiter parks: its token, and the flag a posted verdict sets.
    pub(crate) fn waiter(&self) -> Waiter<'a> {
        Waiter {
            token: self.spec.token,
            interrupted: Some(self.ctx.record.verdict_flag()),
        }
    }

    /// The verdict posted for this wait, if there is one, for a waiter that must finish
    /// something before it panics with it.
    pub(crate) fn verdict(&self) -> Option<String> {
        self.ctx.record.take_verdict(self.seq)
    }

    /// Takes the verdict posted for this wait, if there is one (policy `panic`: this thread's
    /// wait closed a cycle), for the primitive's entry point to raise once the wait has
    /// returned ([`raise_held_verdict`]): `true` if there was one, and the wait must then
    /// return without its resource. A verdict for an earlier wait is discarded.
    pub(crate) fn hold_verdict(&self) -> bool {
        match self.ctx.record.take_verdict(self.seq) {
            Some(message) => {
                hold_verdict_message(message);
                true
            }
            None => false,
        }
    }

    /// Has the graph checked for this wait now, unless it is timed.
    fn scan(&self) {
        if self.spec.deadline.is_none() {
            detect::scan_blocked(self.ctx.id());
        }
    }
}

thread_local! {
    /// A verdict a wait of this thread took ([`Registration::hold_verdict`]) and returned with,
    /// until its primitive's entry point raises it.
    static HELD_VERDICT: Cell<Option<String>> = const { Cell::new(None) };
}

/// Keeps a verdict a wait of this thread took, for [`raise_held_verdict`]. Without this
/// thread's locals (a wait in a late thread-local destructor) it is raised here, where its
/// panic names lockwatch's line rather than the caller's.
pub(crate) fn hold_verdict_message(message: String) {
    let mut kept = Some(message);
    if HELD_VERDICT.try_with(|v| v.set(kept.take())).is_err() {
        panic!("{}", kept.unwrap_or_default());
    }
}

/// Panics with the verdict a wait of this thread returned with, if there is one. Called by each
/// primitive's entry point once its wait has returned without the resource: those are
/// `#[track_caller]` down to here, so the panic names the program's line, where the thread
/// blocked, not one of lockwatch's.
#[cold]
#[track_caller]
pub(crate) fn raise_held_verdict() {
    if let Some(message) = HELD_VERDICT.try_with(Cell::take).ok().flatten() {
        panic!("{message}");
    }
}

/// Runs `body` while the current thread's wait for `probe` is registered in the live graph,
/// after checking the graph for it (untimed waits). The wait is unregistered when `body`
/// returns or unwinds (a verdict's panic): the registration is a local of this function, so
/// no caller can forget it, and the probe, borrowed for the whole call, outlives it.
pub(crate) fn registered<R>(
    ctx: &ThreadCtx,
    probe: &dyn Probe,
    spec: &WaitSpec,
    body: impl FnOnce(&Registration<'_>) -> R,
) -> R {
    /// Unregisters on every exit from [`registered`], unwinding included.
    struct Unregister<'a> {
        ctx: &'a ThreadCtx,
        seq: u64,
    }
    impl Drop for Unregister<'_> {
        fn drop(&mut self) {
            rt::runtime().graph.lock().remove(self.ctx.id(), self.seq);
        }
    }

    let backtrace = match config::current().read().backtrace {
        BacktraceMode::Off => None,
        _ => Some(trace::capture()),
    };
    // Ownerless locks another thread released are no longer held: neither a source of edges
    // nor part of the wait's holds.
    ctx.collect_foreign_releases();
    if config::lock_order_enabled() {
        report::guard_bookkeeping(|| order::publish_before_blocking(&ctx.order_view()));
    }
    let seq = rt::next_wait_seq();
    let holds = ctx.held_copies();
    let probe_ptr = probe as *const (dyn Probe + '_);
    // SAFETY: only the lifetime is erased. The graph dereferences the pointer under its lock
    // while the wait is registered, and `Unregister` removes the wait under that lock before
    // this function returns, while `probe` is still borrowed.
    let probe_ptr = unsafe {
        std::mem::transmute::<*const (dyn Probe + '_), *const (dyn Probe + 'static)>(probe_ptr)
    };
    let record = WaitRecord {
        seq,
        thread: ctx.record.clone(),
        probe: ProbePtr(probe_ptr),
        op: spec.op,
        site: spec.site,
        started: spec.started,
        timed: spec.deadline.is_some(),
        takes_verdicts: spec.interruptible,
        token: spec.token,
        backtrace,
        holds,
    };
    let resource = probe.resource_id();
    detect::ensure_watchdog();
    rt::runtime().graph.lock().insert(resource, record);
    let _unregister = Unregister { ctx, seq };
    let registration = Registration { ctx, seq, spec };
    registration.scan();
    body(&registration)
}
