//! The primitives lockwatch's hand-rolled protocols are built on: std's (and a plain
//! parking_lot mutex) in every ordinary build, loom's under `--cfg loom`, so the same code runs
//! under the model checker (as crossbeam-utils does it). Only code that a loom test drives
//! needs to use this module; the rest of the runtime may keep std's types.
//!
//! Run the model checks with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release -p lockwatch --lib loom`.
//!
//! The API is the intersection of the two worlds: where they differ, this module gives both
//! the one shape (see [`cell::UnsafeCell`] and [`sync::Mutex`]). Under loom every type here
//! must be created inside `loom::model`.
// A shim: each build (with or without `detect`, std or loom) uses a different part of it.
#![allow(dead_code, unused_imports)]

pub(crate) mod sync {
    #[cfg(not(loom))]
    pub(crate) use std::sync::Arc;

    #[cfg(loom)]
    pub(crate) use loom::sync::Arc;

    pub(crate) mod atomic {
        #[cfg(not(loom))]
        pub(crate) use std::sync::atomic::*;

        #[cfg(loom)]
        pub(crate) use loom::sync::atomic::{fence, Ordering};

        #[cfg(loom)]
        pub(crate) use super::lazy_atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize};
    }

    /// loom's atomics cannot be created in a `const fn`, and lockwatch's primitives are
    /// `const`-constructible (they can be statics). Under loom each atomic is therefore a
    /// `const`-constructible cell holding its initial value, which creates the loom atomic on
    /// first use (inside the model, since every object a model checks is created inside it)
    /// and dereferences to it.
    #[cfg(loom)]
    mod lazy_atomic {
        use std::sync::OnceLock;

        macro_rules! lazy_atomic {
            ($name:ident, $value:ty) => {
                pub(crate) struct $name {
                    initial: $value,
                    cell: OnceLock<loom::sync::atomic::$name>,
                }

                impl $name {
                    pub(crate) const fn new(initial: $value) -> $name {
                        $name {
                            initial,
                            cell: OnceLock::new(),
                        }
                    }
                }

                impl std::ops::Deref for $name {
                    type Target = loom::sync::atomic::$name;
                    fn deref(&self) -> &Self::Target {
                        self.cell
                            .get_or_init(|| loom::sync::atomic::$name::new(self.initial))
                    }
                }

                impl std::fmt::Debug for $name {
                    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.debug_struct(stringify!($name)).finish_non_exhaustive()
                    }
                }
            };
        }

        lazy_atomic!(AtomicBool, bool);
        lazy_atomic!(AtomicU8, u8);
        lazy_atomic!(AtomicU64, u64);
        lazy_atomic!(AtomicUsize, usize);
    }

    /// A plain (uninstrumented, non-poisoning) mutex: parking_lot's.
    #[cfg(not(loom))]
    pub(crate) use parking_lot::{Mutex, MutexGuard};

    #[cfg(loom)]
    pub(crate) use self::loom_mutex::{Mutex, MutexGuard};

    /// loom's mutex with parking_lot's signature: `lock()` returns the guard (nothing poisons
    /// it here: a panic inside a loom model fails the test anyway), and `new` is `const`, as
    /// parking_lot's is: like the atomics above, the loom mutex comes into being on first use.
    #[cfg(loom)]
    mod loom_mutex {
        use std::sync::OnceLock;

        pub(crate) struct Mutex<T> {
            initial: std::sync::Mutex<Option<T>>,
            cell: OnceLock<loom::sync::Mutex<T>>,
        }

        pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

        impl<T> Mutex<T> {
            pub(crate) const fn new(value: T) -> Mutex<T> {
                Mutex {
                    initial: std::sync::Mutex::new(Some(value)),
                    cell: OnceLock::new(),
                }
            }

            fn inner(&self) -> &loom::sync::Mutex<T> {
                self.cell.get_or_init(|| {
                    let value = self.initial.lock().unwrap().take();
                    loom::sync::Mutex::new(value.expect("made once"))
                })
            }

            pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
                self.inner()
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
            }

            pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
                self.inner().try_lock().ok()
            }
        }

        impl<T: Default> Default for Mutex<T> {
            fn default() -> Mutex<T> {
                Mutex::new(T::default())
            }
        }
    }
}

