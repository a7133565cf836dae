//! `svg`: a standalone picture of each report, laid out here (no Graphviz needed).
//!
//! A report's cycle is drawn as a ring: its threads and resources alternate around a circle,
//! each edge bowed outward, so the freeze reads as a loop. Nodes outside the cycle (a holder
//! that is running, an exited owner, a stalled thread and its event) sit in a row below it.
//! Threads are ellipses, resources rounded boxes with their type underneath. "waits for" edges
//! are solid red, "held by" edges dashed blue, "behind" edges dotted grey and an inversion's
//! "then" edges solid orange, each with its arrowhead and label; a legend lists the kinds shown.
//! Several reports are panels one under another. All text is XML-escaped.

use std::f64::consts::PI;
use std::fmt::Write as _;

use super::graph::{node_lines, title, Edge, EdgeKind, Graph, Node};
use crate::model::Report;

const FONT: &str = "Helvetica, Arial, sans-serif";
/// An estimate of the advance of one character at the node font size (12 px), generous so
/// that labels stay inside their shapes whatever sans-serif font the viewer has.
const CHAR_W: f64 = 7.0;
const NODE_H: f64 = 44.0;
const MARGIN: f64 = 24.0;
const TITLE_H: f64 = 44.0;
const ROW_GAP: f64 = 90.0;
const LEGEND_H: f64 = 34.0;

/// The picture of every report, one panel per report.
pub fn render(reports: &[Report]) -> String {
    let panels: Vec<Panel> = reports.iter().map(Panel::lay_out).collect();
    let width = panels.iter().map(|p| p.width).fold(320.0_f64, f64::max);
    let height: f64 = panels.iter().map(|p| p.height).sum::<f64>().max(60.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"{FONT}\">",
        w = num(width),
        h = num(height)
    );
    out.push_str("<title>lockwatch report</title>\n<defs>\n");
    for kind in EDGE_KINDS {
        let s = style(kind);
        let _ = writeln!(
            out,
            "  <marker id=\"{}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"8\" \
             markerHeight=\"8\" markerUnits=\"userSpaceOnUse\" orient=\"auto\">\
             <path d=\"M0,0 L10,5 L0,10 z\" fill=\"{}\"/></marker>",
            s.marker, s.color
        );
    }
    out.push_str("</defs>\n");
    let _ = writeln!(
        out,
        "<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        num(width),
        num(height)
    );
    if panels.is_empty() {
        let _ = writeln!(
            out,
            "<text x=\"{MARGIN}\" y=\"36\" font-size=\"14\">no findings</text>"
        );
    }
    let mut y = 0.0;
    for p in &panels {
        p.draw(&mut out, y);
        y += p.height;
    }
    out.push_str("</svg>\n");
    out
}

const EDGE_KINDS: [EdgeKind; 4] = [
    EdgeKind::WaitsFor,
    EdgeKind::HeldBy,
    EdgeKind::Behind,
    EdgeKind::Then,
];

struct Style {
    color: &'static str,
    dash: &'static str,
    width: &'static str,
    marker: &'static str,
    legend: &'static str,
}

fn style(kind: EdgeKind) -> Style {
    match kind {
        EdgeKind::WaitsFor => Style {
            color: "#c62828",
            dash: "",
            width: "2.2",
            marker: "arrow-waits",
            legend: "waits for",
        },
        EdgeKind::HeldBy => Style {
            color: "#1565c0",
            dash: "7 4",
            width: "1.6",
            marker: "arrow-held",
            legend: "held by",
        },
        EdgeKind::Behind => Style {
            color: "#757575",
            dash: "2 3",
            width: "1.6",
            marker: "arrow-behind",
            legend: "queued behind",
        },
        EdgeKind::Then => Style {
            color: "#ef6c00",
            dash: "",
            width: "2.2",
            marker: "arrow-then",
            legend: "then takes (lock order)",
        },
    }
}

/// A node placed in its panel.
struct Placed {
    node: Node,
    name: String,
    what: String,
    x: f64,
    y: f64,
    /// Half width and half height of the shape.
    hw: f64,
    hh: f64,
}

impl Placed {
    /// Where the ray from the centre towards (`dx`, `dy`) leaves the shape.
    fn boundary(&self, dx: f64, dy: f64) -> (f64, f64) {
        let len = (dx * dx + dy * dy).sqrt();
        if len < 1e-9 {
            return (self.x, self.y);
        }
        let t = match self.node {
            Node::Thread(_) => 1.0 / ((dx / self.hw).powi(2) + (dy / self.hh).powi(2)).sqrt(),
            Node::Resource(_) => {
                let tx = if dx.abs() > 1e-9 {
                    self.hw / dx.abs()
                } else {
                    f64::INFINITY
                };
                let ty = if dy.abs() > 1e-9 {
                    self.hh / dy.abs()
                } else {
                    f64::INFINITY
                };
                tx.min(ty)
            }
        };
        (self.x + dx * t, self.y + dy * t)
    }
}

struct Panel {
    title: String,
    nodes: Vec<Placed>,
    edges: Vec<Edge>,
    /// The ring's centre, if the report has a cycle of two nodes or more.
    center: Option<(f64, f64)>,
    width: f64,
    height: f64,
}

