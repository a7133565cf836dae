//! Each thread's own state ([`ThreadCtx`]): what it holds, its lock-order buffers, its record
//! in the registry. Reached through a thread-local, never by another thread.

use super::held::{Held, HeldStack};
use super::order;
use super::registry::{self, HeldCopy, ThreadRecord};
use super::runtime::runtime;
use super::{detect, dump};
use crate::raw::Access;
use backtrace::Backtrace;
use std::cell::{Cell, OnceCell, RefCell};
use std::sync::Arc;

/// Per-thread state, reachable only from its own thread.
pub(crate) struct ThreadCtx {
    /// `record.id`, kept here so the fast path does not follow the `Arc` (only a nested blocking
    /// acquisition does, to check for foreign releases).
    id: u64,
    pub(crate) record: Arc<ThreadRecord>,
    pub(crate) held: HeldStack,
    /// Where each held lock was acquired, with `LOCKWATCH_BACKTRACE=full` only: kept apart so
    /// the common path moves small entries.
    pub(crate) acquired_at: RefCell<Vec<(u64, Backtrace)>>,
    pub(crate) order: order::ThreadOrder,
}

impl ThreadCtx {
    pub(crate) fn new(record: Arc<ThreadRecord>) -> ThreadCtx {
        ThreadCtx {
            id: record.id,
            record,
            held: HeldStack::new(),
            acquired_at: RefCell::new(Vec::new()),
            order: order::ThreadOrder::new(),
        }
    }

    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Drops entries for ownerless locks that other threads released on our behalf.
    #[inline]
    pub(crate) fn collect_foreign_releases(&self) {
        if self.record.has_mail() {
            self.take_mail();
        }
    }

    #[cold]
    fn take_mail(&self) {
        for id in self.record.take_mail() {
            self.remove_held(id, None);
        }
    }

    pub(crate) fn remove_held(&self, id: u64, access: Option<Access>) -> Option<Held> {
        let (entry, has_backtrace) = self.held.remove_innermost(id, access)?;
        if has_backtrace {
            let mut traces = self.acquired_at.borrow_mut();
            if let Some(i) = traces.iter().rposition(|(t, _)| *t == entry.id) {
                traces.remove(i);
            }
        }
        Some(entry)
    }

    /// Pushes a hold, with where it began if known (`LOCKWATCH_BACKTRACE=full`).
    pub(crate) fn push_held(&self, entry: Held, acquired_at: Option<Backtrace>) {
        let has_backtrace = acquired_at.is_some();
        if let Some(backtrace) = acquired_at {
            self.acquired_at.borrow_mut().push((entry.id, backtrace));
        }
        self.held.push(entry, has_backtrace);
    }

    /// What lock-order tracking sees of this thread.
    #[inline(always)]
    pub(crate) fn order_view(&self) -> order::OrderCtx<'_> {
        order::OrderCtx {
            record: &self.record,
            held: &self.held,
            order: &self.order,
        }
    }

    /// Reads the thread's mail and copies what it holds, with where each hold was acquired
    /// under `LOCKWATCH_BACKTRACE=full` (for a registered wait, or an exiting thread).
    pub(crate) fn held_copies(&self) -> Vec<HeldCopy> {
        self.collect_foreign_releases();
        self.held
            .to_vec()
            .iter()
            .map(|held| HeldCopy {
                held: *held,
                backtrace: self.acquired_at(held.id),
            })
            .collect()
    }

    /// Where the held lock `id` was acquired, if known (`LOCKWATCH_BACKTRACE=full`).
    pub(crate) fn acquired_at(&self, id: u64) -> Option<Backtrace> {
        self.acquired_at
            .borrow()
            .iter()
            .rev()
            .find(|(t, _)| *t == id)
            .map(|(_, bt)| bt.clone())
    }
}

struct LocalSlot {
    ctx: OnceCell<ThreadCtx>,
}

impl Drop for LocalSlot {
    fn drop(&mut self) {
        // From here on the fast path must not reach the context: it is being torn down.
        CTX.with(|c| c.set(std::ptr::null()));
        if let Some(ctx) = self.ctx.get() {
            order::thread_exit(&ctx.order_view());
            thread_exit(ctx);
        }
    }
}

