//! W1–W7 for deloxide without lock-order checking, beside parking_lot and std. deloxide starts
//! once per process, hence its own binary. `cargo bench -p lockwatch-peers --bench deloxide`.

use lockwatch_peers::*;

fn main() {
    clear_environment();
    start_deloxide(false);
    let mut c = criterion();
    workloads::<ParkingLot>(&mut c);
    workloads::<Std>(&mut c);
    workloads::<Deloxide>(&mut c);
    c.final_summary();
}