fn text_width(s: &str, per_char: f64) -> f64 {
    s.chars().count() as f64 * per_char
}

impl Panel {
    fn lay_out(report: &Report) -> Panel {
        let g = Graph::of(report);
        let title = title(report);
        let shape = |n: Node| {
            let (name, what) = node_lines(report, n);
            let w = text_width(&name, CHAR_W).max(text_width(&what, CHAR_W * 0.85)) + 28.0;
            let hw = match n {
                // An ellipse needs more room than a box for the same text.
                Node::Thread(_) => w * 0.62,
                Node::Resource(_) => w / 2.0,
            };
            (name, what, hw, NODE_H / 2.0)
        };
        let mut nodes: Vec<Placed> = Vec::new();
        let ring: Vec<Node> = if g.ring.len() >= 2 {
            g.ring.clone()
        } else {
            Vec::new()
        };
        let mut center = None;
        let mut bottom = TITLE_H;
        if !ring.is_empty() {
            let n = ring.len() as f64;
            let shapes: Vec<_> = ring.iter().map(|&r| shape(r)).collect();
            // Room around the circle for every shape and a labelled gap between neighbours.
            let around: f64 = shapes.iter().map(|s| 2.0 * s.2 + 70.0).sum();
            let widest = shapes.iter().map(|s| s.2).fold(0.0, f64::max);
            let radius = if ring.len() == 2 {
                // Two nodes face each other: leave room between them for both labelled arcs.
                (shapes[0].2 + shapes[1].2 + 170.0) / 2.0
            } else {
                (around / (2.0 * PI)).max(90.0).max(widest + 30.0)
            };
            let cx = MARGIN + widest + radius + 20.0;
            // Two nodes face each other left and right; more start at the top.
            let start = if ring.len() == 2 { PI } else { -PI / 2.0 };
            for (k, (&node, (name, what, hw, hh))) in ring.iter().zip(shapes).enumerate() {
                let angle = start + 2.0 * PI * k as f64 / n;
                nodes.push(Placed {
                    node,
                    name,
                    what,
                    x: cx + radius * angle.cos(),
                    y: radius * angle.sin(),
                    hw,
                    hh,
                });
            }
            // Room above and below for the arcs bowing out and their labels: a pair of
            // opposite arcs between two nodes bows by a tenth of their distance.
            let bow = if ring.len() == 2 {
                0.11 * 2.0 * radius + 16.0
            } else {
                34.0
            };
            let top = nodes
                .iter()
                .map(|p| p.y - p.hh)
                .fold(f64::INFINITY, f64::min);
            let shift = TITLE_H + bow - top;
            for p in &mut nodes {
                p.y += shift;
            }
            center = Some((cx, shift));
            bottom = nodes.iter().map(|p| p.y + p.hh).fold(0.0, f64::max) + bow;
        }
        let rest: Vec<Node> = g
            .nodes
            .iter()
            .copied()
            .filter(|n| !ring.contains(n))
            .collect();
        if !rest.is_empty() {
            let y = bottom
                + if ring.is_empty() {
                    34.0
                } else {
                    ROW_GAP - 30.0
                };
            let mut x = MARGIN;
            for node in rest {
                let (name, what, hw, hh) = shape(node);
                nodes.push(Placed {
                    node,
                    name,
                    what,
                    x: x + hw,
                    y,
                    hw,
                    hh,
                });
                x += 2.0 * hw + 110.0;
            }
            bottom = y + NODE_H / 2.0 + 40.0;
        }
        let right = nodes.iter().map(|p| p.x + p.hw).fold(0.0, f64::max) + MARGIN;
        let kinds = g.edges.iter().map(|e| e.kind).collect::<Vec<_>>();
        let legend_w: f64 = EDGE_KINDS
            .iter()
            .filter(|k| kinds.contains(k))
            .map(|&k| text_width(style(k).legend, 6.2) + 60.0)
            .sum::<f64>()
            + 2.0 * MARGIN;
        let width = right
            .max(text_width(&title, 7.9) + 2.0 * MARGIN)
            .max(legend_w)
            .ceil();
        Panel {
            title,
            nodes,
            edges: g.edges,
            center,
            width,
            height: (bottom + LEGEND_H).ceil(),
        }
    }

    fn placed(&self, n: Node) -> Option<&Placed> {
        self.nodes.iter().find(|p| p.node == n)
    }

    fn draw(&self, out: &mut String, y0: f64) {
        let _ = writeln!(out, "<g transform=\"translate(0 {})\">", num(y0));
        if y0 > 0.0 {
            let _ = writeln!(
                out,
                "  <line x1=\"0\" y1=\"0\" x2=\"100%\" y2=\"0\" stroke=\"#bdbdbd\"/>"
            );
        }
        let _ = writeln!(
            out,
            "  <text x=\"{MARGIN}\" y=\"28\" font-size=\"14\" font-weight=\"bold\" \
             fill=\"#212121\">{}</text>",
            escape(&self.title)
        );
        // Edges first, so nodes and labels sit on top of them.
        let mut labels = String::new();
        for e in &self.edges {
            self.draw_edge(out, &mut labels, e);
        }
        for p in &self.nodes {
            draw_node(out, p);
        }
        out.push_str(&labels);
        self.draw_legend(out);
        out.push_str("</g>\n");
    }

