//! The lock and wait core: what every public primitive is built on, and the one facade between
//! the primitives and the runtime.
//!
//! - [`LockCore`] (`lock.rs`) is the one instrumented lock, [`CondvarCore`] (`condvar.rs`) the
//!   one instrumented condition variable, [`ThreadTracking`] what a spawned
//!   thread's join needs. Public types embed them and call only their methods.
//! - Their acquisition, release and wait methods have two implementations, chosen here and only
//!   here: `tracked/` (feature `detect`: the tracked fast path, the wait driver, the Condvar
//!   and join waits, on the runtime in [`crate::rt`]) and `untracked.rs` (no `detect`: the raw
//!   primitive alone). Nothing outside this module tests the feature.
//!
//! Dependencies point one way: public types → this core → the runtime (`crate::rt`) → the
//! detector crate. The runtime never reaches back into the core.

mod condvar;
mod lock;
mod thread_key;
#[cfg(feature = "detect")]
mod tracked;
#[cfg(not(feature = "detect"))]
mod untracked;

#[cfg(feature = "detect")]
use tracked as hooks;
#[cfg(not(feature = "detect"))]
use untracked as hooks;

pub(crate) use condvar::CondvarCore;
pub(crate) use hooks::ThreadTracking;
pub(crate) use hooks::{check, introspect, set_handler};
pub(crate) use lock::LockCore;
pub(crate) use thread_key::current_thread_key;

use std::time::{Duration, Instant};

/// The type of a primitive and what an acquisition or a wait is for: the report model's own
/// enums, so the runtime records exactly what reports say.
pub(crate) use lockwatch_detector::{Op, ResourceKind as Kind};

/// How long an acquisition may block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Until it succeeds: the wait is an edge of the wait-for graph and the acquisition an edge
    /// of the lock-order graph.
    Blocking,
    /// Not at all: never an ordering edge for the lock it tries.
    Try,
    /// Until the deadline: a timed wait can always end, so it is neither a stuck wait nor an
    /// ordering edge.
    Until(Instant),
}

impl Mode {
    pub(crate) fn after(timeout: Duration) -> Mode {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => Mode::Until(deadline),
            // A timeout too far in the future to represent is, in practice, no timeout.
            None => Mode::Blocking,
        }
    }
}
