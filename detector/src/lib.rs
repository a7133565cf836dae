//! Pure analysis for lockwatch: wait-for graph reduction, the lock-order graph, the report
//! model and its renderers.
//!
//! Nothing here has global state or prints: a [`snapshot::Snapshot`] goes in, [`Report`]s come
//! out, so every algorithm is deterministic and tested without threads. The runtime (crate
//! `lockwatch`) owns the live state and calls into this crate on its slow path.

pub mod model;
pub mod snapshot;

pub use model::{
    CycleEdge, Frame, Hold, Location, Op, ParseError, Report, ReportKind, ResourceKind,
    ResourceReport, ThreadReport, ThreadState, WaitingFor, SCHEMA,
};
