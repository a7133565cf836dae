//! A thread exits while holding a lock (its guard was leaked with `mem::forget`); the next
//! thread to lock it waits for an owner that no longer exists.
//!
//! Run it: `LOCKWATCH_ON_DEADLOCK=abort cargo run --example leaked_guard` (exit status 86).

use lockwatch::Mutex;
use std::sync::Arc;

fn main() {
    let cache = Arc::new(Mutex::named("cache", 0));
    let leaker = {
        let cache = cache.clone();
        lockwatch::thread::Builder::new()
            .name("leaker".into())
            .spawn(move || {
                let guard = cache.lock(); // leaked_guard: leaked lock
                std::mem::forget(guard);
            })
            .unwrap()
    };
    leaker.join().unwrap();
    *cache.lock() += 1; // leaked_guard: waits for the exited owner
    println!("unreachable");
}
