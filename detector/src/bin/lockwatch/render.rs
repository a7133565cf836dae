//! `lockwatch render FILE..`: saved reports in any format. A bad file is one line naming it;
//! the others still render.

use std::io::Write;
use std::path::Path;

use lockwatch_detector::Report;

use crate::args::RenderConfig;
use crate::output::{render_reports, use_color, Destination};
use crate::status;

/// Renders every readable report to stdout; returns the exit status.
pub(crate) fn render(config: &RenderConfig) -> u8 {
    let mut reports = Vec::new();
    let mut bad = false;
    for path in &config.files {
        match read_reports(path) {
            Ok(found) => reports.extend(found),
            Err(e) => {
                eprintln!("lockwatch: error: {}: {e}", path.display());
                bad = true;
            }
        }
    }
    let rendered = render_reports(
        &reports,
        config.format,
        config.source_root.as_deref(),
        use_color(Destination::Stdout),
    );
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(rendered.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A closed pipe (`| head`) is not worth a panic.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("lockwatch: error: cannot write the reports: {e}");
        }
        return status::USAGE;
    }
    if bad {
        status::USAGE
    } else {
        status::OK
    }
}

/// The reports in one file: a report, a JSON array of reports, or a stream of them (one per
/// line, as `--format json` writes). Any bad one makes the whole file an error, naming which.
fn read_reports(path: &Path) -> Result<Vec<Report>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut values = Vec::new();
    for value in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
        match value.map_err(|e| format!("not a lockwatch report: {e}"))? {
            serde_json::Value::Array(items) => values.extend(items),
            other => values.push(other),
        }
    }
    if values.is_empty() {
        return Err("empty file: no report in it".to_owned());
    }
    let many = values.len() > 1;
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            Report::from_json(&value.to_string()).map_err(|e| {
                if many {
                    format!("report {}: {e}", i + 1)
                } else {
                    e.to_string()
                }
            })
        })
        .collect()
}
