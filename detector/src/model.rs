//! The report model: schema `lockwatch.report/v1`, one [`Report`] per finding.
//!
//! These types are plain data. They serialise to exactly the JSON the contract describes and
//! deserialise from it (the CLI renders saved reports), so every field name here is part of the
//! public format.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The schema identifier written into every report.
pub const SCHEMA: &str = "lockwatch.report/v1";

/// A source position, as the compiler gives it (`#[track_caller]` or debug info).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Location {
    /// The source file, as the compiler names it (relative to the crate root for local code).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters (as `#[track_caller]` counts).
    pub column: u32,
}

impl Location {
    /// A location from its parts.
    pub fn new(file: impl Into<String>, line: u32, column: u32) -> Self {
        Location {
            file: file.into(),
            line,
            column,
        }
    }
}

impl From<&std::panic::Location<'_>> for Location {
    fn from(loc: &std::panic::Location<'_>) -> Self {
        Location::new(loc.file(), loc.line(), loc.column())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One resolved stack frame, innermost first in a backtrace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The demangled function name, without its hash.
    pub function: String,
    #[serde(default)]
    /// The source file, when debug info has it.
    pub file: Option<String>,
    #[serde(default)]
    /// The 1-based line, when debug info has it.
    pub line: Option<u32>,
    #[serde(default)]
    /// The 1-based column, when debug info has it.
    pub column: Option<u32>,
}

/// What kind of finding a report is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Threads that can never run again, whose holder edges form a cycle.
    Deadlock,
    /// Threads that can never run again with no cycle to show (nobody left to signal them).
    Stall,
    /// Two or more locks taken in opposite orders on different paths: a deadlock waiting to happen.
    LockOrderInversion,
    /// A wait that lasted longer than `LOCKWATCH_LONG_WAIT_MS`.
    LongWait,
    /// A command that outlived the CLI's `--timeout`.
    Hang,
}

impl ReportKind {
    /// The name used in JSON, file names and `--fail-on`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Deadlock => "deadlock",
            ReportKind::Stall => "stall",
            ReportKind::LockOrderInversion => "lock_order_inversion",
            ReportKind::LongWait => "long_wait",
            ReportKind::Hang => "hang",
        }
    }
}

impl fmt::Display for ReportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a thread was doing when the report was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadState {
    /// In an untimed wait: it runs again only if the wait ends.
    Blocked,
    /// In a wait with a timeout: it can always run again.
    TimedWait,
    /// Running ordinary code.
    Running,
    /// Finished; it never runs again, but may still hold what it leaked.
    Exited,
}

/// The operation a wait or a hold is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `lock()` of a Mutex or ReentrantMutex (and the guard-returning `lock()` of the Python-style types).
    Lock,
    /// A read lock of an RwLock.
    Read,
    /// A write lock of an RwLock.
    Write,
    /// `acquire()` of a Lock, RLock, Semaphore or Condition.
    Acquire,
    /// A wait on an Event, Condition or Condvar.
    Wait,
    /// A thread's `join`.
    Join,
    /// A pool task's `result`.
    Result,
    /// A Barrier `wait`.
    Barrier,
}

impl Op {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lock => "lock",
            Op::Read => "read",
            Op::Write => "write",
            Op::Acquire => "acquire",
            Op::Wait => "wait",
            Op::Join => "join",
            Op::Result => "result",
            Op::Barrier => "barrier",
        }
    }
}

/// The type of a resource, as its Rust type name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceKind {
    /// `lockwatch::Mutex`.
    Mutex,
    /// `lockwatch::RwLock`.
    RwLock,
    /// `lockwatch::ReentrantMutex`.
    ReentrantMutex,
    /// `lockwatch::Lock` (ownerless, not reentrant).
    Lock,
    /// `lockwatch::RLock` (owned, reentrant).
    RLock,
    /// `lockwatch::Semaphore`.
    Semaphore,
    /// `lockwatch::BoundedSemaphore`.
    BoundedSemaphore,
    /// `lockwatch::Condition`.
    Condition,
    /// `lockwatch::Condvar`.
    Condvar,
    /// `lockwatch::Event`.
    Event,
    /// `lockwatch::Barrier`.
    Barrier,
    /// A thread, waited for by `join`.
    Thread,
    /// A pool task, waited for by `result`.
    Task,
}

