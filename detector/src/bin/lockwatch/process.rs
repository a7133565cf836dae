//! The command's process group: starting it, signalling it, forwarding Ctrl-C to it.
//!
//! The command runs in a process group of its own so that `--timeout` can reach every
//! process of its tree (cargo, the test binaries, what they start) and nothing else. That
//! takes it out of the terminal's foreground group, so the terminal's Ctrl-C reaches only
//! `lockwatch`: it is forwarded to the group, and the command ends as it would have.

use std::process::{Child, Command};

#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(unix)]
mod unix {
    use super::*;
    use std::os::unix::process::CommandExt;

    pub(crate) use libc::{SIGKILL, SIGUSR1};

    /// Starts `command` as the leader of a new process group (whose id is its pid).
    pub(crate) fn spawn_in_group(command: &mut Command) -> std::io::Result<Child> {
        command.process_group(0).spawn()
    }

    /// Sends `signal` to every process of group `group`; false if none was left.
    pub(crate) fn signal_group(group: u32, signal: i32) -> bool {
        let Ok(group) = i32::try_from(group) else {
            return false;
        };
        // SAFETY: `kill` only sends a signal; a negative pid names a process group, and no
        // memory is passed.
        unsafe { libc::kill(-group, signal) == 0 }
    }

    /// Sends `signal` to process `pid`, if it is still in group `group` (a pid reused by an
    /// unrelated process is left alone).
    pub(crate) fn signal_member(pid: u32, group: u32, signal: i32) -> bool {
        let (Ok(pid), Ok(group)) = (i32::try_from(pid), i32::try_from(group)) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: `getpgid` reads the process group of a pid; no memory is passed.
        if unsafe { libc::getpgid(pid) } != group {
            return false;
        }
        // SAFETY: as in `signal_group`; `pid` is positive, so it names one process.
        unsafe { libc::kill(pid, signal) == 0 }
    }

    /// Whether process `pid` still exists in group `group` (a zombie counts as gone).
    pub(crate) fn is_live_member(pid: u32, group: u32) -> bool {
        let (Ok(pid_i), Ok(group)) = (i32::try_from(pid), i32::try_from(group)) else {
            return false;
        };
        // SAFETY: as in `signal_member`.
        if pid_i <= 0 || unsafe { libc::getpgid(pid_i) } != group {
            return false;
        }
        // A zombie has exited; it only waits for its parent.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .is_none_or(|state| state != "Z"),
            Err(_) => true,
        }
    }

    /// The processes of group `group` that catch `SIGUSR1` (every lockwatch process run with
    /// `LOCKWATCH_REPORT_DIR` does, to dump its threads), read from `/proc`; `None` where
    /// there is no `/proc` to read. Processes that do not catch it are left out: the signal
    /// would kill them.
    pub(crate) fn members_catching_sigusr1(group: u32) -> Option<Vec<u32>> {
        let entries = std::fs::read_dir("/proc").ok()?;
        let mut pids = Vec::new();
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // After the command name (in parentheses, which it may itself contain): state,
            // ppid, pgrp.
            let in_group = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(2))
                .and_then(|g| g.parse::<u32>().ok())
                == Some(group);
            if !in_group {
                continue;
            }
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                continue;
            };
            let caught = status
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
                .unwrap_or(0);
            if caught & (1 << (SIGUSR1 - 1)) != 0 {
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        Some(pids)
    }

    /// Forwards Ctrl-C, `SIGTERM`, `SIGHUP` and `SIGQUIT` to the command's group for the rest
    /// of `lockwatch`'s life, so the command ends as it would have in the foreground and its
    /// reports are still rendered.
    pub(crate) fn forward_terminal_signals(group: u32) {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
        let mut signals =
            match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT]) {
                Ok(signals) => signals,
                Err(e) => {
                    eprintln!("lockwatch: warning: cannot forward Ctrl-C to the command: {e}");
                    return;
                }
            };
        let spawned = std::thread::Builder::new()
            .name("forward-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    signal_group(group, signal);
                }
            });
        if let Err(e) = spawned {
            eprintln!("lockwatch: warning: cannot forward Ctrl-C to the command: {e}");
        }
    }

    /// The exit status a shell gives a process killed by `signal`.
    pub(crate) fn signal_status(status: &std::process::ExitStatus) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        status.signal().map(|s| 128 + s)
    }
}

#[cfg(not(unix))]
pub(crate) use other::*;

/// Without process groups or signals: the command alone, killed on timeout, no dumps.
#[cfg(not(unix))]
mod other {
    use super::*;

    pub(crate) const SIGKILL: i32 = 9;
    pub(crate) const SIGUSR1: i32 = 10;

    pub(crate) fn spawn_in_group(command: &mut Command) -> std::io::Result<Child> {
        command.spawn()
    }

    pub(crate) fn signal_group(_group: u32, _signal: i32) -> bool {
        false
    }

    pub(crate) fn signal_member(_pid: u32, _group: u32, _signal: i32) -> bool {
        false
    }

    pub(crate) fn is_live_member(_pid: u32, _group: u32) -> bool {
        false
    }

    pub(crate) fn members_catching_sigusr1(_group: u32) -> Option<Vec<u32>> {
        Some(Vec::new())
    }

    pub(crate) fn forward_terminal_signals(_group: u32) {}

    pub(crate) fn signal_status(_status: &std::process::ExitStatus) -> Option<i32> {
        None
    }
}
