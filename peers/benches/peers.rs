//! W1–W7 for parking_lot, std, lockwatch (defaults: lock order on) and tracing-mutex, in one
//! process. `cargo bench -p lockwatch-peers --bench peers`.

use lockwatch_peers::*;

fn main() {
    clear_environment();
    let mut c = criterion();
    workloads::<ParkingLot>(&mut c);
    workloads::<Std>(&mut c);
    workloads::<Lockwatch>(&mut c);
    workloads::<TracingMutex>(&mut c);
    c.final_summary();
}
