//! Backtraces: captured unresolved on the slow path, resolved only for a report, with
//! lockwatch's own frames and the standard library's removed.

use backtrace::{Backtrace, BacktraceFrame};
use lockwatch_detector::Frame;

/// Function-name prefixes of frames that say nothing about the user's program.
const HIDDEN_PREFIXES: &[&str] = &[
    "lockwatch::",
    "lockwatch_detector::",
    "std::",
    "core::",
    "alloc::",
    "backtrace::",
    "parking_lot",
    "lock_api::",
    "__rust",
    "rust_begin_unwind",
    "_start",
    "__libc_start",
    "start_thread",
    "clone",
    "__clone",
    "thread_start",
];

fn hidden(function: &str) -> bool {
    // Trait-method frames read `<Type as Trait>::method`: judge them by the type's path.
    let path = function
        .strip_prefix('<')
        .map_or(function, |inner| inner.trim_start_matches(['&', '*']));
    // `main` alone is the C entry point rustc generates, not the program's `main`.
    function == "main"
        || HIDDEN_PREFIXES.iter().any(|p| path.starts_with(p))
        || function.contains(" as core::ops::function::Fn")
}

/// Removes the `::h0123456789abcdef` hash rustc appends to symbol names.
fn strip_hash(name: &str) -> &str {
    match name.rfind("::h") {
        Some(i) if name.len() - i == 19 && name[i + 3..].bytes().all(|b| b.is_ascii_hexdigit()) => {
            &name[..i]
        }
        _ => name,
    }
}

/// Captures the calling thread's stack, unresolved.
///
/// `Backtrace::new_unresolved` takes the `backtrace` crate's global lock, which symbol
/// resolution holds while it loads debug info: a thread registering its wait then sat behind
/// the first report's resolution (tens of milliseconds in a debug build), unseen by the graph,
/// and could be left out of the report of the deadlock it was part of.
pub(crate) fn capture() -> Backtrace {
    let mut frames: Vec<BacktraceFrame> = Vec::with_capacity(32);
    #[cfg(target_os = "linux")]
    // SAFETY: the crate's lock serialises platforms whose unwinders are not thread-safe
    // (Windows' dbghelp) and its symbol cache. On Linux the walk is `_Unwind_Backtrace`, which
    // is thread-safe, and a capture does not touch the symbol cache.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            frames.push(frame.clone().into());
            true
        });
    }
    #[cfg(not(target_os = "linux"))]
    backtrace::trace(|frame| {
        frames.push(frame.clone().into());
        true
    });
    frames.into()
}

/// Where a thread's own code begins: the standard library (and the test harness) start every
/// thread, `main` included, through a function of this name, which Rust's own short
/// backtraces also stop at.
fn is_thread_entry(function: &str) -> bool {
    function.contains("__rust_begin_short_backtrace")
}

/// Resolves a copy of `backtrace` into report frames, innermost first.
///
/// Frames are resolved one at a time and only up to the thread's entry point: the frames
/// beyond it are the runtime's and the C library's start-up code, and resolving them would
/// load the C library's debug info (compressed, where it is installed), which took longer than
/// the whole rest of a first report.
pub(crate) fn resolve(backtrace: &Backtrace) -> Vec<Frame> {
    let captured: Vec<BacktraceFrame> = backtrace.clone().into();
    let mut frames = Vec::new();
    for mut frame in captured {
        frame.resolve();
        for symbol in frame.symbols() {
            let Some(name) = symbol.name() else { continue };
            let name = format!("{name:#}");
            let name = strip_hash(&name);
            if is_thread_entry(name) {
                return frames;
            }
            if hidden(name) {
                continue;
            }
            frames.push(Frame {
                function: name.to_owned(),
                // Absolute, as debug info has it: `Report::relativize_frame_paths` writes
                // it the compiler's way once the report's locations show the project root.
                file: symbol
                    .filename()
                    .map(|path| path.to_string_lossy().into_owned()),
                line: symbol.lineno(),
                column: symbol.colno(),
            });
        }
    }
    frames
}

/// Loads the program's debug info ahead of the first report (resolving this thread's own
/// backtrace reads exactly what a report will need).
pub(crate) fn warm_up() {
    resolve(&capture());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_and_std_frames_are_hidden() {
        assert!(hidden("lockwatch::rt::acquire"));
        assert!(hidden("<lockwatch::Mutex<T>>::lock"));
        assert!(hidden("std::thread::Builder::spawn_unchecked_"));
        assert!(hidden("<F as core::ops::function::FnOnce<()>>::call_once"));
        assert!(!hidden("abba::worker_a"));
        assert!(!hidden("abba::main::{{closure}}"));
    }

    #[test]
    fn the_thread_entry_is_recognised() {
        assert!(is_thread_entry(
            "std::sys::backtrace::__rust_begin_short_backtrace"
        ));
        assert!(is_thread_entry(
            "test::__rust_begin_short_backtrace::<fn()>"
        ));
        assert!(!is_thread_entry("abba::main"));
    }

    #[test]
    fn symbol_hashes_are_stripped() {
        assert_eq!(strip_hash("abba::main::h0123456789abcdef"), "abba::main");
        assert_eq!(strip_hash("abba::main"), "abba::main");
    }
}
