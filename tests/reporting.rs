//! How findings are delivered: on lockwatch's own reporter thread, every one before an `abort`
//! exit, many at once in bounded time and memory. Each scenario runs in a child process (this
//! binary run again with `LOCKWATCH_REPORTING_SCENARIO` set; `harness = false`, so every
//! thread of the child is one the scenario started), with a hard time limit.

#[cfg(feature = "detect")]
fn main() {
    match std::env::var("LOCKWATCH_REPORTING_SCENARIO") {
        Ok(name) => scenarios::run(&name),
        Err(_) => parent::main(),
    }
}

#[cfg(not(feature = "detect"))]
fn main() {
    println!("reporting: skipped, detection is compiled out without feature `detect`");
}

/// What the child processes do. Each ends by itself (policy `abort`, or `exit(0)` once done).
#[cfg(feature = "detect")]
mod scenarios {
    use lockwatch::{Config, Mutex, OnDeadlock};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    pub(super) fn run(name: &str) {
        match name {
            "two_deadlocks_under_abort" => two_deadlocks_under_abort(),
            "blocking_handler_under_abort" => blocking_handler_under_abort(),
            "many_deadlocks" => many_deadlocks(),
            "blocking_handler_under_panic" => blocking_handler_under_panic(),
            other => panic!("no scenario {other}"),
        }
        // The deadlocked threads never end: nothing here may return to a join.
        std::thread::sleep(Duration::from_secs(30));
        eprintln!("scenario {name}: still running after 30 s");
        std::process::exit(2);
    }

    /// Spawns `pairs` ABBA pairs whose threads all hold their first lock before any asks for its
    /// second: every pair deadlocks. Returns once every thread holds its first lock, releasing
    /// them all towards their second at once.
    fn spawn_abba_pairs(pairs: usize, stack: usize) {
        let all_hold_first = Arc::new(Barrier::new(2 * pairs + 1));
        for pair in 0..pairs {
            let a = Arc::new(Mutex::named(format!("pair {pair} A"), ()));
            let b = Arc::new(Mutex::named(format!("pair {pair} B"), ()));
            for (side, first, second) in [("a", a.clone(), b.clone()), ("b", b, a.clone())] {
                let all_hold_first = all_hold_first.clone();
                std::thread::Builder::new()
                    .name(format!("pair-{pair}-{side}"))
                    .stack_size(stack)
                    .spawn(move || {
                        let _first = first.lock();
                        all_hold_first.wait();
                        let _second = second.lock();
                    })
                    .expect("spawn a pair thread");
            }
        }
        all_hold_first.wait();
    }

    /// Two independent ABBA deadlocks formed together. Policy `abort` must write both before
    /// it exits, however the scans split them.
    fn two_deadlocks_under_abort() {
        spawn_abba_pairs(2, 256 * 1024);
    }

    /// A handler that blocks for good (on a lock a deadlocked thread holds) runs on lockwatch's
    /// handler thread: the report is written, and policy `abort` still ends the process.
    fn blocking_handler_under_abort() {
        let a = Arc::new(Mutex::named("held by the cycle", ()));
        let b = Arc::new(Mutex::named("the other lock", ()));
        {
            let a = a.clone();
            lockwatch::set_handler(move |report| {
                let on = std::thread::current().name().map(str::to_owned);
                println!(
                    "handler on {}: {}",
                    on.as_deref().unwrap_or("?"),
                    report.kind()
                );
                drop(a.lock());
            });
        }
        let all_hold_first = Arc::new(Barrier::new(2));
        for (first, second) in [(a.clone(), b.clone()), (b, a)] {
            let all_hold_first = all_hold_first.clone();
            std::thread::spawn(move || {
                let _first = first.lock();
                all_hold_first.wait();
                let _second = second.lock();
            });
        }
    }

