//! W1–W7, the workloads lockwatch is compared on, written once for every peer.
//!
//! Each bench binary of this package calls [`clear_environment`] first, then [`workloads`] for
//! parking_lot, std and the peers it measures, so every figure has parking_lot and std from the
//! same process beside it. Criterion stores each result under `target/criterion/<workload>/<peer>`.
//!
//! | id | workload | figure |
//! |---|---|---|
//! | W1 | uncontended lock+unlock | time per pair |
//! | W2 | nested pair (A then B) | time per nesting |
//! | W3 | chain of 8 | time per chain |
//! | W4 | two threads contending on one counter | time per increment (throughput) |
//! | W5 | two threads, each nesting its own pair | time per nesting, per thread |
//! | W6 | RwLock read, uncontended | time per read+unlock |
//! | W7 | a new Mutex locked under a long-held one, then dropped | time per new lock (a new ordering edge each time) |

// tracing-mutex 0.3 marks its `parkinglot` module deprecated in favour of a name it has not
// shipped yet; its tracking types live there.
#![allow(deprecated)]

use criterion::{black_box, BenchmarkId, Criterion};
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// A mutex under comparison.
pub trait BenchMutex: Send + Sync + 'static {
    fn create(value: u64) -> Self;
    fn with<R>(&self, f: impl FnOnce(&mut u64) -> R) -> R;
}

/// A reader-writer lock under comparison.
pub trait BenchRwLock: Send + Sync + 'static {
    fn create(value: u64) -> Self;
    fn read_with<R>(&self, f: impl FnOnce(&u64) -> R) -> R;
}

/// One implementation: its locks, and how it starts a thread (deloxide and lockwatch have
/// their own `thread::spawn`, which a user of theirs would call).
pub trait Peer {
    const NAME: &'static str;
    type Mutex: BenchMutex;
    type RwLock: BenchRwLock;
    fn spawn(f: impl FnOnce() + Send + 'static) -> Box<dyn FnOnce()>;
}

/// Removes every variable that changes what a peer does per acquisition: `RUST_BACKTRACE`
/// (tracing-mutex captures a backtrace per new edge when it is set: W7 goes from 0.18 to
/// 2.5 µs), `RUST_LIB_BACKTRACE`, and every `LOCKWATCH*` (lockwatch runs with its defaults).
/// Called first thing in `main`, before any thread exists or any lock is touched (both
/// detectors read their settings lazily).
pub fn clear_environment() {
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            k == "RUST_BACKTRACE" || k == "RUST_LIB_BACKTRACE" || k.starts_with("LOCKWATCH")
        })
        .collect();
    for name in names {
        eprintln!("lockwatch-peers: unsetting {name} for the measurement");
        std::env::remove_var(name);
    }
}

/// The criterion settings every binary of this package uses.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .configure_from_args()
}

/// Measures W1–W7 for `P`, as `<workload>/<P::NAME>`.
pub fn workloads<P: Peer>(c: &mut Criterion) {
    let id = BenchmarkId::from_parameter(P::NAME);

    let m = P::Mutex::create(0);
    c.benchmark_group("W1 uncontended lock+unlock")
        .bench_function(id.clone(), |b| b.iter(|| m.with(|v| *v += 1)));

    let (a, z) = (P::Mutex::create(0), P::Mutex::create(0));
    c.benchmark_group("W2 nested pair")
        .bench_function(id.clone(), |b| {
            b.iter(|| a.with(|x| z.with(|y| *x += black_box(*y))))
        });

    let chain: Vec<P::Mutex> = (0..8).map(P::Mutex::create).collect();
    fn nest<M: BenchMutex>(locks: &[M]) {
        if let Some((first, rest)) = locks.split_first() {
            first.with(|v| {
                *v += 1;
                nest(rest)
            })
        }
    }
    c.benchmark_group("W3 chain of 8")
        .bench_function(id.clone(), |b| b.iter(|| nest(&chain)));

    c.benchmark_group("W4 two threads contending (per increment)")
        .bench_function(id.clone(), |b| {
            b.iter_custom(|iters| {
                let counter = Arc::new(P::Mutex::create(0));
                let per_thread = iters.div_ceil(2);
                let elapsed = on_two_threads::<P, _>(move |_| {
                    let counter = counter.clone();
                    move || {
                        for _ in 0..per_thread {
                            counter.with(|v| *v += 1);
                        }
                    }
                });
                elapsed.div_f64(2.0 * per_thread as f64 / iters as f64)
            })
        });

    c.benchmark_group("W5 two threads, each nesting its own pair")
        .bench_function(id.clone(), |b| {
            b.iter_custom(|iters| {
                on_two_threads::<P, _>(move |_| {
                    let (a, z) = (P::Mutex::create(0), P::Mutex::create(0));
                    move || {
                        for _ in 0..iters {
                            a.with(|x| z.with(|y| *x += black_box(*y)));
                        }
                    }
                })
            })
        });

    let rw = P::RwLock::create(1);
    c.benchmark_group("W6 RwLock read uncontended")
        .bench_function(id.clone(), |b| b.iter(|| rw.read_with(|v| black_box(*v))));

    let outer = P::Mutex::create(0);
    c.benchmark_group("W7 new Mutex locked under a held one, dropped")
        .bench_function(id, |b| {
            outer.with(|_| {
                b.iter(|| {
                    let fresh = P::Mutex::create(black_box(1));
                    fresh.with(|v| *v += 1);
                    black_box(&fresh);
                })
            })
        });
}

