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

/// One lock the current thread holds, as the rest of the runtime sees it (a copy).
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

/// `Slot::flags`: the hold is a read (shared) hold.
const SHARED: u8 = 1;
/// `Slot::flags`: see [`Held::in_order_graph`].
const IN_ORDER_GRAPH: u8 = 2;
/// `Slot::flags`: the thread keeps a backtrace of where the hold began
/// (`LOCKWATCH_BACKTRACE=full`), which its release must drop.
const HAS_BACKTRACE: u8 = 4;

/// A hold as the stack keeps it. Laid out for the fast paths: a push writes five words, a
/// release compares the id and the flags (a hold with anything to undo besides the pop, in
/// flags other than `SHARED`, goes to the slow path), and the fingerprint of the held set is
/// the top slot's, so a release does not recompute it.
#[derive(Clone, Copy)]
#[repr(C)]
struct Slot {
    id: u64,
    /// The fingerprint of this hold and every hold below it: the held set's, when on top.
    fingerprint: u64,
    site: &'static Location<'static>,
    created_at: &'static Location<'static>,
    /// The reentrant depth, kind, operation and flags in one word ([`Tail`]), written by one
    /// store: as four fields they took three.
    tail: Tail,
}

/// A slot's last word: depth in bits 0–31, then a byte each for the kind, the operation and
/// the flags.
#[derive(Clone, Copy)]
struct Tail(u64);

impl Tail {
    #[inline(always)]
    fn new(count: u32, kind: Kind, op: Op, flags: u8) -> Tail {
        Tail(
            u64::from(count)
                | u64::from(kind as u8) << 32
                | u64::from(op as u8) << 40
                | u64::from(flags) << 48,
        )
    }

    #[inline(always)]
    fn count(self) -> u32 {
        self.0 as u32
    }

    fn kind(self) -> Kind {
        kind_of_code((self.0 >> 32) as u8)
    }

    fn op(self) -> Op {
        op_of_code((self.0 >> 40) as u8)
    }

    #[inline(always)]
    fn flags(self) -> u8 {
        (self.0 >> 48) as u8
    }

    fn with_count(self, count: u32) -> Tail {
        Tail(self.0 & !u64::from(u32::MAX) | u64::from(count))
    }

    fn with_flag(self, flag: u8) -> Tail {
        Tail(self.0 | u64::from(flag) << 48)
    }
}

/// Every kind, indexed by its discriminant (`kind as u8`); the tests check the table against
/// an exhaustive match, so a kind added to the detector must be added here.
const KINDS: [Kind; 13] = [
    Kind::Mutex,
    Kind::RwLock,
    Kind::ReentrantMutex,
    Kind::Lock,
    Kind::RLock,
    Kind::Semaphore,
    Kind::BoundedSemaphore,
    Kind::Condition,
    Kind::Condvar,
    Kind::Event,
    Kind::Barrier,
    Kind::Thread,
    Kind::Task,
];

/// Every operation, indexed by its discriminant (checked like [`KINDS`]).
const OPS: [Op; 8] = [
    Op::Lock,
    Op::Read,
    Op::Write,
    Op::Acquire,
    Op::Wait,
    Op::Join,
    Op::Result,
    Op::Barrier,
];

fn kind_of_code(code: u8) -> Kind {
    // Codes only come from `Tail::new`; a table the tests have checked cannot miss one.
    KINDS.get(usize::from(code)).copied().unwrap_or(Kind::Mutex)
}

fn op_of_code(code: u8) -> Op {
    OPS.get(usize::from(code)).copied().unwrap_or(Op::Lock)
}

impl Slot {
    /// The flags a fresh hold with `access` has.
    #[inline(always)]
    fn fresh_flags(access: Access) -> u8 {
        match access {
            Access::Shared => SHARED,
            Access::Exclusive => 0,
        }
    }

