//! A lock whose deferred ordering edge was published because its thread then blocked (a
//! registered wait publishes what the thread deferred) leaves the lock-order graph when that
//! thread drops it. Its own binary, so that no other test adds to the graph meanwhile.
#![cfg(feature = "detect")]

use lockwatch::introspect::{order_graph_size, registered_waits_on};
use lockwatch::Mutex;
use std::time::{Duration, Instant};

#[test]
fn a_lock_whose_deferred_edge_a_wait_published_leaves_the_order_graph_when_dropped() {
    let (nodes_before, edges_before) = order_graph_size();
    {
        let outer = Mutex::named("published/outer", ());
        let gate = Mutex::named("published/gate", ());
        for _ in 0..20 {
            let inner = Mutex::new(());
            let _outer = outer.lock();
            // A first nesting into a lock never a source: deferred in this thread's buffer.
            drop(inner.lock());
            let held = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let _gate = gate.lock();
                    held.wait();
                    // Released once the main thread's wait for it is registered (which
                    // publishes the deferred edge), within a bound.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while registered_waits_on("published/gate") == 0 {
                        assert!(Instant::now() < deadline, "the wait never registered");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                });
                held.wait();
                drop(gate.lock());
            });
            drop(_outer);
            drop(inner);
        }
    }
    assert_eq!(
        order_graph_size(),
        (nodes_before, edges_before),
        "dropped locks stayed in the lock-order graph"
    );
}
