//! Exit statuses (SPEC §6), as ripgrep documents its own: one function decides.

use lockwatch_detector::ReportKind;

use crate::args::KindSet;

/// Nothing to fail on, and the command succeeded (or there was no command).
pub(crate) const OK: u8 = 0;
/// A finding of a `--fail-on` kind.
pub(crate) const FINDING: u8 = 1;
/// A usage error or unreadable input.
pub(crate) const USAGE: u8 = 2;
/// The command outlived `--timeout`, and no `--fail-on` finding explains it.
pub(crate) const TIMEOUT: u8 = 3;

/// The status of `lockwatch run`, first rule that applies: a `--fail-on` finding (a command
/// that died of policy `abort`, status 86, with a deadlock report is a finding, not a
/// failure of its own); the timeout; an unreadable report or hierarchy; the command's own
/// status (a command killed by a signal: 128 + the signal, as shells say).
pub(crate) fn of_run(
    kinds: &[ReportKind],
    fail_on: &KindSet,
    timed_out: bool,
    unreadable: bool,
    command: Option<i32>,
) -> u8 {
    if kinds.iter().any(|&k| fail_on.contains(k)) {
        return FINDING;
    }
    if timed_out {
        return TIMEOUT;
    }
    if unreadable {
        return USAGE;
    }
    match command {
        Some(0) => OK,
        // Statuses are 0..=255 on Unix; anything else (Windows) folds into "failed".
        Some(code) => u8::try_from(code).unwrap_or(FINDING),
        None => USAGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse_kinds;

    #[test]
    fn a_finding_to_fail_on_wins_then_the_timeout_then_bad_input_then_the_command() {
        let default = parse_kinds("deadlock,stall").unwrap();
        let dl = [ReportKind::Deadlock];
        let inv = [ReportKind::LockOrderInversion];
        assert_eq!(of_run(&dl, &default, false, false, Some(86)), FINDING);
        assert_eq!(of_run(&dl, &default, true, true, Some(0)), FINDING);
        assert_eq!(of_run(&inv, &default, true, false, Some(137)), TIMEOUT);
        assert_eq!(of_run(&inv, &default, false, true, Some(0)), USAGE);
        assert_eq!(of_run(&inv, &default, false, false, Some(0)), OK);
        assert_eq!(of_run(&[], &default, false, false, Some(101)), 101);
        assert_eq!(of_run(&[], &default, false, false, Some(130)), 130);
        // Not in --fail-on: the command's own status stands, even policy abort's.
        assert_eq!(
            of_run(&dl, &parse_kinds("stall").unwrap(), false, false, Some(86)),
            86
        );
        let hang = parse_kinds("hang").unwrap();
        assert_eq!(
            of_run(&[ReportKind::Hang], &hang, true, false, None),
            FINDING
        );
    }
}