/// Runs the body `make(k)` returns on two threads started by `P` at once (a barrier), and
/// returns the time from the start until both are done.
fn on_two_threads<P: Peer, F: FnOnce() + Send + 'static>(
    mut make: impl FnMut(usize) -> F,
) -> std::time::Duration {
    let start = Arc::new(Barrier::new(3));
    let joins: Vec<_> = (0..2)
        .map(|k| {
            let (body, start) = (make(k), start.clone());
            P::spawn(move || {
                start.wait();
                body();
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for join in joins {
        join();
    }
    began.elapsed()
}

fn std_spawn(f: impl FnOnce() + Send + 'static) -> Box<dyn FnOnce()> {
    let handle = std::thread::spawn(f);
    Box::new(move || handle.join().expect("benchmark thread"))
}

macro_rules! mutex_impl {
    ($ty:ty, $guard:ident => $lock:expr) => {
        impl BenchMutex for $ty {
            fn create(value: u64) -> Self {
                <$ty>::new(value)
            }
            #[inline]
            fn with<R>(&self, f: impl FnOnce(&mut u64) -> R) -> R {
                let $guard = self;
                f(&mut $lock)
            }
        }
    };
}

macro_rules! rwlock_impl {
    ($ty:ty, $guard:ident => $read:expr) => {
        impl BenchRwLock for $ty {
            fn create(value: u64) -> Self {
                <$ty>::new(value)
            }
            #[inline]
            fn read_with<R>(&self, f: impl FnOnce(&u64) -> R) -> R {
                let $guard = self;
                f(&$read)
            }
        }
    };
}

mutex_impl!(parking_lot::Mutex<u64>, m => m.lock());
rwlock_impl!(parking_lot::RwLock<u64>, r => r.read());
mutex_impl!(std::sync::Mutex<u64>, m => m.lock().unwrap());
rwlock_impl!(std::sync::RwLock<u64>, r => r.read().unwrap());
mutex_impl!(lockwatch::Mutex<u64>, m => m.lock());
rwlock_impl!(lockwatch::RwLock<u64>, r => r.read());
mutex_impl!(tracing_mutex::parkinglot::tracing::Mutex<u64>, m => m.lock());
rwlock_impl!(tracing_mutex::parkinglot::tracing::RwLock<u64>, r => r.read());
mutex_impl!(deloxide::Mutex<u64>, m => m.lock());
rwlock_impl!(deloxide::RwLock<u64>, r => r.read());

/// parking_lot 0.12, the baseline (with `deadlock_detection` in that feature's binary).
pub struct ParkingLot;
impl Peer for ParkingLot {
    const NAME: &'static str = if cfg!(feature = "deadlock_detection") {
        "parking_lot deadlock_detection"
    } else {
        "parking_lot"
    };
    type Mutex = parking_lot::Mutex<u64>;
    type RwLock = parking_lot::RwLock<u64>;
    fn spawn(f: impl FnOnce() + Send + 'static) -> Box<dyn FnOnce()> {
        std_spawn(f)
    }
}

/// `std::sync`, measured in every binary: it relates the binaries to each other.
pub struct Std;
impl Peer for Std {
    const NAME: &'static str = "std";
    type Mutex = std::sync::Mutex<u64>;
    type RwLock = std::sync::RwLock<u64>;
    fn spawn(f: impl FnOnce() + Send + 'static) -> Box<dyn FnOnce()> {
        std_spawn(f)
    }
}

/// lockwatch with its defaults (detection and lock order on).
pub struct Lockwatch;
impl Peer for Lockwatch {
    const NAME: &'static str = "lockwatch";
    type Mutex = lockwatch::Mutex<u64>;
    type RwLock = lockwatch::RwLock<u64>;
    fn spawn(f: impl FnOnce() + Send + 'static) -> Box<dyn FnOnce()> {
        let handle = lockwatch::thread::spawn(f);
        Box::new(move || handle.join().expect("benchmark thread"))
    }
}

/// tracing-mutex 0.3 through its tracking `tracing::` types (its top-level aliases are plain
/// locks in release builds).
pub struct TracingMutex;
impl Peer for TracingMutex {
    const NAME: &'static str = "tracing-mutex";
    type Mutex = tracing_mutex::parkinglot::tracing::Mutex<u64>;
    type RwLock = tracing_mutex::parkinglot::tracing::RwLock<u64>;
    fn spawn(f: impl FnOnce() + Send + 'static) -> Box<dyn FnOnce()> {
        std_spawn(f)
    }
}

/// deloxide 1.1; whether lock-order checking is on is chosen by [`start_deloxide`].
pub struct Deloxide;
impl Peer for Deloxide {
    const NAME: &'static str = "deloxide";
    type Mutex = deloxide::Mutex<u64>;
    type RwLock = deloxide::RwLock<u64>;
    fn spawn(f: impl FnOnce() + Send + 'static) -> Box<dyn FnOnce()> {
        let handle = deloxide::thread::spawn(f);
        Box::new(move || handle.join().expect("benchmark thread"))
    }
}

/// deloxide measured with its lock-order checking (the same types, another process).
pub struct DeloxideLockOrder;
impl Peer for DeloxideLockOrder {
    const NAME: &'static str = "deloxide lock-order";
    type Mutex = deloxide::Mutex<u64>;
    type RwLock = deloxide::RwLock<u64>;
    fn spawn(f: impl FnOnce() + Send + 'static) -> Box<dyn FnOnce()> {
        Deloxide::spawn(f)
    }
}

/// Starts deloxide's detector before any of its locks exists, with a callback that only
/// counts (none of the workloads deadlocks or inverts an order).
pub fn start_deloxide(lock_order: bool) {
    let detector = deloxide::Deloxide::new().callback(|info| {
        eprintln!("lockwatch-peers: deloxide reported {info:?}");
    });
    let detector = if lock_order {
        detector.with_lock_order_checking()
    } else {
        detector.no_lock_order_checking()
    };
    detector.start().expect("start deloxide");
}
