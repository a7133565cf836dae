//! `lockwatch::thread`: spawning, names, joins (plain, timed, of a panicking thread, of the
//! current thread), `is_finished`.
//!
//! Every test runs under a hard time limit; interleavings are forced with channels.

mod support;
use lockwatch::thread::{self, Builder, JoinHandle};
use lockwatch::{Mutex, SyncError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// The hard bound on a whole test.
const LIMIT: Duration = Duration::from_secs(60);
/// Allowed lateness of a timed join: generous, so a loaded machine never flakes.
const SLACK: Duration = Duration::from_secs(2);

/// Joins within [`WAIT`]; the thread's own result (Ok or its panic) is returned.
fn join_within<T>(handle: JoinHandle<T>) -> std::thread::Result<T> {
    match handle.join_timeout(WAIT) {
        Ok(result) => result,
        Err(_) => panic!("thread still running after {WAIT:?}"),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

#[test]
fn join_returns_the_threads_value() {
    bounded(LIMIT, || {
        let handle = thread::spawn(|| 6 * 7);
        assert_eq!(handle.join().unwrap(), 42);
        let handle = thread::spawn(|| String::from("moved out"));
        assert_eq!(join_within(handle).unwrap(), "moved out");
    });
}

#[test]
fn spawned_thread_runs_concurrently_with_its_spawner() {
    bounded(LIMIT, || {
        let (ping_tx, ping_rx) = mpsc::channel();
        let (pong_tx, pong_rx) = mpsc::channel();
        let handle = thread::spawn(move || {
            let n: u32 = recv(&ping_rx, "ping");
            pong_tx.send(n + 1).unwrap();
            n
        });
        ping_tx.send(1).unwrap();
        assert_eq!(recv(&pong_rx, "pong"), 2);
        assert_eq!(join_within(handle).unwrap(), 1);
    });
}

#[test]
fn builder_name_is_visible_inside_the_thread_and_on_the_handle() {
    bounded(LIMIT, || {
        let handle = Builder::new()
            .name("worker-7".into())
            .spawn(|| std::thread::current().name().map(str::to_owned))
            .expect("spawn");
        assert_eq!(handle.thread().name(), Some("worker-7"));
        assert_eq!(join_within(handle).unwrap().as_deref(), Some("worker-7"));
        // lockwatch::thread::current is std's.
        let handle = Builder::new()
            .name("worker-8".into())
            .spawn(|| thread::current().name().map(str::to_owned))
            .expect("spawn");
        assert_eq!(join_within(handle).unwrap().as_deref(), Some("worker-8"));
    });
}

#[test]
fn unnamed_thread_has_no_name() {
    bounded(LIMIT, || {
        let handle = thread::spawn(|| std::thread::current().name().map(str::to_owned));
        assert_eq!(handle.thread().name(), None);
        assert_eq!(join_within(handle).unwrap(), None);
        let handle = Builder::new()
            .spawn(|| std::thread::current().name().is_none())
            .expect("spawn");
        assert!(join_within(handle).unwrap());
    });
}

#[test]
fn builder_stack_size_is_accepted() {
    bounded(LIMIT, || {
        let handle = Builder::new()
            .name("big-stack".into())
            .stack_size(4 << 20)
            .spawn(|| {
                let buffer = [1u8; 1 << 20];
                buffer.iter().map(|&b| usize::from(b)).sum::<usize>()
            })
            .expect("spawn");
        assert_eq!(join_within(handle).unwrap(), 1 << 20);
    });
}

#[test]
fn handle_thread_identifies_the_spawned_thread() {
    bounded(LIMIT, || {
        let handle = thread::spawn(|| std::thread::current().id());
        let id = handle.thread().id();
        assert_ne!(id, std::thread::current().id());
        assert_eq!(join_within(handle).unwrap(), id);
    });
}

#[test]
fn join_of_a_panicking_thread_is_err_with_the_payload() {
    bounded(LIMIT, || {
        let handle = thread::spawn(|| -> u32 { panic!("boom in a worker") });
        let payload = handle.join().expect_err("the thread panicked");
        assert_eq!(panic_message(&*payload), Some("boom in a worker"));

        let handle = thread::spawn(|| -> u32 { panic!("formatted boom {}", 7) });
        let payload = join_within(handle).expect_err("the thread panicked");
        assert_eq!(panic_message(&*payload), Some("formatted boom 7"));

        let handle = thread::spawn(|| std::panic::panic_any(1234u64));
        let payload = join_within(handle).expect_err("the thread panicked");
        assert_eq!(payload.downcast_ref::<u64>(), Some(&1234));
    });
}

#[test]
fn panicking_thread_releases_what_it_held() {
    bounded(LIMIT, || {
        let m = Arc::new(Mutex::new(0));
        let other = m.clone();
        let handle = thread::spawn(move || {
            let mut guard = other.lock();
            *guard = 1;
            panic!("boom while holding a Mutex");
        });
        assert!(join_within(handle).is_err());
        assert_eq!(*m.try_lock().expect("released by the unwind"), 1);
    });
}

#[test]
fn join_timeout_gives_the_handle_back_and_it_can_be_joined_later() {
    bounded(LIMIT, || {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let handle = thread::spawn(move || {
            recv(&go_rx, "go");
            "done"
        });
        let timeout = Duration::from_millis(200);
        let start = Instant::now();
        let handle = match handle.join_timeout(timeout) {
            Err(handle) => handle,
            Ok(_) => panic!("joined a thread that was still waiting"),
        };
        let elapsed = start.elapsed();
        assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
        assert!(elapsed < timeout + SLACK, "gave up late: {elapsed:?}");
        assert!(!handle.is_finished());

        // Again with no time at all.
        let handle = match handle.join_timeout(Duration::ZERO) {
            Err(handle) => handle,
            Ok(_) => panic!("joined a thread that was still waiting"),
        };
        go_tx.send(()).unwrap();
        assert_eq!(handle.join().unwrap(), "done");
    });
}

#[test]
fn join_timeout_with_a_huge_timeout_waits_for_the_thread() {
    bounded(LIMIT, || {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let handle = thread::spawn(move || {
            recv(&go_rx, "go");
            9
        });
        go_tx.send(()).unwrap();
        // Too far in the future to be a deadline: no timeout at all, not an overflow.
        match handle.join_timeout(Duration::MAX) {
            Ok(Ok(v)) => assert_eq!(v, 9),
            Ok(Err(_)) => panic!("the thread panicked"),
            Err(_) => panic!("an unbounded join timed out"),
        }
    });
}

#[test]
fn join_timeout_of_a_finished_thread_returns_its_value_at_once() {
    bounded(LIMIT, || {
        let handle = thread::spawn(|| 5);
        let deadline = Instant::now() + WAIT;
        while !handle.is_finished() {
            assert!(Instant::now() < deadline, "never finished");
            std::thread::yield_now();
        }
        match handle.join_timeout(Duration::ZERO) {
            Ok(Ok(v)) => assert_eq!(v, 5),
            Ok(Err(_)) => panic!("the thread panicked"),
            Err(_) => panic!("a finished thread timed out"),
        }
    });
}

#[test]
fn join_timeout_of_a_panicking_thread_is_ok_err_with_the_payload() {
    bounded(LIMIT, || {
        let handle = thread::spawn(|| panic!("timed boom"));
        match handle.join_timeout(WAIT) {
            Ok(Err(payload)) => assert_eq!(panic_message(&*payload), Some("timed boom")),
            Ok(Ok(())) => panic!("the thread did not panic"),
            Err(_) => panic!("thread still running"),
        }
    });
}

#[test]
fn is_finished_is_false_while_running_and_true_once_returned() {
    bounded(LIMIT, || {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let handle = thread::spawn(move || recv(&go_rx, "go"));
        assert!(!handle.is_finished());
        go_tx.send(()).unwrap();
        let deadline = Instant::now() + WAIT;
        while !handle.is_finished() {
            assert!(Instant::now() < deadline, "never finished");
            std::thread::yield_now();
        }
        assert!(join_within(handle).is_ok());
    });
}

#[test]
fn is_finished_is_true_after_a_panic() {
    bounded(LIMIT, || {
        let handle = thread::spawn(|| panic!("boom"));
        let deadline = Instant::now() + WAIT;
        while !handle.is_finished() {
            assert!(Instant::now() < deadline, "never finished");
            std::thread::yield_now();
        }
        assert!(join_within(handle).is_err());
    });
}

#[test]
fn joining_the_current_thread_is_an_error_not_a_hang() {
    bounded(LIMIT, || {
        let (handle_tx, handle_rx) = mpsc::channel::<JoinHandle<()>>();
        let (result_tx, result_rx) = mpsc::channel();
        let handle = thread::spawn(move || {
            let me = recv(&handle_rx, "own handle");
            let result = me.join();
            let verdict = match result {
                Ok(()) => Err("join of the current thread returned Ok"),
                Err(payload) => match payload.downcast_ref::<SyncError>() {
                    Some(&e) => Ok(e),
                    None => Err("payload is not a SyncError"),
                },
            };
            result_tx.send(verdict).unwrap();
        });
        handle_tx.send(handle).unwrap();
        assert_eq!(
            recv(&result_rx, "join of the current thread returned"),
            Ok(SyncError::JoinCurrentThread)
        );
    });
}

#[test]
fn join_timeout_of_the_current_thread_is_an_error_not_a_timeout() {
    bounded(LIMIT, || {
        let (handle_tx, handle_rx) = mpsc::channel::<JoinHandle<()>>();
        let (result_tx, result_rx) = mpsc::channel();
        let handle = thread::spawn(move || {
            let me = recv(&handle_rx, "own handle");
            let start = Instant::now();
            let verdict = match me.join_timeout(Duration::from_secs(30)) {
                Err(_) => Err("join_timeout of the current thread timed out"),
                Ok(Ok(())) => Err("join_timeout of the current thread returned Ok"),
                Ok(Err(payload)) => payload
                    .downcast_ref::<SyncError>()
                    .copied()
                    .ok_or("payload is not a SyncError"),
            };
            result_tx.send((verdict, start.elapsed())).unwrap();
        });
        handle_tx.send(handle).unwrap();
        let (verdict, elapsed) = recv(&result_rx, "join_timeout of the current thread");
        assert_eq!(verdict, Ok(SyncError::JoinCurrentThread));
        assert!(elapsed < SLACK, "it waited: {elapsed:?}");
        assert!(!SyncError::JoinCurrentThread.to_string().is_empty());
    });
}

#[test]
fn a_thread_can_be_joined_by_a_thread_other_than_its_spawner() {
    bounded(LIMIT, || {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let worker = Builder::new()
            .name("worker".into())
            .spawn(move || {
                recv(&go_rx, "go");
                11
            })
            .unwrap();
        let joiner = Builder::new()
            .name("joiner".into())
            .spawn(move || join_within(worker).unwrap() * 2)
            .unwrap();
        go_tx.send(()).unwrap();
        assert_eq!(join_within(joiner).unwrap(), 22);
    });
}

#[test]
fn nested_spawns_join_in_any_order() {
    bounded(LIMIT, || {
        let total = Arc::new(AtomicUsize::new(0));
        let outer: Vec<JoinHandle<usize>> = (0..4)
            .map(|i| {
                let total = total.clone();
                thread::spawn(move || {
                    let inner: Vec<_> = (0..4)
                        .map(|j| {
                            let total = total.clone();
                            thread::spawn(move || {
                                total.fetch_add(1, Ordering::SeqCst);
                                i * 10 + j
                            })
                        })
                        .collect();
                    inner
                        .into_iter()
                        .rev()
                        .map(|h| join_within(h).unwrap())
                        .sum()
                })
            })
            .collect();
        let sum: usize = outer.into_iter().map(|h| join_within(h).unwrap()).sum();
        assert_eq!(total.load(Ordering::SeqCst), 16);
        // Sum over i, j of 10 i + j = 10 * 4 * 6 + 4 * 6.
        assert_eq!(sum, 264);
    });
}

#[test]
fn join_handle_debug_names_the_thread() {
    bounded(LIMIT, || {
        let handle = Builder::new()
            .name("debuggable".into())
            .spawn(|| ())
            .unwrap();
        assert!(format!("{handle:?}").contains("debuggable"));
        join_within(handle).unwrap();
    });
}
