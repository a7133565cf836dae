use std::fmt;

/// Misuse of a primitive, returned as a value (never a panic), as CPython raises
/// `RuntimeError`/`ValueError` for the same mistakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyncError {
    /// `Lock::release` on a lock that is not locked.
    NotLocked,
    /// An owned primitive (RLock, a Condition's lock) released, waited on or notified by a thread
    /// that does not hold it.
    NotOwner,
    /// `BoundedSemaphore::release` past its initial value.
    TooManyReleases,
    /// A thread tried to join itself, which could never finish.
    JoinCurrentThread,
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncError::NotLocked => "release of an unlocked lock",
            SyncError::NotOwner => "the current thread does not own this lock",
            SyncError::TooManyReleases => "semaphore released too many times",
            SyncError::JoinCurrentThread => "a thread cannot join itself",
        })
    }
}

impl std::error::Error for SyncError {}
