//! `text`: rustc-style diagnostics, laid out by `annotate-snippets` (rustc's own renderer).
//!
//! ```text
//! error[deadlock]: 2 threads are deadlocked on 2 Mutexes
//!   --> examples/abba.rs:21:23
//!    |
//! 19 |     let mut payer = a.lock();
//!    |                       -------- thread `worker-a` acquired `account A` here
//! 20 |     thread::sleep(Duration::from_millis(50));
//! 21 |     let mut payee = b.lock();
//!    |                       ^^^^^^^^ thread `worker-a` blocks here waiting for `account B`, held by `worker-b`
//!    |
//!    = note: cycle: thread `worker-a` waits for `account B`, held by thread `worker-b`, ...
//!    = help: acquire `account A` before `account B` on every path
//! ```
//!
//! The headline is an `error` for deadlocks, stalls and hangs and a `warning` for lock-order
//! inversions and long waits (an `error` too when the program handles them as errors), with
//! the report's kind as its code. Every site is annotated in its file's snippet, files in the
//! order their first site appears: where each thread blocks (the primary underline, `^`) and
//! where it acquired what it holds (`-`); an inversion shows where each order edge was made.
//! The underline covers the whole call, from the column `#[track_caller]` gives to the closing
//! parenthesis. A site whose file is not among the sources is a `file:line:col` note instead.
//! Then `= note:` lines (what threads not blocked are doing, compact filtered backtraces, the
//! cycle's chain, an inversion's interleaving) and the report's `= help:` lines.

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

use super::span::call_span;
use super::Sources;
use crate::model::{CycleEdge, Frame, Location, Report, ReportKind};
use crate::wording;

/// [`render`], with inversions and long waits headlined as errors if `as_error`.
pub(crate) fn render_all(
    reports: &[Report],
    sources: &Sources,
    color: bool,
    as_error: bool,
) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let texts: Vec<String> = reports
        .iter()
        .map(|r| {
            let mut text = render_one(&renderer, r, sources, as_error);
            text.push('\n');
            text
        })
        .collect();
    texts.join("\n")
}

/// The text of every report (see the module docs), one after another, separated by an empty
/// line; ANSI colours if `color`.
pub fn render(reports: &[Report], sources: &Sources, color: bool) -> String {
    render_all(reports, sources, color, false)
}

/// A line to annotate: where, what it says, and whether it is where a thread is stuck.
struct Site {
    location: Location,
    label: String,
    primary: bool,
}

fn sites(report: &Report) -> Vec<Site> {
    let mut sites = Vec::new();
    if report.kind == ReportKind::LockOrderInversion {
        for e in &report.cycle {
            let CycleEdge::Order {
                location,
                from_location,
                ..
            } = e
            else {
                continue;
            };
            if let Some(label) = wording::order_label(report, e) {
                sites.push(Site {
                    location: location.clone(),
                    label,
                    primary: true,
                });
            }
            if let (Some(at), Some(label)) = (from_location, wording::order_from_label(report, e)) {
                sites.push(Site {
                    location: at.clone(),
                    label,
                    primary: false,
                });
            }
        }
        return sites;
    }
    for t in &report.threads {
        if let Some(w) = &t.waiting_for {
            sites.push(Site {
                location: w.location.clone(),
                label: wording::wait_label(report, t, w),
                primary: true,
            });
        }
        for h in &t.holds {
            sites.push(Site {
                location: h.location.clone(),
                label: wording::hold_label(report, t, h),
                primary: false,
            });
        }
    }
    sites
}

/// The notes under the snippets, in order.
fn notes(report: &Report) -> Vec<String> {
    let mut notes = Vec::new();
    let mut backtraces: Vec<(String, &[Frame])> = Vec::new();
    if report.kind == ReportKind::LockOrderInversion {
        for e in &report.cycle {
            if let CycleEdge::Order {
                thread,
                thread_name,
                backtrace,
                ..
            } = e
            {
                let who = crate::model::thread_label(thread_name.as_deref(), *thread);
                backtraces.push((format!("`{who}`"), backtrace));
            }
        }
        notes.extend(wording::backtrace_notes(&backtraces));
        notes.extend(wording::cycle_note(report));
        notes.extend(wording::interleaving(report));
        return notes;
    }
    notes.extend(report.threads.iter().filter_map(wording::state_note));
    for t in &report.threads {
        backtraces.push((format!("`{}`", t.label()), &t.backtrace));
        for h in &t.holds {
            let whose = format!(
                "`{}` acquiring `{}`",
                t.label(),
                wording::resource(report, h.resource)
            );
            backtraces.push((whose, &h.backtrace));
        }
    }
    notes.extend(wording::backtrace_notes(&backtraces));
    notes.extend(wording::cycle_note(report));
    notes
}