pub(crate) mod cell {
    /// An `UnsafeCell` with loom's API in both worlds: the pointer is only lent to a closure,
    /// so loom can check that no two accesses overlap (loom has no `get`). With std this is
    /// `std::cell::UnsafeCell`, and `with`/`with_mut` inline to a plain `get`.
    #[cfg(not(loom))]
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        #[inline(always)]
        pub(crate) const fn new(value: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        #[inline(always)]
        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner()
        }
    }

    #[cfg(not(loom))]
    impl<T: ?Sized> UnsafeCell<T> {
        /// Lends a shared pointer to the contents to `f`.
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Lends an exclusive pointer to the contents to `f`.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    #[cfg(loom)]
    pub(crate) use loom::cell::UnsafeCell;
}

pub(crate) mod thread {
    #[cfg(not(loom))]
    pub(crate) use std::thread::{spawn, yield_now, JoinHandle};

    #[cfg(loom)]
    pub(crate) use loom::thread::{spawn, yield_now, JoinHandle};
}

pub(crate) mod hint {
    #[cfg(not(loom))]
    pub(crate) use std::hint::spin_loop;

    #[cfg(loom)]
    pub(crate) use loom::hint::spin_loop;
}

/// Parking: `parking_lot_core` in every ordinary build; under loom a model of it, so that the
/// raw primitives (`src/raw/`) are checked on their real code. The model keeps one queue for
/// all keys behind a loom mutex, which stands for `parking_lot_core`'s bucket locks: the
/// callbacks run under it, as they run under the bucket lock. A timed park times out as soon
/// as it can unless an unpark reaches it first; loom explores both orders, and every
/// interleaving of other threads in between. Spinning is left out (`SpinWait::spin` is always
/// false), fair hand-over is chosen by `parking::set_fair` (under loom).
pub(crate) mod parking {
    pub(crate) use parking_lot_core::{
        FilterOp, ParkResult, ParkToken, RequeueOp, UnparkResult, UnparkToken,
    };

    #[cfg(not(loom))]
    pub(crate) use parking_lot_core::{
        park, unpark_all, unpark_filter, unpark_one, unpark_requeue, SpinWait,
    };

    #[cfg(loom)]
    pub(crate) use self::model::{
        park, set_fair, unpark_all, unpark_filter, unpark_one, unpark_requeue, SpinWait,
    };

    #[cfg(loom)]
    mod model {
        use super::{FilterOp, ParkResult, ParkToken, RequeueOp, UnparkResult, UnparkToken};
        use loom::sync::{Arc, Mutex};
        use std::time::Instant;

        struct Parked {
            key: usize,
            token: ParkToken,
            thread: loom::thread::Thread,
            woken: Arc<Mutex<Option<UnparkToken>>>,
        }

        loom::lazy_static! {
            static ref QUEUE: Mutex<Vec<Parked>> = Mutex::new(Vec::new());
        }

        std::thread_local! {
            /// Whether unparks report `be_fair`: the test's choice, for the models it runs
            /// (loom runs a model's threads on the test's own OS thread; tests run in
            /// parallel, so this cannot be process-wide).
            static FAIR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }

        pub(crate) fn set_fair(fair: bool) {
            FAIR.with(|f| f.set(fair));
        }

        pub(crate) struct SpinWait;

        impl SpinWait {
            pub(crate) fn new() -> SpinWait {
                SpinWait
            }
            pub(crate) fn spin(&mut self) -> bool {
                false
            }
            pub(crate) fn reset(&mut self) {}
        }

        fn wake(parked: Parked, token: UnparkToken) {
            *parked.woken.lock().unwrap() = Some(token);
            parked.thread.unpark();
        }

        /// # Safety
        /// As `parking_lot_core::park` (nothing here relies on it).
        pub(crate) unsafe fn park(
            key: usize,
            validate: impl FnOnce() -> bool,
            before_sleep: impl FnOnce(),
            timed_out: impl FnOnce(usize, bool),
            token: ParkToken,
            timeout: Option<Instant>,
        ) -> ParkResult {
            let woken = Arc::new(Mutex::new(None));
            {
                let mut queue = QUEUE.lock().unwrap();
                if !validate() {
                    return ParkResult::Invalid;
                }
                queue.push(Parked {
                    key,
                    token,
                    thread: loom::thread::current(),
                    woken: woken.clone(),
                });
            }
            before_sleep();
            if timeout.is_some() {
                let mut queue = QUEUE.lock().unwrap();
                if let Some(token) = *woken.lock().unwrap() {
                    return ParkResult::Unparked(token);
                }
                let at = queue
                    .iter()
                    .position(|p| Arc::ptr_eq(&p.woken, &woken))
                    .expect("a parked thread not woken is queued");
                // The key it is parked under now: a requeue may have moved it.
                let key = queue.remove(at).key;
                let was_last = !queue.iter().any(|p| p.key == key);
                timed_out(key, was_last);
                return ParkResult::TimedOut;
            }
            loop {
                if let Some(token) = *woken.lock().unwrap() {
                    return ParkResult::Unparked(token);
                }
                loom::thread::park();
            }
        }

