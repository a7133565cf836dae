//! Text rendering: rustc-style annotated diagnostics for a [`Report`].
//!
//! ```text
//! error: deadlock: 2 threads are deadlocked on 2 Mutexes
//!   --> examples/abba.rs:21:23
//!    |
//! 21 |     let mut payee = b.lock();
//!    |                       ^^^^^^ thread `worker-a` blocks here on `account B` (Mutex), held by `worker-b`
//!    |
//!   ::: examples/abba.rs:19:23
//!    |
//! 19 |     let mut payer = a.lock();
//!    |                       ------ `account A` acquired here
//!    |
//!    = help: acquire `account A` before `account B` on every path
//! ```
//!
//! The headline is `error:` for deadlocks, stalls and hangs, `warning:` for lock-order
//! inversions and long waits. Then, per thread, where it waits (the source line when the file
//! can be read, underlined from the reported column to the call's closing parenthesis), where
//! it acquired what it holds, and its backtrace; a lock-order inversion shows each order edge
//! instead, then the interleaving that would freeze, one column per thread (after lockdep's
//! "possible unsafe locking scenario"). `help:` lines come last.
//!
//! Rendering is pure apart from reading source files, and deterministic: the same report and
//! the same files give the same text. Unreadable files are skipped silently (the location is
//! still printed).

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::model::{
    thread_label, CycleEdge, Frame, Location, Op, Report, ReportKind, ResourceKind, ThreadReport,
    ThreadState,
};

/// Renders reports as text. `Default` is plain text with sources read relative to the
/// current directory, which is what `Display` for [`Report`] uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextRenderer {
    /// ANSI colours (for a terminal).
    pub color: bool,
    /// Where relative `location.file`s are looked up; the current directory if `None`.
    pub source_root: Option<PathBuf>,
    /// Headline a lock-order inversion or a long wait as an `error:`, for a program that
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
        let mut r = Renderer {
            opts: self,
            report,
            out: String::new(),
            width: gutter_width(report),
            files: HashMap::new(),
            blocks: 0,
        };
        r.render();
        r.out
    }
}

/// The width of the line-number gutter: the digits of the largest line number shown.
fn gutter_width(report: &Report) -> usize {
    let mut max = 0;
    for t in &report.threads {
        if let Some(w) = &t.waiting_for {
            max = max.max(w.location.line);
        }
        for h in &t.holds {
            max = max.max(h.location.line);
        }
    }
    for e in &report.cycle {
        if let CycleEdge::Order {
            location,
            from_location,
            ..
        } = e
        {
            max = max.max(location.line);
            if let Some(l) = from_location {
                max = max.max(l.line);
            }
        }
    }
    max.max(1).to_string().len()
}

/// How a kind of finding is named in the headline.
fn kind_title(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Deadlock => "deadlock",
        ReportKind::Stall => "stall",
        ReportKind::LockOrderInversion => "lock order inversion",
        ReportKind::LongWait => "long wait",
        ReportKind::Hang => "hang",
    }
}

fn is_warning(kind: ReportKind) -> bool {
    matches!(kind, ReportKind::LockOrderInversion | ReportKind::LongWait)
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[1;33m";
const BLUE: &str = "\x1b[1;34m";
const CYAN: &str = "\x1b[1;36m";

/// Whether a location starts a thread's (or an order edge's) section.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arrow {
    Start,
    More,
}

/// Whether a location is where a thread blocks (or takes the lock that closes an order
/// cycle), or where it acquired something.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Primary,
    Secondary,
}

struct Renderer<'a> {
    opts: &'a TextRenderer,
    report: &'a Report,
    out: String,
    width: usize,
    /// Source files read so far (`None`: unreadable), so each file is read once per report.
    files: HashMap<String, Option<Vec<String>>>,
    /// Blocks written so far; blocks after the first are separated by an empty gutter line.
    blocks: usize,
}

