//! lockwatch against parking_lot and std, measured in the same run: W1–W7 (the workloads of
//! the peers benchmark, `peers/`) and a few more.
//!
//! `cargo bench --bench locks` measures detection on (default settings) and `LOCKWATCH=off`
//! (switched at run time with `Config::install`); `cargo bench --bench locks
//! --no-default-features` measures the build without instrumentation. The README's Performance
//! section lists the figures and their ratios.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The lock types under comparison, behind one small interface so every benchmark body is
/// written once.
trait BenchMutex: Send + Sync + 'static {
    const NAME: &'static str;
    fn create(value: u64) -> Self;
    fn with<R>(&self, f: impl FnOnce(&mut u64) -> R) -> R;
}

impl BenchMutex for parking_lot::Mutex<u64> {
    const NAME: &'static str = "parking_lot";
    fn create(value: u64) -> Self {
        parking_lot::Mutex::new(value)
    }
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut u64) -> R) -> R {
        f(&mut self.lock())
    }
}

impl BenchMutex for std::sync::Mutex<u64> {
    const NAME: &'static str = "std";
    fn create(value: u64) -> Self {
        std::sync::Mutex::new(value)
    }
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut u64) -> R) -> R {
        f(&mut self.lock().unwrap())
    }
}

impl BenchMutex for lockwatch::Mutex<u64> {
    const NAME: &'static str = if cfg!(feature = "detect") {
        "lockwatch"
    } else {
        "lockwatch (no detect feature)"
    };
    fn create(value: u64) -> Self {
        lockwatch::Mutex::new(value)
    }
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut u64) -> R) -> R {
        f(&mut self.lock())
    }
}

/// The reader-writer locks under comparison (W6).
trait BenchRwLock: Send + Sync + 'static {
    fn create(value: u64) -> Self;
    fn read_with<R>(&self, f: impl FnOnce(&u64) -> R) -> R;
}

impl BenchRwLock for parking_lot::RwLock<u64> {
    fn create(value: u64) -> Self {
        parking_lot::RwLock::new(value)
    }
    #[inline]
    fn read_with<R>(&self, f: impl FnOnce(&u64) -> R) -> R {
        f(&self.read())
    }
}

impl BenchRwLock for std::sync::RwLock<u64> {
    fn create(value: u64) -> Self {
        std::sync::RwLock::new(value)
    }
    #[inline]
    fn read_with<R>(&self, f: impl FnOnce(&u64) -> R) -> R {
        f(&self.read().unwrap())
    }
}

impl BenchRwLock for lockwatch::RwLock<u64> {
    fn create(value: u64) -> Self {
        lockwatch::RwLock::new(value)
    }
    #[inline]
    fn read_with<R>(&self, f: impl FnOnce(&u64) -> R) -> R {
        f(&self.read())
    }
}

fn set_detection(on: bool) {
    set_config(on, lockwatch::LockOrder::Warn);
}

fn set_config(on: bool, lock_order: lockwatch::LockOrder) {
    let mut config = lockwatch::Config::current();
    config.enabled = on && cfg!(feature = "detect");
    config.lock_order = lock_order;
    config.install();
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn uncontended<M: BenchMutex>(group: &mut Group<'_>, label: &str) {
    let m = M::create(0);
    group.bench_function(BenchmarkId::from_parameter(label), |b| {
        b.iter(|| m.with(|v| *v += 1))
    });
}

fn nested_pair<M: BenchMutex>(group: &mut Group<'_>, label: &str) {
    let (a, b) = (M::create(0), M::create(0));
    group.bench_function(BenchmarkId::from_parameter(label), |bench| {
        bench.iter(|| a.with(|x| b.with(|y| *x += black_box(*y))))
    });
}

fn chain_of_8<M: BenchMutex>(group: &mut Group<'_>, label: &str) {
    let locks: Vec<M> = (0..8).map(M::create).collect();
    fn nest<M: BenchMutex>(locks: &[M]) {
        if let Some((first, rest)) = locks.split_first() {
            first.with(|v| {
                *v += 1;
                nest(rest)
            })
        }
    }
    group.bench_function(BenchmarkId::from_parameter(label), |b| {
        b.iter(|| nest(&locks))
    });
}

/// Two threads incrementing one counter: time per increment (lower is higher throughput).
fn contended<M: BenchMutex>(group: &mut Group<'_>, label: &str) {
    group.bench_function(BenchmarkId::from_parameter(label), |b| {
        b.iter_custom(|iters| {
            let counter = Arc::new(M::create(0));
            let per_thread = iters.div_ceil(2);
            let start = Arc::new(Barrier::new(3));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (counter, start) = (counter.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        for _ in 0..per_thread {
                            counter.with(|v| *v += 1);
                        }
                    })
                })
                .collect();
            start.wait();
            let began = Instant::now();
            for t in threads {
                t.join().unwrap();
            }
            let elapsed = began.elapsed();
            assert_eq!(counter.with(|v| *v), per_thread * 2);
            elapsed
        })
    });
}