impl ResourceKind {
    /// The type name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Mutex => "Mutex",
            ResourceKind::RwLock => "RwLock",
            ResourceKind::ReentrantMutex => "ReentrantMutex",
            ResourceKind::Lock => "Lock",
            ResourceKind::RLock => "RLock",
            ResourceKind::Semaphore => "Semaphore",
            ResourceKind::BoundedSemaphore => "BoundedSemaphore",
            ResourceKind::Condition => "Condition",
            ResourceKind::Condvar => "Condvar",
            ResourceKind::Event => "Event",
            ResourceKind::Barrier => "Barrier",
            ResourceKind::Thread => "Thread",
            ResourceKind::Task => "Task",
        }
    }

    /// Whether a thread acquiring it again while holding it blocks (Mutex, Lock, RwLock write).
    pub fn is_reentrant(self) -> bool {
        matches!(self, ResourceKind::ReentrantMutex | ResourceKind::RLock)
    }

    /// The plural of the type name, for summaries ("2 Mutexes").
    pub fn plural(self) -> &'static str {
        match self {
            ResourceKind::Mutex => "Mutexes",
            ResourceKind::RwLock => "RwLocks",
            ResourceKind::ReentrantMutex => "ReentrantMutexes",
            ResourceKind::Lock => "Locks",
            ResourceKind::RLock => "RLocks",
            ResourceKind::Semaphore => "Semaphores",
            ResourceKind::BoundedSemaphore => "BoundedSemaphores",
            ResourceKind::Condition => "Conditions",
            ResourceKind::Condvar => "Condvars",
            ResourceKind::Event => "Events",
            ResourceKind::Barrier => "Barriers",
            ResourceKind::Thread => "Threads",
            ResourceKind::Task => "Tasks",
        }
    }

    /// The indefinite article for the type name as it is read aloud ("an RwLock", "a Mutex").
    pub fn article(self) -> &'static str {
        match self {
            ResourceKind::RwLock | ResourceKind::RLock | ResourceKind::Event => "an",
            _ => "a",
        }
    }
}

/// How a resource is named in every text lockwatch writes: its name if it has one, else its
/// type and id (`Mutex#11`). Every summary, help line and renderer goes through this function
/// (or [`resource_phrase`]) so that one resource reads the same everywhere.
pub fn resource_label(kind: ResourceKind, name: Option<&str>, id: u64) -> String {
    match name {
        Some(name) => name.to_owned(),
        None => format!("{kind}#{id}"),
    }
}

/// A resource in running text: ``Mutex `db` `` when named, `` `Mutex#11` `` when not (the
/// label already says the type, so it is not repeated).
pub fn resource_phrase(kind: ResourceKind, name: Option<&str>, id: u64) -> String {
    match name {
        Some(name) => format!("{kind} `{name}`"),
        None => format!("`{}`", resource_label(kind, None, id)),
    }
}

/// How a thread is named in every text lockwatch writes: its name, else `#id` (lockwatch's
/// own thread id), so "thread `#3`" still points at one thread.
pub fn thread_label(name: Option<&str>, id: u64) -> String {
    match name {
        Some(name) => name.to_owned(),
        None => format!("#{id}"),
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The wait a thread is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingFor {
    /// The id of the resource waited for.
    pub resource: u64,
    /// What the wait is for.
    pub op: Op,
    /// Where the wait was called.
    pub location: Location,
    /// How long the thread had been waiting when the report was made.
    pub since_ms: u64,
}

/// A resource a thread holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The id of the resource held.
    pub resource: u64,
    /// How it was acquired (`read` or `write` for an RwLock).
    pub op: Op,
    /// Reentrant depth, or the number of permits held.
    pub count: u32,
    /// Where the hold began (for a reentrant hold, the outermost acquisition).
    pub location: Location,
    /// Where it was acquired, with `LOCKWATCH_BACKTRACE=full`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backtrace: Vec<Frame>,
}

/// One thread a finding involves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadReport {
    /// lockwatch's own thread id (stable for the life of the process, never reused).
    pub id: u64,
    /// The thread's name, if it has one.
    pub name: Option<String>,
    /// What the thread was doing when the report was made.
    pub state: ThreadState,
    /// The wait it is in, if any.
    pub waiting_for: Option<WaitingFor>,
    #[serde(default)]
    /// What it holds, one entry per resource.
    pub holds: Vec<Hold>,
    #[serde(default)]
    /// Its stack, innermost frame first (lockwatch and std frames removed).
    pub backtrace: Vec<Frame>,
}

