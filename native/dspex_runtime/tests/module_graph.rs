//! The runtime's modules form a layered graph: no module depends, directly or through
//! others, on itself. Read from the source: every `crate::name` outside comments is an edge
//! (lib.rs is the root and only wires the modules together). Also: no source file over
//! 450 lines, and each module says what it owns in a `//!` comment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn sources() -> BTreeMap<String, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The modules `source` names as `crate::module`, ignoring comments.
fn uses(source: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        assert!(
            !code.contains("crate::{"),
            "write `use crate::module::...` per module, not `crate::{{...}}`: {line}"
        );
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            assert!(
                modules.contains(&name),
                "`crate::{name}` is not a module path (a re-export from lib.rs hides an edge): {line}"
            );
            found.insert(name);
        }
    }
    found
}

#[test]
fn no_module_depends_on_itself() {
    let sources = sources();
    let modules: BTreeSet<String> = sources.keys().filter(|m| *m != "lib").cloned().collect();
    let graph: BTreeMap<&str, BTreeSet<String>> = sources
        .iter()
        .filter(|(m, _)| *m != "lib")
        .map(|(m, s)| (m.as_str(), uses(s, &modules)))
        .collect();
    // Depth-first search from every module; a module reached again on its own path is a cycle.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<&'a str, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| *p == m) {
            panic!("module cycle: {} -> {m}", path[at..].join(" -> "));
        }
        path.push(m);
        for next in &graph[m] {
            if next != m {
                visit(next, graph, path, done);
            }
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn files_are_short_and_say_what_they_own() {
    for (name, source) in sources() {
        let lines = source.lines().count();
        assert!(lines <= 450, "{name}.rs has {lines} lines");
        assert!(
            source.starts_with("//!"),
            "{name}.rs does not start with a //! comment"
        );
    }
}