fn render_one(renderer: &Renderer, report: &Report, sources: &Sources, as_error: bool) -> String {
    let level = if wording::is_warning(report.kind, as_error) {
        Level::WARNING
    } else {
        Level::ERROR
    };
    let mut group = Group::with_title(
        level
            .primary_title(wording::headline(report))
            .id(report.kind.as_str()),
    );
    let sites = sites(report);
    // Files in the order of their first site; each gets one snippet with all of its sites.
    let mut files: Vec<&str> = Vec::new();
    for s in &sites {
        if !files.contains(&s.location.file.as_str()) {
            files.push(&s.location.file);
        }
    }
    let mut unquoted: Vec<String> = Vec::new();
    for file in files {
        let in_file = sites.iter().filter(|s| s.location.file == file);
        let Some(text) = sources.get(file) else {
            unquoted.extend(in_file.map(|s| wording::located(&s.location, &s.label)));
            continue;
        };
        let mut annotations = Vec::new();
        for s in in_file {
            match call_span(text, &s.location) {
                Some(span) => {
                    let kind = if s.primary {
                        AnnotationKind::Primary
                    } else {
                        AnnotationKind::Context
                    };
                    annotations.push(kind.span(span).label(s.label.as_str()));
                }
                // The file changed since the report: its line numbers no longer fit.
                None => unquoted.push(wording::located(&s.location, &s.label)),
            }
        }
        if !annotations.is_empty() {
            group = group.element(Snippet::source(text).path(file).annotations(annotations));
        }
    }
    for n in unquoted.into_iter().chain(notes(report)) {
        group = group.element(Level::NOTE.message(n));
    }
    for h in &report.help {
        group = group.element(Level::HELP.message(h.as_str()));
    }
    // The empty lines of a multi-line note keep the note's indentation; nobody wants that.
    let text = renderer.render(&[group]);
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Op, ThreadReport, ThreadState, WaitingFor, SCHEMA};

    fn waiting_at(line: u32, column: u32) -> Report {
        Report {
            schema: SCHEMA.to_owned(),
            kind: ReportKind::Stall,
            summary: "1 thread is stalled".to_owned(),
            pid: 1,
            detected_at_ms: 0,
            test: None,
            threads: vec![ThreadReport {
                id: 1,
                name: None,
                state: ThreadState::Blocked,
                waiting_for: Some(WaitingFor {
                    resource: 2,
                    op: Op::Wait,
                    location: Location::new("f.rs", line, column),
                    since_ms: 0,
                }),
                holds: Vec::new(),
                backtrace: Vec::new(),
            }],
            resources: Vec::new(),
            cycle: Vec::new(),
            help: Vec::new(),
        }
    }

    #[test]
    fn any_location_in_any_source_renders_without_panicking() {
        // Tabs, multi-byte characters, an empty line, CRLF, no final newline: a saved report
        // may point anywhere in a file that has changed since.
        let text = "\tlet é = m.lock();\r\n\n    x.wait(\"(\");\r\nfin";
        let mut sources = Sources::new();
        sources.insert("f.rs", text);
        for line in 0..7 {
            for column in 0..24 {
                let out = render(&[waiting_at(line, column)], &sources, false);
                assert!(out.starts_with("error[stall]: "), "{out}");
            }
        }
    }

    #[test]
    fn a_line_past_the_end_of_the_file_is_a_location_note() {
        let mut sources = Sources::new();
        sources.insert("f.rs", "fn main() {}\n");
        let out = render(&[waiting_at(9, 3)], &sources, false);
        assert!(
            out.contains("= note: f.rs:9:3: thread `#1` blocks here"),
            "{out}"
        );
    }
}
