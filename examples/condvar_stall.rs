//! A stall: `consumer` waits on a `Condvar` for an item, but the only other thread, `main`, is
//! waiting for `consumer` to finish. Nobody is left to notify: no cycle of locks, yet no thread
//! can ever run again.
//!
//! Run it: `LOCKWATCH_ON_DEADLOCK=abort cargo run --example condvar_stall` (exit status 86).

use lockwatch::{Condvar, Mutex};
use std::sync::Arc;

fn main() {
    let queue = Arc::new((
        Mutex::named("queue", Vec::<u32>::new()),
        Condvar::named("item ready"),
    ));
    let consumer = {
        let queue = queue.clone();
        lockwatch::thread::Builder::new()
            .name("consumer".into())
            .spawn(move || {
                let (items, ready) = &*queue;
                let mut items = items.lock();
                while items.is_empty() {
                    ready.wait(&mut items); // condvar_stall: waits for an item
                }
                items.pop()
            })
            .unwrap()
    };
    // The producer was never written: main goes straight to the join.
    let item = consumer.join().unwrap(); // condvar_stall: main joins consumer
    println!("unreachable: {item:?}");
}
