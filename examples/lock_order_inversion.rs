//! A deadlock that did not happen this run. `audit` locks `ledger` then `journal`; later,
//! `compact` locks `journal` then `ledger`. The two never overlap here (the second starts after
//! the first has finished), so the program completes, but with unlucky timing they would freeze.
//! lockwatch reports the inversion with both paths and the order to adopt.
//!
//! Run it: `cargo run --example lock_order_inversion` (it finishes and warns);
//! `LOCKWATCH_LOCK_ORDER=error LOCKWATCH_ON_DEADLOCK=abort cargo run --example
//! lock_order_inversion` turns the warning into a failure (exit status 86).

use lockwatch::Mutex;
use std::sync::Arc;

struct Store {
    ledger: Mutex<Vec<u64>>,
    journal: Mutex<Vec<String>>,
}

fn audit(store: &Store) {
    let ledger = store.ledger.lock(); // lock_order_inversion: audit takes ledger
    let mut journal = store.journal.lock(); // lock_order_inversion: audit takes journal
    journal.push(format!("audited {} entries", ledger.len()));
}

fn compact(store: &Store) {
    let mut journal = store.journal.lock(); // lock_order_inversion: compact takes journal
    let mut ledger = store.ledger.lock(); // lock_order_inversion: compact takes ledger
    ledger.retain(|&amount| amount > 0);
    journal.clear();
}

fn main() {
    let store = Arc::new(Store {
        ledger: Mutex::named("ledger", vec![5, 0, 7]),
        journal: Mutex::named("journal", Vec::new()),
    });
    let spawn = |name: &str, job: fn(&Store)| {
        let store = store.clone();
        lockwatch::thread::Builder::new()
            .name(name.into())
            .spawn(move || job(&store))
            .unwrap()
    };
    spawn("auditor", audit).join().unwrap();
    spawn("compactor", compact).join().unwrap();
    println!("done: {} ledger entries", store.ledger.lock().len());
}
