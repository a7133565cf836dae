//! W1–W7 for deloxide with lock-order checking, beside parking_lot and std.
//! `cargo bench -p lockwatch-peers --bench deloxide_lock_order`.

use lockwatch_peers::*;

fn main() {
    clear_environment();
    start_deloxide(true);
    let mut c = criterion();
    workloads::<ParkingLot>(&mut c);
    workloads::<Std>(&mut c);
    workloads::<DeloxideLockOrder>(&mut c);
    c.final_summary();
}
