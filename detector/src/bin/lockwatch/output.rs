//! Rendering reports in the chosen `--format`: the one place the CLI turns reports into text.
//!
//! For now it uses the detector's `TextRenderer` and `Report::to_json`; the other formats
//! arrive with the detector's `render` module, and then [`render_reports`] and
//! [`check_supported`] become calls into it (nothing else in the CLI renders).

use std::io::IsTerminal;
use std::path::Path;

use lockwatch_detector::render::TextRenderer;
use lockwatch_detector::Report;

use crate::args::OutputFormat;

/// Where the rendering goes, which decides colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Destination {
    Stderr,
    Stdout,
    File,
}

/// Colour only on a terminal, unless `NO_COLOR` forbids it or `CLICOLOR_FORCE` asks for it.
pub(crate) fn use_color(to: Destination) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    match to {
        Destination::File => false,
        Destination::Stderr => set("CLICOLOR_FORCE") || std::io::stderr().is_terminal(),
        Destination::Stdout => set("CLICOLOR_FORCE") || std::io::stdout().is_terminal(),
    }
}

/// Whether this build can render `format`; the error is the line to print.
pub(crate) fn check_supported(format: OutputFormat) -> Result<(), String> {
    match format {
        OutputFormat::Text | OutputFormat::Json => Ok(()),
        other => Err(format!(
            "--format {}: not supported yet by this build of lockwatch (use text or json)",
            other.name()
        )),
    }
}

/// Every report in `format`, in the order given. `source_root` is where relative source
/// paths are read (the current directory if `None`).
pub(crate) fn render_reports(
    reports: &[Report],
    format: OutputFormat,
    source_root: Option<&Path>,
    color: bool,
) -> String {
    match format {
        OutputFormat::Json => reports.iter().map(|r| r.to_json() + "\n").collect(),
        // `check_supported` turned the other formats away before anything ran.
        _ => {
            let renderer = TextRenderer {
                color,
                source_root: source_root.map(Path::to_path_buf),
                as_error: false,
            };
            let texts: Vec<String> = reports.iter().map(|r| renderer.render(r)).collect();
            texts.join("\n")
        }
    }
}
