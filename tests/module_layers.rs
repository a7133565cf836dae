//! The crate's modules depend on each other one way only: public types → the lock and wait
//! core (`core`) → the runtime (`rt`) → the detector crate. This test reads the sources and
//! fails on any cycle between modules (one module per file), and on the runtime reaching back
//! into the core.
//!
//! Every part of the runtime reaches the process-wide state through `rt::runtime` (the one
//! `Runtime`, whose fields are the parts' state types): that hub is left out of the cycle
//! check, and `rt::runtime` itself may only name state types, never call the parts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `src/a/b.rs` → `a::b`, `src/a/mod.rs` → `a`, `src/lib.rs` → `` (the crate root).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments, strings and `#[cfg(test)]`/loom test modules' bodies are kept
/// (tests may reach anywhere, but they are inside the module they test, so they add no edge
/// between files).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths named in `text`: `crate::a::b`, `super::a`, `super::super::a`, and the items of
/// `use super::{a, b::c}` and `use crate::{a, b}` groups, resolved against `module`.
fn referenced_paths(module: &str, text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let at_word_start = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        if at_word_start && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let (base, consumed) = parse_path(&bytes[i..]);
            i += consumed;
            for path in base {
                if let Some(resolved) = resolve(module, &path) {
                    paths.push(resolved);
                }
            }
        } else {
            i += 1;
        }
    }
    paths
}

/// Parses one path starting at `chars` (which begins with `crate::` or `super::`), expanding a
/// trailing `{...}` group into one path per item. Returns the paths and the chars consumed.
fn parse_path(chars: &[char]) -> (Vec<Vec<String>>, usize) {
    let mut segments = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        if i > start {
            segments.push(chars[start..i].iter().collect::<String>());
        }
        if i + 1 < chars.len() && chars[i] == ':' && chars[i + 1] == ':' {
            i += 2;
            if i < chars.len() && chars[i] == '{' {
                // A group: split its items at top-level commas.
                let mut depth = 0;
                let mut item_start = i + 1;
                let mut items = Vec::new();
                let mut j = i;
                while j < chars.len() {
                    match chars[j] {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                items.push(chars[item_start..j].iter().collect::<String>());
                                break;
                            }
                        }
                        ',' if depth == 1 => {
                            items.push(chars[item_start..j].iter().collect::<String>());
                            item_start = j + 1;
                        }
                        _ => {}
                    }
                    j += 1;
                }
                let mut paths = Vec::new();
                for item in items {
                    let first: String = item
                        .trim()
                        .split("::")
                        .map(|s| s.trim().to_owned())
                        .take_while(|s| s.chars().all(|c| c.is_alphanumeric() || c == '_'))
                        .collect::<Vec<_>>()
                        .join("::");
                    let mut path = segments.clone();
                    if first == "self" || first.is_empty() {
                        paths.push(path);
                        continue;
                    }
                    path.extend(first.split("::").map(str::to_owned));
                    paths.push(path);
                }
                return (paths, j + 1);
            }
        } else {
            return (vec![segments], i);
        }
    }
}

/// Resolves `path` (starting with `crate` or `super`) to an absolute path from the crate root.
fn resolve(module: &str, path: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").map(str::to_owned).collect()
    };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The longest known module that `path` lies in.
fn owning_module<'a>(modules: &'a BTreeSet<String>, path: &[String]) -> Option<&'a String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find_map(|candidate| modules.get(&candidate))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let texts: BTreeMap<String, String> = files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "main.rs"))
        .map(|f| {
            (
                module_of(&src, f),
                strip_comments(&std::fs::read_to_string(f).unwrap()),
            )
        })
        .collect();
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    let reexports = reexports(&modules, &texts);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &texts {
        let out = edges.entry(module.clone()).or_default();
        for path in referenced_paths(module, text) {
            // An item a table of contents re-exports belongs to the child that defines it.
            let target = match reexports.get(&path.join("::")) {
                Some(child) => Some(child),
                None => owning_module(&modules, &path),
            };
            if let Some(target) = target {
                // A module naming its own items, or its parent naming it (a table of
                // contents re-exporting its children), is no dependency between files.
                if target != module && !module.is_empty() {
                    out.insert(target.clone());
                }
            }
        }
    }
    edges
}

