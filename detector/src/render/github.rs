//! `github`: GitHub Actions workflow commands, one annotation per site where a thread is stuck
//! (`::error file=examples/abba.rs,line=21,col=23,endColumn=28,title=..::message`).
//!
//! A deadlock, stall or hang gives one `::error` per waiting thread, a lock-order inversion one
//! per acquisition that makes an order edge, a long wait one `::warning` (an inversion is a
//! `::warning` too). A report with no site at all (a hang dump of running threads) is one
//! annotation without a file. The title names the kind of finding; the message is the site's
//! label, then the report's summary and help lines. Values are escaped as GitHub's toolkit does: `%`, `\r` and `\n` everywhere, and
//! also `:` and `,` in properties.

use super::span::end_column;
use super::Sources;
use crate::model::{CycleEdge, Location, Report, ReportKind};
use crate::wording;

/// One workflow command per blocked site of every report, one per line.
pub fn render(reports: &[Report], sources: &Sources) -> String {
    let mut out = String::new();
    for r in reports {
        render_one(r, sources, &mut out);
    }
    out
}

fn render_one(report: &Report, sources: &Sources, out: &mut String) {
    let command = if wording::is_warning(report.kind, false) {
        "warning"
    } else {
        "error"
    };
    let title = format!("lockwatch: {}", wording::kind_title(report.kind));
    let mut sites: Vec<(&Location, String)> = Vec::new();
    if report.kind == ReportKind::LockOrderInversion {
        for e in &report.cycle {
            if let (CycleEdge::Order { location, .. }, Some(label)) =
                (e, wording::order_label(report, e))
            {
                sites.push((location, label));
            }
        }
    } else {
        for t in &report.threads {
            if let Some(w) = &t.waiting_for {
                sites.push((&w.location, wording::wait_label(report, t, w)));
            }
        }
    }
    let mut body: Vec<String> = vec![report.summary.clone()];
    body.extend(report.help.iter().map(|h| format!("help: {h}")));
    if sites.is_empty() {
        let message = body.join("\n");
        out.push_str(&format!(
            "::{command} title={}::{}\n",
            escape_property(&title),
            escape_data(&message)
        ));
        return;
    }
    for (at, label) in sites {
        let mut props = vec![
            format!("file={}", escape_property(&at.file)),
            format!("line={}", at.line),
            format!("col={}", at.column),
        ];
        // GitHub's end column is the last column annotated, not the one after it.
        if let Some(end) = sources.get(&at.file).and_then(|t| end_column(t, at)) {
            props.push(format!(
                "endColumn={}",
                end.saturating_sub(1).max(at.column)
            ));
        }
        props.push(format!("title={}", escape_property(&title)));
        let message = std::iter::once(label)
            .chain(body.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n");
        out.push_str(&format!(
            "::{command} {}::{}\n",
            props.join(","),
            escape_data(&message)
        ));
    }
}

/// A command's message: `%`, `\r` and `\n` percent-encoded.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A command's property value: as [`escape_data`], and `:` and `,` too.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_properties_are_escaped_like_the_actions_toolkit() {
        assert_eq!(
            escape_data("50% done\r\nnext: a,b"),
            "50%25 done%0D%0Anext: a,b"
        );
        assert_eq!(
            escape_property("50% done\r\nnext: a,b"),
            "50%25 done%0D%0Anext%3A a%2Cb"
        );
    }
}