    #[inline(always)]
    fn access(&self) -> Access {
        if self.tail.flags() & SHARED != 0 {
            Access::Shared
        } else {
            Access::Exclusive
        }
    }

    fn held(&self) -> Held {
        Held {
            id: self.id,
            kind: self.tail.kind(),
            op: self.tail.op(),
            count: self.tail.count(),
            site: self.site,
            created_at: self.created_at,
            in_order_graph: self.tail.flags() & IN_ORDER_GRAPH != 0,
        }
    }

    /// `held` on top of a set whose fingerprint is `below`.
    fn of(held: &Held, has_backtrace: bool, below: u64) -> Slot {
        let mut flags = Slot::fresh_flags(held.access());
        if held.in_order_graph {
            flags |= IN_ORDER_GRAPH;
        }
        if has_backtrace {
            flags |= HAS_BACKTRACE;
        }
        Slot {
            id: held.id,
            fingerprint: below.wrapping_add(mix(held.id)),
            site: held.site,
            created_at: held.created_at,
            tail: Tail::new(held.count, held.kind, held.op, flags),
        }
    }
}

/// The fingerprint of `slots` as a held set.
#[inline(always)]
fn fingerprint_of(slots: &[Slot]) -> u64 {
    // Indexed rather than `last()`: the compiler turns `last`'s `Option` into a pointer test.
    match slots.len() {
        0 => 0,
        len => slots[len - 1].fingerprint,
    }
}

pub(crate) struct HeldStack {
    slots: UnsafeCell<Vec<Slot>>,
}

impl HeldStack {
    pub(crate) fn new() -> HeldStack {
        HeldStack {
            slots: UnsafeCell::new(Vec::with_capacity(16)),
        }
    }

    /// The one place the cell is opened. Private, and every `f` below is written in this
    /// module: none reaches this stack again, panics, or runs the allocator.
    #[inline(always)]
    fn open<T>(&self, f: impl FnOnce(&mut Vec<Slot>) -> T) -> T {
        self.slots.with_mut(|slots| {
            // SAFETY: `HeldStack` is `!Sync` (it holds an `UnsafeCell`) and lives in a thread's
            // own context, so only this thread reaches it, and no other reference into
            // `slots` is alive: `open` is not re-entered, because no `f` in this module calls
            // back into the stack or into code outside it, and the reference does not outlive
            // `f`.
            f(unsafe { &mut *slots })
        })
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.open(|slots| slots.len())
    }

    /// The fingerprint of the held set (see [`mix`]): zero when nothing is held (and, with
    /// probability 2^-64, for a non-empty set).
    #[inline(always)]
    pub(crate) fn fingerprint(&self) -> u64 {
        self.open(|slots| fingerprint_of(slots))
    }

    /// The one hold, if the thread holds exactly one lock.
    #[inline]
    pub(crate) fn single(&self) -> Option<Held> {
        self.open(|slots| match slots[..] {
            [only] => Some(only.held()),
            _ => None,
        })
    }

