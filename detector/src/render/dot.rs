//! `dot`: a Graphviz digraph of every report's wait-for state, one cluster per report.
//!
//! Threads are ellipses and resources boxes (locks of an inversion too); "waits for" edges are
//! bold red, "held by" edges dashed blue, "behind" edges (a wait queued behind a thread that
//! holds nothing yet) dotted grey, and an inversion's "then" edges (a lock held while the next
//! was taken) orange. Every label is escaped, so any thread or resource name is safe.

use std::fmt::Write as _;

use super::graph::{node_lines, title, EdgeKind, Graph, Node};
use crate::model::Report;

/// One `digraph lockwatch` with a `cluster_<n>` subgraph per report.
pub fn render(reports: &[Report]) -> String {
    let mut out = String::from(
        "digraph lockwatch {\n    graph [rankdir=LR, fontname=\"Helvetica\", labeljust=l];\n    \
         node [fontname=\"Helvetica\", fontsize=11];\n    edge [fontname=\"Helvetica\", fontsize=9];\n",
    );
    for (k, r) in reports.iter().enumerate() {
        cluster(&mut out, k, r);
    }
    out.push_str("}\n");
    out
}

fn id(k: usize, n: Node) -> String {
    match n {
        Node::Thread(t) => format!("r{k}_thread_{t}"),
        Node::Resource(r) => format!("r{k}_resource_{r}"),
    }
}

fn cluster(out: &mut String, k: usize, report: &Report) {
    let g = Graph::of(report);
    let _ = writeln!(out, "    subgraph cluster_{k} {{");
    let _ = writeln!(out, "        label=\"{}\";", escape(&title(report)));
    for &n in &g.nodes {
        let (name, what) = node_lines(report, n);
        let shape = match n {
            Node::Thread(_) => "shape=ellipse, style=filled, fillcolor=\"#eef3fb\"",
            Node::Resource(_) => "shape=box, style=\"rounded,filled\", fillcolor=\"#fdf3e1\"",
        };
        let _ = writeln!(
            out,
            "        {} [{shape}, label=\"{}\"];",
            id(k, n),
            escape(&format!("{name}\n{what}"))
        );
    }
    for e in &g.edges {
        let style = match e.kind {
            EdgeKind::WaitsFor => "color=\"#c62828\", fontcolor=\"#c62828\", style=bold",
            EdgeKind::HeldBy => "color=\"#1565c0\", fontcolor=\"#1565c0\", style=dashed",
            EdgeKind::Behind => "color=\"#757575\", fontcolor=\"#757575\", style=dotted",
            EdgeKind::Then => "color=\"#ef6c00\", fontcolor=\"#ef6c00\", style=bold",
        };
        let _ = writeln!(
            out,
            "        {} -> {} [{style}, label=\"{}\"];",
            id(k, e.from),
            id(k, e.to),
            escape(&e.label)
        );
    }
    out.push_str("    }\n");
}

/// Escapes text for a double-quoted DOT string: quotes and backslashes (which would start
/// Graphviz's own escapes such as `\N`), and line breaks as `\n`.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_escape_quotes_backslashes_and_newlines() {
        assert_eq!(super::escape("a \"b\"\\N\nc"), "a \\\"b\\\"\\\\N\\nc");
    }
}