/// `parent::Item` → the child module that defines it, for every `pub(crate) use child::...`
/// (and `pub use`) in a module: who uses `parent::Item` depends on the child, not on the
/// parent.
fn reexports(
    modules: &BTreeSet<String>,
    texts: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (module, text) in texts {
        for statement in text.split(';') {
            let statement = statement.trim();
            let Some(rest) = statement
                .strip_prefix("pub(crate) use ")
                .or_else(|| statement.strip_prefix("pub use "))
            else {
                continue;
            };
            let child = rest.split("::").next().unwrap_or("").trim();
            let child_module = if module.is_empty() {
                child.to_owned()
            } else {
                format!("{module}::{child}")
            };
            if !modules.contains(&child_module) {
                continue;
            }
            // The names it makes visible: the last identifier of each item (its alias if it
            // has one).
            let items = rest[child.len()..].trim_start_matches("::");
            let items = items.trim_matches(|c| c == '{' || c == '}');
            for item in items.split(',') {
                let item = item.trim().trim_end_matches('}').trim();
                let Some(name) = item.split([' ', ':']).rfind(|w| !w.is_empty()) else {
                    continue;
                };
                let key = if module.is_empty() {
                    name.to_owned()
                } else {
                    format!("{module}::{name}")
                };
                map.insert(key, child_module.clone());
            }
        }
    }
    map
}

/// Strongly connected components of more than one module, found by depth-first search.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            if m == to {
                return true;
            }
            if seen.insert(m.clone()) {
                stack.extend(edges.get(&m).into_iter().flatten().cloned());
            }
        }
        false
    };
    let mut found: Vec<Vec<String>> = Vec::new();
    for (from, tos) in edges {
        for to in tos {
            if reaches(to, from) && !found.iter().any(|c| c.contains(from)) {
                let component: Vec<String> = edges
                    .keys()
                    .filter(|m| reaches(from, m) && reaches(m, from))
                    .cloned()
                    .collect();
                found.push(component);
            }
        }
    }
    found
}

#[test]
fn no_module_cycles() {
    let mut edges = graph();
    // The hub: every part reaches the state through `rt::runtime`, which names their types.
    for targets in edges.values_mut() {
        targets.remove("rt::runtime");
    }
    // A table of contents (`mod.rs`) re-exports its children: edges from it to them are no
    // dependency of its own, and children must not use it to reach their siblings.
    for (module, targets) in edges.iter_mut() {
        targets.retain(|t| !t.starts_with(&format!("{module}::")));
    }
    let found = cycles(&edges);
    assert!(
        found.is_empty(),
        "module cycles (each line one cycle):\n{}",
        found
            .iter()
            .map(|c| c.join(" ↔ "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_runtime_never_reaches_into_the_core_or_the_public_types() {
    let edges = graph();
    let lower = ["rt", "raw", "primitive", "config", "diag", "error"];
    for (module, targets) in &edges {
        if !module.starts_with("rt") {
            continue;
        }
        for target in targets.iter().filter(|t| !t.is_empty()) {
            let root = target.split("::").next().unwrap();
            assert!(
                lower.contains(&root),
                "{module} depends on {target}, above the runtime"
            );
        }
    }
}

#[test]
fn the_parser_sees_grouped_and_relative_imports() {
    let paths = referenced_paths(
        "rt::graph",
        "use super::{registry::{self, HeldCopy}, trace};\nlet x = crate::core::Kind::Lock;",
    );
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert!(joined.contains(&"rt::registry".to_owned()), "{joined:?}");
    assert!(joined.contains(&"rt::trace".to_owned()), "{joined:?}");
    assert!(
        joined.contains(&"core::Kind::Lock".to_owned()),
        "{joined:?}"
    );
}

/// Prints the module graph (`cargo test --test module_layers -- --ignored --nocapture`).
#[test]
#[ignore = "prints the graph for a reader; asserts nothing"]
fn print_the_module_graph() {
    for (module, targets) in graph() {
        println!("{module} -> {}", Vec::from_iter(targets).join(", "));
    }
}
