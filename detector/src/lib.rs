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
//! - [`render::TextRenderer`] (and `Display` for [`Report`]) writes the annotated text.

pub mod model;
pub mod order;
pub mod reduce;
pub mod render;
pub mod snapshot;

pub use model::{
    resource_label, resource_phrase, thread_label, CycleEdge, Frame, Hold, Location, Op,
    ParseError, Report, ReportKind, ResourceKind, ResourceReport, ThreadReport, ThreadState,
    WaitingFor, SCHEMA,
};
pub use order::{Hierarchy, LockClass, LockInfo, OrderEdge, OrderGraph, ORDER_SCHEMA};
pub use reduce::{analyze, build_report, long_wait_report, Finding, WaitEdge};
pub use render::TextRenderer;
pub use snapshot::{HoldSnap, Releasers, ResourceSnap, Snapshot, ThreadSnap, WaitSnap};
