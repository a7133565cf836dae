//! Rendering reports in the chosen `--format`: the one place the CLI turns reports into text.
//!
//! Everything goes through the detector's `render` module (nothing else in the CLI renders).

use std::io::IsTerminal;
use std::path::Path;

use lockwatch_detector::render::{self, RenderOptions};
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

/// Every report in `format`, in the order given. `source_root` is where relative source
/// paths are read (the current directory if `None`); the renderers themselves read nothing.
pub(crate) fn render_reports(
    reports: &[Report],
    format: OutputFormat,
    source_root: Option<&Path>,
    color: bool,
) -> String {
    let options = RenderOptions {
        color: color && format == OutputFormat::Text,
        sources: lockwatch_detector::sources::load(reports, source_root),
    };
    render::render(reports, format, &options)
}
