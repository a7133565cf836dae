//! `json`: JSON Lines, one compact `lockwatch.report/v1` object (SPEC §5) per report and per
//! line, the same lines the runtime writes to stderr under `LOCKWATCH_FORMAT=json`. No reports
//! give an empty string.

use crate::model::Report;

/// One JSON object per report, each on its own line.
pub fn render(reports: &[Report]) -> String {
    let mut out = String::new();
    for r in reports {
        out.push_str(&r.to_json());
        out.push('\n');
    }
    out
}
