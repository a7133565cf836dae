//! A cycle of three threads across three kinds of lock: `alpha` holds a `Mutex` and wants an
//! `RwLock`'s write lock, `beta` holds that and wants a `Lock`, `gamma` holds the `Lock` and
//! wants the `Mutex`. A barrier makes each take its first lock before asking for the next.
//!
//! Run it: `LOCKWATCH_ON_DEADLOCK=abort cargo run --example three_way` (exit status 86).

use lockwatch::{Lock, Mutex, RwLock};
use std::sync::{Arc, Barrier};

struct Shared {
    inventory: Mutex<u32>,
    prices: RwLock<u32>,
    audit: Lock,
    all_hold_one: Barrier,
}

fn main() {
    let shared = Arc::new(Shared {
        inventory: Mutex::named("inventory", 0),
        prices: RwLock::named("prices", 0),
        audit: Lock::named("audit"),
        all_hold_one: Barrier::new(3),
    });
    let spawn = |name: &str, body: fn(&Shared)| {
        let shared = shared.clone();
        lockwatch::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(&shared))
            .unwrap()
    };
    let threads = [
        spawn("alpha", |s| {
            let _inventory = s.inventory.lock(); // three_way: alpha holds inventory
            s.all_hold_one.wait();
            let _prices = s.prices.write(); // three_way: alpha wants prices
        }),
        spawn("beta", |s| {
            let _prices = s.prices.write(); // three_way: beta holds prices
            s.all_hold_one.wait();
            let _audit = s.audit.lock(); // three_way: beta wants audit
        }),
        spawn("gamma", |s| {
            let _audit = s.audit.lock(); // three_way: gamma holds audit
            s.all_hold_one.wait();
            let _inventory = s.inventory.lock(); // three_way: gamma wants inventory
        }),
    ];
    for t in threads {
        t.join().unwrap();
    }
}
