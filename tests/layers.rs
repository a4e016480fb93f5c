//! Module layers: reads the crate's own `src/` and fails, listing every offending edge, when
//!
//! 1. source files import each other in a cycle (`crate::`, `super::` and `self::` paths, in `use`
//!    declarations, `use` groups and inline paths; each path resolved to the longest prefix that is
//!    a file module), or
//! 2. a file refers to a higher layer: `model`, `pb` (0) < `config`, `tls`, `auth`, `http_client`
//!    (1) < `collect`, `serve` (2) < `agent`, `coordinator`, `top` (3) < `cli` (4); within a layer `agent`
//!    and `coordinator` keep apart, `collect` does not refer to `serve`, and `serve` refers to
//!    `collect::process` only (GetStats reads pid trees on demand).
//!
//! Test code (`#[cfg(test)]` items, files named `tests.rs`), comments, string literals and
//! `mod x;` declarations are not imports. `src/lib.rs` (the root) and `src/main.rs` (the binary)
//! are not nodes. See docs/design-notes.md, "Module layers".
//!
//! The checker takes a list of (path relative to the crate, source text), so the tests below run
//! it on small made-up trees to show that it can fail.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

/// The layer of each top-level module; a file may refer to its own layer and those below.
const RANKS: &[(&str, u8)] = &[
    ("model", 0),
    ("pb", 0),
    ("config", 1),
    ("tls", 1),
    ("auth", 1),
    ("http_client", 1),
    ("collect", 2),
    ("serve", 2),
    ("history", 2),
    ("agent", 3),
    ("coordinator", 3),
    ("top", 3),
    ("cli", 4),
];

fn rank(top: &str) -> Option<u8> {
    RANKS.iter().find(|(name, _)| *name == top).map(|&(_, r)| r)
}

// ---------------------------------------------------------------------------------------------
// Lexer: identifiers, `::` and single punctuation; comments, strings and char literals dropped.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