    /// Policy `panic` with a handler that blocks on a lock of the cycle: the verdict waits for
    /// the handler a bounded time only, and the thread that closed the cycle still panics.
    fn blocking_handler_under_panic() {
        let mut config = Config::from_env();
        config.on_deadlock = OnDeadlock::Panic;
        config.install();
        let a = Arc::new(Mutex::named("held by the cycle", ()));
        let b = Arc::new(Mutex::named("the other lock", ()));
        {
            let a = a.clone();
            lockwatch::set_handler(move |_| drop(a.lock()));
        }
        let all_hold_first = Arc::new(Barrier::new(2));
        let threads: Vec<_> = [(a.clone(), b.clone()), (b, a)]
            .into_iter()
            .map(|(first, second)| {
                let all_hold_first = all_hold_first.clone();
                lockwatch::thread::spawn(move || {
                    let _first = first.lock();
                    all_hold_first.wait();
                    let _second = second.lock();
                })
            })
            .collect();
        let mut panicked = 0;
        for t in threads {
            match t.join_timeout(Duration::from_secs(10)) {
                Ok(Err(payload)) => {
                    let message = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_default();
                    assert!(message.starts_with("deadlock detected"), "{message}");
                    panicked += 1;
                }
                Ok(Ok(())) => {}
                Err(_) => {
                    println!("a thread of the cycle is still blocked after 10 s");
                    std::process::exit(1);
                }
            }
        }
        println!("{panicked} thread(s) panicked");
        std::process::exit(if panicked == 1 { 0 } else { 1 });
    }

    fn status_kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// 500 ABBA pairs formed together, policy `report`: every one is reported, within the time
    /// and memory bounds `LOCKWATCH_TEST_MAX_MS` and `LOCKWATCH_TEST_MAX_MIB` (the increase of
    /// the peak resident set over the resident set before the threads exist).
    fn many_deadlocks() {
        const PAIRS: usize = 500;
        let max_ms: u128 = std::env::var("LOCKWATCH_TEST_MAX_MS")
            .unwrap()
            .parse()
            .unwrap();
        let max_mib: u64 = std::env::var("LOCKWATCH_TEST_MAX_MIB")
            .unwrap()
            .parse()
            .unwrap();
        let mut config = Config::from_env();
        config.on_deadlock = OnDeadlock::Report;
        config.install();
        static REPORTED: AtomicUsize = AtomicUsize::new(0);
        let (all_tx, all_rx) = std::sync::mpsc::channel::<Instant>();
        let all_tx = std::sync::Mutex::new(all_tx);
        lockwatch::set_handler(move |report| {
            if report.kind() == lockwatch::ReportKind::Deadlock
                && REPORTED.fetch_add(1, Ordering::Relaxed) + 1 == PAIRS
            {
                let _ = all_tx.lock().unwrap().send(Instant::now());
            }
        });
        // The runtime's own threads and tables exist before the baseline.
        drop(lockwatch::check());
        let baseline_kib = status_kib("VmRSS:");
        spawn_abba_pairs(PAIRS, 128 * 1024);
        let formed = Instant::now();
        let all = all_rx.recv_timeout(Duration::from_secs(60));
        let reported = REPORTED.load(Ordering::Relaxed);
        let Ok(all) = all else {
            println!("only {reported} of {PAIRS} deadlocks reported after 60 s");
            std::process::exit(1);
        };
        let elapsed = all.saturating_duration_since(formed);
        let extra_mib = status_kib("VmHWM:").saturating_sub(baseline_kib) / 1024;
        println!(
            "reported {reported} deadlocks in {} ms; peak resident set +{extra_mib} MiB",
            elapsed.as_millis()
        );
        // A few more watchdog periods: nothing is reported twice.
        std::thread::sleep(Duration::from_millis(300));
        let again = REPORTED.load(Ordering::Relaxed);
        let ok = elapsed.as_millis() <= max_ms && extra_mib <= max_mib && again == PAIRS;
        if !ok {
            println!("over the bounds ({max_ms} ms, {max_mib} MiB) or reported again ({again})");
        }
        std::process::exit(if ok { 0 } else { 1 });
    }
}

#[cfg(feature = "detect")]
mod parent {
    use serde_json::Value;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    struct Run {
        status: Option<i32>,
        stdout: String,
        stderr: String,
        /// Every file the child left in its report directory (hidden ones included): name, text.
        files: Vec<(String, String)>,
    }

