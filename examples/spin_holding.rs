//! A program that never finishes and never deadlocks: `main` holds `config` and `state` and
//! loops forever, while `worker` blocks on `state`.
//!
//! `main` is running, so it could release `state` at any moment: this is not a deadlock, and
//! lockwatch rightly reports nothing. It is what `lockwatch run --timeout` is for: when the
//! timeout expires it asks the process for a dump (`SIGUSR1`), which shows `worker` waiting
//! for `state` and `main` holding it since the line that took it, then kills the program.
//!
//! Run it: `lockwatch run --timeout 2s -- target/debug/examples/spin_holding`

use lockwatch::Mutex;
use std::sync::Arc;
use std::time::Duration;

fn main() {
    let config = Mutex::named("config", "v1");
    let state = Arc::new(Mutex::named("state", 0u64));
    let _config = config.lock(); // spin_holding: main takes config
    let mut counter = state.lock(); // spin_holding: main takes state
    let _worker = {
        let state = state.clone();
        lockwatch::thread::Builder::new()
            .name("worker".into())
            .spawn(move || {
                *state.lock() += 1; // spin_holding: worker waits for state
            })
            .expect("spawn the worker")
    };
    println!("main holds config and state and never lets go");
    loop {
        *counter = counter.wrapping_add(1);
        // Busy, but not hogging a core.
        std::thread::sleep(Duration::from_millis(5));
    }
}
