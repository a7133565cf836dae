//! A thread joins a thread that waits for it: `main` holds `state` and joins `child`, while
//! `child` waits for `state`. Neither can finish.
//!
//! Run it: `LOCKWATCH_ON_DEADLOCK=abort cargo run --example join_cycle` (exit status 86).

use lockwatch::Mutex;
use std::sync::{mpsc, Arc};

fn main() {
    let state = Arc::new(Mutex::named("state", 0));
    let guard = state.lock(); // join_cycle: main holds state
    let (started_tx, started_rx) = mpsc::channel();
    let child = {
        let state = state.clone();
        lockwatch::thread::Builder::new()
            .name("child".into())
            .spawn(move || {
                started_tx.send(()).unwrap();
                *state.lock() += 1; // join_cycle: child waits for state
            })
            .unwrap()
    };
    started_rx.recv().unwrap();
    child.join().unwrap(); // join_cycle: main joins child
    drop(guard);
}