/// W5: two threads, each nesting a pair of its own: time per nesting, per thread.
fn two_threads_own_pairs<M: BenchMutex>(group: &mut Group<'_>, label: &str) {
    group.bench_function(BenchmarkId::from_parameter(label), |b| {
        b.iter_custom(|iters| {
            let start = Arc::new(Barrier::new(3));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let start = start.clone();
                    std::thread::spawn(move || {
                        let (a, z) = (M::create(0), M::create(0));
                        start.wait();
                        for _ in 0..iters {
                            a.with(|x| z.with(|y| *x += black_box(*y)));
                        }
                    })
                })
                .collect();
            start.wait();
            let began = Instant::now();
            for t in threads {
                t.join().unwrap();
            }
            began.elapsed()
        })
    });
}

/// W7: a new lock taken under a long-held one, then dropped: a new ordering edge each time.
fn new_lock_under_held<M: BenchMutex>(group: &mut Group<'_>, label: &str) {
    let outer = M::create(0);
    group.bench_function(BenchmarkId::from_parameter(label), |b| {
        outer.with(|_| {
            b.iter(|| {
                let fresh = M::create(black_box(1));
                fresh.with(|v| *v += 1);
                black_box(&fresh);
            })
        })
    });
}

/// W6: an uncontended read lock.
fn rwlock_read<R: BenchRwLock>(group: &mut Group<'_>, label: &str) {
    let lock = R::create(1);
    group.bench_function(BenchmarkId::from_parameter(label), |b| {
        b.iter(|| lock.read_with(|v| black_box(*v)))
    });
}

fn create_drop<M: BenchMutex>(group: &mut Group<'_>, label: &str) {
    group.bench_function(BenchmarkId::from_parameter(label), |b| {
        // The lock is observed in place (by reference), not moved out through `black_box`:
        // a by-value move measures a struct copy, not creating and dropping a lock.
        b.iter(|| {
            let lock = M::create(black_box(1));
            black_box(&lock);
        })
    });
}

macro_rules! compare {
    ($c:expr, $group:literal, $bench:ident) => {{
        let mut group = $c.benchmark_group($group);
        $bench::<parking_lot::Mutex<u64>>(&mut group, "parking_lot");
        $bench::<std::sync::Mutex<u64>>(&mut group, "std");
        set_detection(true);
        $bench::<lockwatch::Mutex<u64>>(&mut group, <lockwatch::Mutex<u64> as BenchMutex>::NAME);
        if cfg!(feature = "detect") {
            set_config(true, lockwatch::LockOrder::Off);
            $bench::<lockwatch::Mutex<u64>>(&mut group, "lockwatch LOCKWATCH_LOCK_ORDER=off");
            set_detection(false);
            $bench::<lockwatch::Mutex<u64>>(&mut group, "lockwatch LOCKWATCH=off");
            set_detection(true);
        }
        group.finish();
    }};
}

