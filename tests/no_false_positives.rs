//! Valid programs must never be reported (SPEC §3). Each pattern below runs many times under a
//! 20 ms watchdog, in a process where every thread is known to lockwatch (no test harness
//! threads: this binary has `harness = false`), which is the setting where the detector is the
//! most willing to report. Any report is a failure.
//!
//! Waits are forced with channels and barriers; the sleeps only make a wait outlast the
//! watchdog period, which is what a false report would need.

#[cfg(feature = "detect")]
fn main() {
    patterns::main()
}

#[cfg(not(feature = "detect"))]
fn main() {
    println!("no_false_positives: skipped, detection is compiled out without feature `detect`");
}

#[cfg(feature = "detect")]
mod patterns {
    use lockwatch::thread::{self, JoinHandle};
    use lockwatch::{
        Condvar, Config, Lock, LockOrder, Mutex, OnDeadlock, RLock, ReentrantMutex, RwLock,
    };
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{mpsc, Arc, Barrier};
    use std::time::{Duration, Instant};

    static REPORTS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    /// Longer than the watchdog period, so a wrong verdict has time to be reached.
    const OUTLAST_WATCHDOG: Duration = Duration::from_millis(60);

    fn join_all(handles: Vec<JoinHandle<()>>) {
        for h in handles {
            match h.join_timeout(Duration::from_secs(60)) {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!("a pattern thread panicked"),
                Err(_) => {
                    eprintln!("a pattern thread is still running after 60 s");
                    std::process::exit(1);
                }
            }
        }
    }

    fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
        thread::Builder::new().name(name.into()).spawn(f).unwrap()
    }

    /// A Lock acquired twice by its holder and released by another thread: a signal.
    fn lock_used_as_signal() {
        for _ in 0..5 {
            let signal = Arc::new(Lock::named("signal"));
            signal.acquire();
            let (ready_tx, ready_rx) = mpsc::channel();
            let waiter = {
                let signal = signal.clone();
                spawn("waiter", move || {
                    ready_tx.send(()).unwrap();
                    // Held by the main thread: blocks until main's helper releases it.
                    signal.acquire();
                    signal.release().unwrap();
                })
            };
            ready_rx.recv().unwrap();
            let releaser = {
                let signal = signal.clone();
                spawn("releaser", move || {
                    std::thread::sleep(OUTLAST_WATCHDOG);
                    signal.release().unwrap();
                })
            };
            join_all(vec![waiter, releaser]);
        }
        // The holder itself acquires again and another thread releases it.
        for _ in 0..5 {
            let signal = Arc::new(Lock::named("self-signal"));
            signal.acquire();
            let releaser = {
                let signal = signal.clone();
                spawn("releaser", move || {
                    std::thread::sleep(OUTLAST_WATCHDOG);
                    signal.release().unwrap();
                })
            };
            signal.acquire(); // re-acquired by its holder; released by `releaser`
            signal.release().unwrap();
            join_all(vec![releaser]);
        }
    }

    /// A holder that is busy (running) while others wait for it.
    fn busy_running_holder() {
        for _ in 0..5 {
            let m = Arc::new(Mutex::named("busy", 0u64));
            let barrier = Arc::new(Barrier::new(2));
            let holder = {
                let (m, barrier) = (m.clone(), barrier.clone());
                spawn("holder", move || {
                    let mut g = m.lock();
                    barrier.wait();
                    let until = Instant::now() + OUTLAST_WATCHDOG;
                    while Instant::now() < until {
                        *g = g.wrapping_add(1);
                        std::hint::spin_loop();
                    }
                })
            };
            let waiter = {
                let (m, barrier) = (m.clone(), barrier.clone());
                spawn("waiter", move || {
                    barrier.wait();
                    *m.lock() += 1;
                })
            };
            join_all(vec![holder, waiter]);
        }
    }

    /// Opposite orders with timed acquisitions: both time out, nobody is stuck.
    fn timed_waits_that_time_out() {
        for _ in 0..3 {
            let a = Arc::new(Mutex::named("timed A", ()));
            let b = Arc::new(Mutex::named("timed B", ()));
            let barrier = Arc::new(Barrier::new(2));
            let mut handles = Vec::new();
            for (name, first, second) in
                [("t1", a.clone(), b.clone()), ("t2", b.clone(), a.clone())]
            {
                let barrier = barrier.clone();
                handles.push(spawn(name, move || {
                    let _g = first.lock();
                    barrier.wait();
                    let _ = second.try_lock_for(OUTLAST_WATCHDOG);
                    barrier.wait();
                }));
            }
            join_all(handles);
        }
        // A condvar wait that times out while the other thread waits for it.
        let pair = Arc::new((Mutex::new(()), Condvar::named("never notified")));
        let t = {
            let pair = pair.clone();
            spawn("timed-waiter", move || {
                let mut g = pair.0.lock();
                let r = pair.1.wait_for(&mut g, OUTLAST_WATCHDOG * 2);
                assert!(r.timed_out());
            })
        };
        join_all(vec![t]);
    }

    /// Opposite orders with try-locks: no wait, no ordering edge.
    fn try_locks() {
        let a = Arc::new(Mutex::named("try A", 0));
        let b = Arc::new(Mutex::named("try B", 0));
        let mut handles = Vec::new();
        for (name, first, second) in [("t1", a.clone(), b.clone()), ("t2", b.clone(), a.clone())] {
            handles.push(spawn(name, move || {
                for _ in 0..20_000 {
                    let _g = first.lock();
                    if let Some(mut g) = second.try_lock() {
                        *g += 1;
                    }
                }
            }));
        }
        join_all(handles);
    }

    /// 2 to 8 threads nesting locks in one consistent order, 100,000+ acquisitions each run.
    fn consistent_order() {
        for threads in [2usize, 4, 8] {
            let locks: Arc<Vec<Mutex<u64>>> = Arc::new(
                (0..4)
                    .map(|i| Mutex::named(format!("ordered {i}"), 0))
                    .collect(),
            );
            let rw = Arc::new(RwLock::named("ordered rw", 0u64));
            let per_thread = 100_000 / threads / 3 + 1;
            let total = Arc::new(AtomicU64::new(0));
            let handles = (0..threads)
                .map(|t| {
                    let (locks, rw, total) = (locks.clone(), rw.clone(), total.clone());
                    spawn(&format!("ordered-{t}"), move || {
                        for i in 0..per_thread {
                            let _a = locks[0].lock();
                            let mut b = locks[1 + (i + t) % 3].lock();
                            *b += 1;
                            if i % 4 == 0 {
                                *rw.write() += 1;
                            } else {
                                let _r = rw.read();
                            }
                            total.fetch_add(3, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            join_all(handles);
            assert!(total.load(Ordering::Relaxed) >= 100_000);
        }
    }

    /// Locks released before the next is taken, in any order.
    fn release_before_next() {
        let a = Arc::new(Mutex::named("seq A", 0));
        let b = Arc::new(Mutex::named("seq B", 0));
        let handles = (0..4)
            .map(|t| {
                let (a, b) = (a.clone(), b.clone());
                spawn("sequential", move || {
                    for i in 0..20_000 {
                        if (i + t) % 2 == 0 {
                            *a.lock() += 1;
                            *b.lock() += 1;
                        } else {
                            *b.lock() += 1;
                            *a.lock() += 1;
                        }
                    }
                })
            })
            .collect();
        join_all(handles);
    }

    /// Condvar ping-pong: each side waits for the other many times.
    fn condvar_ping_pong() {
        let state = Arc::new((Mutex::named("turn", 0u32), Condvar::named("turn changed")));
        let rounds = 2_000;
        let handles = (0..2u32)
            .map(|me| {
                let state = state.clone();
                spawn("player", move || {
                    let (turn, changed) = &*state;
                    for _ in 0..rounds {
                        let mut t = turn.lock();
                        while *t % 2 != me {
                            changed.wait(&mut t);
                        }
                        *t += 1;
                        changed.notify_all();
                    }
                })
            })
            .collect();
        join_all(handles);
    }

    /// Reentrant locks re-entered while other threads wait for them.
    fn reentrant_reentry() {
        let r = Arc::new(RLock::named("reentrant"));
        let m = Arc::new(ReentrantMutex::named("reentrant mutex", ()));
        let handles = (0..4)
            .map(|_| {
                let (r, m) = (r.clone(), m.clone());
                spawn("reentrant", move || {
                    for _ in 0..10_000 {
                        let _a = r.lock();
                        let _b = r.lock();
                        let _c = m.lock();
                        let _d = m.lock();
                    }
                })
            })
            .collect();
        join_all(handles);
    }

    /// A long join on a thread that is running.
    fn long_join() {
        let done = Arc::new(AtomicBool::new(false));
        let worker = {
            let done = done.clone();
            spawn("slow-worker", move || {
                std::thread::sleep(OUTLAST_WATCHDOG * 2);
                done.store(true, Ordering::Relaxed);
            })
        };
        join_all(vec![worker]);
        assert!(done.load(Ordering::Relaxed));
    }

    /// A guard kept in a thread-local whose destructor runs after lockwatch's own (thread-local
    /// destructors run newest first) and releases it only after a while. The thread's lockwatch
    /// state is gone by then, but the thread is still running and will release the lock.
    fn guard_released_by_a_late_thread_local_destructor() {
        static SHARED: Mutex<u64> = Mutex::new(0);
        struct SlowRelease(Option<lockwatch::MutexGuard<'static, u64>>);
        impl Drop for SlowRelease {
            fn drop(&mut self) {
                std::thread::sleep(OUTLAST_WATCHDOG);
                self.0.take();
            }
        }
        thread_local! {
            static SLOT: std::cell::RefCell<Option<SlowRelease>> =
                const { std::cell::RefCell::new(None) };
        }
        let (held_tx, held_rx) = mpsc::channel();
        // A plain std thread: its first thread-local (SLOT) is registered before lockwatch's.
        let holder = std::thread::spawn(move || {
            SLOT.with(|slot| drop(slot.borrow()));
            let guard = SHARED.lock();
            SLOT.with(|slot| *slot.borrow_mut() = Some(SlowRelease(Some(guard))));
            held_tx.send(()).unwrap();
        });
        held_rx.recv().unwrap();
        // Blocks until the holder's late destructor releases the lock.
        *SHARED.lock() += 1;
        holder.join().unwrap();
    }

    pub(super) fn main() {
        let mut config = Config::from_env();
        config.watchdog_period = Duration::from_millis(20);
        config.on_deadlock = OnDeadlock::Report;
        config.lock_order = LockOrder::Warn;
        config.install();
        lockwatch::set_handler(|report| {
            REPORTS
                .lock()
                .unwrap()
                .push(format!("{}: {}", report.kind(), report.summary));
        });
        let patterns: &[(&str, fn())] = &[
            ("lock_used_as_signal", lock_used_as_signal),
            ("busy_running_holder", busy_running_holder),
            ("timed_waits_that_time_out", timed_waits_that_time_out),
            ("try_locks", try_locks),
            ("consistent_order", consistent_order),
            ("release_before_next", release_before_next),
            ("condvar_ping_pong", condvar_ping_pong),
            ("reentrant_reentry", reentrant_reentry),
            ("long_join", long_join),
            (
                "guard_released_by_a_late_thread_local_destructor",
                guard_released_by_a_late_thread_local_destructor,
            ),
        ];
        let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
        // Every pattern runs this many times (`LOCKWATCH_STRESS_ROUNDS` for a longer soak).
        let rounds: usize = std::env::var("LOCKWATCH_STRESS_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        let (mut passed, mut failed) = (0, 0);
        for (name, pattern) in patterns.iter().flat_map(|p| std::iter::repeat_n(p, rounds)) {
            if filter.as_deref().is_some_and(|f| !name.contains(f)) {
                continue;
            }
            let started = Instant::now();
            pattern();
            // Give the watchdog a few more periods to (wrongly) speak up.
            std::thread::sleep(Duration::from_millis(100));
            let reports = std::mem::take(&mut *REPORTS.lock().unwrap());
            if reports.is_empty() {
                passed += 1;
                println!("test {name} ... ok ({:?})", started.elapsed());
            } else {
                failed += 1;
                println!("test {name} ... FAILED");
                for r in reports {
                    println!("    reported: {r}");
                }
            }
        }
        println!();
        println!("{passed} passed, {failed} failed");
        if failed > 0 {
            std::process::exit(1);
        }
    }
}