    /// Runs scenario `name` in a child process, killing it (and failing) after `limit`.
    fn run(name: &str, env: &[(&str, &str)], limit: Duration) -> Run {
        let dir =
            std::env::temp_dir().join(format!("lockwatch-reporting-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .env("LOCKWATCH_REPORTING_SCENARIO", name)
            .env_remove("LOCKWATCH")
            .env_remove("LOCKWATCH_FORMAT")
            .env("LOCKWATCH_ON_DEADLOCK", "abort")
            .env("LOCKWATCH_REPORT_DIR", &dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let started = Instant::now();
        let mut child = command.spawn().expect("spawn the scenario");
        let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
        let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "scenario {name} still running after {limit:?}; stdout:\n{}",
                    out.join().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        files.sort();
        let run = Run {
            status: status.code(),
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
            files,
        };
        let _ = std::fs::remove_dir_all(&dir);
        run
    }

    fn parse((name, text): &(String, String)) -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"))
    }

    fn two_deadlocks_formed_together_are_both_written_before_abort() {
        for _ in 0..5 {
            let run = run("two_deadlocks_under_abort", &[], Duration::from_secs(30));
            assert_eq!(run.status, Some(86), "{}", run.stderr);
            let names: Vec<&String> = run.files.iter().map(|(name, _)| name).collect();
            assert!(
                names.iter().all(|n| !n.starts_with('.')),
                "a temporary file was left: {names:?}"
            );
            let deadlocks: Vec<Value> = run
                .files
                .iter()
                .map(parse)
                .filter(|r| r["kind"] == "deadlock")
                .collect();
            assert_eq!(deadlocks.len(), 2, "{names:?}\n{}", run.stderr);
            let mut pairs: Vec<String> = deadlocks
                .iter()
                .map(|report| {
                    let name = report["resources"][0]["name"].as_str().unwrap().to_owned();
                    name.split(' ').take(2).collect::<Vec<_>>().join(" ")
                })
                .collect();
            pairs.sort();
            assert_eq!(pairs, ["pair 0", "pair 1"]);
        }
    }

    fn a_handler_that_blocks_runs_on_its_own_thread_and_abort_still_exits() {
        let run = run("blocking_handler_under_abort", &[], Duration::from_secs(30));
        assert_eq!(run.status, Some(86), "{}", run.stderr);
        assert!(
            run.stdout.contains("handler on lockwatch-handler: "),
            "{}",
            run.stdout
        );
        // The handler blocks in its first call (the lock-order warning that comes first): the
        // deadlock is written all the same.
        let deadlocks = run
            .files
            .iter()
            .filter(|p| parse(p)["kind"] == "deadlock")
            .count();
        assert_eq!(deadlocks, 1, "{:?}", run.files);
        assert!(
            run.stderr.contains("did not return within"),
            "{}",
            run.stderr
        );
    }

    fn a_handler_that_blocks_does_not_keep_the_closing_thread_from_panicking() {
        let run = run(
            "blocking_handler_under_panic",
            &[("LOCKWATCH_ON_DEADLOCK", "panic")],
            Duration::from_secs(30),
        );
        assert_eq!(run.status, Some(0), "{}\n{}", run.stdout, run.stderr);
    }

    fn five_hundred_deadlocks_at_once_are_all_reported_in_bounded_time_and_memory() {
        // Debug build: 2 s and 200 MiB at most (SPEC'd by the issue); a release build must do
        // at least as well.
        let run = run(
            "many_deadlocks",
            &[
                ("LOCKWATCH_ON_DEADLOCK", "report"),
                ("LOCKWATCH_TEST_MAX_MS", "2000"),
                ("LOCKWATCH_TEST_MAX_MIB", "200"),
            ],
            Duration::from_secs(90),
        );
        println!("    {}", run.stdout.trim());
        assert_eq!(run.status, Some(0), "{}", run.stdout);
    }

    pub(super) fn main() {
        let tests: &[(&str, fn())] = &[
            (
                "two_deadlocks_formed_together_are_both_written_before_abort",
                two_deadlocks_formed_together_are_both_written_before_abort,
            ),
            (
                "a_handler_that_blocks_runs_on_its_own_thread_and_abort_still_exits",
                a_handler_that_blocks_runs_on_its_own_thread_and_abort_still_exits,
            ),
            (
                "a_handler_that_blocks_does_not_keep_the_closing_thread_from_panicking",
                a_handler_that_blocks_does_not_keep_the_closing_thread_from_panicking,
            ),
            (
                "five_hundred_deadlocks_at_once_are_all_reported_in_bounded_time_and_memory",
                five_hundred_deadlocks_at_once_are_all_reported_in_bounded_time_and_memory,
            ),
        ];
        let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        let mut failed = 0;
        for (name, test) in tests {
            if filter.as_deref().is_some_and(|f| !name.contains(f)) {
                continue;
            }
            let started = Instant::now();
            match std::panic::catch_unwind(test) {
                Ok(()) => println!("test {name} ... ok ({:?})", started.elapsed()),
                Err(_) => {
                    failed += 1;
                    println!("test {name} ... FAILED");
                }
            }
        }
        if failed > 0 {
            std::process::exit(1);
        }
    }
}
