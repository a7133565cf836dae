//! What the runtime knows about each resource: [`Meta`] for a lock, [`ResourceInfo`] for a
//! resource that is not one (a Condvar; next, Events, Barriers, Conditions), and the ids that
//! name them in the graphs.

use super::runtime::runtime;
use crate::primitive::sync::atomic as shim;
use lockwatch_detector::ResourceKind as Kind;
use std::panic::Location;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;

/// A fresh resource id. Ids are never reused (addresses are), so a per-thread cache of
/// ordering edges can never go stale.
pub(crate) fn next_resource_id() -> u64 {
    runtime().next_resource_id.fetch_add(1, Ordering::Relaxed)
}

/// Gives `slot` (0 until now) a fresh id on a resource's first tracked use: `Ok` with it if
/// this call assigned it, `Err` with the id another thread assigned first.
fn assign_lazy_id(slot: &AtomicU64) -> Result<u64, u64> {
    let fresh = next_resource_id();
    slot.compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        .map(|_| fresh)
}

/// The lock has been the source of an ordering edge, or the target of one in the graph.
pub(crate) const FLAG_IN_ORDER_GRAPH: u8 = 1;
pub(crate) const FLAG_NAMED: u8 = 2;
/// Another thread than its pending owner acquired it: edges into it always go to the graph
/// (see `order`'s docs on deferred edges).
pub(crate) const FLAG_NO_DEFER: u8 = 4;

/// What a lock knows about itself. Creating and dropping a lock touches no global state: the id
/// is assigned on first tracked use, and only locks that reached a global table leave it on drop.
///
/// `repr(C)` and the order of the fields are for contention: the fields every acquisition and
/// release touches come last, so that they sit next to the raw lock that follows them in
/// `LockCore` and next to the data after it. Spread over two cache lines they made two
/// threads contending on one lock bounce both lines.
#[repr(C)]
pub(crate) struct Meta {
    name: Option<Arc<str>>,
    created_at: &'static Location<'static>,
    kind: Kind,
    /// `FLAG_*`. On the primitive shim, as `pending_owner`: the handshake between a deferral
    /// and a claim (`order`) runs under loom.
    pub(crate) flags: shim::AtomicU8,
    pub(crate) id: AtomicU64,
    /// The thread whose buffer holds deferred ordering edges into this lock, or 0. Read by
    /// every acquisition: another thread's acquisition publishes them first.
    pub(crate) pending_owner: shim::AtomicU64,
    /// The runtime id of the thread holding it exclusively (for a Lock, the one that acquired
    /// it), or 0.
    pub(crate) owner: AtomicU64,
    /// Where the current exclusive hold began.
    pub(crate) site: AtomicPtr<Location<'static>>,
}

impl Meta {
    /// An unnamed lock's metadata; `const` so primitives can be statics.
    pub(crate) const fn new(kind: Kind, created_at: &'static Location<'static>) -> Meta {
        Meta::with_name(kind, None, created_at)
    }

    /// A named lock's metadata.
    pub(crate) fn named(
        kind: Kind,
        name: Arc<str>,
        created_at: &'static Location<'static>,
    ) -> Meta {
        Meta::with_name(kind, Some(name), created_at)
    }

    const fn with_name(
        kind: Kind,
        name: Option<Arc<str>>,
        created_at: &'static Location<'static>,
    ) -> Meta {
        Meta {
            id: AtomicU64::new(0),
            pending_owner: shim::AtomicU64::new(0),
            owner: AtomicU64::new(0),
            site: AtomicPtr::new(std::ptr::null_mut()),
            flags: shim::AtomicU8::new(0),
            kind,
            created_at,
            name,
        }
    }

    #[inline]
    pub(crate) fn id(&self) -> u64 {
        match self.id.load(Ordering::Relaxed) {
            0 => self.assign_id(),
            id => id,
        }
    }

    #[cold]
    fn assign_id(&self) -> u64 {
        match assign_lazy_id(&self.id) {
            Ok(fresh) => {
                if let Some(name) = &self.name {
                    runtime().names.insert(fresh, name.clone());
                    self.flags.fetch_or(FLAG_NAMED, Ordering::Relaxed);
                }
                fresh
            }
            Err(winner) => winner,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn name(&self) -> Option<&Arc<str>> {
        self.name.as_ref()
    }

    pub(crate) fn created_at(&self) -> &'static Location<'static> {
        self.created_at
    }

    pub(crate) fn owner(&self) -> u64 {
        self.owner.load(Ordering::Relaxed)
    }

    pub(crate) fn owner_site(&self) -> Option<&'static Location<'static>> {
        let ptr = self.site.load(Ordering::Relaxed);
        // SAFETY: `site` only ever holds null or a pointer made from a `&'static Location`.
        unsafe { ptr.as_ref() }
    }

    pub(crate) fn mark_in_order_graph(&self) {
        self.flags.fetch_or(FLAG_IN_ORDER_GRAPH, Ordering::Relaxed);
    }

    pub(crate) fn mark_no_defer(&self) {
        self.flags.fetch_or(FLAG_NO_DEFER, Ordering::SeqCst);
    }

    /// Whether ordering edges into this lock may stay in a thread's buffer: it has never been
    /// a source, nor been acquired by a thread other than its pending owner.
    pub(crate) fn may_defer_into(&self) -> bool {
        self.flags.load(Ordering::SeqCst) & (FLAG_IN_ORDER_GRAPH | FLAG_NO_DEFER) == 0
    }
}

/// What a resource that is not a lock (a Condvar; next, Events, Barriers, Conditions) knows
/// about itself for reports. Creating one touches no global state: the id is assigned on its
/// first registered wait.
pub(crate) struct ResourceInfo {
    id: AtomicU64,
    kind: Kind,
    name: Option<Arc<str>>,
    created_at: &'static Location<'static>,
}

impl ResourceInfo {
    pub(crate) const fn new(kind: Kind, created_at: &'static Location<'static>) -> ResourceInfo {
        ResourceInfo::with_name(kind, None, created_at)
    }

    pub(crate) fn named(
        kind: Kind,
        name: Arc<str>,
        created_at: &'static Location<'static>,
    ) -> ResourceInfo {
        ResourceInfo::with_name(kind, Some(name), created_at)
    }

    const fn with_name(
        kind: Kind,
        name: Option<Arc<str>>,
        created_at: &'static Location<'static>,
    ) -> ResourceInfo {
        ResourceInfo {
            id: AtomicU64::new(0),
            kind,
            name,
            created_at,
        }
    }

    pub(crate) fn id(&self) -> u64 {
        match self.id.load(Ordering::Relaxed) {
            0 => assign_lazy_id(&self.id).unwrap_or_else(|winner| winner),
            id => id,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn name(&self) -> Option<Arc<str>> {
        self.name.clone()
    }

    pub(crate) fn created_at(&self) -> &'static Location<'static> {
        self.created_at
    }
}

/// A fresh sequence number for a registered wait.
pub(crate) fn next_wait_seq() -> u64 {
    runtime().next_wait_seq.fetch_add(1, Ordering::Relaxed)
}
