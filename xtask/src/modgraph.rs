//! `cargo xtask modules`: fails when the top-level modules of a crate import
//! each other in a circle.
//!
//! A module's imports are the `crate::<module>` paths in its files (its own
//! `<module>.rs` and everything under `<module>/`), comments left out; `use
//! crate::{a, b::c}` names `a` and `b`. `lib.rs` and `main.rs` are the root
//! and import everything, so they are not nodes. A circle is a strongly
//! connected component of more than one module (Tarjan's algorithm), shown
//! as one path around it. Written by hand because no maintained crate draws a
//! module graph from source without a full compiler front end (cargo-modules
//! needs rust-analyzer's crates, hundreds of them); this reads what the
//! project writes, paths that start at `crate::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The crates whose modules must not form an import circle. Not yet `attrs`,
/// whose `spec` and `template` still share `PodInfo` and `escape` both ways.
pub(crate) const CHECKED: &[&str] = &[
    "crates/driver/src",
    "crates/issuer-client/src",
    "crates/keygen/src",
    "crates/pod-signer/src",
    "crates/renewer/src",
    "crates/store/src",
    "crates/testkit/src",
];

/// Checks every crate in [`CHECKED`]; the error lists each circle found.
pub(crate) fn run() -> Result<()> {
    let root = crate::workspace_root();
    let mut problems = Vec::new();
    for dir in CHECKED {
        let graph = graph_of(&root.join(dir))?;
        for circle in circles(&graph) {
            problems.push(format!("{dir}: {}", circle.join(" -> ")));
        }
    }
    if !problems.is_empty() {
        bail!(
            "modules import each other in a circle (move the shared item into the module its \
             users expect, or into a new leaf module):\n  {}",
            problems.join("\n  ")
        );
    }
    println!("modules: no import circles in {} crates", CHECKED.len());
    Ok(())
}

/// Module name to the modules it imports.
pub(crate) type Graph = BTreeMap<String, BTreeSet<String>>;

/// The import graph of the crate whose sources are in `src`.
pub(crate) fn graph_of(src: &Path) -> Result<Graph> {
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let path = entry?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.is_dir() {
            // `bin/` holds binaries, which are crates of their own.
            if stem != "bin" {
                let mut under = Vec::new();
                rust_files(&path, &mut under)?;
                files.entry(stem.to_owned()).or_default().extend(under);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && !matches!(stem, "lib" | "main") {
            files.entry(stem.to_owned()).or_default().push(path);
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let mut graph = Graph::new();
    for (module, paths) in &files {
        let mut deps = BTreeSet::new();
        for path in paths {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            for name in imports(&text) {
                if name != *module && modules.contains(&name) {
                    deps.insert(name);
                }
            }
        }
        graph.insert(module.clone(), deps);
    }
    Ok(graph)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The first segment of every `crate::` path in `source`, comments left out.
pub(crate) fn imports(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        // `crate::` as a path start, not the tail of an identifier.
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = closing_brace(group);
            for item in split_top_level(&group[..end]) {
                out.extend(ident_at(item.trim()));
            }
        } else {
            out.extend(ident_at(rest));
        }
    }
    out
}

/// The index of the `}` that closes a group whose `{` was just consumed.
fn closing_brace(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

/// `a, b::{c, d}, e` split at the commas outside braces.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The identifier `s` starts with, if any (`self` is not a module).
fn ident_at(s: &str) -> Option<String> {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    let ident = &s[..end];
    (!ident.is_empty() && ident != "self").then(|| ident.to_owned())
}

/// Every strongly connected component of more than one module, each as a
/// path around it that starts and ends at its first module.
pub(crate) fn circles(graph: &Graph) -> Vec<Vec<String>> {
    let names: Vec<&String> = graph.keys().collect();
    let index_of: BTreeMap<&String, usize> =
        names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let edges: Vec<Vec<usize>> = names
        .iter()
        .map(|n| {
            graph[*n]
                .iter()
                .filter_map(|d| index_of.get(d).copied())
                .collect()
        })
        .collect();
    let mut tarjan = Tarjan {
        edges: &edges,
        index: vec![None; names.len()],
        low: vec![0; names.len()],
        on_stack: vec![false; names.len()],
        stack: Vec::new(),
        next: 0,
        components: Vec::new(),
    };
    for v in 0..names.len() {
        if tarjan.index[v].is_none() {
            tarjan.visit(v);
        }
    }
    let mut out = Vec::new();
    for mut component in tarjan.components {
        if component.len() < 2 {
            continue;
        }
        component.sort_unstable();
        let path = path_around(&edges, &component);
        out.push(path.into_iter().map(|i| names[i].clone()).collect());
    }
    out
}

/// A path from the component's first module back to it, inside the component
/// (breadth-first, so it is a shortest one).
fn path_around(edges: &[Vec<usize>], component: &[usize]) -> Vec<usize> {
    let start = component[0];
    let inside: BTreeSet<usize> = component.iter().copied().collect();
    let mut came_from: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in &edges[v] {
            if !inside.contains(&w) {
                continue;
            }
            if w == start {
                let mut path = vec![start, v];
                let mut at = v;
                while at != start {
                    at = came_from[&at];
                    path.push(at);
                }
                path.reverse();
                return path;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = came_from.entry(w) {
                e.insert(v);
                queue.push_back(w);
            }
        }
    }
    component.to_vec()
}

struct Tarjan<'a> {
    edges: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in self.edges[v].iter() {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        edges
            .iter()
            .map(|(m, deps)| {
                (
                    (*m).to_owned(),
                    deps.iter().map(|d| (*d).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn imports_are_the_first_segments_of_crate_paths_outside_comments() {
        let src = "use crate::a::B;\nuse crate::{c, d::{E, F}, self};\n\
                   fn f() { crate::g::h(); my_crate::x(); }\n// crate::comment\n\
                   /// [`crate::doc`]\nlet s = 1; // crate::tail\n";
        let got: Vec<String> = imports(src).into_iter().collect();
        assert_eq!(got, ["a", "c", "d", "g"]);
    }

    #[test]
    fn a_circle_is_found_and_shown_as_a_path() {
        let g = graph(&[
            ("a", &["b"]),
            ("b", &["c"]),
            ("c", &["a", "d"]),
            ("d", &[]),
            ("e", &["d"]),
        ]);
        assert_eq!(circles(&g), vec![vec!["a", "b", "c", "a"]]);
        let layered = graph(&[("a", &["b", "c"]), ("b", &["c"]), ("c", &[])]);
        assert!(circles(&layered).is_empty());
        let two = graph(&[("x", &["y"]), ("y", &["x"])]);
        assert_eq!(circles(&two), vec![vec!["x", "y", "x"]]);
    }

    #[test]
    fn a_crate_with_a_circle_fails() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        std::fs::write(src.join("lib.rs"), "mod a; mod b; use crate::a::X;").unwrap();
        std::fs::write(src.join("a.rs"), "use crate::b::Y;").unwrap();
        std::fs::create_dir(src.join("b")).unwrap();
        std::fs::write(src.join("b.rs"), "mod inner;").unwrap();
        std::fs::write(src.join("b/inner.rs"), "use crate::{a::X};").unwrap();
        let g = graph_of(src).unwrap();
        assert_eq!(circles(&g), vec![vec!["a", "b", "a"]]);
        std::fs::write(src.join("b/inner.rs"), "use super::Z;").unwrap();
        assert!(circles(&graph_of(src).unwrap()).is_empty());
    }
}
