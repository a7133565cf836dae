//! Threads whose joins are waits in the wait-for graph.
//!
//! A thread started here is known to lockwatch before it runs, with its name, so a join on it
//! is an edge "joiner → joined thread" and a thread joining a thread that waits for it is
//! reported as a deadlock. Threads started with `std::thread` work with every primitive too;
//! only their joins are invisible.
//!
//! ```
//! let worker = lockwatch::thread::Builder::new()
//!     .name("worker".into())
//!     .spawn(|| 6 * 7)
//!     .unwrap();
//! assert_eq!(worker.join().unwrap(), 42);
//! ```

use crate::error::SyncError;
use crate::raw::{Parked, RawEvent, Waiter};
use std::io;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use std::thread::{current, panicking, park, sleep, yield_now, Thread, ThreadId};

/// Completion of a thread, signalled before its thread-locals are destroyed.
struct Completion {
    done: RawEvent,
    #[cfg(feature = "detect")]
    tracking: Option<detect::Tracking>,
}

impl Completion {
    fn is_done(&self) -> bool {
        self.done.is_set()
    }

    /// Waits untracked; false if the deadline passed first.
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        self.done.wait_as(deadline, Waiter::ANONYMOUS) == Parked::Acquired
    }
}

/// Marks the thread finished when its closure returns or unwinds.
struct SignalOnExit(Arc<Completion>);

impl Drop for SignalOnExit {
    fn drop(&mut self) {
        self.0.done.set();
    }
}

/// Thread factory, as `std::thread::Builder`.
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder for an unnamed thread with the default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the thread; the name appears in panics and in lockwatch's reports.
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// Sets the stack size in bytes.
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Starts the thread.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let spawned_at = Location::caller();
        let mut std_builder = std::thread::Builder::new();
        if let Some(name) = &self.name {
            std_builder = std_builder.name(name.clone());
        }
        if let Some(size) = self.stack_size {
            std_builder = std_builder.stack_size(size);
        }
        let _ = spawned_at;
        let completion = Arc::new(Completion {
            done: RawEvent::new(),
            #[cfg(feature = "detect")]
            tracking: detect::Tracking::new(self.name.as_deref(), spawned_at),
        });
        let signal = SignalOnExit(completion.clone());
        #[cfg(feature = "detect")]
        let record = completion.tracking.as_ref().map(|t| t.record.clone());
        // std's spawn can fail, and can panic (a name with a NUL byte): either way the
        // pre-registered thread never runs, and must not stay behind as one that could.
        #[cfg(feature = "detect")]
        let unstarted = detect::AbandonUnlessStarted(completion.tracking.as_ref());
        let spawned = std_builder.spawn(move || {
            #[cfg(feature = "detect")]
            if let Some(record) = record {
                crate::rt::adopt_thread(record);
            }
            let _signal = signal;
            f()
        });
        let inner = spawned?;
        #[cfg(feature = "detect")]
        unstarted.started();
        Ok(JoinHandle { inner, completion })
    }
}

/// Starts a thread, as `std::thread::spawn`.
///
/// # Panics
/// If the OS cannot create a thread.
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f).expect("failed to spawn thread")
}

/// An owned permission to join a thread.
pub struct JoinHandle<T> {
    inner: std::thread::JoinHandle<T>,
    completion: Arc<Completion>,
}

impl<T> JoinHandle<T> {
    /// Waits for the thread to finish and returns its result (`Err` with the panic payload if
    /// it panicked). Joining the current thread returns `Err` with a [`SyncError`] payload
    /// instead of hanging.
    #[track_caller]
    pub fn join(self) -> std::thread::Result<T> {
        if self.inner.thread().id() == std::thread::current().id() {
            return Err(Box::new(SyncError::JoinCurrentThread));
        }
        self.wait(None, Location::caller());
        self.inner.join()
    }

    /// Waits at most `timeout`. On time-out the handle is given back so the caller can try
    /// again.
    #[track_caller]
    pub fn join_timeout(self, timeout: Duration) -> Result<std::thread::Result<T>, JoinHandle<T>> {
        if self.inner.thread().id() == std::thread::current().id() {
            return Ok(Err(Box::new(SyncError::JoinCurrentThread)));
        }
        let deadline = Instant::now().checked_add(timeout);
        if self.wait(deadline, Location::caller()) {
            Ok(self.inner.join())
        } else {
            Err(self)
        }
    }

    /// Whether the thread's closure has returned (or unwound).
    pub fn is_finished(&self) -> bool {
        self.completion.is_done()
    }

    /// The thread's handle.
    pub fn thread(&self) -> &Thread {
        self.inner.thread()
    }

    /// Waits for completion; returns false if the deadline passed first.
    fn wait(&self, deadline: Option<Instant>, site: &'static Location<'static>) -> bool {
        if self.completion.is_done() {
            return true;
        }
        #[cfg(feature = "detect")]
        if let Some(tracking) = &self.completion.tracking {
            if crate::config::enabled() {
                if let Some(done) = detect::wait(&self.completion, tracking, deadline, site) {
                    return done;
                }
            }
        }
        let _ = site;
        self.completion.wait_until(deadline)
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("thread", self.inner.thread())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "detect")]
mod detect {
    use super::Completion;
    use crate::rt::{self, ThreadRecord};
    use std::panic::Location;
    use std::sync::Arc;
    use std::time::Instant;

    /// The runtime's view of a spawned thread: its record and the resource a join waits on.
    pub(super) struct Tracking {
        pub(super) record: Arc<ThreadRecord>,
        resource_id: u64,
        spawned_at: &'static Location<'static>,
    }

    impl Tracking {
        pub(super) fn new(
            name: Option<&str>,
            spawned_at: &'static Location<'static>,
        ) -> Option<Tracking> {
            if !crate::config::enabled() {
                return None;
            }
            Some(Tracking {
                record: rt::preregister_thread(name.map(Arc::from)),
                resource_id: rt::next_resource_id(),
                spawned_at,
            })
        }

        /// The thread never started.
        fn abandon(&self) {
            rt::forget_thread(self.record.id);
        }
    }

    /// Abandons a pre-registered thread when dropped, unless it was started: the spawn
    /// returned an error or unwound.
    pub(super) struct AbandonUnlessStarted<'a>(pub(super) Option<&'a Tracking>);

    impl AbandonUnlessStarted<'_> {
        pub(super) fn started(mut self) {
            self.0 = None;
        }
    }

    impl Drop for AbandonUnlessStarted<'_> {
        fn drop(&mut self) {
            if let Some(tracking) = self.0 {
                tracking.abandon();
            }
        }
    }

    /// A tracked join. `None` if tracking is off.
    pub(super) fn wait(
        completion: &Completion,
        tracking: &Tracking,
        deadline: Option<Instant>,
        site: &'static Location<'static>,
    ) -> Option<bool> {
        let joined = rt::Joined {
            record: &tracking.record,
            resource_id: tracking.resource_id,
            spawned_at: tracking.spawned_at,
        };
        Some(rt::join_wait(&completion.done, &joined, deadline, site))
    }
}
