//! A thread's mailbox for foreign releases: a `Lock` it acquired and another thread released.
//!
//! The acquirer's held stack is reachable only from its own thread, so the releasing thread
//! posts the lock's id here and the acquirer strikes the hold itself, on its next blocking
//! acquisition or when it exits. Exiting closes the mailbox: a letter posted before the close
//! is in what the close returns, and a post after it is refused, so the sender strikes the
//! hold from the exited thread's leaked holds instead (see `registry::deliver_release`). No
//! letter is ever lost between the two.
//!
//! Built on [`crate::primitive`]: the loom tests in `registry.rs` run this code.

use crate::primitive::sync::atomic::{AtomicBool, Ordering};
use crate::primitive::sync::Mutex;

pub(crate) struct Mailbox {
    letters: Mutex<Letters>,
    /// Whether `letters` has lock ids, for the owner's fast path. Written only under the
    /// `letters` lock, so it is exact there; a relaxed load outside may be stale, which only
    /// delays the strike to the owner's next look (its exit always looks).
    has_mail: AtomicBool,
}

struct Letters {
    closed: bool,
    lock_ids: Vec<u64>,
}

impl Mailbox {
    pub(crate) fn new() -> Mailbox {
        let mailbox = Mailbox {
            letters: Mutex::new(Letters {
                closed: false,
                lock_ids: Vec::new(),
            }),
            has_mail: AtomicBool::new(false),
        };
        // Under loom an atomic comes into being on first use (see `crate::primitive`): here,
        // by its creator, before another thread can touch it.
        #[cfg(loom)]
        mailbox.has_mail.load(Ordering::Relaxed);
        mailbox
    }

    /// Posts a foreign release of `lock_id`. `false` if the mailbox is closed: its thread has
    /// exited, and the hold is to be struck from what it leaked.
    pub(crate) fn post(&self, lock_id: u64) -> bool {
        let mut letters = self.letters.lock();
        if letters.closed {
            return false;
        }
        letters.lock_ids.push(lock_id);
        self.has_mail.store(true, Ordering::Relaxed);
        true
    }

    /// Whether letters may be waiting: one relaxed load, for the owner's fast path.
    #[inline]
    pub(crate) fn has_mail(&self) -> bool {
        self.has_mail.load(Ordering::Relaxed)
    }

    /// The letters posted so far (owner only).
    pub(crate) fn take(&self) -> Vec<u64> {
        let mut letters = self.letters.lock();
        self.has_mail.store(false, Ordering::Relaxed);
        std::mem::take(&mut letters.lock_ids)
    }

    /// The last letters; every later post is refused (owner only, as it exits).
    pub(crate) fn close(&self) -> Vec<u64> {
        let mut letters = self.letters.lock();
        letters.closed = true;
        self.has_mail.store(false, Ordering::Relaxed);
        std::mem::take(&mut letters.lock_ids)
    }
}
