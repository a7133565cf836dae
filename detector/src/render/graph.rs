//! The wait-for picture of a report, shared by `dot` and `svg`: its threads and resources as
//! nodes and its waits, holds and order edges as edges, each kind of edge distinct.

use crate::model::{CycleEdge, Op, Report, ReportKind, ThreadState};
use crate::wording;

/// A node: a thread or a resource of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Node {
    Thread(u64),
    Resource(u64),
}

/// What an edge means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EdgeKind {
    /// A thread waits for a resource.
    WaitsFor,
    /// A resource is held by a thread.
    HeldBy,
    /// A resource is released only after a thread that holds nothing of it yet (a writer queued
    /// ahead, a pool worker that must free up).
    Behind,
    /// A lock was held while another was taken (lock-order inversion).
    Then,
}

/// One edge, with its short label.
pub(crate) struct Edge {
    pub(crate) from: Node,
    pub(crate) to: Node,
    pub(crate) kind: EdgeKind,
    pub(crate) label: String,
}

/// A report as a graph: its nodes (in the order they first appear, the cycle's first), its
/// edges, and the cycle's nodes in order (empty when the report has no cycle).
pub(crate) struct Graph {
    pub(crate) nodes: Vec<Node>,
    pub(crate) edges: Vec<Edge>,
    pub(crate) ring: Vec<Node>,
}

impl Graph {
    pub(crate) fn of(report: &Report) -> Graph {
        let mut g = Graph {
            nodes: Vec::new(),
            edges: Vec::new(),
            ring: Vec::new(),
        };
        for e in &report.cycle {
            match e {
                CycleEdge::Wait {
                    thread, waits_for, ..
                } => {
                    g.ring_push(Node::Thread(*thread));
                    g.ring_push(Node::Resource(*waits_for));
                }
                CycleEdge::Order { from, .. } => g.ring_push(Node::Resource(*from)),
            }
        }
        g.nodes = g.ring.clone();
        if report.kind == ReportKind::LockOrderInversion {
            for e in &report.cycle {
                if let CycleEdge::Order {
                    from,
                    to,
                    thread,
                    thread_name,
                    ..
                } = e
                {
                    let who = crate::model::thread_label(thread_name.as_deref(), *thread);
                    g.edge(
                        Node::Resource(*from),
                        Node::Resource(*to),
                        EdgeKind::Then,
                        format!("then, by {who}"),
                    );
                }
            }
            return g;
        }
        for t in &report.threads {
            g.node(Node::Thread(t.id));
            if let Some(w) = &t.waiting_for {
                let verb = match w.op {
                    Op::Read => "waits to read",
                    Op::Write => "waits to write",
                    Op::Join => "joins",
                    Op::Result => "waits for the result",
                    _ => "waits for",
                };
                let verb = if t.state == ThreadState::TimedWait {
                    format!("{verb} (timed)")
                } else {
                    verb.to_owned()
                };
                g.edge(
                    Node::Thread(t.id),
                    Node::Resource(w.resource),
                    EdgeKind::WaitsFor,
                    verb,
                );
            }
            for h in &t.holds {
                let label = if h.count > 1 {
                    format!("held by (×{})", h.count)
                } else {
                    "held by".to_owned()
                };
                g.edge(
                    Node::Resource(h.resource),
                    Node::Thread(t.id),
                    EdgeKind::HeldBy,
                    label,
                );
            }
        }
        for e in &report.cycle {
            if let CycleEdge::Wait {
                waits_for, held_by, ..
            } = e
            {
                let (r, t) = (Node::Resource(*waits_for), Node::Thread(*held_by));
                if !g.edges.iter().any(|x| x.from == r && x.to == t) {
                    g.edge(r, t, EdgeKind::Behind, "behind".to_owned());
                }
            }
        }
        g
    }

    fn ring_push(&mut self, n: Node) {
        if !self.ring.contains(&n) {
            self.ring.push(n);
        }
    }

    fn node(&mut self, n: Node) {
        if !self.nodes.contains(&n) {
            self.nodes.push(n);
        }
    }

    fn edge(&mut self, from: Node, to: Node, kind: EdgeKind, label: String) {
        self.node(from);
        self.node(to);
        self.edges.push(Edge {
            from,
            to,
            kind,
            label,
        });
    }
}

/// A node's two label lines: the name, then what it is ("thread, blocked"; "Mutex").
pub(crate) fn node_lines(report: &Report, n: Node) -> (String, String) {
    match n {
        Node::Thread(id) => {
            let state = match report.thread(id).map(|t| t.state) {
                Some(ThreadState::Blocked) => "thread, blocked",
                Some(ThreadState::TimedWait) => "thread, timed wait",
                Some(ThreadState::Running) => "thread, running",
                Some(ThreadState::Exited) => "thread, exited",
                None => "thread",
            };
            (wording::thread(report, id), state.to_owned())
        }
        Node::Resource(id) => {
            let kind = report.resource(id).map_or("resource", |r| r.kind.as_str());
            (wording::resource(report, id), kind.to_owned())
        }
    }
}

/// The headline of a picture: `error[deadlock]: 2 threads are deadlocked on 2 Mutexes`.
pub(crate) fn title(report: &Report) -> String {
    let level = if wording::is_warning(report.kind, false) {
        "warning"
    } else {
        "error"
    };
    format!(
        "{level}[{}]: {}",
        report.kind.as_str(),
        wording::headline(report)
    )
}
