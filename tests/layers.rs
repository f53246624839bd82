//! The crate's layers point one way: the module map in `src/lib.rs` gives each
//! top-level module a layer number, and a module may use only modules on lower
//! layers. This test reads every `crate::` path in the non-test code of `src/`
//! (comments and `#[cfg(test)]` items left out; test code may reach anywhere)
//! and fails on any edge the map does not allow, naming the file. So a new
//! upward import (say, the store reaching into the federation protocol) fails
//! here, and the map in `lib.rs` stays the truth.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The layer table of `src/lib.rs`: rows `//! | N | [`module`] | …`.
fn layers() -> BTreeMap<String, u32> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! |") else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (Some(n), Some(m)) = (cells.first(), cells.get(1)) else {
            continue;
        };
        let (Ok(n), Some(m)) = (n.parse::<u32>(), m.strip_prefix("[`")) else {
            continue;
        };
        out.insert(m.trim_end_matches("`]").to_owned(), n);
    }
    out
}

/// `text` without comments and without `#[cfg(test)]` items.
fn production_code(text: &str) -> String {
    let mut code = String::with_capacity(text.len());
    for line in text.lines() {
        // A `//` outside a string literal starts a comment (good enough for
        // this crate's code: no `//` inside char literals).
        let mut in_str = false;
        let mut prev = ' ';
        let mut cut = line.len();
        for (i, c) in line.char_indices() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            }
            if !in_str && c == '/' && prev == '/' {
                cut = i - 1;
                break;
            }
            prev = c;
        }
        code.push_str(&line[..cut]);
        code.push('\n');
    }
    while let Some(at) = code.find("#[cfg(test)]") {
        let rest = &code[at..];
        let semi = rest.find(';');
        let brace = rest.find('{');
        let end = match (semi, brace) {
            (Some(s), Some(b)) if s < b => at + s + 1,
            (Some(s), None) => at + s + 1,
            (_, Some(b)) => {
                let mut depth = 0usize;
                let mut end = code.len();
                for (i, c) in code[at + b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = at + b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, None) => code.len(),
        };
        code.replace_range(at..end, "");
    }
    code
}

/// The top-level modules that `code` names through `crate::…`, including
/// grouped imports (`use crate::{a, b::c}`).
fn referenced(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `some_crate::`, not `crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let close = group.find('}').unwrap_or(group.len());
            for item in group[..close].split(',') {
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
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Every edge `from → to` between top-level modules, with the files that make it.
fn edges() -> BTreeMap<(String, String), Vec<String>> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for f in files {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(&f).unwrap());
        for to in referenced(&code) {
            if to != top {
                out.entry((top.clone(), to)).or_default().push(rel.clone());
            }
        }
    }
    out
}

#[test]
fn every_module_is_on_the_map() {
    let map = layers();
    assert!(map.len() >= 10, "the layer table in src/lib.rs: {map:?}");
    let mut tops = BTreeSet::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let name = name.trim_end_matches(".rs").to_owned();
        if name != "lib" && name != "main" {
            tops.insert(name);
        }
    }
    let mapped: BTreeSet<String> = map.keys().cloned().collect();
    assert_eq!(
        tops, mapped,
        "src/ and the layer table in src/lib.rs differ"
    );
}

#[test]
fn layers_point_one_way() {
    let map = layers();
    let mut wrong = Vec::new();
    for ((from, to), files) in edges() {
        let (Some(lf), Some(lt)) = (map.get(&from), map.get(&to)) else {
            wrong.push(format!("{from} -> {to}: not on the map ({files:?})"));
            continue;
        };
        if lt >= lf {
            wrong.push(format!(
                "{from} (layer {lf}) -> {to} (layer {lt}) in {}",
                files.join(", ")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layer order of src/lib.rs:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn the_reader_sees_what_it_must() {
    // The checks above are only as good as the parsing: test it on the shapes
    // the crate uses.
    let code = production_code(
        "use crate::store::Store; // crate::cli in a comment\n\
         use crate::{model, seal::Sealer};\n\
         let s = \"https://crate::nope\";\n\
         fn f() { other_crate::x(); crate::policy::f() }\n\
         #[cfg(test)]\nmod tests { use crate::api::x; }\n\
         #[cfg(test)]\nuse crate::node::y;\n",
    );
    let got = referenced(&code);
    let want: BTreeSet<String> = ["store", "model", "seal", "policy", "nope"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got, want);
}