/// Two threads handing a turn back and forth through a mutex and a condition variable: the
/// cost of a wait that really parks, per hand-off.
fn condvar_ping_pong(c: &mut Criterion) {
    macro_rules! ping_pong {
        ($mutex:ty, $condvar:ty, $lock:ident) => {
            |b: &mut criterion::Bencher<'_>| {
                b.iter_custom(|iters| {
                    let state = Arc::new((<$mutex>::new(0u64), <$condvar>::new()));
                    let other = {
                        let state = state.clone();
                        std::thread::spawn(move || {
                            let (turn, changed) = &*state;
                            for i in 0..iters {
                                let mut t = turn.$lock();
                                while *t != 2 * i + 1 {
                                    changed.wait(&mut t);
                                }
                                *t += 1;
                                changed.notify_one();
                            }
                        })
                    };
                    let began = Instant::now();
                    let (turn, changed) = &*state;
                    for i in 0..iters {
                        let mut t = turn.$lock();
                        while *t != 2 * i {
                            changed.wait(&mut t);
                        }
                        *t += 1;
                        changed.notify_one();
                    }
                    other.join().unwrap();
                    began.elapsed()
                })
            }
        };
    }
    let mut group = c.benchmark_group("condvar ping-pong (per hand-off)");
    group.bench_function(
        "parking_lot",
        ping_pong!(parking_lot::Mutex<u64>, parking_lot::Condvar, lock),
    );
    set_detection(true);
    group.bench_function(
        <lockwatch::Mutex<u64> as BenchMutex>::NAME,
        ping_pong!(lockwatch::Mutex<u64>, lockwatch::Condvar, lock),
    );
    group.finish();
}

fn primitives(c: &mut Criterion) {
    compare!(c, "W1 uncontended lock+unlock", uncontended);
    compare!(c, "W2 nested pair", nested_pair);
    compare!(c, "W3 chain of 8", chain_of_8);
    compare!(c, "W4 two threads contending", contended);
    compare!(
        c,
        "W5 two threads, each nesting its own pair",
        two_threads_own_pairs
    );
    compare_rwlock(c);
    compare!(
        c,
        "W7 new Mutex under a held one, dropped",
        new_lock_under_held
    );
    compare!(c, "create+drop", create_drop);
}

fn compare_rwlock(c: &mut Criterion) {
    let mut group = c.benchmark_group("W6 RwLock read uncontended");
    rwlock_read::<parking_lot::RwLock<u64>>(&mut group, "parking_lot");
    rwlock_read::<std::sync::RwLock<u64>>(&mut group, "std");
    set_detection(true);
    rwlock_read::<lockwatch::RwLock<u64>>(&mut group, <lockwatch::Mutex<u64> as BenchMutex>::NAME);
    if cfg!(feature = "detect") {
        set_detection(false);
        rwlock_read::<lockwatch::RwLock<u64>>(&mut group, "lockwatch LOCKWATCH=off");
        set_detection(true);
    }
    group.finish();
}

#[cfg(feature = "detect")]
mod detection {
    use super::*;
    use lockwatch::{Config, Mutex, OnDeadlock, ReportKind};
    use std::sync::mpsc;

    /// The first nesting of a fresh lock under one of 10,000 known locks: a new edge reaches
    /// the global lock-order graph (the lock's creation and drop, which removes its node, are
    /// included).
    pub(super) fn first_edge_in_large_graph(c: &mut Criterion) {
        set_detection(true);
        let known: Vec<Mutex<u64>> = (0..10_000).map(Mutex::new).collect();
        // A long consistent chain: every lock is a node with edges.
        for pair in known.windows(2) {
            let _a = pair[0].lock();
            let _b = pair[1].lock();
        }
        let mut group = c.benchmark_group("lock order");
        let mut i = 0usize;
        group.bench_function("first edge, graph of 10000 locks", |b| {
            b.iter(|| {
                let fresh = Mutex::new(0u64);
                let _outer = known[i % known.len()].lock();
                i += 7919;
                *fresh.lock() += 1;
            })
        });
        group.bench_function("same nesting again (cached edge)", |b| {
            let fresh = Mutex::new(0u64);
            b.iter(|| {
                let _outer = known[0].lock();
                *fresh.lock() += 1;
            })
        });
        group.finish();
    }

