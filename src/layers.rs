//! The crate's layers, bottom to top. A module may import only from its own
//! layer's other modules that it does not cycle with, and from the layers
//! below it; a test reads every source file and enforces it, and also that
//! no two files of one module import each other (in a circle of any length).
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 0 | `backend`, `bounded`, `clock`, `content_id`, `digest_map`, `fsutil` | plain building blocks |
//! | 1 | `crypto`, `gpu` | field cryptography (Poseidon), the wgpu device |
//! | 2 | `hash`, `msm`, `ntt` | the kernels, each on the CPU (and the GPU) |
//! | 3 | `resource`, `tuning` | the data model; the kernels' knobs |
//! | 4 | `error` | execution errors |
//! | 5 | `capability` | tokens, caveats, key rings |
//! | 6 | `context` | what a batch runs under, and authorizing its accesses |
//! | 7 | `vm` | the logic-program interpreter |
//! | 8 | `store`, `tel` | the durable store; the TEL compiler |
//! | 9 | `prove` | Groth16 and the proof-system seam |
//! | 10 | `batch` | the executor |
//! | 11 | `service` | `cvm serve`: jobs, their store and the gRPC API |
//!
//! The `cvm` binary sits above them all.

/// Every library module with its layer (see the module docs).
pub const LAYERS: &[(&str, u8)] = &[
    ("backend", 0),
    ("bounded", 0),
    ("clock", 0),
    ("content_id", 0),
    ("digest_map", 0),
    ("fsutil", 0),
    ("crypto", 1),
    ("gpu", 1),
    ("hash", 2),
    ("msm", 2),
    ("ntt", 2),
    ("resource", 3),
    ("tuning", 3),
    ("error", 4),
    ("capability", 5),
    ("context", 6),
    ("vm", 7),
    ("store", 8),
    ("tel", 8),
    ("prove", 9),
    ("batch", 10),
    ("service", 11),
    ("layers", 0),
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use super::LAYERS;

    fn layer(module: &str) -> Option<u8> {
        LAYERS.iter().find(|(name, _)| *name == module).map(|(_, layer)| *layer)
    }

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The code of a file without its comments (doc links name modules too)
    /// and without its `#[cfg(test)]` module (tests may reach anywhere).
    fn code(path: &Path) -> String {
        let text = std::fs::read_to_string(path).unwrap();
        let text = match text.find("#[cfg(test)]\nmod tests") {
            Some(at) => &text[..at],
            None => &text[..],
        };
        text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
    }

    /// Identifiers following `prefix` in `code` (`crate::hash::X` gives
    /// `hash`; `crate::{hash::X, msm}` gives `hash` and `msm`).
    fn names_after<'a>(code: &'a str, prefix: &str) -> BTreeSet<&'a str> {
        let ident =
            |rest: &'a str| &rest[..rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len())];
        let mut names = BTreeSet::new();
        for (at, _) in code.match_indices(prefix) {
            if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &code[at + prefix.len()..];
            match rest.strip_prefix('{') {
                // A group: the first identifier of each top-level entry.
                Some(group) => {
                    let (mut depth, mut start) = (0usize, 0usize);
                    for (i, c) in group.char_indices() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => {
                                names.insert(ident(group[start..].trim_start()));
                                break;
                            }
                            '}' => depth -= 1,
                            ',' if depth == 0 => {
                                names.insert(ident(group[start..].trim_start()));
                                start = i + 1;
                            }
                            _ => {}
                        }
                    }
                }
                None => {
                    names.insert(ident(rest));
                }
            }
        }
        names.remove("");
        names
    }

    fn src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    #[test]
    fn every_module_imports_only_its_layer_and_below() {
        let root = src();
        let mut files = Vec::new();
        sources(&root, &mut files);
        let mut violations = Vec::new();
        for file in files.iter().filter(|f| !f.starts_with(root.join("bin"))) {
            let relative = file.strip_prefix(&root).unwrap();
            let first = relative.components().next().unwrap().as_os_str().to_str().unwrap();
            let module = first.trim_end_matches(".rs");
            if module == "lib" {
                continue;
            }
            let own = layer(module).unwrap_or_else(|| panic!("src/{first} is not in layers::LAYERS"));
            for used in names_after(&code(file), "crate::") {
                if used == module {
                    continue;
                }
                match layer(used) {
                    Some(theirs) if theirs <= own => {}
                    Some(theirs) => violations
                        .push(format!("{} (layer {own}) imports crate::{used} (layer {theirs})", relative.display())),
                    None => {}
                }
            }
        }
        assert!(violations.is_empty(), "imports of a layer above:\n{}", violations.join("\n"));
    }

    #[test]
    fn modules_of_one_layer_do_not_import_each_other_both_ways() {
        let root = src();
        let mut uses: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (module, _) in LAYERS {
            let (dir, file) = (root.join(module), root.join(format!("{module}.rs")));
            let mut files = Vec::new();
            if dir.is_dir() {
                sources(&dir, &mut files);
            } else {
                files.push(file);
            }
            let set = uses.entry(module).or_default();
            for f in files {
                set.extend(names_after(&code(&f), "crate::").into_iter().map(str::to_string));
            }
        }
        for (a, used) in &uses {
            for b in used {
                if b != a && uses.get(b.as_str()).is_some_and(|theirs| theirs.contains(*a)) {
                    panic!("crate::{a} and crate::{b} import each other");
                }
            }
        }
    }

    /// Within one module directory, the files (its `mod.rs` aside, which
    /// declares and re-exports them) form no import cycle.
    #[test]
    fn no_file_cycles_within_a_module() {
        let mut dirs = vec![src()];
        let mut cycles = Vec::new();
        while let Some(dir) = dirs.pop() {
            let mut siblings = BTreeMap::new();
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path.clone());
                    if path.join("mod.rs").exists() {
                        siblings.insert(path.file_name().unwrap().to_str().unwrap().to_string(), path.join("mod.rs"));
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
                    if stem != "mod" && stem != "lib" && stem != "main" {
                        siblings.insert(stem, path);
                    }
                }
            }
            if dir == src() {
                continue; // top-level modules: the layer tests above
            }
            let edges: BTreeMap<&String, BTreeSet<&String>> = siblings
                .iter()
                .map(|(name, path)| {
                    let code = code(path);
                    let used = names_after(&code, "super::");
                    (name, siblings.keys().filter(|other| *other != name && used.contains(other.as_str())).collect())
                })
                .collect();
            // Depth-first search for a back edge.
            fn visit<'a>(
                node: &'a String,
                edges: &BTreeMap<&'a String, BTreeSet<&'a String>>,
                path: &mut Vec<&'a String>,
                done: &mut BTreeSet<&'a String>,
                found: &mut Vec<String>,
            ) {
                if let Some(at) = path.iter().position(|n| *n == node) {
                    let cycle: Vec<&str> = path[at..].iter().map(|s| s.as_str()).collect();
                    found.push(format!("{} -> {node}", cycle.join(" -> ")));
                    return;
                }
                if !done.insert(node) {
                    return;
                }
                path.push(node);
                for next in &edges[node] {
                    visit(next, edges, path, done, found);
                }
                path.pop();
            }
            let mut done = BTreeSet::new();
            let mut found = Vec::new();
            for node in edges.keys() {
                visit(node, &edges, &mut Vec::new(), &mut done, &mut found);
            }
            cycles.extend(found.into_iter().map(|c| format!("{}: {c}", dir.display())));
        }
        assert!(cycles.is_empty(), "file import cycles:\n{}", cycles.join("\n"));
    }
}
