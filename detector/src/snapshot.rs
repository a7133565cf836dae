//! The input of wait-for analysis: a consistent picture of who waits for what and who holds what.
//!
//! The runtime builds a [`Snapshot`] on its slow path (a thread about to block) or from its
//! watchdog; everything here is plain data, so analysis is deterministic and testable without
//! threads.

use crate::model::{Frame, Location, Op, ResourceKind, ThreadState};

/// Who can end a wait on a resource (SPEC §3 "who can release it").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Releasers {
    /// Only the threads holding it (Mutex, ReentrantMutex, RLock, RwLock write). A wait is
    /// stuck for good only if some holder is stuck; a holder the snapshot does not list as
    /// blocked is running and will release it.
    Holders,
    /// An RwLock read: the threads holding it for write, and the threads queued for write
    /// (parking_lot is task-fair: a new reader waits behind a waiting writer).
    WritersAndQueuedWriters,
    /// Ownerless (Lock, Semaphore, BoundedSemaphore): the holders, or any thread that can
    /// still run, since any thread may release it.
    HoldersOrAnyone,
    /// Event, Condition, Condvar, Barrier: any thread that can still run.
    Anyone,
    /// A join: only that thread, by finishing.
    Thread(u64),
    /// A pool task's result: the worker running it; while queued, any of the pool's workers.
    Workers(Vec<u64>),
}

/// A resource some thread waits for or holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceSnap {
    /// lockwatch's id for the resource.
    pub id: u64,
    /// Its type.
    pub kind: ResourceKind,
    /// Its name, if any.
    pub name: Option<String>,
    /// Where it was created.
    pub created_at: Location,
    /// Who can end a wait on it.
    pub releasers: Releasers,
    /// The resource could be taken right now (unlocked, event set, notification pending,
    /// joined thread finished): every wait on it can end.
    pub available: bool,
}

/// A wait a thread has registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitSnap {
    /// The id of the resource waited for.
    pub resource: u64,
    /// What the wait is for.
    pub op: Op,
    /// Where the wait was called.
    pub location: Location,
    /// Milliseconds since the wait began.
    pub since_ms: u64,
    /// Unique per wait for the life of the process: the same thread in the same wait in two
    /// snapshots has the same `seq`, so an unchanged state can be confirmed.
    pub seq: u64,
}

/// A resource a thread holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldSnap {
    /// The id of the resource held.
    pub resource: u64,
    /// How it was acquired.
    pub op: Op,
    /// Reentrant depth, or the number of permits held.
    pub count: u32,
    /// Where the hold began.
    pub location: Location,
    /// Where it was acquired, with `LOCKWATCH_BACKTRACE=full`.
    pub backtrace: Vec<Frame>,
}

/// A thread known to lockwatch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadSnap {
    /// lockwatch's id for the thread.
    pub id: u64,
    /// The thread's name, if any.
    pub name: Option<String>,
    /// `Blocked` threads are the only ones that may be stuck; `TimedWait` and `Running` can
    /// always run; `Exited` threads never run again but may still hold what they leaked.
    pub state: ThreadState,
    /// The wait it is in, if any.
    pub wait: Option<WaitSnap>,
    /// What the thread holds. Complete for blocked and exited threads; may be empty for
    /// running ones (their holds do not matter to the analysis).
    pub holds: Vec<HoldSnap>,
    /// Filled in by the runtime for the threads of a confirmed finding, before building the
    /// report.
    pub backtrace: Vec<Frame>,
}

/// Everything the analysis needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every thread lockwatch knows.
    pub threads: Vec<ThreadSnap>,
    /// Every resource a thread waits for or holds.
    pub resources: Vec<ResourceSnap>,
    /// Some thread lockwatch has never seen exists and can run (it could release an ownerless
    /// resource or set an event).
    pub unknown_threads_can_run: bool,
}

impl Snapshot {
    /// The thread with this id.
    pub fn thread(&self, id: u64) -> Option<&ThreadSnap> {
        self.threads.iter().find(|t| t.id == id)
    }

    /// The resource with this id.
    pub fn resource(&self, id: u64) -> Option<&ResourceSnap> {
        self.resources.iter().find(|r| r.id == id)
    }
}
