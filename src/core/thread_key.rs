//! Reentrant ownership's identity for a thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An identity for the current thread, for reentrant ownership: non-zero, and never reused
/// within the process (a global counter, read on the thread's first use), so a thread that
/// exits holding a reentrant lock leaves it owned by no thread that will ever run. (The address
/// of a thread-local, used before, is handed to a later thread.) On 32-bit targets a key would
/// come back only after 2^32 threads. It does not need the runtime, so reentrancy works
/// identically with and without feature `detect`; once assigned it is one thread-local load.
#[inline]
pub(crate) fn current_thread_key() -> usize {
    match THREAD_KEY.get() {
        0 => assign_thread_key(),
        key => key,
    }
}

thread_local! {
    /// This thread's key, 0 until its first use. No destructor, so it stays readable while
    /// other thread-locals are destroyed.
    static THREAD_KEY: Cell<usize> = const { Cell::new(0) };
}

#[cold]
#[inline(never)]
fn assign_thread_key() -> usize {
    static NEXT_THREAD_KEY: AtomicUsize = AtomicUsize::new(1);
    let key = NEXT_THREAD_KEY.fetch_add(1, Ordering::Relaxed);
    THREAD_KEY.set(key);
    key
}