    /// Whether the thread holds lock `id` (with any access).
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.open(|slots| slots.iter().any(|h| h.id == id))
    }

    /// Pushes a fresh hold (count 1, no ordering edge yet) with `access`: the acquisition
    /// fast path. `below` is the held set's [`HeldStack::fingerprint`], read by the caller
    /// (which has it at hand) with nothing pushed or removed since. Takes the fields rather
    /// than a slot, and so does its cold path: built from values in registers, the slot goes
    /// straight into place, where a slot made first went through the stack (a
    /// store-forwarding stall, several nanoseconds an acquisition).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn push_new(
        &self,
        below: u64,
        id: u64,
        kind: Kind,
        op: Op,
        access: Access,
        site: &'static Location<'static>,
        created_at: &'static Location<'static>,
    ) {
        debug_assert_eq!(below, self.fingerprint());
        if self.is_full() {
            self.grow_and_push_new(id, kind, op, access, site, created_at);
        } else {
            // Cannot allocate: there is room.
            self.open(|slots| {
                slots.push(Slot {
                    id,
                    fingerprint: below.wrapping_add(mix(id)),
                    site,
                    created_at,
                    tail: Tail::new(1, kind, op, Slot::fresh_flags(access)),
                })
            });
        }
    }

    #[cold]
    #[inline(never)]
    fn grow_and_push_new(
        &self,
        id: u64,
        kind: Kind,
        op: Op,
        access: Access,
        site: &'static Location<'static>,
        created_at: &'static Location<'static>,
    ) {
        let held = Held {
            id,
            kind,
            op,
            count: 1,
            site,
            created_at,
            in_order_graph: false,
        };
        debug_assert!(held.access() == access);
        self.grow_and_push(&held, false);
    }

    /// Pushes a hold back (a Condvar wait restoring its mutex's hold), or a fresh hold whose
    /// acquisition was backtraced (`has_backtrace`: its release must drop the backtrace).
    pub(crate) fn push(&self, held: Held, has_backtrace: bool) {
        if self.is_full() {
            self.grow_and_push(&held, has_backtrace);
        } else {
            self.open(|slots| {
                let slot = Slot::of(&held, has_backtrace, fingerprint_of(slots));
                slots.push(slot)
            });
        }
    }

    /// Whether a push must grow the buffer (and so allocate).
    #[inline(always)]
    fn is_full(&self) -> bool {
        self.open(|slots| slots.len() == slots.capacity())
    }

    /// The global allocator is foreign code (it may even take a lockwatch lock): it runs while
    /// the stack is closed, and the stack adopts the new buffer afterwards.
    #[cold]
    #[inline(never)]
    fn grow_and_push(&self, held: &Held, has_backtrace: bool) {
        let mut buffer = self.buffer_for(self.len() + 1);
        let old = self.open(|slots| {
            buffer.extend_from_slice(slots);
            buffer.push(Slot::of(held, has_backtrace, fingerprint_of(slots)));
            std::mem::replace(slots, buffer)
        });
        drop(old);
    }

    /// An empty vector with room for the stack and `extra` more slots, allocated while the
    /// stack is closed (the allocator could push onto it meanwhile, hence the loop).
    fn buffer_for<T>(&self, extra: usize) -> Vec<T> {
        loop {
            let buffer = Vec::with_capacity(self.len() + extra);
            if buffer.capacity() >= self.len() + extra {
                return buffer;
            }
        }
    }

    /// Pops the top hold if it is a fresh hold of `id` with `access` (nothing to undo but the
    /// pop): the release fast path. `false` leaves the stack as it was.
    #[inline(always)]
    pub(crate) fn pop_if_plain_top(&self, id: u64, access: Access) -> bool {
        self.open(|slots| match slots.last() {
            Some(top) if top.id == id && top.tail.flags() == Slot::fresh_flags(access) => {
                // SAFETY: `slots` is not empty (it has a last element); the slot is `Copy`.
                unsafe { slots.set_len(slots.len() - 1) };
                true
            }
            _ => false,
        })
    }

    /// Removes the innermost hold of `id`, with `access` if given; with it, whether the
    /// thread kept a backtrace of where it began.
    pub(crate) fn remove_innermost(&self, id: u64, access: Option<Access>) -> Option<(Held, bool)> {
        self.open(|slots| {
            let index = slots
                .iter()
                .rposition(|h| h.id == id && access.is_none_or(|a| h.access() == a))?;
            let removed = slots.remove(index);
            // The holds above it now sit on a set without it.
            let mut below = fingerprint_of(&slots[..index]);
            for slot in &mut slots[index..] {
                below = below.wrapping_add(mix(slot.id));
                slot.fingerprint = below;
            }
            Some((removed.held(), removed.tail.flags() & HAS_BACKTRACE != 0))
        })
    }

    /// Adds `delta` to the reentrant depth of the innermost hold of `id` (never below 1).
    pub(crate) fn adjust_count(&self, id: u64, delta: i32) {
        self.open(|slots| {
            if let Some(h) = slots.iter_mut().rev().find(|h| h.id == id) {
                h.tail = h
                    .tail
                    .with_count(h.tail.count().saturating_add_signed(delta).max(1));
            }
        })
    }

    /// Flags the hold at `index` (from [`HeldStack::to_vec`], the stack unchanged since) as
    /// the source of an edge in the global lock-order graph.
    pub(crate) fn mark_in_order_graph(&self, index: usize) {
        self.open(|slots| {
            if let Some(slot) = slots.get_mut(index) {
                slot.tail = slot.tail.with_flag(IN_ORDER_GRAPH);
            }
        })
    }

    /// A copy of the stack, innermost last, for work that must not look into it while it runs.
    pub(crate) fn to_vec(&self) -> Vec<Held> {
        let mut copy = self.buffer_for(0);
        self.open(|slots| copy.extend(slots.iter().map(Slot::held)));
        copy
    }

    /// [`HeldStack::to_vec`] into a buffer the caller keeps, so a repeated copy allocates
    /// nothing: any growth happens while the stack is closed.
    pub(crate) fn copy_into(&self, copy: &mut Vec<Held>) {
        copy.clear();
        while copy.capacity() < self.len() {
            copy.reserve(self.len());
        }
        self.open(|slots| {
            if slots.len() <= copy.capacity() {
                copy.extend(slots.iter().map(Slot::held));
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

    /// The tables decode every code `Tail::new` makes: the matches are exhaustive, so a kind or
    /// an operation added to the detector fails to compile here until it is in its table.
    #[test]
    fn every_kind_and_operation_survives_a_slot() {
        fn code_of_kind(kind: Kind) -> usize {
            match kind {
                Kind::Mutex
                | Kind::RwLock
                | Kind::ReentrantMutex
                | Kind::Lock
                | Kind::RLock
                | Kind::Semaphore
                | Kind::BoundedSemaphore
                | Kind::Condition
                | Kind::Condvar
                | Kind::Event
                | Kind::Barrier
                | Kind::Thread
                | Kind::Task => kind as usize,
            }
        }
        fn code_of_op(op: Op) -> usize {
            match op {
                Op::Lock
                | Op::Read
                | Op::Write
                | Op::Acquire
                | Op::Wait
                | Op::Join
                | Op::Result
                | Op::Barrier => op as usize,
            }
        }
        for (code, kind) in KINDS.iter().enumerate() {
            assert_eq!(code_of_kind(*kind), code);
        }
        for (code, op) in OPS.iter().enumerate() {
            assert_eq!(code_of_op(*op), code);
        }
        for kind in KINDS {
            for op in OPS {
                let tail = Tail::new(u32::MAX, kind, op, HAS_BACKTRACE);
                assert!(tail.kind() == kind && tail.op() == op);
                assert_eq!((tail.count(), tail.flags()), (u32::MAX, HAS_BACKTRACE));
                let tail = tail.with_count(7).with_flag(IN_ORDER_GRAPH);
                assert_eq!(tail.count(), 7);
                assert_eq!(tail.flags(), HAS_BACKTRACE | IN_ORDER_GRAPH);
                assert!(tail.kind() == kind && tail.op() == op);
            }
        }
    }

    #[test]
    fn pops_only_a_matching_top() {
        let stack = HeldStack::new();
        stack.push(entry(1, Op::Lock), false);
        stack.push(entry(2, Op::Read), false);
        assert!(!stack.pop_if_plain_top(1, Access::Exclusive));
        assert!(!stack.pop_if_plain_top(2, Access::Exclusive));
        assert!(stack.pop_if_plain_top(2, Access::Shared));
        assert_eq!(stack.len(), 1);
        // A hold with something to undo (a backtrace, an ordering edge) is no plain top.
        stack.push(entry(3, Op::Lock), true);
        assert!(!stack.pop_if_plain_top(3, Access::Exclusive));
        assert_eq!(
            stack.remove_innermost(3, None).map(|(h, bt)| (h.id, bt)),
            Some((3, true))
        );
        stack.mark_in_order_graph(0);
        assert!(!stack.pop_if_plain_top(1, Access::Exclusive));
    }

    #[test]
    fn removes_the_innermost_match_and_keeps_order() {
        let stack = HeldStack::new();
        for (id, op) in [(1, Op::Read), (2, Op::Lock), (1, Op::Read), (3, Op::Lock)] {
            stack.push(entry(id, op), false);
        }
        assert!(stack.remove_innermost(1, Some(Access::Exclusive)).is_none());
        assert!(stack.remove_innermost(1, Some(Access::Shared)).is_some());
        let ids: Vec<u64> = stack.to_vec().iter().map(|h| h.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        // The holds above the removed one are on a set without it.
        assert_eq!(
            stack.fingerprint(),
            mix(1).wrapping_add(mix(2)).wrapping_add(mix(3))
        );
        assert!(stack.remove_innermost(9, None).is_none());
        assert!(stack.contains(1) && !stack.contains(9));
    }

    #[test]
    fn reentrant_depth_never_drops_below_one() {
        let stack = HeldStack::new();
        stack.push(entry(1, Op::Lock), false);
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
            stack.push_new(
                stack.fingerprint(),
                id,
                Kind::Mutex,
                Op::Lock,
                Access::Exclusive,
                here,
                here,
            );
        }
        assert_eq!(
            stack.fingerprint(),
            (1..=100).map(mix).fold(0, u64::wrapping_add)
        );
        stack.mark_in_order_graph(99);
        assert!(stack.to_vec()[99].in_order_graph);
        assert!(stack.remove_innermost(100, None).is_some());
        for id in (1..=99).rev() {
            assert!(stack.pop_if_plain_top(id, Access::Exclusive));
        }
        assert_eq!(stack.fingerprint(), 0);
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
                let access = if op == Op::Read {
                    Access::Shared
                } else {
                    Access::Exclusive
                };
                stack.push_new(stack.fingerprint(), id, Kind::Mutex, op, access, here, here);
            }
            assert_eq!(stack.len(), 20);
            assert!(!stack.pop_if_plain_top(19, Access::Exclusive));
            assert!(stack.pop_if_plain_top(20, Access::Exclusive));
            assert!(stack.remove_innermost(9, Some(Access::Exclusive)).is_none());
            assert_eq!(
                stack
                    .remove_innermost(9, Some(Access::Shared))
                    .map(|(h, _)| h.id),
                Some(9)
            );
            assert_eq!(stack.remove_innermost(4, None).map(|(h, _)| h.id), Some(4));
            stack.adjust_count(5, 2);
            stack.mark_in_order_graph(0);
            let copy = stack.to_vec();
            let ids: Vec<u64> = copy.iter().map(|h| h.id).collect();
            let expected: Vec<u64> = (1..=19).filter(|&id| id != 4 && id != 9).collect();
            assert_eq!(ids, expected);
            assert!(copy[0].in_order_graph);
            let expected_fingerprint = expected
                .iter()
                .map(|&id| mix(id))
                .fold(0, u64::wrapping_add);
            assert_eq!(stack.fingerprint(), expected_fingerprint);
            assert_eq!(copy.iter().find(|h| h.id == 5).map(|h| h.count), Some(3));
            let mut popped = 0;
            while let Some(top) = copy.get(stack.len().wrapping_sub(1)) {
                if !stack.pop_if_plain_top(top.id, top.access()) {
                    // The marked bottom hold is no plain top.
                    assert!(stack.remove_innermost(top.id, None).is_some());
                }
                popped += 1;
            }
            assert_eq!(popped, 17);
            assert!(!stack.contains(1));
        });
    }
}
