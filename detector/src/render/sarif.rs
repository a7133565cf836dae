//! `sarif`: one SARIF 2.1.0 log for all reports, for code scanning (GitHub, IDE viewers).
//!
//! One run of the driver `lockwatch`, whose rules are the five kinds of finding (id = the
//! kind's JSON name, with a description and help), and one result per report:
//! - `message`: the summary, then the help lines;
//! - `locations`: where each thread is stuck (for an inversion, each acquisition that makes an
//!   order edge); `relatedLocations`: where the held resources were acquired;
//! - `codeFlows`: one flow with a `threadFlow` per thread, its acquisitions in order, then its
//!   wait; `stacks`: each thread's backtrace;
//! - `partialFingerprints["lockwatchSites/v1"]`: a hash of the kind and of the sites' files,
//!   lines and columns, so the same finding matches across runs (no pid, time or ids in it).
//!
//! `columnKind` is `unicodeCodePoints`: `#[track_caller]` counts columns in characters.
//! Relative paths are relative to `%SRCROOT%` (where the compiler ran); absolute ones become
//! `file://` URIs.

use serde_json::{json, Map, Value};

use super::span::end_column;
use super::Sources;
use crate::model::{CycleEdge, Frame, Location, Report, ReportKind};
use crate::wording;

/// The SARIF schema this log follows.
pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Where people read about the tool.
const INFORMATION_URI: &str = "https://crates.io/crates/lockwatch";

/// The rules, in `ruleIndex` order.
const RULES: [ReportKind; 5] = [
    ReportKind::Deadlock,
    ReportKind::Stall,
    ReportKind::LockOrderInversion,
    ReportKind::LongWait,
    ReportKind::Hang,
];

/// The SARIF log of `reports`, pretty-printed, ending with a newline.
pub fn render(reports: &[Report], sources: &Sources) -> String {
    let rules: Vec<Value> = RULES.iter().map(|&k| rule(k)).collect();
    let results: Vec<Value> = reports.iter().map(|r| result(r, sources)).collect();
    let log = json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "lockwatch",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"description": {
                "text": "The directory the compiler ran in: `#[track_caller]` locations are relative to it."
            }}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    let mut out = serde_json::to_string_pretty(&log).expect("a SARIF log always serialises");
    out.push('\n');
    out
}

/// The rule's `name`, for people: distinct from its id (SARIF wants the id opaque and stable).
fn rule_name(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Deadlock => "ThreadsDeadlocked",
        ReportKind::Stall => "ThreadsStalled",
        ReportKind::LockOrderInversion => "LocksTakenInOppositeOrders",
        ReportKind::LongWait => "WaitOutlastedThreshold",
        ReportKind::Hang => "CommandOutlivedTimeout",
    }
}

fn level(kind: ReportKind) -> &'static str {
    if wording::is_warning(kind, false) {
        "warning"
    } else {
        "error"
    }
}

fn rule(kind: ReportKind) -> Value {
    json!({
        "id": kind.as_str(),
        "name": rule_name(kind),
        "shortDescription": {"text": format!("lockwatch: {}", wording::kind_title(kind))},
        "fullDescription": {"text": wording::kind_description(kind)},
        "help": {"text": wording::kind_help(kind)},
        "defaultConfiguration": {"level": level(kind)},
    })
}

/// A file path as a SARIF artifact location.
fn artifact(file: &str) -> Value {
    let path = file.replace('\\', "/");
    let absolute = path.starts_with('/') || path.as_bytes().get(1) == Some(&b':');
    if absolute {
        let rooted = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        json!({"uri": format!("file://{}", uri_escape(&rooted))})
    } else {
        json!({"uri": uri_escape(&path), "uriBaseId": "%SRCROOT%"})
    }
}

/// Percent-encodes what may not appear in a URI path.
fn uri_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~:@!$&'()*+,;=".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn physical(loc: &Location, sources: &Sources) -> Value {
    let mut p = Map::new();
    p.insert("artifactLocation".into(), artifact(&loc.file));
    if loc.line >= 1 {
        let mut region = Map::new();
        region.insert("startLine".into(), loc.line.into());
        if loc.column >= 1 {
            region.insert("startColumn".into(), loc.column.into());
            if let Some(end) = sources.get(&loc.file).and_then(|t| end_column(t, loc)) {
                region.insert("endColumn".into(), end.into());
            }
        }
        if let Some(line) = sources
            .get(&loc.file)
            .and_then(|t| t.lines().nth(loc.line as usize - 1))
        {
            region.insert("snippet".into(), json!({"text": line}));
        }
        p.insert("region".into(), Value::Object(region));
    }
    Value::Object(p)
}

fn location(loc: &Location, label: &str, sources: &Sources) -> Value {
    json!({"physicalLocation": physical(loc, sources), "message": {"text": label}})
}

fn frame(f: &Frame) -> Value {
    let mut location = Map::new();
    if let Some(file) = &f.file {
        let loc = Location::new(file.clone(), f.line.unwrap_or(0), f.column.unwrap_or(0));
        location.insert("physicalLocation".into(), physical(&loc, &Sources::new()));
    }
    location.insert(
        "logicalLocations".into(),
        json!([{"fullyQualifiedName": f.function, "kind": "function"}]),
    );
    json!({"location": Value::Object(location)})
}

/// A thread's flow: the acquisitions it made, in order, then where it is stuck.
struct Flow {
    thread: String,
    steps: Vec<(Location, String)>,
}

