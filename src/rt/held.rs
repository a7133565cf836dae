//! The stack of locks a thread holds, innermost last.
//!
//! Every tracked acquisition pushes an entry and every release pops one, so this is the
//! hottest data structure of the runtime. A `RefCell` costs a borrow-flag check, a store and a
//! panic path on each side, about a nanosecond per lock/unlock pair (measured): a fifth of
//! parking_lot's own cost. The stack is instead an `UnsafeCell`, sound by construction: it is
//! only reachable from its own thread, and no method runs code it does not control while it
//! looks into it. Methods take plain data (ids, accesses, entries), never closures, do moves
//! and comparisons only, and allocate or free only while the cell is closed.

use crate::primitive::cell::UnsafeCell;
use crate::raw::Access;
use lockwatch_detector::{Op, ResourceKind as Kind};
use std::panic::Location;

/// One lock the current thread holds.
#[derive(Clone, Copy)]
pub(crate) struct Held {
    pub(crate) id: u64,
    pub(crate) kind: Kind,
    pub(crate) op: Op,
    /// Reentrant depth.
    pub(crate) count: u32,
    /// Where the hold began.
    pub(crate) site: &'static Location<'static>,
    pub(crate) created_at: &'static Location<'static>,
    /// Set when an ordering edge from this lock reached the global lock-order graph, so the
    /// lock is flagged for removal from it when released.
    pub(crate) in_order_graph: bool,
}

impl Held {
    /// The side of the lock this hold takes: only a read is shared.
    #[inline]
    pub(crate) fn access(&self) -> Access {
        if self.op == Op::Read {
            Access::Shared
        } else {
            Access::Exclusive
        }
    }
}

/// A set fingerprint of held lock ids: a sum of mixed ids, so it is independent of order and
/// a lock held twice (two read locks) does not cancel out.
#[inline(always)]
pub(crate) fn mix(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29)
}

pub(crate) struct HeldStack {
    entries: UnsafeCell<Vec<Held>>,
}

impl HeldStack {
    pub(crate) fn new() -> HeldStack {
        HeldStack {
            entries: UnsafeCell::new(Vec::with_capacity(16)),
        }
    }

    /// The one place the cell is opened. Private, and every `f` below is written in this
    /// module: none reaches this stack again, panics, or runs the allocator.
    #[inline(always)]
    fn open<T>(&self, f: impl FnOnce(&mut Vec<Held>) -> T) -> T {
        self.entries.with_mut(|entries| {
            // SAFETY: `HeldStack` is `!Sync` (it holds an `UnsafeCell`) and lives in a thread's
            // own context, so only this thread reaches it, and no other reference into
            // `entries` is alive: `open` is not re-entered, because no `f` in this module calls
            // back into the stack or into code outside it, and the reference does not outlive
            // `f`.
            f(unsafe { &mut *entries })
        })
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.open(|entries| entries.len())
    }

    /// The one hold, if the thread holds exactly one lock.
    #[inline]
    pub(crate) fn single(&self) -> Option<Held> {
        self.open(|entries| match entries[..] {
            [only] => Some(only),
            _ => None,
        })
    }