impl Renderer<'_> {
    fn paint(&self, style: &str, text: &str) -> String {
        if self.opts.color && !text.is_empty() {
            format!("{style}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }

    fn is_warning(&self) -> bool {
        is_warning(self.report.kind) && !self.opts.as_error
    }

    fn primary_style(&self) -> &'static str {
        if self.is_warning() {
            YELLOW
        } else {
            RED
        }
    }

    fn pad(&self) -> String {
        " ".repeat(self.width + 1)
    }

    fn line(&mut self, s: &str) {
        self.out.push_str(s.trim_end());
        self.out.push('\n');
    }

    /// Starts a block (a snippet or a group of `=` lines), separated from the previous one.
    fn block(&mut self) {
        if self.blocks > 0 {
            let sep = format!("{}{}", self.pad(), self.paint(BLUE, "|"));
            self.line(&sep);
        }
        self.blocks += 1;
    }

    fn render(&mut self) {
        let r = self.report;
        let title = kind_title(r.kind);
        let (word, style) = if self.is_warning() {
            ("warning", YELLOW)
        } else {
            ("error", RED)
        };
        let prefix = format!("{title}:");
        let headline = if r.summary.starts_with(&prefix) {
            r.summary.clone()
        } else {
            format!("{title}: {}", r.summary)
        };
        let line = format!(
            "{}{}",
            self.paint(style, word),
            self.paint(BOLD, &format!(": {headline}"))
        );
        self.line(&line);

        if r.kind == ReportKind::LockOrderInversion {
            self.inversion();
        } else {
            for t in &r.threads {
                self.thread(t);
            }
        }
        if !r.help.is_empty() {
            self.block();
            for h in &r.help {
                let line = format!("{}= {}: {h}", self.pad(), self.paint(CYAN, "help"));
                self.line(&line);
            }
        }
    }

    fn thread(&mut self, t: &ThreadReport) {
        let who = t.label();
        if let Some(w) = &t.waiting_for {
            let label = self.wait_label(t, w.resource, w.op, w.since_ms);
            self.snippet(&w.location, Arrow::Start, Mark::Primary, &label);
        }
        for (k, h) in t.holds.iter().enumerate() {
            let mut label = format!("`{}` acquired here", self.resource_label(h.resource));
            // Without a wait to start the section, say whose section it is.
            if t.waiting_for.is_none() {
                label = format!("{label} by thread `{who}`");
                if t.state == ThreadState::Exited {
                    label.push_str(", which then exited");
                }
            }
            match (h.count, self.resource_kind(h.resource)) {
                (0 | 1, _) => {}
                (n, Some(ResourceKind::Semaphore | ResourceKind::BoundedSemaphore)) => {
                    label.push_str(&format!(" ({n} permits)"));
                }
                (n, _) => label.push_str(&format!(" (held {n} times)")),
            }
            let arrow = if k == 0 && t.waiting_for.is_none() {
                Arrow::Start
            } else {
                Arrow::More
            };
            self.snippet(&h.location, arrow, Mark::Secondary, &label);
            self.frames("backtrace", &h.backtrace);
        }
        let state = match t.state {
            ThreadState::Blocked => None,
            ThreadState::TimedWait => Some("is in a timed wait"),
            ThreadState::Running => Some("is running"),
            ThreadState::Exited => Some("has exited"),
        };
        if let Some(state) = state {
            self.block();
            let line = format!(
                "{}= {}: thread `{who}` {state}",
                self.pad(),
                self.paint(BOLD, "note")
            );
            self.line(&line);
        }
        self.frames("backtrace", &t.backtrace);
    }

    fn resource_label(&self, id: u64) -> String {
        match self.report.resource(id) {
            Some(r) => r.label(),
            None => format!("#{id}"),
        }
    }

    fn resource_kind(&self, id: u64) -> Option<ResourceKind> {
        self.report.resource(id).map(|r| r.kind)
    }

    /// "`account B` (Mutex)", "`cache` (RwLock, read)".
    fn resource_with_kind(&self, id: u64, op: Op) -> String {
        let label = self.resource_label(id);
        match (self.resource_kind(id), op) {
            (Some(k @ ResourceKind::RwLock), Op::Read | Op::Write) => {
                format!("`{label}` ({k}, {})", op.as_str())
            }
            (Some(k), _) => format!("`{label}` ({k})"),
            (None, _) => format!("`{label}`"),
        }
    }

    fn thread_name(&self, id: u64) -> String {
        let name = self.report.thread(id).and_then(|t| t.name.as_deref());
        thread_label(name, id)
    }

    fn wait_label(&self, t: &ThreadReport, resource: u64, op: Op, since_ms: u64) -> String {
        let what = self.resource_with_kind(resource, op);
        let who = t.label();
        let mut label = if self.report.kind == ReportKind::LongWait {
            format!("thread `{who}` has waited {since_ms} ms here for {what}")
        } else {
            format!("thread `{who}` blocks here on {what}")
        };
        if !matches!(op, Op::Lock | Op::Read | Op::Write | Op::Acquire) {
            return label;
        }
        // Who holds it: the cycle's edge for this thread, and every listed holder. A read
        // is only held up by writers: other readers (itself included) do not block it.
        let holds = |id: u64| {
            self.report.thread(id).is_some_and(|h| {
                h.holds
                    .iter()
                    .any(|x| x.resource == resource && (op != Op::Read || x.op == Op::Write))
            })
        };
        let mut held_by: Vec<u64> = Vec::new();
        let mut queued: Vec<u64> = Vec::new();
        for e in &self.report.cycle {
            if let CycleEdge::Wait {
                thread, held_by: h, ..
            } = e
            {
                if *thread == t.id {
                    if holds(*h) {
                        held_by.push(*h);
                    } else {
                        queued.push(*h);
                    }
                }
            }
        }
        for other in &self.report.threads {
            if holds(other.id) && !held_by.contains(&other.id) {
                held_by.push(other.id);
            }
        }
        let name = |id: u64| {
            if id == t.id {
                "itself".to_owned()
            } else if self
                .report
                .thread(id)
                .is_some_and(|h| h.state == ThreadState::Exited)
            {
                format!("`{}`, which has exited", self.thread_name(id))
            } else {
                format!("`{}`", self.thread_name(id))
            }
        };
        if !held_by.is_empty() {
            let names: Vec<String> = held_by.iter().map(|&h| name(h)).collect();
            label.push_str(&format!(", held by {}", names.join(" and ")));
        }
        if !queued.is_empty() {
            let names: Vec<String> = queued.iter().map(|&h| name(h)).collect();
            label.push_str(&format!(", queued behind {}", names.join(" and ")));
        }
        label
    }

    fn inversion(&mut self) {
        let r = self.report;
        let mut edges = Vec::new();
        for e in &r.cycle {
            if let CycleEdge::Order {
                from,
                to,
                thread,
                location,
                from_location,
                thread_name,
                backtrace,
                ..
            } = e
            {
                let who = thread_label(thread_name.as_deref(), *thread);
                let label = format!(
                    "thread `{who}` takes `{}` here while holding `{}`",
                    self.resource_label(*to),
                    self.resource_label(*from)
                );
                self.snippet(location, Arrow::Start, Mark::Primary, &label);
                if let Some(fl) = from_location {
                    let label = format!("`{}` acquired here", self.resource_label(*from));
                    self.snippet(fl, Arrow::More, Mark::Secondary, &label);
                }
                self.frames("backtrace", backtrace);
                edges.push((*from, *to, who));
            }
        }
        if edges.is_empty() {
            return;
        }
        // The interleaving: every thread takes its first lock, then each asks for its second.
        let mut headers: Vec<String> = Vec::new();
        for (_, _, who) in &edges {
            let mut h = who.clone();
            let mut n = 1;
            while headers.contains(&h) {
                n += 1;
                h = format!("{who} ({n})");
            }
            headers.push(h);
        }
        let call = |id: u64| {
            let verb = match self.resource_kind(id) {
                Some(ResourceKind::Mutex | ResourceKind::ReentrantMutex | ResourceKind::RwLock)
                | None => "lock",
                Some(_) => "acquire",
            };
            format!("{verb}({});", self.resource_label(id))
        };
        let n = edges.len();
        let mut rows: Vec<(usize, String)> = Vec::new();
        for (k, (from, _, _)) in edges.iter().enumerate() {
            rows.push((k, call(*from)));
        }
        for (k, (_, to, _)) in edges.iter().enumerate() {
            rows.push((k, call(*to)));
        }
        let col: Vec<usize> = (0..n)
            .map(|k| {
                rows.iter()
                    .filter(|(c, _)| *c == k)
                    .map(|(_, s)| s.chars().count())
                    .chain([headers[k].chars().count()])
                    .max()
                    .unwrap_or(0)
                    + 4
            })
            .collect();
        let indent = format!("{}    ", self.pad());
        self.block();
        let note = format!(
            "{}= {}: possible interleaving that deadlocks:",
            self.pad(),
            self.paint(BOLD, "note")
        );
        self.line(&note);
        self.line("");
        let mut head = indent.clone();
        let mut rule = indent.clone();
        for k in 0..n {
            head.push_str(&format!("{:w$}", headers[k], w = col[k]));
            let dashes = "-".repeat(headers[k].chars().count());
            rule.push_str(&format!("{dashes:w$}", w = col[k]));
        }
        self.line(&head);
        self.line(&rule);
        for (c, text) in &rows {
            let offset: usize = col[..*c].iter().sum();
            let row = format!("{indent}{}{text}", " ".repeat(offset));
            self.line(&row);
        }
        self.line("");
        let dead = format!(
            "{indent}{}",
            self.paint(self.primary_style(), "*** DEADLOCK ***")
        );
        self.line(&dead);
    }

    fn frames(&mut self, title: &str, frames: &[Frame]) {
        if frames.is_empty() {
            return;
        }
        self.block();
        let lead = format!("= {title}: ");
        for (k, f) in frames.iter().enumerate() {
            let text = match (&f.file, f.line) {
                (Some(file), Some(line)) => format!("{} at {file}:{line}", f.function),
                (Some(file), None) => format!("{} at {file}", f.function),
                _ => f.function.clone(),
            };
            let line = if k == 0 {
                format!("{}= {}: {text}", self.pad(), self.paint(BOLD, title))
            } else {
                format!("{}{}{text}", self.pad(), " ".repeat(lead.chars().count()))
            };
            self.line(&line);
        }
    }

    /// A location block: `-->` (a thread's or an edge's first location) or `:::` (the
    /// following ones), then the source line with the call underlined (`^` where it blocks,
    /// `-` where it acquired) and labelled, or the label as a note when the source cannot be
    /// read.
    fn snippet(&mut self, loc: &Location, arrow: Arrow, mark: Mark, label: &str) {
        self.block();
        let primary = mark == Mark::Primary;
        let arrow = match arrow {
            Arrow::Start => "-->",
            Arrow::More => ":::",
        };
        let head = format!(
            "{}{} {loc}",
            " ".repeat(self.width),
            self.paint(BLUE, arrow)
        );
        self.line(&head);
        let gutter = format!("{}{}", self.pad(), self.paint(BLUE, "|"));
        match self.source_line(loc) {
            Some(src) => {
                self.line(&gutter);
                let num = format!("{:>w$} ", loc.line, w = self.width);
                let src_line = format!("{}{} {src}", self.paint(BLUE, &num), self.paint(BLUE, "|"));
                self.line(&src_line);
                let (start, len) = underline_span(&src, loc.column);
                let lead: String = src
                    .chars()
                    .take(start)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let (mark, style) = if primary {
                    ('^', self.primary_style())
                } else {
                    ('-', BLUE)
                };
                let marks = mark.to_string().repeat(len);
                let under = format!(
                    "{gutter} {lead}{}",
                    self.paint(style, &format!("{marks} {label}"))
                );
                self.line(&under);
            }
            None => {
                let note = format!("{}= {}: {label}", self.pad(), self.paint(BOLD, "note"));
                self.line(&note);
            }
        }
    }

    fn source_line(&mut self, loc: &Location) -> Option<String> {
        if loc.line == 0 {
            return None;
        }
        let root = self.opts.source_root.clone();
        let lines = self
            .files
            .entry(loc.file.clone())
            .or_insert_with(|| read_lines(root.as_deref(), &loc.file));
        let text = lines.as_ref()?.get(loc.line as usize - 1)?;
        Some(text.trim_end().to_owned())
    }
}

fn read_lines(root: Option<&Path>, file: &str) -> Option<Vec<String>> {
    let path = Path::new(file);
    let path = match root {
        Some(root) if path.is_relative() => root.join(path),
        _ => path.to_path_buf(),
    };
    let text = fs::read_to_string(path).ok()?;
    Some(text.lines().map(str::to_owned).collect())
}

/// The underline for a call at 1-based `column` (in characters) of `line`: from the column to
/// the call's closing parenthesis when it is on the same line (`lock()`,
/// `acquire_timeout(Duration::from_millis(5))`), else the identifier there (at least one
/// character). Returns (start, length) in characters.
fn underline_span(line: &str, column: u32) -> (usize, usize) {
    let chars: Vec<char> = line.chars().collect();
    let start = (column.max(1) as usize - 1).min(chars.len().saturating_sub(1));
    if chars.is_empty() {
        return (0, 1);
    }
    let mut i = start;
    while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | ':' | '!')) {
        i += 1;
    }
    // A turbofish: `name::<T>(`.
    if i < chars.len() && chars[i] == '<' {
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    let ident_end = i.max(start + 1);
    if i < chars.len() && chars[i] == '(' {
        let mut depth = 0;
        let mut in_str = false;
        let mut k = i;
        while k < chars.len() {
            let c = chars[k];
            if in_str {
                if c == '\\' {
                    k += 1;
                } else if c == '"' {
                    in_str = false;
                }
            } else {
                match c {
                    '"' => in_str = true,
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            return (start, k + 1 - start);
                        }
                    }
                    _ => {}
                }
            }
            k += 1;
        }
        // The call goes on to the next line: underline to the end of this one.
        let end = chars.len() - chars.iter().rev().take_while(|c| c.is_whitespace()).count();
        return (start, end.max(ident_end) - start);
    }
    (start, ident_end - start)
}

