//! Renderings of reports: one module per format, each a pure function from reports (and the
//! source text handed in through [`Sources`]) to a `String`.
//!
//! | [`Format`] | module | for |
//! |---|---|---|
//! | `text` | [`text`] | a developer's terminal: rustc-style diagnostics (annotate-snippets) |
//! | `json` | [`json`] | programs: one `lockwatch.report/v1` object per line (JSON Lines) |
//! | `sarif` | [`sarif`] | code scanning: one SARIF 2.1.0 log, one result per finding |
//! | `github` | [`github`] | GitHub Actions: one workflow-command annotation per blocked site |
//! | `dot` | [`dot`] | Graphviz: the wait-for graph of each finding |
//! | `svg` | [`svg`] | a picture without Graphviz: each cycle drawn as a ring |
//!
//! Nothing under this module reads a file or the environment, except the two conveniences
//! that say so: [`TextRenderer`] (which loads sources with [`crate::sources::load`]) and
//! [`color_for_stderr`]. The same reports and sources always give the same text.
//!
//! ```
//! use lockwatch_detector::render::{render, Format, RenderOptions};
//! let format: Format = "json".parse().unwrap();
//! assert_eq!(render(&[], format, &RenderOptions::default()), "");
//! assert!("xml".parse::<Format>().unwrap_err().to_string().contains("text, json, sarif"));
//! ```

pub mod dot;
pub mod github;
pub mod json;
pub mod sarif;
pub mod svg;
pub mod text;

mod graph;
mod span;

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::str::FromStr;

use crate::model::Report;

/// An output format, named as `--format` and `LOCKWATCH_FORMAT` spell it: the one type both
/// parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Format {
    /// Annotated rustc-style text.
    Text,
    /// One `lockwatch.report/v1` JSON object per line.
    Json,
    /// A SARIF 2.1.0 log.
    Sarif,
    /// GitHub Actions workflow commands (`::error file=..::`).
    Github,
    /// A Graphviz digraph.
    Dot,
    /// A standalone SVG picture.
    Svg,
}

impl Format {
    /// Every format, in the order the accepted values are listed.
    pub const ALL: [Format; 6] = [
        Format::Text,
        Format::Json,
        Format::Sarif,
        Format::Github,
        Format::Dot,
        Format::Svg,
    ];

    /// The lowercase name (`"sarif"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Sarif => "sarif",
            Format::Github => "github",
            Format::Dot => "dot",
            Format::Svg => "svg",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
        write!(
            f,
            "unknown format `{}`: expected one of {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// Source text, keyed by the file path exactly as it appears in [`crate::Location::file`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    files: BTreeMap<String, String>,
}

impl Sources {
    /// No sources: every location is shown as `file:line:col`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the text of `file`.
    pub fn insert(&mut self, file: impl Into<String>, text: impl Into<String>) {
        self.files.insert(file.into(), text.into());
    }

    /// The text of `file`, if it was handed in.
    pub fn get(&self, file: &str) -> Option<&str> {
        self.files.get(file).map(String::as_str)
    }

    /// How many files are known.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is known.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// What a rendering may use besides the reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// ANSI colours (only `text` uses them). The caller decides: see [`color_for_stderr`].
    pub color: bool,
    /// The source files the reports point into; a file not here is shown as `file:line:col`.
    pub sources: Sources,
}

/// Renders `reports` in `format`. Several reports give one document (one SARIF log, one DOT
/// graph, one SVG picture) or one entry after another (text, JSON Lines, workflow commands).
pub fn render(reports: &[Report], format: Format, options: &RenderOptions) -> String {
    match format {
        Format::Text => text::render_all(reports, &options.sources, options.color, false),
        Format::Json => json::render(reports),
        Format::Sarif => sarif::render(reports, &options.sources),
        Format::Github => github::render(reports, &options.sources),
        Format::Dot => dot::render(reports),
        Format::Svg => svg::render(reports),
    }
}

/// Whether text written to stderr should be coloured: never when `NO_COLOR` is set (to
/// anything but the empty string), always when `CLICOLOR_FORCE` is set (to anything but empty
/// or `0`), otherwise when stderr is a terminal that is not `TERM=dumb`.
pub fn color_for_stderr() -> bool {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    color_choice(
        std::io::stderr().is_terminal(),
        var("NO_COLOR").is_some(),
        var("CLICOLOR_FORCE").is_some_and(|v| v != "0"),
        var("TERM").is_some_and(|v| v == "dumb"),
    )
}

/// The decision of [`color_for_stderr`], apart from where its inputs come from.
fn color_choice(terminal: bool, no_color: bool, force: bool, dumb: bool) -> bool {
    !no_color && (force || (terminal && !dumb))
}

/// Renders reports as text, loading the sources itself. `Default` is plain text with sources
/// read relative to the current directory, which is what `Display` for [`Report`] uses.
///
/// This is the convenience the runtime uses for stderr; [`render`] with [`Format::Text`] is the
/// pure function underneath.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextRenderer {
    /// ANSI colours (for a terminal; see [`color_for_stderr`]).
    pub color: bool,
    /// Where relative `location.file`s are looked up; the current directory if `None`.
    pub source_root: Option<PathBuf>,
    /// Headline a lock-order inversion or a long wait as an `error`, for a program that
    /// handles it like a deadlock (`LOCKWATCH_LOCK_ORDER=error`).
    pub as_error: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&TextRenderer::default().render(self))
    }
}

impl TextRenderer {
    /// Plain text, sources relative to the current directory.
    pub fn plain() -> Self {
        Self::default()
    }

    /// ANSI-coloured text, sources relative to the current directory.
    pub fn styled() -> Self {
        TextRenderer {
            color: true,
            ..Self::default()
        }
    }

    /// The same renderer, reading sources under `root`.
    pub fn with_source_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.source_root = Some(root.into());
        self
    }

    /// The same renderer, headlining every finding as an error.
    pub fn as_error(mut self) -> Self {
        self.as_error = true;
        self
    }

    /// The annotated text of a report, ending with a newline.
    pub fn render(&self, report: &Report) -> String {
        let reports = std::slice::from_ref(report);
        let sources = crate::sources::load(reports, self.source_root.as_deref());
        text::render_all(reports, &sources, self.color, self.as_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
    }

    #[test]
    fn unknown_format_is_one_line_listing_the_accepted_values() {
        let e = "Text".parse::<Format>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown format `Text`: expected one of text, json, sarif, github, dot, svg"
        );
    }

    #[test]
    fn no_color_wins_over_force_and_force_over_a_pipe() {
        assert!(!color_choice(true, true, true, false));
        assert!(color_choice(false, false, true, false));
        assert!(color_choice(true, false, false, false));
        assert!(!color_choice(true, false, false, true));
        assert!(!color_choice(false, false, false, false));
    }
}
