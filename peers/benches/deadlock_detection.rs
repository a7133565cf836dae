//! W1–W7 for parking_lot built with `deadlock_detection` (a build-wide feature, so this binary
//! is built only with it), beside std, which relates it to the other binaries' parking_lot:
//! `cargo bench -p lockwatch-peers --features deadlock_detection --bench deadlock_detection`.

use lockwatch_peers::*;

fn main() {
    clear_environment();
    let mut c = criterion();
    workloads::<ParkingLot>(&mut c);
    workloads::<Std>(&mut c);
    c.final_summary();
}
