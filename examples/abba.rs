//! Two threads take two locks in opposite orders: the textbook deadlock.
//!
//! `worker-a` transfers from account A to account B (locks A, then B); `worker-b` transfers
//! from B to A (locks B, then A). A barrier makes sure each holds its first lock before asking
//! for the second, so the program freezes every time. lockwatch warns of the lock-order
//! inversion the moment the second order is seen, then reports the deadlock itself: both
//! threads, both accounts, the source lines, and the order to adopt. Unless
//! `LOCKWATCH_ON_DEADLOCK` says otherwise this example uses policy `panic`: the worker whose
//! wait closed the cycle panics, which releases its account, and the other one completes.
//!
//! Run it: `cargo run --example abba`

use lockwatch::{Config, Mutex, OnDeadlock};
use std::sync::{Arc, Barrier};

struct Bank {
    a: Mutex<i64>,
    b: Mutex<i64>,
    both_hold_one: Barrier,
}

fn transfer(from: &Mutex<i64>, to: &Mutex<i64>, amount: i64, barrier: &Barrier) {
    let mut from = from.lock(); // abba: first lock
    barrier.wait();
    let mut to = to.lock(); // abba: second lock
    *from -= amount;
    *to += amount;
}

fn main() {
    if std::env::var_os("LOCKWATCH_ON_DEADLOCK").is_none() {
        let mut config = Config::current();
        config.on_deadlock = OnDeadlock::Panic;
        config.install();
        std::panic::set_hook(Box::new(|_| {}));
    }
    let bank = Arc::new(Bank {
        a: Mutex::named("account A", 100),
        b: Mutex::named("account B", 100),
        both_hold_one: Barrier::new(2),
    });
    let worker_a = {
        let bank = bank.clone();
        lockwatch::thread::Builder::new()
            .name("worker-a".into())
            .spawn(move || transfer(&bank.a, &bank.b, 10, &bank.both_hold_one))
            .unwrap()
    };
    let worker_b = {
        let bank = bank.clone();
        lockwatch::thread::Builder::new()
            .name("worker-b".into())
            .spawn(move || transfer(&bank.b, &bank.a, 20, &bank.both_hold_one))
            .unwrap()
    };
    for (name, worker) in [("worker-a", worker_a), ("worker-b", worker_b)] {
        match worker.join() {
            Ok(()) => println!("{name}: transfer done"),
            Err(_) => println!("{name}: transfer abandoned (deadlock detected)"),
        }
    }
    println!("balances: A = {}, B = {}", *bank.a.lock(), *bank.b.lock());
}
