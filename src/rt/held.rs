//! The stack of locks a thread holds, innermost last.
//!
//! Every tracked acquisition pushes an entry and every release pops one, so this is the
//! hottest data structure of the runtime. A `RefCell` costs a borrow-flag check, a store and a
//! panic path on each side, about a nanosecond per lock/unlock pair (measured): a seventh of
//! the whole budget. The stack is instead an `UnsafeCell` that is only reachable from its own
//! thread and whose methods never run foreign code while they look into it: every method
//! takes the reference, does plain moves and comparisons, and drops it before returning.
//! The closures of [`HeldStack::with`] and [`HeldStack::with_mut`] are crate-internal and
//! must not touch the same stack; debug builds check that.

use crate::core::{Kind, Op};
use crate::raw::Access;
use std::cell::UnsafeCell;
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
    /// Set while a method looks into `entries`, to catch a nested use in tests.
    #[cfg(debug_assertions)]
    in_use: std::cell::Cell<bool>,
}

impl HeldStack {
    pub(crate) fn new() -> HeldStack {
        HeldStack {
            entries: UnsafeCell::new(Vec::with_capacity(16)),
            #[cfg(debug_assertions)]
            in_use: std::cell::Cell::new(false),
        }
    }

    /// The one place the cell is opened.
    #[inline(always)]
    fn open<T>(&self, f: impl FnOnce(&mut Vec<Held>) -> T) -> T {
        #[cfg(debug_assertions)]
        assert!(
            !self.in_use.replace(true),
            "lockwatch: the held-lock stack was used re-entrantly"
        );
        // SAFETY: `HeldStack` is `!Sync` (it holds an `UnsafeCell`) and lives in a thread's own
        // context, so only this thread reaches it. No other reference into `entries` is alive:
        // every method opens it once, and what runs inside (`f`) is crate code that neither
        // opens the same stack again (checked above in debug builds) nor keeps the reference.
        let result = f(unsafe { &mut *self.entries.get() });
        #[cfg(debug_assertions)]
        self.in_use.set(false);
        result
    }

    /// Reads the stack, innermost last.
    #[inline]
    pub(crate) fn with<T>(&self, f: impl FnOnce(&[Held]) -> T) -> T {
        self.open(|entries| f(entries))
    }

    /// Updates entries in place (their number does not change).
    #[inline]
    pub(crate) fn with_mut<T>(&self, f: impl FnOnce(&mut [Held]) -> T) -> T {
        self.open(|entries| f(entries))
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.open(|entries| entries.len())
    }

    /// Pushes the entry `make` builds. A builder rather than a value: built separately on
    /// each branch, the entry goes straight into its slot instead of through a stack copy
    /// (which cost a store-forwarding stall, several nanoseconds, on every acquisition).
    #[inline(always)]
    pub(crate) fn push_with(&self, make: impl Fn() -> Held) {
        if self.open(
            #[inline(always)]
            |entries| entries.len() == entries.capacity(),
        ) {
            self.grow_and_push(make());
        } else {
            // Cannot allocate: there is room.
            self.open(
                #[inline(always)]
                |entries| entries.push(make()),
            );
        }
    }

    pub(crate) fn push(&self, entry: Held) {
        self.push_with(|| entry)
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

    /// Pops the top entry if `matches` accepts it.
    #[inline(always)]
    pub(crate) fn pop_if_top(&self, matches: impl FnOnce(&Held) -> bool) -> Option<Held> {
        self.open(|entries| match entries.last() {
            Some(top) if matches(top) => entries.pop(),
            _ => None,
        })
    }

    /// Removes the innermost entry that `matches` accepts.
    pub(crate) fn remove_innermost(&self, matches: impl Fn(&Held) -> bool) -> Option<Held> {
        self.open(|entries| {
            let index = entries.iter().rposition(matches)?;
            Some(entries.remove(index))
        })
    }

    /// A copy of the stack, for work that must not look into it while it runs.
    pub(crate) fn to_vec(&self) -> Vec<Held> {
        let mut copy = self.buffer_for(0);
        self.open(|entries| copy.extend_from_slice(entries));
        copy
    }
}

#[cfg(test)]
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
        assert!(stack.pop_if_top(|h| h.id == 1).is_none());
        assert_eq!(stack.pop_if_top(|h| h.id == 2).map(|h| h.id), Some(2));
        assert_eq!(stack.len(), 1);
    }

    #[test]
    fn removes_the_innermost_match_and_keeps_order() {
        let stack = HeldStack::new();
        for (id, op) in [(1, Op::Read), (2, Op::Lock), (1, Op::Read), (3, Op::Lock)] {
            stack.push(entry(id, op));
        }
        assert!(stack.remove_innermost(|h| h.id == 1).is_some());
        let ids: Vec<u64> = stack.with(|held| held.iter().map(|h| h.id).collect());
        assert_eq!(ids, [1, 2, 3]);
        assert!(stack.remove_innermost(|h| h.id == 9).is_none());
    }

    #[test]
    fn grows_past_its_initial_capacity() {
        let stack = HeldStack::new();
        for id in 1..=100 {
            stack.push(entry(id, Op::Lock));
        }
        for id in (1..=100).rev() {
            assert!(stack.pop_if_top(|h| h.id == id).is_some());
        }
        assert_eq!(stack.len(), 0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "re-entrantly")]
    fn a_nested_use_is_caught_in_debug_builds() {
        let stack = HeldStack::new();
        stack.with(|_| stack.len());
    }
}
