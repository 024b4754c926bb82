//! The server crate's module structure, checked: which top-level modules refer to which
//! (`crate::<module>` paths outside `#[cfg(test)]` code), and the import loops among them.
//!
//! Modules in a loop cannot be understood, tested or moved one at a time. The loop that
//! grew while the server was one crate is being taken apart (issue 13); `KNOWN_LOOP` lists
//! what is left of it. This test fails when a module joins a loop, and also when a listed
//! module has left every loop, so the list only ever shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules still in one import loop. Remove a module here when its last loop is broken.
const KNOWN_LOOP: &[&str] = &["aof", "client", "command", "persist", "repl", "server"];

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every source file of the server crate: its path below `src/` and its text.
fn sources() -> Vec<(std::path::PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                files.push((p.strip_prefix(&src).unwrap().to_path_buf(), text));
            }
        }
    }
    files
}

/// Top-level module of every source file and the modules its non-test code names.
fn graph() -> Graph {
    let mut g = Graph::new();
    for (rel, text) in sources() {
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        // Test modules sit at the end of a file; what they use is not structure.
        let code = text.split("#[cfg(test)]").next().unwrap();
        let deps = g.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                deps.insert(name);
            }
        }
    }
    // Names that are not modules of this crate (re-exported lower crates) are no edges.
    let modules: BTreeSet<String> = g.keys().cloned().collect();
    for deps in g.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    g
}

/// The modules that are in some loop (strongly connected components larger than one).
fn looping(g: &Graph) -> BTreeSet<String> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for d in &g[&m] {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    g.keys()
        .filter(|m| reach(m).contains(*m))
        .cloned()
        .collect()
}

#[test]
fn import_loops_only_shrink() {
    let g = graph();
    let now = looping(&g);
    let known: BTreeSet<String> = KNOWN_LOOP.iter().map(|s| s.to_string()).collect();
    let joined: Vec<_> = now.difference(&known).collect();
    let left: Vec<_> = known.difference(&now).collect();
    let edges = |m: &String| format!("{m} -> {:?}", g[m].iter().collect::<Vec<_>>());
    assert!(
        joined.is_empty(),
        "modules that joined an import loop: {joined:?}\n{}",
        joined
            .iter()
            .map(|m| edges(m))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        left.is_empty(),
        "modules no longer in any loop: remove {left:?} from KNOWN_LOOP"
    );
}

#[test]
fn the_graph_sees_the_modules() {
    let g = graph();
    for m in ["server", "command", "net", "clock", "reply", "error"] {
        assert!(g.contains_key(m), "{m} missing from {:?}", g.keys());
    }
    assert!(g["net"].contains("command"));
    assert!(g["clock"].is_empty(), "clock depends on {:?}", g["clock"]);
}

/// The server reads time only through `clock` (so it can be cached, reasoned about and
/// one day faked in one place); tests and the layers below may use the standard clock.
#[test]
fn only_clock_reads_time() {
    let mut offenders = Vec::new();
    for (rel, text) in sources() {
        if rel.ends_with("clock.rs") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            if line.contains("Instant::now()") || line.contains("SystemTime::now()") {
                offenders.push(format!("src/{}:{}", rel.display(), n + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "read time through crate::clock: {offenders:#?}"
    );
}