    /// From the moment a two-thread ABBA cycle closes to the report reaching the handler.
    pub(super) fn abba_latency(c: &mut Criterion) {
        let mut config = Config::current();
        config.on_deadlock = OnDeadlock::Panic;
        config.format = lockwatch::Format::Json;
        config.install();
        std::panic::set_hook(Box::new(|_| {}));
        let (reported_tx, reported_rx) = mpsc::channel::<Instant>();
        let reported_tx = std::sync::Mutex::new(reported_tx);
        lockwatch::set_handler(move |report| {
            if report.kind() == ReportKind::Deadlock {
                let _ = reported_tx.lock().unwrap().send(Instant::now());
            }
        });
        let mut group = c.benchmark_group("detection");
        group.sample_size(20);
        group.bench_function("abba latency (cycle closed -> report)", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += one_abba(&reported_rx);
                }
                total
            })
        });
        group.finish();
        let mut config = Config::current();
        config.on_deadlock = OnDeadlock::Report;
        config.install();
    }

    fn one_abba(reported: &mpsc::Receiver<Instant>) -> Duration {
        while reported.try_recv().is_ok() {}
        let a = Arc::new(Mutex::named("bench A", 0));
        let b = Arc::new(Mutex::named("bench B", 0));
        let barrier = Arc::new(Barrier::new(2));
        let (asked_tx, asked_rx) = mpsc::channel::<Instant>();
        let threads: Vec<_> = [(a.clone(), b.clone()), (b.clone(), a.clone())]
            .into_iter()
            .map(|(first, second)| {
                let (barrier, asked_tx) = (barrier.clone(), asked_tx.clone());
                lockwatch::thread::spawn(move || {
                    let _g = first.lock();
                    barrier.wait();
                    asked_tx.send(Instant::now()).unwrap();
                    let _h = second.lock();
                })
            })
            .collect();
        let closed = asked_rx.recv().unwrap().max(asked_rx.recv().unwrap());
        let reported_at = reported
            .recv_timeout(Duration::from_secs(10))
            .expect("the ABBA deadlock was not reported within 10 s");
        for t in threads {
            let _ = t.join();
        }
        reported_at.saturating_duration_since(closed)
    }

    /// One scan (snapshot, reduction) with 1,000 and with 10,000 threads blocked on a lock
    /// whose holder runs.
    pub(super) fn scan_with_blocked_threads(c: &mut Criterion) {
        let mut group = c.benchmark_group("detection");
        for blocked in [1_000, 10_000] {
            let gate = Arc::new(Mutex::named("gate", ()));
            let held = gate.lock();
            let ready = Arc::new(Barrier::new(blocked + 1));
            let threads: Vec<_> = (0..blocked)
                .map(|_| {
                    let (gate, ready) = (gate.clone(), ready.clone());
                    std::thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(move || {
                            ready.wait();
                            drop(gate.lock());
                        })
                        .unwrap()
                })
                .collect();
            ready.wait();
            // Let every thread pass the grace period and register its wait.
            while lockwatch::introspect::waiting_threads() < blocked {
                std::thread::sleep(Duration::from_millis(10));
            }
            group.bench_function(format!("one scan, {blocked} blocked threads"), |b| {
                b.iter(|| assert!(lockwatch::check().is_empty()))
            });
            drop(held);
            for t in threads {
                t.join().unwrap();
            }
        }
        group.finish();
    }
}

#[cfg(feature = "detect")]
fn detection_benches(c: &mut Criterion) {
    detection::first_edge_in_large_graph(c);
    detection::abba_latency(c);
    detection::scan_with_blocked_threads(c);
}

#[cfg(not(feature = "detect"))]
fn detection_benches(_: &mut Criterion) {}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = primitives, condvar_ping_pong, detection_benches
}
criterion_main!(benches);