fn result(report: &Report, sources: &Sources) -> Value {
    let mut primary: Vec<(Location, String)> = Vec::new();
    let mut related: Vec<(Location, String)> = Vec::new();
    let mut flows: Vec<Flow> = Vec::new();
    let mut stacks: Vec<Value> = Vec::new();
    if report.kind == ReportKind::LockOrderInversion {
        for e in &report.cycle {
            let CycleEdge::Order {
                thread,
                thread_name,
                location,
                from_location,
                backtrace,
                ..
            } = e
            else {
                continue;
            };
            let who = crate::model::thread_label(thread_name.as_deref(), *thread);
            let mut steps = Vec::new();
            if let (Some(at), Some(label)) = (from_location, wording::order_from_label(report, e)) {
                related.push((at.clone(), label.clone()));
                steps.push((at.clone(), label));
            }
            if let Some(label) = wording::order_label(report, e) {
                primary.push((location.clone(), label.clone()));
                steps.push((location.clone(), label));
            }
            stacks.extend(stack(&who, backtrace));
            flows.push(Flow { thread: who, steps });
        }
    } else {
        for t in &report.threads {
            let mut steps = Vec::new();
            for h in &t.holds {
                let label = wording::hold_label(report, t, h);
                related.push((h.location.clone(), label.clone()));
                steps.push((h.location.clone(), label));
            }
            if let Some(w) = &t.waiting_for {
                let label = wording::wait_label(report, t, w);
                primary.push((w.location.clone(), label.clone()));
                steps.push((w.location.clone(), label));
            }
            stacks.extend(stack(&t.label(), &t.backtrace));
            flows.push(Flow {
                thread: t.label(),
                steps,
            });
        }
    }

    let mut text = report.summary.clone();
    for h in &report.help {
        text.push_str(&format!("\nhelp: {h}"));
    }
    let mut result = Map::new();
    result.insert("ruleId".into(), report.kind.as_str().into());
    let index = RULES.iter().position(|&k| k == report.kind).unwrap_or(0);
    result.insert("ruleIndex".into(), index.into());
    result.insert("level".into(), level(report.kind).into());
    result.insert("message".into(), json!({"text": text}));
    if !primary.is_empty() {
        let locations: Vec<Value> = primary
            .iter()
            .map(|(l, label)| location(l, label, sources))
            .collect();
        result.insert("locations".into(), locations.into());
    }
    if !related.is_empty() {
        let related: Vec<Value> = related
            .iter()
            .enumerate()
            .map(|(k, (l, label))| {
                let mut v = location(l, label, sources);
                v["id"] = k.into();
                v
            })
            .collect();
        result.insert("relatedLocations".into(), related.into());
    }
    let thread_flows: Vec<Value> = flows
        .iter()
        .filter(|f| !f.steps.is_empty())
        .map(|f| {
            let locations: Vec<Value> = f
                .steps
                .iter()
                .enumerate()
                .map(|(k, (l, label))| {
                    json!({"location": location(l, label, sources), "executionOrder": k + 1})
                })
                .collect();
            json!({"message": {"text": format!("thread `{}`", f.thread)}, "locations": locations})
        })
        .collect();
    if !thread_flows.is_empty() {
        let mut flow = Map::new();
        if let Some(note) = wording::cycle_note(report) {
            flow.insert("message".into(), json!({"text": note}));
        }
        flow.insert("threadFlows".into(), thread_flows.into());
        result.insert("codeFlows".into(), json!([Value::Object(flow)]));
    }
    if !stacks.is_empty() {
        result.insert("stacks".into(), stacks.into());
    }
    result.insert(
        "partialFingerprints".into(),
        json!({"lockwatchSites/v1": fingerprint(report.kind, &primary, &related)}),
    );
    result.insert(
        "properties".into(),
        json!({"pid": report.pid, "detectedAtMs": report.detected_at_ms}),
    );
    Value::Object(result)
}

fn stack(who: &str, frames: &[Frame]) -> Option<Value> {
    let shown = wording::shown_frames(frames);
    if shown.is_empty() {
        return None;
    }
    let frames: Vec<Value> = shown.into_iter().map(frame).collect();
    Some(json!({"message": {"text": format!("backtrace of thread `{who}`")}, "frames": frames}))
}

/// FNV-1a (64 bits) of the kind and the sorted sites: stable across runs, processes and
/// toolchains (std's hasher promises none of that).
fn fingerprint(
    kind: ReportKind,
    primary: &[(Location, String)],
    related: &[(Location, String)],
) -> String {
    let mut sites: Vec<String> = primary
        .iter()
        .map(|(l, _)| format!("^{l}"))
        .chain(related.iter().map(|(l, _)| format!("-{l}")))
        .collect();
    sites.sort();
    sites.dedup();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in std::iter::once(kind.as_str().to_owned()).chain(sites) {
        for b in part.bytes().chain([0]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_relative_or_file_uris() {
        assert_eq!(
            artifact("examples/a b.rs"),
            json!({"uri": "examples/a%20b.rs", "uriBaseId": "%SRCROOT%"})
        );
        assert_eq!(artifact("/src/x.rs"), json!({"uri": "file:///src/x.rs"}));
        assert_eq!(
            artifact("C:\\src\\x.rs"),
            json!({"uri": "file:///C:/src/x.rs"})
        );
    }

    #[test]
    fn rule_names_differ_from_rule_ids() {
        for k in RULES {
            let id = k.as_str().replace('_', "");
            assert!(!rule_name(k).eq_ignore_ascii_case(&id), "{k}");
        }
    }
}
