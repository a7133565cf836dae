//! The command line: parsed by clap into raw arguments, then checked into a typed
//! configuration (ripgrep's split), so everything after parsing works on valid values only.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lockwatch_detector::ReportKind;

#[derive(Debug, Parser)]
#[command(
    name = "lockwatch",
    version,
    about = "Runs commands under lockwatch and renders its reports",
    long_about = "Runs a command (a test suite, a program) under lockwatch's deadlock detection \
                  and renders what every process of it reported; renders saved reports.\n\n\
                  Exit status: 0 nothing to fail on (or the command's own status when it \
                  failed), 1 a finding of a --fail-on kind, 2 a usage error or unreadable \
                  input, 3 the command outlived --timeout and no finding explains it."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs CMD in its own process group with lockwatch's reports collected, then renders them.
    Run(RunArgs),
    /// Renders saved reports (`lockwatch.report/v1` JSON files).
    Render(RenderArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Kill the command if it runs longer than this (e.g. 30s, 2m, 500ms, 1m30s), after
    /// asking every lockwatch process of it for a dump of its threads.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,
    /// Kinds of finding that make the exit status 1 (comma-separated: deadlock, stall,
    /// lock_order_inversion, long_wait, hang).
    #[arg(long, value_name = "KINDS", value_parser = parse_kinds, default_value = "deadlock,stall")]
    pub(crate) fail_on: KindSet,
    /// How to render the reports.
    #[arg(long, value_enum, value_name = "F", default_value_t = OutputFormat::Text)]
    pub(crate) format: OutputFormat,
    /// Write the rendered reports to FILE instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// The command and its arguments (after `--`).
    #[arg(
        value_name = "CMD",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        value_parser = clap::value_parser!(OsString)
    )]
    pub(crate) command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// Report files: one report, a JSON array of reports, or one report per line.
    #[arg(value_name = "FILE", required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// How to render the reports.
    #[arg(long, value_enum, value_name = "F", default_value_t = OutputFormat::Text)]
    pub(crate) format: OutputFormat,
    /// Where the source files the reports name are read (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub(crate) source_root: Option<PathBuf>,
}

/// `--format`: the detector's own format type, which `LOCKWATCH_FORMAT` parses too.
pub(crate) use lockwatch_detector::render::Format as OutputFormat;

/// `--fail-on`: a set of report kinds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KindSet(Vec<ReportKind>);

impl KindSet {
    pub(crate) fn contains(&self, kind: ReportKind) -> bool {
        self.0.contains(&kind)
    }
}

const KINDS: [ReportKind; 5] = [
    ReportKind::Deadlock,
    ReportKind::Stall,
    ReportKind::LockOrderInversion,
    ReportKind::LongWait,
    ReportKind::Hang,
];

/// `deadlock,stall`; an empty list fails on nothing.
pub(crate) fn parse_kinds(text: &str) -> Result<KindSet, String> {
    let mut set = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let kind = KINDS
            .iter()
            .copied()
            .find(|k| k.as_str() == item)
            .ok_or_else(|| {
                let names: Vec<&str> = KINDS.iter().map(|k| k.as_str()).collect();
                format!("unknown kind `{item}` (expected {})", names.join(", "))
            })?;
        if !set.contains(&kind) {
            set.push(kind);
        }
    }
    Ok(KindSet(set))
}

/// A duration as people write it: `30s`, `2m`, `500ms`, `1h`, `1m30s`, `1.5s`; a bare number
/// is seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected e.g. 30s, 2m, 500ms";
    let whole = text.trim();
    if whole.is_empty() {
        return Err(format!("empty duration ({EXPECTED})"));
    }
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    let mut seconds = 0f64;
    let mut rest = whole;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !is_number(c)).unwrap_or(rest.len());
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{whole}` is not a duration ({EXPECTED})"))?;
        rest = &rest[digits..];
        let letters = rest.find(is_number).unwrap_or(rest.len());
        let unit = rest[..letters].trim();
        let scale = match unit {
            "" if digits == whole.len() => 1.0,
            "ms" => 1e-3,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "" => return Err(format!("`{whole}`: a number without a unit ({EXPECTED})")),
            other => return Err(format!("`{whole}`: unknown unit `{other}` ({EXPECTED})")),
        };
        seconds += number * scale;
        rest = &rest[letters..];
    }
    if seconds <= 0.0 {
        return Err(format!("`{whole}`: a timeout must be longer than zero"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{whole}` is too long"))
}