/// One resource a finding involves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceReport {
    /// lockwatch's id for the resource (unique for the life of the process).
    pub id: u64,
    /// Its type.
    pub kind: ResourceKind,
    /// The name given to `named(..)`, if any.
    pub name: Option<String>,
    /// Where it was created.
    pub created_at: Location,
}

impl ResourceReport {
    /// See [`resource_label`].
    pub fn label(&self) -> String {
        resource_label(self.kind, self.name.as_deref(), self.id)
    }

    /// See [`resource_phrase`].
    pub fn phrase(&self) -> String {
        resource_phrase(self.kind, self.name.as_deref(), self.id)
    }
}

impl ThreadReport {
    /// See [`thread_label`].
    pub fn label(&self) -> String {
        thread_label(self.name.as_deref(), self.id)
    }
}

/// One edge of a finding's cycle.
///
/// A deadlock's cycle is a chain of wait edges (`thread` waits for `waits_for`, which `held_by`
/// can release); a lock-order inversion's cycle is a chain of order edges (`from` was held when
/// `to` was taken).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CycleEdge {
    /// A deadlock edge: `thread` waits for `waits_for`, which `held_by` can release.
    Wait {
        /// The waiting thread.
        thread: u64,
        /// The resource it waits for.
        waits_for: u64,
        /// The thread that can release it (next in the cycle).
        held_by: u64,
    },
    /// A lock-order edge: `from` was held when `to` was taken.
    Order {
        /// The lock held.
        from: u64,
        /// The lock taken while `from` was held.
        to: u64,
        /// The thread that took them.
        thread: u64,
        /// Where `to` was acquired while `from` was held.
        location: Location,
        /// Where the held lock `from` had been acquired.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_location: Option<Location>,
        /// The acquiring thread's name, so a report on an exited thread stays readable.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thread_name: Option<String>,
        /// Where `to` was acquired, with `LOCKWATCH_BACKTRACE=full`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        backtrace: Vec<Frame>,
        /// The process that took this edge, in an inversion `lockwatch run` found across
        /// processes (each process saw only part of the cycle); absent in-process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    },
}

/// One finding, in the `lockwatch.report/v1` schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// What kind of finding this is.
    pub kind: ReportKind,
    /// One sentence saying what is wrong.
    pub summary: String,
    /// The process the finding was made in.
    pub pid: u32,
    /// When it was found, in milliseconds since the Unix epoch.
    pub detected_at_ms: u64,
    /// Every thread the finding involves.
    pub threads: Vec<ThreadReport>,
    /// Every resource those threads wait for or hold.
    pub resources: Vec<ResourceReport>,
    /// The cycle, edge by edge (see [`CycleEdge`]); empty for a stall, a long wait or a hang.
    pub cycle: Vec<CycleEdge>,
    /// What to change, one suggestion per line.
    pub help: Vec<String>,
    /// The test the process was running, from `NEXTEST_TEST_NAME` (cargo nextest runs one
    /// test per process); absent when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
}

/// Why a JSON text is not a lockwatch report.
#[derive(Debug)]
pub enum ParseError {
    /// Not JSON, or JSON of the wrong shape.
    Json(serde_json::Error),
    /// Well-formed, but its `schema` is not `lockwatch.report/v1`.
    ForeignSchema(Option<String>),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Json(e) => write!(f, "not a lockwatch report: {e}"),
            ParseError::ForeignSchema(Some(s)) => {
                write!(f, "unsupported schema `{s}` (expected `{SCHEMA}`)")
            }
            ParseError::ForeignSchema(None) => {
                write!(
                    f,
                    "not a lockwatch report: no `schema` field (expected `{SCHEMA}`)"
                )
            }
        }
    }
}

impl std::error::Error for ParseError {}

impl Report {
    /// The kind of finding.
    pub fn kind(&self) -> ReportKind {
        self.kind
    }