    fn draw_edge(&self, out: &mut String, labels: &mut String, e: &Edge) {
        let (Some(a), Some(b)) = (self.placed(e.from), self.placed(e.to)) else {
            return;
        };
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        // The left normal of the direction a → b: a pair of opposite edges bows apart.
        let (nx, ny) = (dy / len, -dx / len);
        let reverse = self.edges.iter().any(|x| x.from == e.to && x.to == e.from);
        let (mx, my) = ((a.x + b.x) / 2.0, (a.y + b.y) / 2.0);
        let sign = match self.center {
            // On the ring, bow away from the centre unless the reverse edge shares the chord.
            Some((cx, cy)) if !reverse => {
                if (mx - cx) * nx + (my - cy) * ny >= 0.0 {
                    1.0
                } else {
                    -1.0
                }
            }
            _ => 1.0,
        };
        let bend = if reverse { 0.22 } else { 0.12 } * len;
        let (qx, qy) = (mx + sign * nx * bend, my + sign * ny * bend);
        let (sx, sy) = a.boundary(qx - a.x, qy - a.y);
        let (ex, ey) = b.boundary(qx - b.x, qy - b.y);
        let s = style(e.kind);
        let dash = if s.dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{}\"", s.dash)
        };
        let _ = writeln!(
            out,
            "  <path d=\"M{} {} Q{} {} {} {}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{dash} \
             marker-end=\"url(#{})\"/>",
            num(sx),
            num(sy),
            num(qx),
            num(qy),
            num(ex),
            num(ey),
            s.color,
            s.width,
            s.marker
        );
        // The label at the curve's midpoint, on a white halo.
        let (lx, ly) = (
            0.25 * sx + 0.5 * qx + 0.25 * ex,
            0.25 * sy + 0.5 * qy + 0.25 * ey,
        );
        let _ = writeln!(
            labels,
            "  <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"{}\" \
             stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>",
            num(lx),
            num(ly + 3.0),
            s.color,
            escape(&e.label)
        );
    }

    fn draw_legend(&self, out: &mut String) {
        let y = self.height - LEGEND_H / 2.0;
        let mut x = MARGIN;
        for kind in EDGE_KINDS {
            if !self.edges.iter().any(|e| e.kind == kind) {
                continue;
            }
            let s = style(kind);
            let dash = if s.dash.is_empty() {
                String::new()
            } else {
                format!(" stroke-dasharray=\"{}\"", s.dash)
            };
            let _ = writeln!(
                out,
                "  <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"{}\"{dash} \
                 marker-end=\"url(#{})\"/>",
                num(x),
                num(y),
                num(x + 34.0),
                num(y),
                s.color,
                s.width,
                s.marker
            );
            let _ = writeln!(
                out,
                "  <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#424242\">{}</text>",
                num(x + 42.0),
                num(y + 4.0),
                escape(s.legend)
            );
            x += text_width(s.legend, 6.2) + 60.0;
        }
    }
}

fn draw_node(out: &mut String, p: &Placed) {
    match p.node {
        Node::Thread(_) => {
            let _ = writeln!(
                out,
                "  <ellipse cx=\"{}\" cy=\"{}\" rx=\"{}\" ry=\"{}\" fill=\"#eef3fb\" \
                 stroke=\"#1e3a5f\" stroke-width=\"1.5\"/>",
                num(p.x),
                num(p.y),
                num(p.hw),
                num(p.hh)
            );
        }
        Node::Resource(_) => {
            let _ = writeln!(
                out,
                "  <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"5\" fill=\"#fdf3e1\" \
                 stroke=\"#7a4f01\" stroke-width=\"1.5\"/>",
                num(p.x - p.hw),
                num(p.y - p.hh),
                num(2.0 * p.hw),
                num(2.0 * p.hh)
            );
        }
    }
    let _ = writeln!(
        out,
        "  <text x=\"{}\" y=\"{}\" font-size=\"12\" font-weight=\"bold\" text-anchor=\"middle\" \
         fill=\"#212121\">{}</text>",
        num(p.x),
        num(p.y - 2.0),
        escape(&p.name)
    );
    let _ = writeln!(
        out,
        "  <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#616161\">{}</text>",
        num(p.x),
        num(p.y + 12.0),
        escape(&p.what)
    );
}

/// A coordinate with one decimal, without a trailing `.0`, so the output is stable and short.
fn num(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// Escapes text for XML character data and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newline are not allowed in XML 1.0.
            c if c.is_control() && c != '\t' && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(
            escape("<a & 'b'>\u{1}"),
            "&lt;a &amp; &apos;b&apos;&gt;\u{fffd}"
        );
    }

    #[test]
    fn numbers_are_short_and_stable() {
        assert_eq!(num(12.0), "12");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(-0.04), "0");
    }
}
