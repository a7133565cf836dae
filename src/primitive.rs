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
        pub(crate) use loom::sync::atomic::*;
    }

    /// A plain (uninstrumented, non-poisoning) mutex: parking_lot's.
    #[cfg(not(loom))]
    pub(crate) use parking_lot::{Mutex, MutexGuard};

    #[cfg(loom)]
    pub(crate) use self::loom_mutex::{Mutex, MutexGuard};

    /// loom's mutex with parking_lot's signature: `lock()` returns the guard (nothing poisons
    /// it here: a panic inside a loom model fails the test anyway).
    #[cfg(loom)]
    mod loom_mutex {
        pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

        pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

        impl<T> Mutex<T> {
            pub(crate) fn new(value: T) -> Mutex<T> {
                Mutex(loom::sync::Mutex::new(value))
            }

            pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
                self.0
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
            }

            pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
                self.0.try_lock().ok()
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