        /// # Safety
        /// As `parking_lot_core::unpark_one`.
        pub(crate) unsafe fn unpark_one(
            key: usize,
            callback: impl FnOnce(UnparkResult) -> UnparkToken,
        ) -> UnparkResult {
            let mut first = true;
            // SAFETY: the same contract.
            unsafe {
                unpark_filter(
                    key,
                    |_| {
                        if std::mem::take(&mut first) {
                            FilterOp::Unpark
                        } else {
                            FilterOp::Stop
                        }
                    },
                    callback,
                )
            }
        }

        /// # Safety
        /// As `parking_lot_core::unpark_all`.
        pub(crate) unsafe fn unpark_all(key: usize, token: UnparkToken) -> usize {
            // SAFETY: the same contract.
            unsafe { unpark_filter(key, |_| FilterOp::Unpark, |_| token) }.unparked_threads
        }

        /// # Safety
        /// As `parking_lot_core::unpark_filter`.
        pub(crate) unsafe fn unpark_filter(
            key: usize,
            mut filter: impl FnMut(ParkToken) -> FilterOp,
            callback: impl FnOnce(UnparkResult) -> UnparkToken,
        ) -> UnparkResult {
            let mut queue = QUEUE.lock().unwrap();
            let mut result = UnparkResult::default();
            let mut chosen = Vec::new();
            let mut i = 0;
            while i < queue.len() {
                if queue[i].key != key {
                    i += 1;
                    continue;
                }
                match filter(queue[i].token) {
                    FilterOp::Unpark => chosen.push(queue.remove(i)),
                    FilterOp::Skip => {
                        result.have_more_threads = true;
                        i += 1;
                    }
                    FilterOp::Stop => {
                        result.have_more_threads = true;
                        break;
                    }
                }
            }
            result.unparked_threads = chosen.len();
            result.be_fair = !chosen.is_empty() && FAIR.with(std::cell::Cell::get);
            let token = callback(result);
            drop(queue);
            for parked in chosen {
                wake(parked, token);
            }
            result
        }

        /// # Safety
        /// As `parking_lot_core::unpark_requeue`.
        pub(crate) unsafe fn unpark_requeue(
            key_from: usize,
            key_to: usize,
            validate: impl FnOnce() -> RequeueOp,
            callback: impl FnOnce(RequeueOp, UnparkResult) -> UnparkToken,
        ) -> UnparkResult {
            let mut queue = QUEUE.lock().unwrap();
            let mut result = UnparkResult::default();
            let op = validate();
            if op == RequeueOp::Abort {
                return result;
            }
            let wakes_one = matches!(op, RequeueOp::UnparkOne | RequeueOp::UnparkOneRequeueRest);
            let just_one = matches!(op, RequeueOp::UnparkOne | RequeueOp::RequeueOne);
            let mut woken = None;
            let mut requeued = Vec::new();
            let mut i = 0;
            while i < queue.len() {
                if queue[i].key != key_from {
                    i += 1;
                    continue;
                }
                if just_one && (woken.is_some() || !requeued.is_empty()) {
                    result.have_more_threads = true;
                    break;
                }
                let mut parked = queue.remove(i);
                if wakes_one && woken.is_none() {
                    woken = Some(parked);
                } else {
                    parked.key = key_to;
                    requeued.push(parked);
                }
            }
            result.unparked_threads = usize::from(woken.is_some());
            result.requeued_threads = requeued.len();
            result.be_fair = woken.is_some() && FAIR.with(std::cell::Cell::get);
            // Requeued threads join the end of the target's queue, in their order.
            queue.extend(requeued);
            let token = callback(op, result);
            drop(queue);
            if let Some(parked) = woken {
                wake(parked, token);
            }
            result
        }
    }
}
