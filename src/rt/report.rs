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
    *HANDLER.write() = Some(Arc::new(handler));
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How a finding reached [`emit`], which decides the policy that applies.
pub(crate) enum Emitted {
    /// A deadlock or stall; `current` is the reporting thread's runtime id (0: the watchdog).
    Stuck { closing_thread: u64, current: u64 },
    /// A lock-order inversion found by the current thread's acquisition.
    Inversion { current: u64 },
    /// Informational (long wait, inversion under `warn`): print and go on.
    Warning,
}

pub(crate) fn emit(report: Report, how: Emitted) {
    let config = config::current().read().clone();
    {
        let _serial = OUTPUT.lock();
        let mut stderr = std::io::stderr().lock();
        let text = match config.format {
            Format::Json => report.to_json(),
            Format::Text => TextRenderer {
                color: std::io::stderr().is_terminal(),
                source_root: None,
            }
            .render(&report),
        };
        let _ = if text.ends_with('\n') {
            write!(stderr, "{text}")
        } else {
            writeln!(stderr, "{text}")
        };
        let _ = stderr.flush();
        if let Some(dir) = &config.report_dir {
            if let Err(e) = write_report_file(dir, &report) {
                let _ = writeln!(
                    stderr,
                    "lockwatch: error: cannot write a report to {}: {e}",
                    dir.display()
                );
            }
        }
    }
    let handler = HANDLER.read().clone();
    if let Some(handler) = handler {
        // A panicking handler must not take the reporting thread (maybe the watchdog) with it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&report)));
    }
    let (panicking_thread, current) = match how {
        Emitted::Warning => return,
        Emitted::Stuck {
            closing_thread,
            current,
        } => (closing_thread, current),
        Emitted::Inversion { current } => (current, current),
    };
    match config.on_deadlock {
        OnDeadlock::Report => {}
        OnDeadlock::Abort => std::process::exit(ABORT_STATUS),
        OnDeadlock::Panic => {
            let message = format!("deadlock detected: {}", report.summary);
            if panicking_thread == current {
                panic!("{message}");
            }
            if let Some(record) = registry::runtime().threads.get(&panicking_thread) {
                record.post_verdict(message);
            }
        }
    }
}

/// Writes `<pid>-<seq>-<kind>.json` complete or not at all: a temporary file, then a rename.
fn write_report_file(dir: &Path, report: &Report) -> std::io::Result<()> {
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
    std::fs::rename(&tmp, dir.join(name))
}
