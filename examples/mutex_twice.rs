//! A `Mutex` locked twice by the same thread: the lock can never be released, so lockwatch
//! reports the deadlock the moment the second `lock()` is called.
//!
//! Run it: `LOCKWATCH_ON_DEADLOCK=abort cargo run --example mutex_twice` (exit status 86).

use lockwatch::Mutex;

fn refresh(config: &Mutex<Vec<String>>) {
    let mut entries = config.lock(); // mutex_twice: second lock
    entries.push("refreshed".into());
}

fn main() {
    let config = Mutex::named("config", Vec::new());
    let entries = config.lock(); // mutex_twice: first lock
    if entries.is_empty() {
        refresh(&config);
    }
    println!("unreachable: {} entries", entries.len());
}
