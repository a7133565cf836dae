//! Dumps on request: `lockwatch run --timeout` asks every process of a command that outlived
//! it for the state of its threads, with `SIGUSR1` (SPEC §6).
//!
//! Only under `LOCKWATCH_REPORT_DIR` (the dump goes there, and a program run without it keeps
//! its own `SIGUSR1` behaviour), and only from the first thread the runtime registers (a
//! program that never uses a lockwatch primitive pays nothing). The signal handler is
//! signal-hook's, which only wakes a thread of lockwatch's own; that thread writes a `hang`
//! report, `<pid>-<seq>-hang.json`: every thread the runtime knows, its state, its wait from
//! the live wait-for graph, the holds it can see (a blocked thread publishes its holds with
//! its wait; for a wait on an owned lock, the owner's hold and where it began) and its
//! backtrace; then the lock hierarchy learned so far, if `LOCKWATCH_ORDER_GRAPH` is set (the
//! process is about to be killed). The CLI tells which processes answer from the signals they catch (Linux's
//! `SigCgt`), so nothing but reports is ever written into the directory.

/// Installs the dump thread once per process, if `LOCKWATCH_REPORT_DIR` is set. Called on
/// every thread registration; after the first it is one atomic load.
#[inline]
pub(crate) fn ensure_installed() {
    #[cfg(unix)]
    {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(unix::install);
    }
}

#[cfg(unix)]
mod unix {
    use crate::config;
    use crate::diag::diag;
    use crate::rt::{detect, graph, report};
    use signal_hook::consts::SIGUSR1;
    use signal_hook::iterator::Signals;
    use std::time::Duration;

    pub(super) fn install() {
        if !config::enabled() || config::current().read().report_dir.is_none() {
            return;
        }
        let mut signals = match Signals::new([SIGUSR1]) {
            Ok(signals) => signals,
            Err(e) => {
                diag!("lockwatch: warning: cannot answer SIGUSR1 with dumps: {e}");
                return;
            }
        };
        let (counted_tx, counted) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("lockwatch-dump".into())
            .spawn(move || {
                // Counted as lockwatch's own before anything else, as the watchdog is: an OS
                // thread lockwatch cannot place would put off Lock and Condvar reports.
                crate::rt::registry::count_as_internal();
                let _ = counted_tx.send(());
                // Signals that came before this are queued in signal-hook's pipe.
                for _ in signals.forever() {
                    if std::panic::catch_unwind(write_dump).is_err() {
                        diag!("lockwatch: internal error: a dump panicked; none written");
                    }
                }
            });
        match spawned {
            // Bounded, as for the watchdog: a thread slow to start only delays some reports.
            Ok(_) => {
                let _ = counted.recv_timeout(Duration::from_secs(1));
            }
            Err(e) => diag!("lockwatch: warning: cannot start the dump thread: {e}"),
        }
    }

    /// Writes the `hang` report of every thread the runtime knows into the report directory,
    /// and the lock hierarchy learned so far to `LOCKWATCH_ORDER_GRAPH`: the CLI kills the
    /// process next, and a killed process never reaches the exit hook that writes it.
    fn write_dump() {
        write_threads();
        crate::rt::write_order_graph();
    }

    fn write_threads() {
        let Some(dir) = config::current().read().report_dir.clone() else {
            return;
        };
        let detected_at_ms = report::now_ms();
        let mut snapshot = graph::snapshot();
        let waits: Vec<(u64, u64)> = snapshot
            .threads
            .iter()
            .filter_map(|t| Some((t.id, t.wait.as_ref()?.resource)))
            .collect();
        // A running owner publishes no holds: the one a waiter waits for is read off the lock.
        for (thread, resource) in waits {
            if let Some((owner, site)) = graph::owner_of_wait(thread) {
                detect::mark_owner_hold(&mut snapshot, owner, resource, site);
            }
        }
        let everyone: Vec<u64> = snapshot.threads.iter().map(|t| t.id).collect();
        graph::collect_traces(&snapshot, &everyone).apply(&mut snapshot);
        let mut dump =
            lockwatch_detector::hang::dump_report(&snapshot, std::process::id(), detected_at_ms);
        report::annotate(&mut dump);
        dump.relativize_frame_paths();
        if let Err(e) = report::write_report_file(&dir, &dump) {
            diag!(
                "lockwatch: error: cannot write a dump to {}: {e}",
                dir.display()
            );
        }
    }
}
