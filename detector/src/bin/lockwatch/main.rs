//! `lockwatch`: runs a command under lockwatch and renders the reports of every process it
//! ran (`lockwatch run`), or renders saved reports (`lockwatch render`). SPEC §6.
//!
//! Exit status: 0 nothing to fail on, or the command's own failure status; 1 a finding of a
//! `--fail-on` kind; 2 a usage error or unreadable input; 3 the command outlived `--timeout`
//! and no `--fail-on` finding explains it.

mod args;
mod output;
mod process;
mod render;
mod run;
mod status;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `lockwatch` alone: the help, as a usage error.
            let _ = e.print();
            return ExitCode::from(status::USAGE);
        }
        Err(e) => {
            eprintln!("lockwatch: error: {}", one_line(&e.to_string()));
            return ExitCode::from(status::USAGE);
        }
    };
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("lockwatch: error: {message}");
            return ExitCode::from(status::USAGE);
        }
    };
    ExitCode::from(match &config {
        args::Config::Run(run) => run::run(run),
        args::Config::Render(render) => render::render(render),
    })
}

/// clap's message as one line: its first line with the indented lines that continue it
/// (the missing arguments), and a `tip:` if it has one. The usage and "for more information"
/// lines are dropped: `lockwatch --help` says it all.
fn one_line(message: &str) -> String {
    let mut lines = message.lines().filter(|l| !l.trim().is_empty());
    let mut text = lines
        .next()
        .unwrap_or("invalid arguments")
        .trim()
        .trim_start_matches("error:")
        .trim()
        .to_owned();
    let mut continued = Vec::new();
    let mut tips: Vec<String> = Vec::new();
    for line in lines {
        let trimmed = line.trim();
        if let Some(t) = trimmed.strip_prefix("tip:") {
            tips.push(t.trim().to_owned());
        } else if line.starts_with(char::is_whitespace) && tips.is_empty() {
            continued.push(trimmed.to_owned());
        } else {
            // "Usage: ..." and what follows.
            break;
        }
    }
    if !continued.is_empty() {
        text = format!("{} {}", text, continued.join(", "));
    }
    if tips.is_empty() {
        text
    } else {
        format!("{text} (tip: {})", tips.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line_naming_the_flag() {
        let e = args::Cli::try_parse_from(["lockwatch", "run", "--formt", "json", "--", "true"])
            .unwrap_err();
        let line = one_line(&e.to_string());
        assert!(line.contains("--formt"), "{line}");
        assert!(line.contains("--format"), "{line}");
        assert!(!line.contains('\n'));
        let e = args::Cli::try_parse_from(["lockwatch", "render", "--format", "pdf", "r.json"])
            .unwrap_err();
        let line = one_line(&e.to_string());
        assert!(
            line.contains("'pdf'") && line.contains("--format"),
            "{line}"
        );
    }
}