#[cfg(test)]
mod tests {
    use super::underline_span;

    #[test]
    fn underline_extends_from_method_name_to_closing_paren() {
        let line = "    let mut payer = a.lock();";
        assert_eq!(underline_span(line, 23), (22, 6));
    }

    #[test]
    fn underline_matches_nested_parentheses_and_strings() {
        let line = r#"    m.acquire_timeout(Duration::from_millis(f(")")));"#;
        let (start, len) = underline_span(line, 7);
        let under: String = line.chars().skip(start).take(len).collect();
        assert_eq!(under, r#"acquire_timeout(Duration::from_millis(f(")")))"#);
    }

    #[test]
    fn underline_covers_turbofish_calls() {
        let line = "x.get::<u32>(1);";
        let (start, len) = underline_span(line, 3);
        assert_eq!(&line[start..start + len], "get::<u32>(1)");
    }

    #[test]
    fn underline_runs_to_end_of_line_when_call_continues() {
        let line = "    let g = m.lock_with(   ";
        let (start, len) = underline_span(line, 15);
        assert_eq!(&line[start..start + len], "lock_with(");
    }

    #[test]
    fn underline_is_the_identifier_when_there_is_no_call() {
        assert_eq!(underline_span("foo.bar + 1", 5), (4, 3));
    }

    #[test]
    fn underline_is_one_character_at_punctuation_or_past_the_end() {
        assert_eq!(underline_span("a + b", 3), (2, 1));
        assert_eq!(underline_span("ab", 40), (1, 1));
        assert_eq!(underline_span("", 3), (0, 1));
    }
}
