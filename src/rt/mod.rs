//! The runtime behind feature `detect`: the process-wide state of lockwatch and what works on
//! it. The lock and wait core ([`crate::core`]) calls in; nothing here calls back out.
//!
//! Everything here uses plain parking_lot locks and atomics, never an instrumented primitive,
//! so lockwatch cannot deadlock on itself and can report while user threads are frozen.
//!
//! - `meta`: what the runtime knows about each lock ([`Meta`]) and other resource
//!   ([`ResourceInfo`]), and the ids that name them;
//! - `local`: each thread's own state ([`ThreadCtx`]), reached through a thread-local;
//! - `held`: the stack of holds in a thread's state;
//! - `mail`: foreign releases, sent to the thread that acquired an ownerless lock;
//! - `registry`: threads, live and exited, and the names of used locks;
//! - `graph`: the live wait-for graph of registered waits, and its snapshot;
//! - `order`: lock-order tracking (per-thread edge buffers, the shared order graph, the
//!   hierarchy file);
//! - `detect`: scans, the watchdog, verdicts;
//! - `report`: claiming findings, delivery (reporter and handler threads), policies;
//! - `trace`: backtrace capture and symbol resolution;
//! - `dump`: the `SIGUSR1` hang dump for `lockwatch run --timeout`;
//! - `libtest`: whether Rust's test harness runs the process (`LOCKWATCH_HARNESS`'s default).

pub(crate) mod detect;
pub(crate) mod dump;
pub(crate) mod graph;
pub(crate) mod held;
pub(crate) mod libtest;
pub(crate) mod local;
pub(crate) mod mail;
pub(crate) mod meta;
pub(crate) mod order;
pub(crate) mod registry;
pub(crate) mod report;
pub(crate) mod runtime;
pub(crate) mod trace;

pub(crate) use detect::{check, waiting_thread_count};
pub(crate) use graph::{registered_waits_on, Probe};
pub(crate) use held::Held;
pub(crate) use local::order_pending_size;
pub(crate) use local::{adopt_thread, preregister_thread};
pub(crate) use local::{with_ctx, with_current_ctx, with_fast_ctx, ThreadCtx};
pub(crate) use meta::{next_resource_id, next_wait_seq, Meta, ResourceInfo};
pub(crate) use order::{graph_size as order_graph_size, known_edges_size, write_order_graph};
pub(crate) use registry::{forget_thread, live_thread_count, ThreadRecord};
pub(crate) use report::{set_handler, wait_for_reports};
pub(crate) use runtime::runtime;
