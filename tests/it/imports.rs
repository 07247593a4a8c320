//! The modules of `src/` import one another without a circle: reading the `crate::…` paths of
//! every file (tests and comments left out), each top-level module's imports form a graph that
//! must have no cycle, so that every module can be read knowing only what it imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules each module of `src/` uses.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap();
        let name = relative.to_string_lossy();
        // Test-only files (`tests.rs`, a `tests/` folder) may reach anywhere, as `#[cfg(test)]`
        // sections may.
        let test_only = relative.components().any(|c| c.as_os_str() == "tests")
            || relative.file_name().is_some_and(|f| f == "tests.rs");
        if path.extension().is_none_or(|e| e != "rs")
            || name == "lib.rs"
            || name == "main.rs"
            || test_only
        {
            continue;
        }
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let code = code_of(&std::fs::read_to_string(&path).unwrap());
        let imports = graph.entry(module.clone()).or_default();
        for used in used_modules(&code) {
            if used != module {
                imports.insert(used);
            }
        }
    }
    graph
}

/// A file's code without its tests (which may reach anywhere) and comments (which import
/// nothing).
fn code_of(text: &str) -> String {
    text.split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module named in `crate::x` or `crate::{x, y::…}`.
fn used_modules(code: &str) -> Vec<String> {
    names_after(code, "crate::")
}

/// Every name that follows `prefix` (`prefix` then `x`, or `prefix` then `{x, y::…}`): the first
/// segment of each path.
fn names_after(code: &str, prefix: &str) -> Vec<String> {
    let mut used = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        rest = &rest[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    used.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.push(name);
            }
        }
    }
    used
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_of_src_import_one_another_without_a_circle() {
    let graph = import_graph();
    assert!(graph.len() > 10, "read too few modules: {graph:?}");
    assert!(
        graph["server"].contains("relay"),
        "the reading of imports works"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("an import circle: {}", cycle.join(" -> "));
    }
}

/// The files of the module `dir` (`src/<dir>/`) and which of them each imports: a file that
/// names `super::x` or `crate::<dir>::x` imports the file `x` if there is one, else `mod.rs`
/// (whose `x` it is, perhaps as a re-export); `mod.rs` imports each file it names (`x::…`).
fn file_graph(dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let files: BTreeMap<String, String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, code_of(&std::fs::read_to_string(&path).unwrap()))
        })
        .collect();
    let mut graph = BTreeMap::new();
    for (file, code) in &files {
        let mut imports = BTreeSet::new();
        if file == "mod" {
            for other in files.keys().filter(|f| *f != "mod") {
                let named = code.match_indices(&format!("{other}::")).any(|(at, _)| {
                    !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
                });
                if named {
                    imports.insert(other.clone());
                }
            }
        } else {
            let mut names = names_after(code, "super::");
            names.extend(names_after(code, &format!("crate::{dir}::")));
            for name in names {
                match files.contains_key(&name) {
                    true => imports.insert(name),
                    false => imports.insert("mod".to_owned()),
                };
            }
        }
        imports.remove(file);
        graph.insert(file.clone(), imports);
    }
    graph
}

/// `event/` reads as floors too: the vocabulary (`normal.rs`, `error.rs`, `fields.rs`) below the
/// source kinds, which `source.rs` dispatches to, and `mod.rs` naming what the rest of the relay
/// uses.
#[test]
fn the_files_of_event_import_one_another_without_a_circle() {
    let graph = file_graph("event");
    assert!(
        graph["source"].contains("thousandeyes") && graph["thousandeyes"].contains("normal"),
        "the reading of imports works: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("an import circle in event/: {}", cycle.join(" -> "));
    }
}

#[test]
fn lib_rs_lists_each_module_after_the_modules_it_imports() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let listed: Vec<String> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("//! - [`"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name.to_owned()))
        .collect();
    let graph = import_graph();
    let mut unlisted: Vec<&String> = graph.keys().filter(|m| !listed.contains(m)).collect();
    unlisted.retain(|m| m.as_str() != "main");
    assert!(
        unlisted.is_empty(),
        "modules missing from lib.rs's map: {unlisted:?}"
    );
    for (at, module) in listed.iter().enumerate() {
        for used in graph.get(module).into_iter().flatten() {
            let before = listed[..at].contains(used);
            assert!(
                before,
                "{module} imports {used}, which lib.rs lists after it"
            );
        }
    }
}

#[test]
fn a_circle_is_found_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(m, uses)| (m.to_owned(), uses.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        used_modules(
            "use crate::{auth::Denied, error::ConfigError};\nlet x = crate::http::client(t);"
        ),
        ["auth", "error", "http"]
    );
}
