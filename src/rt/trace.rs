//! Backtraces: captured unresolved on the slow path, resolved only for a report, with
//! lockwatch's own frames and the standard library's removed.

use backtrace::{Backtrace, BacktraceFrame};
use lockwatch_detector::Frame;
use std::collections::HashMap;

/// Crates whose frames say nothing about the user's program.
const HIDDEN_CRATES: &[&str] = &[
    "lockwatch",
    "lockwatch_detector",
    "std",
    "core",
    "alloc",
    "backtrace",
    "parking_lot",
    "parking_lot_core",
    "lock_api",
];

/// Whole names of the C runtime's and the unwinder's frames. (`main` alone is the C entry
/// point rustc generates, not the program's `main`.)
const HIDDEN_SYMBOLS: &[&str] = &[
    "main",
    "_start",
    "__libc_start_main",
    "__libc_start_call_main",
    "start_thread",
    "thread_start",
    "clone",
    "clone3",
    "__clone",
    "__clone3",
    "rust_begin_unwind",
];

/// The crate a path (`krate::module::item`) belongs to.
fn crate_of(path: &str) -> &str {
    let path = path.trim_start_matches(['&', '*']);
    let path = path
        .strip_prefix("mut ")
        .or_else(|| path.strip_prefix("dyn "))
        .unwrap_or(path);
    let end = path.find([':', '<']).unwrap_or(path.len());
    &path[..end]
}

fn hidden_path(path: &str) -> bool {
    HIDDEN_CRATES.contains(&crate_of(path))
}

/// The type and the trait of a `<Type as Trait>::method` frame (the trait `None` for
/// `<Type>::method`), split at the ` as ` outside any generic arguments.
fn qualified_parts(inner: &str) -> (&str, Option<&str>) {
    let mut depth = 0usize;
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' if depth == 0 => return (&inner[..i], None),
            '>' => depth -= 1,
            ' ' if depth == 0 && inner[i..].starts_with(" as ") => {
                return (&inner[..i], Some(&inner[i + 4..]));
            }
            _ => {}
        }
    }
    (inner, None)
}

fn hidden(function: &str) -> bool {
    if HIDDEN_SYMBOLS.contains(&function) || function.starts_with("__rust") {
        return true;
    }
    // The call shims of closures: `<F as core::ops::function::FnOnce<A>>::call_once`.
    if function.contains(" as core::ops::function::Fn") {
        return true;
    }
    match function.strip_prefix('<') {
        // A trait method is the user's when either the type or the trait is: a user trait
        // implemented for `Arc<T>`, or a standard trait implemented for a user type.
        Some(inner) => {
            let (ty, tr) = qualified_parts(inner);
            hidden_path(ty) && tr.is_none_or(hidden_path)
        }
        None => hidden_path(function),
    }
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
    let keep = |frame: &backtrace::Frame| {
        frames.push(frame.clone().into());
        true
    };
    #[cfg(target_os = "linux")]
    // SAFETY: the crate's lock serialises platforms whose unwinders are not thread-safe
    // (Windows' dbghelp) and its symbol cache. On Linux the walk is `_Unwind_Backtrace`, which
    // is thread-safe, and a capture does not touch the symbol cache.
    unsafe {
        backtrace::trace_unsynchronized(keep)
    };
    #[cfg(not(target_os = "linux"))]
    backtrace::trace(keep);
    frames.into()
}

/// Where a thread's own code begins: the standard library (and the test harness) start every
/// thread, `main` included, through a function of this name, which Rust's own short
/// backtraces also stop at.
fn is_thread_entry(function: &str) -> bool {
    function.contains("__rust_begin_short_backtrace")
}

/// What one instruction address resolves to: the report frames of its symbols (inlined ones
/// first), hidden ones left out, and whether one of them is the thread's entry point.
#[derive(Clone)]
struct Resolved {
    frames: Vec<Frame>,
    /// The frames up to `entry` are kept; the rest and every later address are not.
    entry: Option<usize>,
}

/// Addresses already resolved. Threads blocked at the same place share their stacks' addresses:
/// a burst of reports (five hundred deadlocks of one function) resolves each address once, not
/// once per report, which in a debug build made the reports take seconds. Bounded: cleared when
/// full (a program has as many distinct addresses as call sites that block).
static RESOLVED: parking_lot::Mutex<Option<HashMap<usize, Resolved>>> =
    parking_lot::Mutex::new(None);
const RESOLVED_MAX: usize = 65_536;

fn resolve_frame(frame: &BacktraceFrame) -> Resolved {
    let ip = frame.ip() as usize;
    if let Some(known) = RESOLVED.lock().as_ref().and_then(|m| m.get(&ip)) {
        return known.clone();
    }
    let mut frame = frame.clone();
    frame.resolve();
    let mut resolved = Resolved {
        frames: Vec::new(),
        entry: None,
    };
    for symbol in frame.symbols() {
        let Some(name) = symbol.name() else { continue };
        let name = format!("{name:#}");
        let name = strip_hash(&name);
        if is_thread_entry(name) {
            resolved.entry = Some(resolved.frames.len());
            break;
        }
        if hidden(name) {
            continue;
        }
        resolved.frames.push(Frame {
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
    let mut cache = RESOLVED.lock();
    let cache = cache.get_or_insert_with(HashMap::new);
    if cache.len() >= RESOLVED_MAX {
        cache.clear();
    }
    cache.insert(ip, resolved.clone());
    resolved
}

/// Resolves a copy of `backtrace` into report frames, innermost first.
///
/// Frames are resolved one at a time and only up to the thread's entry point: the frames
/// beyond it are the runtime's and the C library's start-up code, and resolving them would
/// load the C library's debug info (compressed, where it is installed), which took longer than
/// the whole rest of a first report.
pub(crate) fn resolve(backtrace: &Backtrace) -> Vec<Frame> {
    let mut frames = Vec::new();
    for frame in backtrace.frames() {
        let resolved = resolve_frame(frame);
        match resolved.entry {
            Some(entry) => {
                frames.extend(resolved.frames.into_iter().take(entry));
                return frames;
            }
            None => frames.extend(resolved.frames),
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
        assert!(hidden("<lockwatch::Mutex<T> as core::fmt::Debug>::fmt"));
        assert!(hidden("std::thread::Builder::spawn_unchecked_"));
        assert!(hidden("<F as core::ops::function::FnOnce<()>>::call_once"));
        assert!(hidden("parking_lot_core::parking_lot::park"));
        assert!(hidden("clone3"));
        assert!(hidden("main"));
        assert!(!hidden("abba::worker_a"));
        assert!(!hidden("abba::main::{{closure}}"));
    }

    #[test]
    fn user_code_named_like_runtime_code_is_shown() {
        // Crates whose names begin like hidden symbols or crates.
        assert!(!hidden("cloner::main"));
        assert!(!hidden("parking_lot_demo::main"));
        assert!(!hidden("start_threads::run"));
        // A user trait implemented for a standard type, and a standard trait for a user type.
        assert!(!hidden(
            "<alloc::sync::Arc<lockwatch::Mutex<u32>> as bank::Transfer>::transfer_to"
        ));
        assert!(!hidden("<bank::Account as core::fmt::Display>::fmt"));
        assert!(!hidden(
            "<&mut bank::Account as core::ops::drop::Drop>::drop"
        ));
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