    /// Whether the thread holds lock `id` (with any access).
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.open(|entries| entries.iter().any(|h| h.id == id))
    }

    /// Pushes a fresh hold (count 1, no ordering edge yet). Takes the fields rather than an
    /// entry: built on each branch from values in registers, the entry goes straight into its
    /// slot, where a ready-made entry went through a stack copy whose store-forwarding stall
    /// cost several nanoseconds on every acquisition.
    #[inline(always)]
    pub(crate) fn push_new(
        &self,
        id: u64,
        kind: Kind,
        op: Op,
        site: &'static Location<'static>,
        created_at: &'static Location<'static>,
    ) {
        let fresh = || Held {
            id,
            kind,
            op,
            count: 1,
            site,
            created_at,
            in_order_graph: false,
        };
        if self.is_full() {
            self.grow_and_push(fresh());
        } else {
            // Cannot allocate: there is room.
            self.open(|entries| entries.push(fresh()));
        }
    }

    /// Pushes an entry back (a Condvar wait restoring its mutex's hold).
    pub(crate) fn push(&self, entry: Held) {
        if self.is_full() {
            self.grow_and_push(entry);
        } else {
            self.open(|entries| entries.push(entry));
        }
    }

    /// Whether a push must grow the buffer (and so allocate).
    #[inline(always)]
    fn is_full(&self) -> bool {
        self.open(|entries| entries.len() == entries.capacity())
    }

    /// The global allocator is foreign code (it may even take a lockwatch lock): it runs while
    /// the stack is closed, and the stack adopts the new buffer afterwards.
    #[cold]
    #[inline(never)]
    fn grow_and_push(&self, entry: Held) {
        let mut buffer = self.buffer_for(self.len() + 1);
        let old = self.open(|entries| {
            buffer.extend_from_slice(entries);
            buffer.push(entry);
            std::mem::replace(entries, buffer)
        });
        drop(old);
    }

    /// An empty vector with room for the stack and `extra` more entries, allocated while the
    /// stack is closed (the allocator could push onto it meanwhile, hence the loop).
    fn buffer_for(&self, extra: usize) -> Vec<Held> {
        loop {
            let buffer = Vec::with_capacity(self.len() + extra);
            if buffer.capacity() >= self.len() + extra {
                return buffer;
            }
        }
    }

    /// Pops the top entry if it is the hold of `id` with `access`: the release fast path.
    #[inline(always)]
    pub(crate) fn pop_if_top(&self, id: u64, access: Access) -> Option<Held> {
        self.open(|entries| match entries.last() {
            Some(top) if top.id == id && top.access() == access => entries.pop(),
            _ => None,
        })
    }

    /// Removes the innermost hold of `id`, with `access` if given.
    pub(crate) fn remove_innermost(&self, id: u64, access: Option<Access>) -> Option<Held> {
        self.open(|entries| {
            let index = entries
                .iter()
                .rposition(|h| h.id == id && access.is_none_or(|a| h.access() == a))?;
            Some(entries.remove(index))
        })
    }

    /// Adds `delta` to the reentrant depth of the innermost hold of `id` (never below 1).
    pub(crate) fn adjust_count(&self, id: u64, delta: i32) {
        self.open(|entries| {
            if let Some(h) = entries.iter_mut().rev().find(|h| h.id == id) {
                h.count = h.count.saturating_add_signed(delta).max(1);
            }
        })
    }

    /// Flags the entry at `index` (from [`HeldStack::to_vec`], the stack unchanged since) as
    /// the source of an edge in the global lock-order graph.
    pub(crate) fn mark_in_order_graph(&self, index: usize) {
        self.open(|entries| {
            if let Some(entry) = entries.get_mut(index) {
                entry.in_order_graph = true;
            }
        })
    }

    /// A copy of the stack, innermost last, for work that must not look into it while it runs.
    pub(crate) fn to_vec(&self) -> Vec<Held> {
        let mut copy = self.buffer_for(0);
        self.open(|entries| copy.extend_from_slice(entries));
        copy
    }

    /// [`HeldStack::to_vec`] into a buffer the caller keeps, so a repeated copy allocates
    /// nothing: any growth happens while the stack is closed.
    pub(crate) fn copy_into(&self, copy: &mut Vec<Held>) {
        copy.clear();
        while copy.capacity() < self.len() {
            copy.reserve(self.len());
        }
        self.open(|entries| {
            if entries.len() <= copy.capacity() {
                copy.extend_from_slice(entries);
            }
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn entry(id: u64, op: Op) -> Held {
        Held {
            id,
            kind: Kind::Mutex,
            op,
            count: 1,
            site: Location::caller(),
            created_at: Location::caller(),
            in_order_graph: false,
        }
    }

    #[test]
    fn pops_only_a_matching_top() {
        let stack = HeldStack::new();
        stack.push(entry(1, Op::Lock));
        stack.push(entry(2, Op::Read));
        assert!(stack.pop_if_top(1, Access::Exclusive).is_none());
        assert!(stack.pop_if_top(2, Access::Exclusive).is_none());
        assert_eq!(stack.pop_if_top(2, Access::Shared).map(|h| h.id), Some(2));
        assert_eq!(stack.len(), 1);
    }

    #[test]
    fn removes_the_innermost_match_and_keeps_order() {
        let stack = HeldStack::new();
        for (id, op) in [(1, Op::Read), (2, Op::Lock), (1, Op::Read), (3, Op::Lock)] {
            stack.push(entry(id, op));
        }
        assert!(stack.remove_innermost(1, Some(Access::Exclusive)).is_none());
        assert!(stack.remove_innermost(1, Some(Access::Shared)).is_some());
        let ids: Vec<u64> = stack.to_vec().iter().map(|h| h.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert!(stack.remove_innermost(9, None).is_none());
        assert!(stack.contains(1) && !stack.contains(9));
    }

    #[test]
    fn reentrant_depth_never_drops_below_one() {
        let stack = HeldStack::new();
        stack.push(entry(1, Op::Lock));
        stack.adjust_count(1, 2);
        assert_eq!(stack.to_vec()[0].count, 3);
        stack.adjust_count(1, -5);
        assert_eq!(stack.to_vec()[0].count, 1);
    }

    #[test]
    fn grows_past_its_initial_capacity() {
        let stack = HeldStack::new();
        let here = Location::caller();
        for id in 1..=100 {
            stack.push_new(id, Kind::Mutex, Op::Lock, here, here);
        }
        stack.mark_in_order_graph(99);
        assert!(stack.to_vec()[99].in_order_graph);
        for id in (1..=100).rev() {
            assert!(stack.pop_if_top(id, Access::Exclusive).is_some());
        }
        assert_eq!(stack.len(), 0);
    }
}

/// The stack under the model checker (`--cfg loom`, see [`crate::primitive`]): loom checks
/// that no two accesses to the cell overlap, through growth past the initial capacity, pops,
/// removals from the middle and copies. Only its own thread reaches a stack, so one thread is
/// the whole model.
#[cfg(all(test, loom))]
mod loom {
    use super::*;

    #[test]
    fn push_pop_and_remove_sequences_keep_the_stack_exact() {
        ::loom::model(|| {
            let stack = HeldStack::new();
            let here = Location::caller();
            for id in 1..=20 {
                let op = if id % 3 == 0 { Op::Read } else { Op::Lock };
                stack.push_new(id, Kind::Mutex, op, here, here);
            }
            assert_eq!(stack.len(), 20);
            assert!(stack.pop_if_top(19, Access::Exclusive).is_none());
            assert_eq!(
                stack.pop_if_top(20, Access::Exclusive).map(|h| h.id),
                Some(20)
            );
            assert!(stack.remove_innermost(9, Some(Access::Exclusive)).is_none());
            assert_eq!(
                stack
                    .remove_innermost(9, Some(Access::Shared))
                    .map(|h| h.id),
                Some(9)
            );
            assert_eq!(stack.remove_innermost(4, None).map(|h| h.id), Some(4));
            stack.adjust_count(5, 2);
            stack.mark_in_order_graph(0);
            let copy = stack.to_vec();
            let ids: Vec<u64> = copy.iter().map(|h| h.id).collect();
            let expected: Vec<u64> = (1..=19).filter(|&id| id != 4 && id != 9).collect();
            assert_eq!(ids, expected);
            assert!(copy[0].in_order_graph);
            assert_eq!(copy.iter().find(|h| h.id == 5).map(|h| h.count), Some(3));
            let mut popped = 0;
            while let Some(top) = copy.get(stack.len().wrapping_sub(1)) {
                assert!(stack.pop_if_top(top.id, top.access()).is_some());
                popped += 1;
            }
            assert_eq!(popped, 17);
            assert!(!stack.contains(1));
        });
    }
}
