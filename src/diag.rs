//! lockwatch's own lines on stderr (bad settings, internal errors, reports), written straight to
//! file descriptor 2.
//!
//! Never through `std::io::stderr()`: its lock is reentrant per thread and held for as long as a
//! `print!` runs, so a thread frozen while printing, or a user thread that keeps it locked, would
//! stop a report or an error line from getting out, and the thread writing it would block there.

/// Writes `bytes` to file descriptor 2, retrying on interruption; gives up silently on any other
/// error (there is nowhere left to say so).
#[cfg(unix)]
pub(crate) fn write_stderr(bytes: &[u8]) {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: fd 2 is the process's standard error, open for its whole life (if it was closed,
    // a write fails with EBADF and nothing else happens). `ManuallyDrop` keeps this handle from
    // ever closing it.
    let mut fd2 = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(2) });
    let _ = fd2.write_all(bytes);
}

/// Elsewhere std's handle, unbuffered: the platform has no descriptor to write to directly.
#[cfg(not(unix))]
pub(crate) fn write_stderr(bytes: &[u8]) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(bytes);
}

/// Writes one line (a newline is added).
pub(crate) fn line(args: std::fmt::Arguments<'_>) {
    let mut text = args.to_string();
    text.push('\n');
    write_stderr(text.as_bytes());
}

/// `eprintln!` for lockwatch's own lines: formats one line and writes it with [`write_stderr`].
macro_rules! diag {
    ($($arg:tt)*) => {
        $crate::diag::line(format_args!($($arg)*))
    };
}
pub(crate) use diag;
