//! The map in `src/lib.rs`, held: every `crate::` path in `src/` is an arrow from one top-level
//! module to another, and each arrow must point down the layers (base modules further down their
//! own order, stages never at each other, only `handler` at a stage, only `lambda` at `handler`),
//! so that no import circle can come back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module with its rank; an arrow goes from a higher rank to a lower one.
const LAYERS: &[(&str, u8)] = &[
    ("ids", 0),
    ("error", 1),
    ("telemetry", 2),
    ("config", 3),
    ("aws", 4),
    ("job", 5),
    ("route", 6),
    ("access", 6),
    ("lookup", 6),
    ("reply", 6),
    ("handler", 7),
    ("lambda", 8),
];
const STAGES: &[&str] = &["route", "access", "lookup", "reply"];

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

/// The top-level module a file belongs to (`src/lookup/shared/table.rs` is `lookup`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_str().unwrap();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules a piece of code names through `crate::`: plain paths
/// (`crate::job::JobView`) and `use crate::{a, b::c}` groups. Comments are left out.
fn arrows_in(code: &str) -> BTreeSet<String> {
    let code: String = code
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
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
        rest = after;
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let from = module_of(&src, &file);
        if from == "lib" || from == "main" {
            continue;
        }
        let code = std::fs::read_to_string(&file).unwrap();
        let to: BTreeSet<String> = arrows_in(&code).into_iter().filter(|m| *m != from).collect();
        graph.entry(from).or_default().extend(to);
    }
    graph
}

fn rank(module: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .unwrap_or_else(|| panic!("{module} is not on the map in src/lib.rs and in LAYERS here"))
        .1
}

#[test]
fn every_module_is_on_the_map_and_every_arrow_points_down() {
    let graph = graph();
    let on_map: BTreeSet<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    let found: BTreeSet<&str> = graph.keys().map(String::as_str).collect();
    assert_eq!(found, on_map, "the modules of src/ against the map");
    let mut wrong = Vec::new();
    for (from, tos) in &graph {
        for to in tos {
            let ok = rank(from) > rank(to)
                && (!STAGES.contains(&to.as_str()) || from == "handler")
                && (to != "handler" || from == "lambda");
            if !ok {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "arrows against the layers: {wrong:?}");
}

#[test]
fn there_is_no_import_circle() {
    let graph = graph();
    // Depth-first, with the path so far: a module met again on the path closes a circle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("import circle: {} -> {m}", path[i..].join(" -> "));
        }
        if !done.insert(m.to_owned()) {
            return;
        }
        path.push(m.to_owned());
        for to in graph.get(m).into_iter().flatten() {
            visit(to, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_reader_finds_arrows_of_every_form() {
    let code = "use crate::ids::JobId;\nuse crate::{aws, job::JobView};\n// crate::lambda in a comment\nlet x = crate::config::X;";
    let found: Vec<String> = arrows_in(code).into_iter().collect();
    assert_eq!(found, ["aws", "config", "ids", "job"]);
}
