//! Pure analysis for lockwatch: wait-for graph reduction, the lock-order graph, the report
//! model and its renderers.
//!
//! Nothing here has global state or prints: a [`snapshot::Snapshot`] goes in, [`Report`]s come
//! out, so every algorithm is deterministic and tested without threads. The runtime (crate
//! `lockwatch`) owns the live state and calls into this crate on its slow path:
//!
//! - [`reduce::analyze`] runs Holt's graph reduction over a snapshot of the wait-for state and
//!   returns the deadlocks and stalls in it; [`reduce::build_report`] and
//!   [`reduce::long_wait_report`] turn them into reports.
//! - [`order::OrderGraph`] learns the lock hierarchy edge by edge and finds inversions
//!   incrementally (Pearce–Kelly); [`order::OrderGraph::inversion_report`] reports one.
//! - [`render::render`] writes reports in any [`render::Format`] (text, JSON, SARIF, GitHub
//!   annotations, DOT, SVG) from the reports and the source text handed in;
//!   [`sources::load`] reads that text. [`render::TextRenderer`] (and `Display` for
//!   [`Report`]) is the text rendering with its sources loaded, as the runtime prints it.
//!
//! - [`crossproc::cross_process_inversions`] merges the hierarchies several processes wrote
//!   and reports the inversions none of them saw whole; [`hang`] builds `hang` reports.
//!
//! The words of every summary, label and help line live in one private module (`wording`),
//! apart from the algorithms that decide what they say.

#![deny(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod crossproc;
pub mod hang;
pub mod model;
pub mod order;
pub mod reduce;
pub mod render;
pub mod snapshot;
pub mod sources;
mod wording;

pub use model::{
    resource_label, resource_phrase, thread_label, CycleEdge, Frame, Hold, Location, Op,
    ParseError, Report, ReportKind, ResourceKind, ResourceReport, ThreadReport, ThreadState,
    WaitingFor, SCHEMA,
};
pub use order::{Hierarchy, LockClass, LockInfo, OrderEdge, OrderGraph, ORDER_SCHEMA};
pub use reduce::{analyze, build_report, long_wait_report, Finding, WaitEdge};
pub use render::{render, Format, RenderOptions, Sources, TextRenderer};
pub use snapshot::{HoldSnap, Releasers, ResourceSnap, Snapshot, ThreadSnap, WaitSnap};
