//! A thread asks for the write lock of an `RwLock` while it still holds a read lock on it:
//! the write waits for every reader to leave, including itself.
//!
//! Run it: `LOCKWATCH_ON_DEADLOCK=abort cargo run --example rwlock_upgrade` (exit status 86).

use lockwatch::RwLock;

fn main() {
    let cache = RwLock::named("cache", vec![1, 2, 3]);
    let snapshot = cache.read(); // rwlock_upgrade: read
    if snapshot.len() < 4 {
        cache.write().push(4); // rwlock_upgrade: write
    }
    println!("unreachable: {:?}", *snapshot);
}
