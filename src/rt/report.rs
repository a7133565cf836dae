//! Delivering findings: stderr, the report directory, the user's handler, then the policy.

use super::registry;
use crate::config::{self, Format, OnDeadlock};
use lockwatch_detector::render::TextRenderer;
use lockwatch_detector::Report;
use parking_lot::{Mutex, RwLock};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The exit status of policy `abort`.
pub(crate) const ABORT_STATUS: i32 = 86;

type Handler = Arc<dyn Fn(&Report) + Send + Sync>;

static HANDLER: RwLock<Option<Handler>> = RwLock::new(None);
static REPORT_SEQ: AtomicU64 = AtomicU64::new(1);
/// Serialises output so two reports never interleave on stderr.
static OUTPUT: Mutex<()> = Mutex::new(());

pub(crate) fn set_handler(handler: impl Fn(&Report) + Send + Sync + 'static) {
    // The old handler is dropped after the lock is released: its destructor may do anything.
    let old = HANDLER.write().replace(Arc::new(handler));
    drop(old);
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How a finding reached [`emit`], which decides the policy that applies.
pub(crate) enum Emitted {
    /// A deadlock or stall; `closing` is the thread (and its wait) whose wait closed it;
    /// `current` is the reporting thread's runtime id (0: the watchdog).
    Stuck {
        closing_thread: u64,
        closing_seq: u64,
        current: u64,
    },
    /// A lock-order inversion found by the current thread's acquisition.
    Inversion { current: u64 },
    /// Informational (long wait, inversion under `warn`): print and go on.
    Warning,
}

/// Delivers a finding; returns the report file written, if any (`LOCKWATCH_REPORT_DIR`).
pub(crate) fn emit(report: Report, how: Emitted) -> Option<std::path::PathBuf> {
    let config = config::current().read().clone();
    let mut text = match config.format {
        Format::Json => report.to_json(),
        Format::Text => TextRenderer {
            color: std::io::stderr().is_terminal(),
            source_root: None,
            // Under `LOCKWATCH_LOCK_ORDER=error` an inversion stops the program like a deadlock.
            as_error: matches!(how, Emitted::Inversion { .. }),
        }
        .render(&report),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let mut file = None;
    {
        let _serial = OUTPUT.lock();
        write_stderr(text.as_bytes());
        if let Some(dir) = &config.report_dir {
            match write_report_file(dir, &report) {
                Ok(path) => file = Some(path),
                Err(e) => write_stderr(
                    format!(
                        "lockwatch: error: cannot write a report to {}: {e}\n",
                        dir.display()
                    )
                    .as_bytes(),
                ),
            }
        }
    }
    let handler = HANDLER.read().clone();
    if let Some(handler) = handler {
        // A panicking handler must not take the reporting thread (maybe the watchdog) with it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&report)));
    }
    let (panicking_thread, closing_seq, current) = match how {
        Emitted::Warning => return file,
        Emitted::Stuck {
            closing_thread,
            closing_seq,
            current,
        } => (closing_thread, closing_seq, current),
        Emitted::Inversion { current } => (current, 0, current),
    };
    match config.on_deadlock {
        OnDeadlock::Report => {}
        OnDeadlock::Abort => std::process::exit(ABORT_STATUS),
        OnDeadlock::Panic => {
            // The panic's own location is in lockwatch; a test's failure output shows only the
            // message, so it names the line the thread is stuck on.
            let stuck_at = report
                .thread(panicking_thread)
                .and_then(|t| t.waiting_for.as_ref())
                .map(|w| format!(" (this thread waits at {})", w.location))
                .unwrap_or_default();
            let message = format!("deadlock detected: {}{stuck_at}", report.summary);
            if panicking_thread == current {
                // A second panic while unwinding would abort the process: the report is out,
                // let the first unwind finish.
                if !std::thread::panicking() {
                    panic!("{message}");
                }
            } else if let Some(record) = registry::runtime().threads.get(&panicking_thread) {
                record.post_verdict(closing_seq, message);
            }
        }
    }
    file
}

/// Writes straight to file descriptor 2. Not through `std::io::stderr()`, whose lock a frozen
/// thread may hold (it was printing when it blocked): a report must get out regardless.
#[cfg(unix)]
fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid, initialised buffer of `bytes.len()` bytes for the whole
        // call, and fd 2 is only written, never closed, here.
        let written = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if written <= 0 {
            if written < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            }
            return;
        }
        bytes = &bytes[written as usize..];
    }
}

#[cfg(not(unix))]
fn write_stderr(bytes: &[u8]) {
    let _ = std::io::stderr().write_all(bytes);
}

/// Writes `<pid>-<seq>-<kind>.json` complete or not at all: a temporary file, then a rename.
fn write_report_file(dir: &Path, report: &Report) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let seq = REPORT_SEQ.fetch_add(1, Ordering::Relaxed);
    let name = format!("{}-{}-{}.json", report.pid, seq, report.kind.as_str());
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(report.to_json_pretty().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    let path = dir.join(name);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}
