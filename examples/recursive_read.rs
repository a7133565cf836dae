//! A recursive read behind a queued writer. parking_lot's `RwLock` is task-fair: once a writer
//! waits, new readers queue behind it. `reader` holds a read lock, `writer` queues for the
//! write lock (waiting for `reader`), and `reader` asks for a second read lock, which now waits
//! for `writer`. lockwatch knows a queued writer blocks readers and reports the cycle.
//!
//! Run it: `LOCKWATCH_ON_DEADLOCK=abort cargo run --example recursive_read` (exit status 86).

use lockwatch::RwLock;
use std::sync::{mpsc, Arc};

fn main() {
    let table = Arc::new(RwLock::named("routing table", 0u32));
    let (first_read_tx, first_read_rx) = mpsc::channel();
    let reader = {
        let table = table.clone();
        lockwatch::thread::Builder::new()
            .name("reader".into())
            .spawn(move || {
                let first = table.read(); // recursive_read: first read
                first_read_tx.send(()).unwrap();
                // Wait until the writer is queued (it then holds the writer bit).
                while !table.is_locked_exclusive() {
                    std::thread::yield_now();
                }
                let second = table.read(); // recursive_read: second read
                println!("unreachable: {} {}", *first, *second);
            })
            .unwrap()
    };
    first_read_rx.recv().unwrap();
    let writer = {
        let table = table.clone();
        lockwatch::thread::Builder::new()
            .name("writer".into())
            .spawn(move || {
                *table.write() += 1; // recursive_read: write
            })
            .unwrap()
    };
    reader.join().unwrap();
    writer.join().unwrap();
}
