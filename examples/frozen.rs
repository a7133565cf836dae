//! The frozen program, and the reason `RLock` exists.
//!
//! A ledger guards its entries with a lock. `record_with_fee` takes the lock and then calls
//! `record`, which takes the same lock again. With an `RLock` the owner simply re-enters. With a
//! plain `Lock` the second `acquire` waits for a release that can only come from the thread that
//! is waiting: the program freezes. In Python it would hang silently; here lockwatch reports the
//! deadlock with the thread, the lock and both source lines, and (policy `panic`, which this
//! example picks unless `LOCKWATCH_ON_DEADLOCK` says otherwise) the frozen thread panics so the
//! program can end by itself.
//!
//! Run it: `cargo run --example frozen`

use lockwatch::{Config, Lock, OnDeadlock, RLock};
use std::sync::Arc;

/// The two Python lock types, as the ledger uses them.
trait PyLock: Send + Sync + 'static {
    fn acquire(&self);
    fn release(&self);
}

impl PyLock for Lock {
    #[track_caller]
    fn acquire(&self) {
        Lock::acquire(self)
    }
    fn release(&self) {
        Lock::release(self).expect("the ledger releases what it acquired")
    }
}

impl PyLock for RLock {
    #[track_caller]
    fn acquire(&self) {
        RLock::acquire(self)
    }
    fn release(&self) {
        RLock::release(self).expect("the ledger releases what it acquired")
    }
}

struct Ledger<L> {
    lock: L,
    entries: std::sync::Mutex<Vec<i64>>,
}

impl<L: PyLock> Ledger<L> {
    fn record(&self, amount: i64) {
        self.lock.acquire(); // frozen: second acquire
        self.entries.lock().unwrap().push(amount);
        self.lock.release();
    }

    fn record_with_fee(&self, amount: i64) {
        self.lock.acquire(); // frozen: first acquire
        self.record(amount);
        self.record(-1);
        self.lock.release();
    }

    fn total(&self) -> i64 {
        self.entries.lock().unwrap().iter().sum()
    }
}

fn run<L: PyLock>(kind: &str, lock: L) -> bool {
    let ledger = Arc::new(Ledger {
        lock,
        entries: std::sync::Mutex::new(Vec::new()),
    });
    let worker = {
        let ledger = ledger.clone();
        lockwatch::thread::Builder::new()
            .name("ledger-worker".into())
            .spawn(move || {
                ledger.record(100);
                ledger.record_with_fee(50);
            })
            .expect("spawn the worker")
    };
    match worker.join() {
        Ok(()) => {
            println!("with an {kind}: the ledger balances at {}", ledger.total());
            true
        }
        Err(_) => {
            println!("with a {kind}: the worker froze; lockwatch reported it and ended the wait");
            false
        }
    }
}

fn main() {
    if std::env::var_os("LOCKWATCH_ON_DEADLOCK").is_none() {
        let mut config = Config::current();
        config.on_deadlock = OnDeadlock::Panic;
        config.install();
        // The panic message repeats the report's headline; the report itself is on stderr.
        std::panic::set_hook(Box::new(|_| {}));
    }
    println!("1. RLock: the owner may re-enter.");
    run("RLock", RLock::named("ledger lock"));
    println!("2. Lock: not reentrant, so `record_with_fee` waits for itself.");
    let froze = !run("Lock", Lock::named("ledger lock"));
    println!(
        "{}",
        if froze {
            "Use an RLock when a thread must take a lock it may already hold."
        } else {
            "unexpected: the Lock version finished"
        }
    );
}
