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

use crate::core::ThreadTracking;
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
    tracking: ThreadTracking,
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
        let completion = Arc::new(Completion {
            done: RawEvent::new(),
            tracking: ThreadTracking::new(self.name.as_deref(), spawned_at),
        });
        let signal = SignalOnExit(completion.clone());
        let child = completion.tracking.child();
        // std's spawn can fail, and can panic (a name with a NUL byte): either way the
        // pre-registered thread never runs, and must not stay behind as one that could.
        let unstarted = completion.tracking.abandon_unless_started();
        let spawned = std_builder.spawn(move || {
            child.adopt();
            let _signal = signal;
            f()
        });
        let inner = spawned?;
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

    /// Waits for completion; returns false if the deadline passed first. `#[track_caller]`: a
    /// verdict (policy `panic`) is raised inside, on the caller's line.
    #[track_caller]
    fn wait(&self, deadline: Option<Instant>, site: &'static Location<'static>) -> bool {
        if self.completion.is_done() {
            return true;
        }
        match self
            .completion
            .tracking
            .join(&self.completion.done, deadline, site)
        {
            Some(done) => done,
            None => self.completion.wait_until(deadline),
        }
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("thread", self.inner.thread())
            .finish_non_exhaustive()
    }
}