/// `lockwatch run`, checked.
#[derive(Debug)]
pub(crate) struct RunConfig {
    pub(crate) timeout: Option<Duration>,
    pub(crate) fail_on: KindSet,
    pub(crate) format: OutputFormat,
    pub(crate) output: Option<PathBuf>,
    pub(crate) command: Vec<OsString>,
}

/// `lockwatch render`, checked.
#[derive(Debug)]
pub(crate) struct RenderConfig {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) format: OutputFormat,
    pub(crate) source_root: Option<PathBuf>,
}

/// What the command line asks for, valid.
#[derive(Debug)]
pub(crate) enum Config {
    Run(RunConfig),
    Render(RenderConfig),
}

impl Cli {
    /// Checks what clap cannot: the source root exists.
    pub(crate) fn into_config(self) -> Result<Config, String> {
        match self.command {
            Command::Run(a) => Ok(Config::Run(RunConfig {
                timeout: a.timeout,
                fail_on: a.fail_on,
                format: a.format,
                output: a.output,
                command: a.command,
            })),
            Command::Render(a) => {
                if let Some(root) = &a.source_root {
                    if !root.is_dir() {
                        return Err(format!("--source-root {}: not a directory", root.display()));
                    }
                }
                Ok(Config::Render(RenderConfig {
                    files: a.files,
                    format: a.format,
                    source_root: a.source_root,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_usual_units() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("30s"), Ok(ms(30_000)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse_duration("10"), Ok(ms(10_000)));
        assert_eq!(parse_duration(" 5 s "), Ok(ms(5_000)));
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(parse_duration("5x")
            .unwrap_err()
            .contains("unknown unit `x`"));
        assert!(parse_duration("1m30")
            .unwrap_err()
            .contains("without a unit"));
        assert!(parse_duration("s").unwrap_err().contains("not a duration"));
        assert!(parse_duration("0s")
            .unwrap_err()
            .contains("longer than zero"));
        assert!(parse_duration("1.2.3s")
            .unwrap_err()
            .contains("not a duration"));
    }

    #[test]
    fn kinds_are_the_report_kinds() {
        let set = parse_kinds("deadlock, lock_order_inversion,deadlock").unwrap();
        assert_eq!(
            set,
            KindSet(vec![ReportKind::Deadlock, ReportKind::LockOrderInversion])
        );
        assert_eq!(parse_kinds(""), Ok(KindSet::default()));
        let err = parse_kinds("deadlock,deadlok").unwrap_err();
        assert_eq!(
            err,
            "unknown kind `deadlok` (expected deadlock, stall, lock_order_inversion, long_wait, hang)"
        );
    }

    #[test]
    fn the_command_follows_the_flags_with_or_without_a_double_dash() {
        let cli = Cli::try_parse_from(["lockwatch", "run", "--timeout", "1s", "--", "sleep", "30"])
            .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.command, vec!["sleep", "30"]);
        assert_eq!(run.timeout, Some(Duration::from_secs(1)));
        assert_eq!(run.fail_on, parse_kinds("deadlock,stall").unwrap());
        // Flags after the command are the command's.
        let cli =
            Cli::try_parse_from(["lockwatch", "run", "cargo", "test", "--format", "x"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.command, vec!["cargo", "test", "--format", "x"]);
        assert_eq!(run.format, OutputFormat::Text);
    }
}