    /// The report as one JSON object (schema `lockwatch.report/v1`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serialises")
    }

    /// The report as indented JSON, for files people read.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// Parses a report, rejecting other schemas with a clear error.
    pub fn from_json(text: &str) -> Result<Report, ParseError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(ParseError::Json)?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => serde_json::from_value(value).map_err(ParseError::Json),
            Some(other) => Err(ParseError::ForeignSchema(Some(other.to_owned()))),
            None => Err(ParseError::ForeignSchema(None)),
        }
    }

    /// The thread with this id, if the report involves it.
    pub fn thread(&self, id: u64) -> Option<&ThreadReport> {
        self.threads.iter().find(|t| t.id == id)
    }

    /// The resource with this id, if the report involves it.
    pub fn resource(&self, id: u64) -> Option<&ResourceReport> {
        self.resources.iter().find(|r| r.id == id)
    }

    /// Writes backtrace file paths the way the report's locations are written: as the compiler
    /// gives them, relative to the directory it ran in.
    ///
    /// Debug info names files by absolute path, while `#[track_caller]` locations are relative.
    /// A frame at the very line of one of the report's locations, whose path ends with that
    /// location's file, tells the project's root; every frame under a root learned that way is
    /// then made relative. Frames elsewhere (dependencies, the standard library) keep their
    /// absolute paths. Unlike stripping the current directory, this does not depend on where
    /// the program was started.
    pub fn relativize_frame_paths(&mut self) {
        let anchors: Vec<(&str, u32)> = self
            .locations()
            .into_iter()
            .filter(|l| !Path::new(&l.file).is_absolute())
            .map(|l| (l.file.as_str(), l.line))
            .collect();
        // Best: a frame at the very line of a location. Failing that (a location inside a macro
        // is reported at the macro's call, its frame at the macro's definition), a frame in a
        // location's file at any line, unless the root it gives is a dependency's or the
        // standard library's sources, where files like `src/lib.rs` recur.
        let mut roots = self.roots_from(&anchors, true);
        if roots.is_empty() {
            roots = self.roots_from(&anchors, false);
            roots.retain(|root| {
                ![
                    "/.cargo/",
                    "/.rustup/",
                    "/rustc/",
                    "\\.cargo\\",
                    "\\.rustup\\",
                ]
                .iter()
                .any(|dependency| root.contains(dependency))
            });
        }
        if roots.is_empty() {
            return;
        }
        // The most specific root first.
        roots.sort_by_key(|r| std::cmp::Reverse(r.len()));
        for frame in self.frames_mut() {
            if let Some(file) = &mut frame.file {
                if let Some(relative) = roots.iter().find_map(|r| file.strip_prefix(r.as_str())) {
                    *file = relative.to_owned();
                }
            }
        }
    }

    /// The directories that, joined with an anchor's relative file, give a frame's file (at
    /// the anchor's line too, if `same_line`).
    fn roots_from(&self, anchors: &[(&str, u32)], same_line: bool) -> Vec<String> {
        let mut roots: Vec<String> = Vec::new();
        for frame in self.frames() {
            let (Some(file), Some(line)) = (&frame.file, frame.line) else {
                continue;
            };
            for &(relative, anchor_line) in anchors {
                let root = file.strip_suffix(relative).filter(|root| {
                    root.ends_with(std::path::MAIN_SEPARATOR) || root.ends_with('/')
                });
                if let Some(root) = root {
                    if (!same_line || line == anchor_line) && !roots.iter().any(|r| r == root) {
                        roots.push(root.to_owned());
                    }
                }
            }
        }
        roots
    }

    pub(crate) fn locations(&self) -> Vec<&Location> {
        let mut all = Vec::new();
        for t in &self.threads {
            all.extend(t.waiting_for.as_ref().map(|w| &w.location));
            all.extend(t.holds.iter().map(|h| &h.location));
        }
        all.extend(self.resources.iter().map(|r| &r.created_at));
        for edge in &self.cycle {
            if let CycleEdge::Order {
                location,
                from_location,
                ..
            } = edge
            {
                all.push(location);
                all.extend(from_location.as_ref());
            }
        }
        all
    }

    pub(crate) fn frames(&self) -> impl Iterator<Item = &Frame> {
        let threads = self.threads.iter().flat_map(|t| {
            t.backtrace
                .iter()
                .chain(t.holds.iter().flat_map(|h| &h.backtrace))
        });
        let edges = self.cycle.iter().flat_map(|e| match e {
            CycleEdge::Order { backtrace, .. } => backtrace.as_slice(),
            CycleEdge::Wait { .. } => &[],
        });
        threads.chain(edges)
    }

    fn frames_mut(&mut self) -> impl Iterator<Item = &mut Frame> {
        let threads = self.threads.iter_mut().flat_map(|t| {
            t.backtrace
                .iter_mut()
                .chain(t.holds.iter_mut().flat_map(|h| &mut h.backtrace))
        });
        let edges = self.cycle.iter_mut().flat_map(|e| match e {
            CycleEdge::Order { backtrace, .. } => backtrace.as_mut_slice(),
            CycleEdge::Wait { .. } => &mut [],
        });
        threads.chain(edges)
    }
}