thread_local! {
    static LOCAL: LocalSlot = const { LocalSlot { ctx: OnceCell::new() } };
    /// The address of `LOCAL`'s context once it exists, null before and during its teardown.
    /// A thread-local without a destructor is one load away, where `LOCAL` costs a check of
    /// its registration state and of the cell: this is what the fast path reads.
    static CTX: Cell<*const ThreadCtx> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with this thread's state, registering the thread on first use. `None` once the
/// thread's locals are being destroyed: such late acquisitions go untracked.
#[inline]
pub(crate) fn with_ctx<T>(f: impl FnOnce(&ThreadCtx) -> T) -> Option<T> {
    LOCAL
        .try_with(|slot| {
            let ctx = slot.ctx.get_or_init(register_current);
            CTX.with(|c| c.set(ctx));
            f(ctx)
        })
        .ok()
}

/// Runs `f` with this thread's state if it already exists and is not being torn down: the
/// fast path, which leaves registration to [`with_ctx`] on the slow path.
#[inline(always)]
pub(crate) fn with_fast_ctx<T>(f: impl FnOnce(Option<&ThreadCtx>) -> T) -> T {
    let ptr = CTX.with(|c| c.get());
    // SAFETY: `CTX` is non-null only while it points at this thread's context inside `LOCAL`,
    // which stays in place until `LocalSlot::drop` nulls `CTX` before tearing it down. The
    // reference cannot escape `f`, and `ThreadCtx` is only ever used by its own thread.
    f(unsafe { ptr.as_ref() })
}

/// Runs `f` with this thread's state if it exists and is not being torn down, without
/// registering the thread.
pub(crate) fn with_current_ctx<T>(f: impl FnOnce(&ThreadCtx) -> T) -> Option<T> {
    with_fast_ctx(|ctx| ctx.map(f))
}

/// Installs a context made by `thread::spawn` for the thread it starts.
pub(crate) fn install_ctx(ctx: ThreadCtx) {
    let _ = LOCAL.try_with(|slot| {
        // A context already there (the closure touched a lock before this ran) cannot be;
        // `spawn` installs it first.
        let _ = slot.ctx.set(ctx);
    });
}

/// Registers the current thread on its first tracked operation.
fn register_current() -> ThreadCtx {
    order::ensure_exit_hook();
    let record = registry::register(std::thread::current().name().map(Arc::from), true);
    registry::run_as(&record);
    dump::ensure_installed();
    ThreadCtx::new(record)
}

/// Registers a thread before it starts, so that a join on it is a wait on a known thread.
pub(crate) fn preregister_thread(name: Option<Arc<str>>) -> Arc<ThreadRecord> {
    order::ensure_exit_hook();
    let record = registry::register(name, false);
    dump::ensure_installed();
    record
}

/// Called first thing on a thread started by `thread::spawn`.
pub(crate) fn adopt_thread(record: Arc<ThreadRecord>) {
    registry::run_as(&record);
    install_ctx(ThreadCtx::new(record));
}

/// Thread-local destructor: the thread leaves the registry, keeping only what it leaked.
fn thread_exit(ctx: &ThreadCtx) {
    let rt = runtime();
    registry::retire(
        &ctx.record,
        || ctx.held_copies(),
        &rt.exited,
        || {
            rt.threads.remove(&ctx.id());
        },
    );
    // The last thread that could have helped may be this one: have the graph checked now
    // rather than at the next watchdog period.
    if rt.graph.lock().waiting_count() > 0 {
        detect::kick_watchdog();
    }
}

/// Deferred ordering edges kept by all threads, the calling thread's dropped locks struck
/// first (for tests).
pub(crate) fn order_pending_size() -> usize {
    with_current_ctx(|ctx| order::pending_size(Some(&ctx.order_view())))
        .unwrap_or_else(|| order::pending_size(None))
}

/// Model checks of the foreign-release protocol (`--cfg loom`, see [`crate::primitive`]): a
/// Lock the owner acquired is released by another thread while the owner reads its mail or
/// exits. Whatever the interleaving, the hold is struck exactly once, from the owner's live
/// stack or from what it leaked, and nothing else is.
#[cfg(all(test, loom))]
mod loom {
    use super::*;
    use crate::primitive::sync::atomic::AtomicBool;
    use crate::primitive::thread;
    use crate::rt::registry::{deliver_release, retire, ExitedTable, ThreadRecord};
    use lockwatch_detector::{Op, ResourceKind as Kind};
    use std::collections::HashMap;
    use std::panic::Location;
    use std::sync::atomic::Ordering;

    const OWNER: u64 = 7;
    /// The Lock another thread releases.
    const SIGNAL: u64 = 1;
    /// A lock the owner still holds when it exits.
    const KEPT: u64 = 2;

    fn hold(ctx: &ThreadCtx, id: u64) {
        let here = Location::caller();
        let below = ctx.held.fingerprint();
        ctx.held.push_new(
            below,
            id,
            Kind::Lock,
            Op::Acquire,
            Access::Exclusive,
            here,
            here,
        );
    }

    fn leaked(exited: &ExitedTable) -> Option<Vec<u64>> {
        let exited = exited.lock();
        let gone = exited.get(&OWNER)?;
        Some(gone.holds.iter().map(|h| h.held.id).collect())
    }

    /// The owner holds `holds`, then another thread releases SIGNAL: sends it the way
    /// `send_foreign_release` does, finding the owner listed or not. Meanwhile the owner reads
    /// its mail and exits. Returns what the owner leaked.
    fn release_racing_with_exit(holds: &'static [u64]) -> Option<Vec<u64>> {
        let exited = Arc::new(ExitedTable::new(HashMap::new()));
        let record = Arc::new(ThreadRecord::new(OWNER, None));
        // Stands for the owner's entry in the runtime's table of live threads.
        let listed = Arc::new(AtomicBool::new(true));
        listed.load(Ordering::Relaxed); // made here, before the threads (see `primitive`)
        let ctx = ThreadCtx::new(record.clone());
        for &id in holds {
            hold(&ctx, id);
        }
        let releaser = {
            let (exited, record, listed) = (exited.clone(), record.clone(), listed.clone());
            thread::spawn(move || {
                let found = listed.load(Ordering::Acquire).then_some(&*record);
                deliver_release(found, &exited, OWNER, SIGNAL);
            })
        };
        ctx.collect_foreign_releases();
        retire(
            &record,
            || ctx.held_copies(),
            &exited,
            || listed.store(false, Ordering::Release),
        );
        releaser.join().unwrap();
        leaked(&exited)
    }

    #[test]
    fn a_foreign_release_racing_with_exit_leaves_only_the_kept_hold() {
        ::loom::model(|| {
            assert_eq!(release_racing_with_exit(&[SIGNAL, KEPT]), Some(vec![KEPT]));
        });
    }

    #[test]
    fn a_foreign_release_racing_with_exit_of_an_owner_holding_nothing_else_leaves_no_leak() {
        ::loom::model(|| {
            assert_eq!(release_racing_with_exit(&[SIGNAL]), None);
        });
    }

    #[test]
    fn a_foreign_release_racing_with_take_mail_reaches_the_owner_once_it_looks_again() {
        ::loom::model(|| {
            let record = Arc::new(ThreadRecord::new(OWNER, None));
            let exited = Arc::new(ExitedTable::new(HashMap::new()));
            let ctx = ThreadCtx::new(record.clone());
            hold(&ctx, KEPT);
            hold(&ctx, SIGNAL);
            let releaser = {
                let (exited, record) = (exited.clone(), record.clone());
                thread::spawn(move || deliver_release(Some(&record), &exited, OWNER, SIGNAL))
            };
            ctx.collect_foreign_releases();
            releaser.join().unwrap();
            // The release happened before the join: the owner's next look must find it.
            ctx.collect_foreign_releases();
            let held: Vec<u64> = ctx.held.to_vec().iter().map(|h| h.id).collect();
            assert_eq!(held, [KEPT]);
            assert_eq!(ctx.held.fingerprint(), crate::rt::held::mix(KEPT));
            assert!(!record.has_mail());
            assert!(leaked(&exited).is_none());
        });
    }
}