fn is_ident_start(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex(src: &str) -> Vec<Tok> {
    let chars: Vec<char> = src.chars().collect();
    let n = chars.len();
    let at = |i: usize| chars.get(i).copied();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == Some('/') {
            // Line comments, `///` and `//!` included.
            while i < n && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            // Block comments nest.
            let mut level = 0;
            while i < n {
                if chars[i] == '/' && at(i + 1) == Some('*') {
                    level += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == Some('/') {
                    level -= 1;
                    i += 2;
                    if level == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&chars, i + 1);
        } else if c == '\'' {
            if at(i + 1) == Some('\\') {
                // An escaped char literal: '\n', '\'', '\u{..}'.
                i += 3;
                while i < n && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == Some('\'') {
                i += 3; // 'x'
            } else {
                i += 1; // a lifetime or a label: the name that follows is harmless
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < n && is_ident_start(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if matches!(word.as_str(), "r" | "br" | "cr") {
                let mut j = i;
                while at(j) == Some('#') {
                    j += 1;
                }
                let hashes = j - i;
                if at(j) == Some('"') {
                    i = skip_raw_string(&chars, j + 1, hashes);
                    continue;
                }
                if word == "r" && hashes == 1 && at(j).is_some_and(is_ident_start) {
                    // A raw identifier, r#type: the name itself.
                    let start = j;
                    i = j;
                    while i < n && is_ident_start(chars[i]) {
                        i += 1;
                    }
                    out.push(Tok::Ident(chars[start..i].iter().collect()));
                    continue;
                }
            }
            if matches!(word.as_str(), "b" | "c") && at(i) == Some('"') {
                continue; // b"..", c"..": the string is skipped next
            }
            out.push(Tok::Ident(word));
        } else if c == ':' && at(i + 1) == Some(':') {
            out.push(Tok::PathSep);
            i += 2;
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

/// From just after the opening quote; returns the index after the closing one.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

fn skip_raw_string(chars: &[char], mut i: usize, hashes: usize) -> usize {
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------------------------
// Scanner: the `crate::`/`super::`/`self::` paths of one file, outside test code.

/// A path as written, and the inline modules (`mod x { .. }`) around it.
#[derive(Debug, Clone)]
struct PathRef {
    segments: Vec<String>,
    glob: bool,
    scope: Vec<String>,
}

impl PathRef {
    fn text(&self) -> String {
        let mut text = self.segments.join("::");
        if self.glob {
            text.push_str("::*");
        }
        text
    }
}

fn ident(toks: &[Tok], i: usize) -> Option<&str> {
    match toks.get(i) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn is_punct(toks: &[Tok], i: usize, c: char) -> bool {
    toks.get(i) == Some(&Tok::Punct(c))
}

fn is_path_start(word: &str) -> bool {
    matches!(word, "crate" | "super" | "self")
}

/// The index of the bracket that closes the one at `open` (any kind; they nest properly).
fn matching(toks: &[Tok], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, tok) in toks.iter().enumerate().skip(open) {
        match tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// Whether `#[cfg(test)]` (or `#![cfg(test)]`) starts at `i`; returns the index after it.
fn cfg_test_at(toks: &[Tok], i: usize) -> Option<usize> {
    if !is_punct(toks, i, '#') {
        return None;
    }
    let open = if is_punct(toks, i + 1, '!') {
        i + 2
    } else {
        i + 1
    };
    let expected = [
        Tok::Punct('['),
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
        Tok::Punct(']'),
    ];
    let found = toks.get(open..open + expected.len())?;
    (found == expected).then_some(open + expected.len())
}

/// After `#[cfg(test)]`: the index past the item it gates (further attributes, visibility, then
/// up to the `;` or the closing `}` of the item). Attributes on other things are left alone.
fn skip_test_item(toks: &[Tok], mut i: usize) -> usize {
    while is_punct(toks, i, '#') && is_punct(toks, i + 1, '[') {
        i = matching(toks, i + 1) + 1;
    }
    if ident(toks, i) == Some("pub") {
        i += 1;
        if is_punct(toks, i, '(') {
            i = matching(toks, i) + 1;
        }
    }
    const ITEMS: &[&str] = &[
        "mod",
        "fn",
        "use",
        "impl",
        "struct",
        "enum",
        "union",
        "const",
        "static",
        "type",
        "trait",
        "extern",
        "async",
        "unsafe",
        "macro_rules",
    ];
    if !ident(toks, i).is_some_and(|word| ITEMS.contains(&word)) {
        return i;
    }
    let mut depth = 0usize;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(c @ (')' | ']' | '}')) => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                if depth == 0 && *c == '}' {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// One `use` tree from `i` under `prefix`: its leaves (a group's `self` is its prefix).
fn parse_use_tree(
    toks: &[Tok],
    i: &mut usize,
    mut prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, bool)>,
) {
    if toks.get(*i) == Some(&Tok::PathSep) {
        *i += 1; // `use ::std::..`: another crate
    }
    loop {
        match toks.get(*i) {
            Some(Tok::Punct('{')) => {
                *i += 1;
                loop {
                    match toks.get(*i) {
                        None => return,
                        Some(Tok::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *i += 1,
                        Some(_) => {
                            let before = *i;
                            parse_use_tree(toks, i, prefix.clone(), out);
                            if *i == before {
                                *i += 1; // not a use tree: step over it
                            }
                        }
                    }
                }
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push((prefix, true));
                return;
            }
            Some(Tok::Ident(word)) => {
                if word != "self" || prefix.is_empty() {
                    prefix.push(word.clone());
                }
                *i += 1;
                if toks.get(*i) == Some(&Tok::PathSep) {
                    *i += 1;
                    continue;
                }
                if ident(toks, *i) == Some("as") {
                    *i += 2;
                }
                out.push((prefix, false));
                return;
            }
            _ => return,
        }
    }
}

/// The paths of one file that start with `crate`, `super` or `self`, outside test code.
fn scan(src: &str) -> Vec<PathRef> {
    let toks = lex(src);
    let mut refs = Vec::new();
    let mut depth = 0usize;
    let mut scope: Vec<(String, usize)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if let Some(after) = cfg_test_at(&toks, i) {
            if is_punct(&toks, i + 1, '!') {
                return Vec::new(); // the whole file is test code
            }
            i = skip_test_item(&toks, after);
            continue;
        }
        let prev_is_sep = i > 0 && toks[i - 1] == Tok::PathSep;
        match &toks[i] {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                while scope.last().is_some_and(|&(_, d)| d > depth) {
                    scope.pop();
                }
                i += 1;
            }
            Tok::Ident(word) if word == "mod" && !prev_is_sep => {
                // `mod x { .. }` opens an inline module; `mod x;` is a declaration, not an import.
                if let Some(name) = ident(&toks, i + 1) {
                    if is_punct(&toks, i + 2, '{') {
                        scope.push((name.to_string(), depth + 1));
                    }
                }
                i += 1;
            }
            Tok::Ident(word) if word == "use" && !prev_is_sep => {
                i += 1;
                let mut leaves = Vec::new();
                parse_use_tree(&toks, &mut i, Vec::new(), &mut leaves);
                for (segments, glob) in leaves {
                    if segments.first().is_some_and(|s| is_path_start(s)) {
                        refs.push(PathRef {
                            segments,
                            glob,
                            scope: scope.iter().map(|(m, _)| m.clone()).collect(),
                        });
                    }
                }
            }
            Tok::Ident(word)
                if is_path_start(word)
                    && toks.get(i + 1) == Some(&Tok::PathSep)
                    && !prev_is_sep
                    && !(i > 0 && is_punct(&toks, i - 1, '$')) =>
            {
                // `pub(in crate::x)` is a visibility, not a reference.
                let visibility = i >= 3
                    && ident(&toks, i - 1) == Some("in")
                    && is_punct(&toks, i - 2, '(')
                    && ident(&toks, i - 3) == Some("pub");
                let mut segments = vec![word.clone()];
                i += 1;
                while toks.get(i) == Some(&Tok::PathSep) {
                    match ident(&toks, i + 1) {
                        Some(next) => segments.push(next.to_string()),
                        None => break, // `::<`, `::{`
                    }
                    i += 2;
                }
                if !visibility {
                    refs.push(PathRef {
                        segments,
                        glob: false,
                        scope: scope.iter().map(|(m, _)| m.clone()).collect(),
                    });
                }
            }
            _ => i += 1,
        }
    }
    refs
}

// ---------------------------------------------------------------------------------------------
// The checker.

/// A reference from one file to another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    via: String,
}

impl std::fmt::Display for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {} (via `{}`)", self.from, self.to, self.via)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Violation {
    /// Files that reach each other, and the edges among them.
    Cycle {
        files: Vec<String>,
        edges: Vec<Edge>,
    },
    /// A reference against the layers, and the rule it breaks.
    Layer { edge: Edge, rule: String },
    /// A file of a top-level module that has no layer.
    Unranked { file: String, top: String },
}

/// `src/a/b.rs` and `src/a/b/mod.rs` → `["a", "b"]`; `None` for the root, the binary and test
/// files, which are not nodes.
fn module_of(path: &str) -> Option<Vec<String>> {
    let rel = path.strip_prefix("src/")?.strip_suffix(".rs")?;
    if rel == "lib" || rel == "main" || rel.starts_with("bin/") {
        return None;
    }
    let mut segments: Vec<String> = rel.split('/').map(str::to_string).collect();
    if segments.last().is_some_and(|s| s == "mod") {
        segments.pop();
    }
    if segments.is_empty() || segments.iter().any(|s| s == "tests") {
        return None;
    }
    Some(segments)
}

/// The absolute module path a reference names, from the module it is written in.
fn absolute(path: &[String], current: &[String]) -> Option<Vec<String>> {
    let (mut base, rest) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (current.to_vec(), &path[1..]),
        "super" => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            let keep = current.len().checked_sub(ups)?;
            (current[..keep].to_vec(), &path[ups..])
        }
        _ => return None,
    };
    base.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(base)
}

/// Every reference between files, in file order, with the absolute path it names.
fn references(files: &[(&str, &str)]) -> Vec<(Edge, Vec<String>)> {
    let modules: BTreeMap<Vec<String>, &str> = files
        .iter()
        .filter_map(|&(path, _)| module_of(path).map(|m| (m, path)))
        .collect();
    let mut out = Vec::new();
    for &(path, text) in files {
        let Some(module) = module_of(path) else {
            continue;
        };
        for r in scan(text) {
            let current: Vec<String> = module.iter().chain(&r.scope).cloned().collect();
            let Some(target) = absolute(&r.segments, &current) else {
                continue;
            };
            let to = (1..=target.len())
                .rev()
                .find_map(|len| modules.get(&target[..len]))
                .copied()
                .unwrap_or("src/lib.rs");
            let edge = Edge {
                from: path.to_string(),
                to: to.to_string(),
                via: r.text(),
            };
            out.push((edge, target));
        }
    }
    out
}

/// The import graph: one edge per pair of distinct files (the first path that makes it).
fn graph(files: &[(&str, &str)]) -> Vec<Edge> {
    let mut edges: BTreeMap<(String, String), Edge> = BTreeMap::new();
    for (edge, _) in references(files) {
        if edge.from != edge.to && edge.to != "src/lib.rs" {
            edges
                .entry((edge.from.clone(), edge.to.clone()))
                .or_insert(edge);
        }
    }
    edges.into_values().collect()
}

/// The rule a reference from module `from` to absolute path `to` breaks, if any.
fn layer_rule(from: &[String], to: &[String]) -> Option<String> {
    let (from_top, to_top) = (from.first()?.as_str(), to.first()?.as_str());
    if from_top == to_top {
        return None;
    }
    let (from_rank, to_rank) = (rank(from_top)?, rank(to_top)?);
    if to_rank > from_rank {
        return Some(format!(
            "`{from_top}` (layer {from_rank}) may not refer to `{to_top}` (layer {to_rank})"
        ));
    }
    if to_rank < from_rank {
        return None;
    }
    match (from_top, to_top) {
        ("agent", "coordinator") | ("coordinator", "agent") => {
            Some("`agent` and `coordinator` may not refer to each other".to_string())
        }
        ("collect", "serve") => Some("`collect` may not refer to `serve`".to_string()),
        ("serve", "collect") if to.get(1).map(String::as_str) != Some("process") => {
            Some("`serve` may refer to `collect::process` only".to_string())
        }
        _ => None,
    }
}

/// Strongly connected components with more than one node (Tarjan).
fn cycles(edges: &[Edge]) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.next.get(v).cloned().unwrap_or_default() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        next: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for e in edges {
        tarjan.next.entry(&e.from).or_default().push(&e.to);
    }
    let nodes: Vec<&str> = tarjan.next.keys().copied().collect();
    for v in nodes {
        if !tarjan.index.contains_key(v) {
            tarjan.visit(v);
        }
    }
    tarjan.found.sort();
    tarjan.found
}

/// Every violation in a tree given as (path relative to the crate, source text).
fn check(files: &[(&str, &str)]) -> Vec<Violation> {
    let mut violations = Vec::new();

    let edges = graph(files);
    for component in cycles(&edges) {
        let inside: Vec<Edge> = edges
            .iter()
            .filter(|e| component.contains(&e.from) && component.contains(&e.to))
            .cloned()
            .collect();
        violations.push(Violation::Cycle {
            files: component,
            edges: inside,
        });
    }

    let mut seen = BTreeSet::new();
    for (edge, target) in references(files) {
        let from = module_of(&edge.from).expect("references come from module files");
        if let Some(rule) = layer_rule(&from, &target) {
            if seen.insert((edge.from.clone(), edge.to.clone())) {
                violations.push(Violation::Layer { edge, rule });
            }
        }
    }

    let mut unranked = BTreeSet::new();
    for &(path, _) in files {
        if let Some(module) = module_of(path) {
            if rank(&module[0]).is_none() && unranked.insert(module[0].clone()) {
                violations.push(Violation::Unranked {
                    file: path.to_string(),
                    top: module[0].clone(),
                });
            }
        }
    }
    violations
}

fn render(violations: &[Violation]) -> String {
    let mut out = String::from("module layers broken (docs/design-notes.md, \"Module layers\"):\n");
    for v in violations {
        match v {
            Violation::Cycle { files, edges } => {
                let _ = writeln!(out, "\nimport cycle among {}:", files.join(", "));
                for e in edges {
                    let _ = writeln!(out, "  {e}");
                }
            }
            Violation::Layer { edge, rule } => {
                let _ = writeln!(out, "\nlayer: {rule}:\n  {edge}");
            }
            Violation::Unranked { file, top } => {
                let _ = writeln!(
                    out,
                    "\nunranked: {file}: top-level module `{top}` has no layer (add it to RANKS in tests/layers.rs)"
                );
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The real tree.

fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let rel = path.strip_prefix(root).expect("under the crate");
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            out.push((rel.join("/"), text));
        }
    }
}

#[test]
fn source_tree_keeps_its_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    read_tree(root, &root.join("src"), &mut files);
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    // A guard on the guard: the reader found the tree and the scanner its imports.
    assert!(files.len() > 20, "only {} files under src/", files.len());
    assert!(
        graph(&files).len() > 50,
        "too few imports found: is the scanner broken?"
    );
    let violations = check(&files);
    assert!(violations.is_empty(), "{}", render(&violations));
}

// ---------------------------------------------------------------------------------------------
// The checker on made-up trees.

fn layer_edges(violations: &[Violation]) -> Vec<String> {
    violations
        .iter()
        .filter_map(|v| match v {
            Violation::Layer { edge, .. } => Some(edge.to_string()),
            _ => None,
        })
        .collect()
}

fn cycle_files(violations: &[Violation]) -> Vec<Vec<String>> {
    violations
        .iter()
        .filter_map(|v| match v {
            Violation::Cycle { files, .. } => Some(files.clone()),
            _ => None,
        })
        .collect()
}

fn edge_pairs(files: &[(&str, &str)]) -> Vec<(String, String)> {
    graph(files).into_iter().map(|e| (e.from, e.to)).collect()
}

fn pair(from: &str, to: &str) -> (String, String) {
    (from.to_string(), to.to_string())
}

#[test]
fn detects_a_cycle() {
    let files = [
        ("src/collect/mod.rs", "mod a;\nmod b;\nmod c;\n"),
        ("src/collect/a.rs", "use crate::collect::b::Thing;\n"),
        (
            "src/collect/b.rs",
            "pub fn f() { crate::collect::c::g(); }\n",
        ),
        ("src/collect/c.rs", "use super::a;\n"),
    ];
    let violations = check(&files);
    assert_eq!(
        cycle_files(&violations),
        vec![vec![
            "src/collect/a.rs".to_string(),
            "src/collect/b.rs".to_string(),
            "src/collect/c.rs".to_string(),
        ]]
    );
    let text = render(&violations);
    assert!(
        text.contains("src/collect/a.rs -> src/collect/b.rs (via `crate::collect::b::Thing`)"),
        "{text}"
    );
    assert!(
        text.contains("src/collect/c.rs -> src/collect/a.rs (via `super::a`)"),
        "{text}"
    );
}

#[test]
fn a_child_and_its_parent_importing_each_other_is_a_cycle() {
    let files = [
        (
            "src/serve/mod.rs",
            "mod http;\npub use self::http::Router;\n",
        ),
        ("src/serve/http.rs", "use super::AppState;\n"),
    ];
    assert_eq!(
        cycle_files(&check(&files)),
        vec![vec![
            "src/serve/http.rs".to_string(),
            "src/serve/mod.rs".to_string()
        ]]
    );
}

#[test]
fn detects_an_upward_import() {
    let files = [
        ("src/model/mod.rs", "use crate::serve::Thing;\n"),
        ("src/serve/mod.rs", "use crate::model::Snapshot;\n"),
        ("src/config.rs", "use crate::cli::Args;\n"),
        ("src/cli.rs", "use crate::config::Config;\n"),
    ];
    let violations = check(&files);
    assert_eq!(
        layer_edges(&violations),
        vec![
            "src/model/mod.rs -> src/serve/mod.rs (via `crate::serve::Thing`)".to_string(),
            "src/config.rs -> src/cli.rs (via `crate::cli::Args`)".to_string(),
        ]
    );
    let text = render(&violations);
    assert!(
        text.contains("`model` (layer 0) may not refer to `serve` (layer 2)"),
        "{text}"
    );
}

#[test]
fn resolves_each_item_of_a_use_group() {
    let files = [
        ("src/model/mod.rs", "pub mod wire;\n"),
        ("src/model/wire/mod.rs", ""),
        ("src/serve/mod.rs", ""),
        ("src/serve/prometheus.rs", ""),
        ("src/serve/rest.rs", ""),
        (
            "src/collect/mod.rs",
            "use crate::{\n    model::{self, wire::{NodeMetrics, v1::Element as E}},\n    serve::{rest, prometheus::{Format, Writer}},\n};\n",
        ),
    ];
    assert_eq!(
        edge_pairs(&files),
        vec![
            pair("src/collect/mod.rs", "src/model/mod.rs"),
            pair("src/collect/mod.rs", "src/model/wire/mod.rs"),
            pair("src/collect/mod.rs", "src/serve/prometheus.rs"),
            pair("src/collect/mod.rs", "src/serve/rest.rs"),
        ]
    );
    assert_eq!(
        layer_edges(&check(&files)),
        vec![
            "src/collect/mod.rs -> src/serve/rest.rs (via `crate::serve::rest`)".to_string(),
            "src/collect/mod.rs -> src/serve/prometheus.rs (via `crate::serve::prometheus::Format`)"
                .to_string(),
        ]
    );
}

#[test]
fn resolves_to_the_longest_file_module() {
    let files = [
        ("src/model/mod.rs", ""),
        ("src/model/wire/mod.rs", ""),
        ("src/serve/mod.rs", ""),
        ("src/serve/prometheus.rs", ""),
        ("src/serve/prometheus/writer.rs", ""),
        (
            "src/agent/mod.rs",
            "fn f(m: crate::model::wire::NodeMetrics) -> crate::serve::prometheus::Format { todo!() }\n\
             fn g() { crate::serve::prometheus::writer::Writer::new(); crate::VERSION; }\n",
        ),
    ];
    assert_eq!(
        edge_pairs(&files),
        vec![
            pair("src/agent/mod.rs", "src/model/wire/mod.rs"),
            pair("src/agent/mod.rs", "src/serve/prometheus.rs"),
            pair("src/agent/mod.rs", "src/serve/prometheus/writer.rs"),
        ]
    );
    assert!(check(&files).is_empty());
}

#[test]
fn follows_super_paths() {
    let files = [
        ("src/collect/mod.rs", "pub mod accel;\n"),
        ("src/collect/accel/mod.rs", "mod backoff;\nmod nvidia;\n"),
        ("src/collect/accel/backoff.rs", ""),
        ("src/collect/accel/nvidia/mod.rs", "mod device;\nmod mig;\n"),
        (
            "src/collect/accel/nvidia/device.rs",
            "use super::mig::{self, Mig};\nuse super::super::backoff::Backoff;\n",
        ),
        (
            "src/collect/accel/nvidia/mig.rs",
            "pub fn f(d: &super::device::Device) { super::super::super::HostPaths::new(); }\n",
        ),
    ];
    assert_eq!(
        edge_pairs(&files),
        vec![
            pair(
                "src/collect/accel/nvidia/device.rs",
                "src/collect/accel/backoff.rs"
            ),
            pair(
                "src/collect/accel/nvidia/device.rs",
                "src/collect/accel/nvidia/mig.rs"
            ),
            pair(
                "src/collect/accel/nvidia/mig.rs",
                "src/collect/accel/nvidia/device.rs"
            ),
            pair("src/collect/accel/nvidia/mig.rs", "src/collect/mod.rs"),
        ]
    );
    assert_eq!(
        cycle_files(&check(&files)),
        vec![vec![
            "src/collect/accel/nvidia/device.rs".to_string(),
            "src/collect/accel/nvidia/mig.rs".to_string(),
        ]]
    );
}

#[test]
fn follows_inline_paths() {
    let files = [
        ("src/serve/mod.rs", ""),
        ("src/serve/http.rs", ""),
        (
            "src/collect/mod.rs",
            "fn f() -> usize {\n    let x = crate::serve::http::f(1, \"a\");\n    <crate::serve::Thing as Default>::default();\n    x\n}\n",
        ),
    ];
    assert_eq!(
        layer_edges(&check(&files)),
        vec![
            "src/collect/mod.rs -> src/serve/http.rs (via `crate::serve::http::f`)".to_string(),
            "src/collect/mod.rs -> src/serve/mod.rs (via `crate::serve::Thing`)".to_string(),
        ]
    );
}

#[test]
fn inline_modules_shift_super_and_self() {
    let files = [
        ("src/collect/mod.rs", ""),
        ("src/collect/a.rs", "mod inner {\n    fn f() { super::super::b::g(); self::h(); super::k(); }\n}\nfn k() { super::c::g(); }\n"),
        ("src/collect/b.rs", ""),
        ("src/collect/c.rs", ""),
    ];
    assert_eq!(
        edge_pairs(&files),
        vec![
            pair("src/collect/a.rs", "src/collect/b.rs"),
            pair("src/collect/a.rs", "src/collect/c.rs"),
        ]
    );
}

#[test]
fn ignores_strings_comments_test_code_and_declarations() {
    let source = r####"
//! Uses `crate::serve::Doc`.
/// See [`crate::serve::Link`].
// use crate::serve::Commented;
/* use crate::serve::Block; /* nested crate::serve::Nested */ still crate::serve::Comment */
pub mod child;
mod other;
pub(in crate::collect) fn visible() {}
const A: &str = "crate::serve::Quoted \" crate::serve::Escaped";
const B: &str = r#"crate::serve::Raw " still raw"#;
const C: &[u8] = b"crate::serve::Bytes";
const D: char = '"';
const E: char = '\'';
fn lifetimes<'a>(x: &'a str) -> &'a str { x }
macro_rules! m { () => { $crate::serve::Macro }; }
#[cfg(test)]
mod tests {
    use crate::serve::InTests;
    fn f() { crate::agent::g(); }
}
#[cfg(test)]
pub(super) fn fixture() -> crate::serve::Fixture { todo!() }
#[cfg(test)]
mod fixture_tests;
fn after() { let s = "}"; }
"####;
    let files = [
        ("src/serve/mod.rs", ""),
        ("src/agent/mod.rs", ""),
        ("src/collect/mod.rs", source),
        ("src/collect/child.rs", ""),
        ("src/collect/other.rs", ""),
        ("src/collect/tests.rs", "use crate::serve::AnyWhere;\n"),
        ("src/model/tests/mod.rs", "use crate::agent::AnyWhere;\n"),
        ("src/main.rs", "use system_monitor::cli;\n"),
        ("src/lib.rs", "pub mod collect;\n"),
    ];
    assert_eq!(graph(&files), Vec::<Edge>::new());
    assert_eq!(check(&files), Vec::<Violation>::new());
    // The scanner is still awake after all that.
    let with_tail = format!("{source}\nuse crate::serve::Real;\n");
    let files = [
        ("src/serve/mod.rs", ""),
        ("src/collect/mod.rs", with_tail.as_str()),
    ];
    assert_eq!(
        layer_edges(&check(&files)),
        vec!["src/collect/mod.rs -> src/serve/mod.rs (via `crate::serve::Real`)".to_string()]
    );
}

#[test]
fn serve_may_use_collect_process_only() {
    let files = [
        ("src/collect/mod.rs", ""),
        ("src/collect/process.rs", ""),
        ("src/collect/rates.rs", ""),
        (
            "src/serve/grpc.rs",
            "use crate::collect::process::{self, pid_tree};\nuse crate::collect::{process::Tree, rates::Rate};\n",
        ),
        ("src/serve/rest.rs", "use crate::collect::Sampler;\n"),
    ];
    assert_eq!(
        layer_edges(&check(&files)),
        vec![
            "src/serve/grpc.rs -> src/collect/rates.rs (via `crate::collect::rates::Rate`)"
                .to_string(),
            "src/serve/rest.rs -> src/collect/mod.rs (via `crate::collect::Sampler`)".to_string(),
        ]
    );
}

#[test]
fn agent_and_coordinator_stay_apart() {
    let files = [
        ("src/agent/mod.rs", "use crate::coordinator::Registry;\n"),
        ("src/coordinator/mod.rs", "use crate::agent::register;\n"),
        (
            "src/cli.rs",
            "use crate::{agent, coordinator, serve::x, model::y, pb::v1::Z};\n",
        ),
    ];
    let violations = check(&files);
    assert_eq!(
        layer_edges(&violations),
        vec![
            "src/agent/mod.rs -> src/coordinator/mod.rs (via `crate::coordinator::Registry`)"
                .to_string(),
            "src/coordinator/mod.rs -> src/agent/mod.rs (via `crate::agent::register`)".to_string(),
        ]
    );
    assert_eq!(cycle_files(&violations).len(), 1);
}

#[test]
fn a_top_level_module_needs_a_layer() {
    let files = [
        ("src/model/mod.rs", ""),
        ("src/extra/mod.rs", "use crate::model::X;\n"),
        ("src/extra/more.rs", ""),
    ];
    assert_eq!(
        check(&files),
        vec![Violation::Unranked {
            file: "src/extra/mod.rs".to_string(),
            top: "extra".to_string(),
        }]
    );
}
