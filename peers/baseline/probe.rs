//! W1–W4 and W7 for parking_lot, lockwatch as it is (`new`) and lockwatch at a baseline commit
//! (`old`), interleaved in one process: 100,000 iterations of each in turn, `rounds` times, and
//! the median over rounds of each round's ratio to parking_lot. Interleaving puts every build
//! in the same state of the machine (on a shared VM the same binary can run at two speeds; see
//! the README's Performance section). Built and run by `run.sh`, which supplies `lockwatch_old`.
use std::hint::black_box;
use std::time::Instant;

macro_rules! workloads {
    ($one:ident, $pair:ident, $chain:ident, $contended:ident, $fresh:ident, $t:ty) => {
        #[inline(never)]
        fn $one(m: &$t) {
            *m.lock() += 1;
        }
        #[inline(never)]
        fn $pair(a: &$t, b: &$t) {
            let mut x = a.lock();
            *x += *b.lock();
        }
        #[inline(never)]
        fn $fresh(outer: &$t) {
            let _outer = outer.lock();
            for k in 0..16 {
                let fresh = <$t>::new(black_box(k));
                *fresh.lock() += 1;
                black_box(&fresh);
            }
        }
        /// ns per increment of one counter by two threads at once (W4).
        #[inline(never)]
        fn $contended(lock: &$t, per_thread: u32) -> f64 {
            let start = std::sync::Barrier::new(3);
            let began = std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        start.wait();
                        for _ in 0..per_thread {
                            *lock.lock() += 1;
                        }
                    });
                }
                start.wait();
                Instant::now()
            });
            began.elapsed().as_nanos() as f64 / f64::from(2 * per_thread)
        }
        #[inline(never)]
        fn $chain(locks: &[$t]) {
            fn nest(locks: &[$t]) {
                if let Some((first, rest)) = locks.split_first() {
                    let mut g = first.lock();
                    *g += 1;
                    nest(rest);
                }
            }
            nest(locks)
        }
    };
}
workloads!(pl_one, pl_pair, pl_chain, pl_contended, pl_fresh, parking_lot::Mutex<u64>);
workloads!(new_one, new_pair, new_chain, new_contended, new_fresh, lockwatch::Mutex<u64>);
workloads!(old_one, old_pair, old_chain, old_contended, old_fresh, lockwatch_old::Mutex<u64>);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(150, |s| s.parse().expect("rounds"));
    const N: u32 = 100_000;
    let pl: Vec<parking_lot::Mutex<u64>> = (0..8).map(parking_lot::Mutex::new).collect();
    let new: Vec<lockwatch::Mutex<u64>> = (0..8).map(lockwatch::Mutex::new).collect();
    let old: Vec<lockwatch_old::Mutex<u64>> = (0..8).map(lockwatch_old::Mutex::new).collect();
    // ns per iteration: [workload][pl, old, new]
    let mut ns = vec![[Vec::new(), Vec::new(), Vec::new()]; 5];
    let time = |f: &dyn Fn(), iterations: u32| {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        start.elapsed().as_nanos() as f64 / f64::from(iterations)
    };
    for _ in 0..rounds {
        ns[0][0].push(time(&|| pl_one(black_box(&pl[0])), N));
        ns[0][1].push(time(&|| old_one(black_box(&old[0])), N));
        ns[0][2].push(time(&|| new_one(black_box(&new[0])), N));
        ns[1][0].push(time(&|| pl_pair(black_box(&pl[0]), &pl[1]), N));
        ns[1][1].push(time(&|| old_pair(black_box(&old[0]), &old[1]), N));
        ns[1][2].push(time(&|| new_pair(black_box(&new[0]), &new[1]), N));
        ns[2][0].push(time(&|| pl_chain(black_box(&pl)), N / 8));
        ns[2][1].push(time(&|| old_chain(black_box(&old)), N / 8));
        ns[2][2].push(time(&|| new_chain(black_box(&new)), N / 8));
        ns[3][0].push(pl_contended(&pl[0], N / 4));
        ns[3][1].push(old_contended(&old[0], N / 4));
        ns[3][2].push(new_contended(&new[0], N / 4));
        // Per new lock: 16 a call.
        ns[4][0].push(time(&|| pl_fresh(black_box(&pl[0])), N / 16) / 16.0);
        ns[4][1].push(time(&|| old_fresh(black_box(&old[0])), N / 16) / 16.0);
        ns[4][2].push(time(&|| new_fresh(black_box(&new[0])), N / 16) / 16.0);
    }
    println!(
        "lockwatch {}",
        if std::env::var_os("LOCKWATCH").is_some_and(|v| v == "off") {
            "off (LOCKWATCH=off)"
        } else {
            "with its defaults"
        }
    );
    // W4 is time per increment too: its ratio is the inverse of the throughput ratio.
    for (name, w) in ["W1", "W2", "W3", "W4", "W7"].iter().zip(&ns) {
        let ratio = |k: usize| median(w[k].iter().zip(&w[0]).map(|(x, p)| x / p).collect());
        println!(
            "{name}: parking_lot {:6.2} ns | baseline {:6.2} ns = {:.2}x | now {:6.2} ns = {:.2}x | now/baseline {:.2}",
            median(w[0].clone()),
            median(w[1].clone()),
            ratio(1),
            median(w[2].clone()),
            ratio(2),
            median(w[2].iter().zip(&w[1]).map(|(n, o)| n / o).collect()),
        );
    }
}
