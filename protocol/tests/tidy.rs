//! Workspace-wide checks that run as ordinary tests, so nobody has to remember them:
//! formatting, clippy with warnings denied, a `//!` paragraph atop every Rust file, no
//! debugging or placeholder macros outside tests, and the fuzz targets still build.
//!
//! They live in the protocol crate because every other crate depends on it; they look at
//! the whole workspace. The cargo runs use their own target directory so they never wait
//! on the lock of the `cargo test` that started them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("protocol/ has a parent").to_owned()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd.env("CARGO_TARGET_DIR", workspace_root().join("target").join("tidy"));
    cmd
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn formatting() {
    let mut cmd = cargo();
    cmd.args(["fmt", "--all", "--", "--check"]);
    run(cmd, "cargo fmt --all -- --check (fix with `cargo fmt --all`)");
}

#[test]
fn clippy_denies_warnings() {
    let mut cmd = cargo();
    cmd.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    run(cmd, "cargo clippy --workspace --all-targets -- -D warnings");
}

#[test]
fn fuzz_targets_build() {
    let mut cmd = cargo();
    cmd.args(["check", "--manifest-path", "protocol/fuzz/Cargo.toml", "--bins"]);
    run(cmd, "cargo check of protocol/fuzz");
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("readable entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "target" | "node_modules" | ".git" | "corpus" | "artifacts") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_file_opens_with_a_doc_paragraph_and_no_placeholders() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 10, "found only {} Rust files under {}", files.len(), root.display());
    // Spelled in pieces so this file does not match itself.
    let banned =
        [["dbg", "!("].concat(), ["todo", "!("].concat(), ["unimplemented", "!("].concat()];
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("UTF-8 source");
        let rel = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        if !text.trim_start().starts_with("//!") {
            problems
                .push(format!("{rel}: must start with a `//!` paragraph saying what it is for"));
        }
        let is_test =
            rel.contains("/tests/") || rel.contains("/benches/") || rel.contains("/fuzz/");
        let non_test = match text.find("#[cfg(test)]") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        if !is_test {
            for needle in &banned {
                if non_test.contains(needle.as_str()) {
                    problems.push(format!("{rel}: contains `{needle}` outside tests"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "tidy problems:\n{}", problems.join("\n"));
}

/// The engine's modules by layer, as docs/ARCHITECTURE.md states them (between the
/// `engine-layers` markers): `layer N: module module ...`, lowest first.
fn documented_layers(root: &Path) -> Vec<(usize, Vec<String>)> {
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("architecture doc");
    let start =
        doc.find("<!-- engine-layers -->").expect("an engine-layers block in ARCHITECTURE.md");
    let end = doc.find("<!-- /engine-layers -->").expect("the end of the engine-layers block");
    doc[start..end]
        .lines()
        .filter_map(|line| {
            let (layer, modules) = line.trim().strip_prefix("layer ")?.split_once(':')?;
            let layer = layer.trim().parse().expect("a layer number");
            Some((layer, modules.split_whitespace().map(str::to_owned).collect()))
        })
        .collect()
}

/// The top-level modules a Rust source refers to as `crate::<module>` (in code, not in
/// comments), including inside `use crate::{a::X, b::Y}` groups.
fn crate_modules_used(text: &str) -> Vec<String> {
    let code: String =
        text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let mut used = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the brace group: the first path segment of each.
            let (mut depth, mut item_start, mut items) = (0usize, 0usize, Vec::new());
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        items.push(&group[item_start..i]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&group[item_start..i]);
                        item_start = i + 1;
                    }
                    _ => {}
                }
            }
            used.extend(items.iter().filter_map(|item| first_segment(item.trim())));
        } else if let Some(name) = first_segment(rest) {
            used.push(name);
        }
    }
    used
}

/// `a` of `a::b::C` when `a` is a module path segment (lower case, followed by `::`).
fn first_segment(path: &str) -> Option<String> {
    let end = path.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let name = &path[..end];
    let is_module =
        path[end..].starts_with("::") && name.starts_with(|c: char| c.is_ascii_lowercase());
    is_module.then(|| name.to_owned())
}

#[test]
fn engine_modules_depend_only_on_lower_layers() {
    let root = workspace_root();
    let layers = documented_layers(&root);
    let layer_of =
        |m: &str| layers.iter().find(|(_, ms)| ms.iter().any(|x| x == m)).map(|(l, _)| *l);
    let src = root.join("engine/src");
    let mut problems = Vec::new();
    let mut modules = Vec::new();
    for entry in std::fs::read_dir(&src).expect("engine/src") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or("").to_owned();
        if matches!(name.as_str(), "lib" | "main") {
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else {
            files.push(path.clone());
        }
        modules.push(name.clone());
        let Some(layer) = layer_of(&name) else {
            problems.push(format!("module `{name}` has no layer in docs/ARCHITECTURE.md"));
            continue;
        };
        for file in files {
            let text = std::fs::read_to_string(&file).expect("UTF-8 source");
            for used in crate_modules_used(&text) {
                if used == name {
                    continue;
                }
                match layer_of(&used) {
                    Some(l) if l < layer => {}
                    Some(l) => problems.push(format!(
                        "{}: `{name}` (layer {layer}) uses `{used}` (layer {l}); a module may \
                         use only lower layers",
                        file.strip_prefix(&root).unwrap_or(&file).display()
                    )),
                    None => problems.push(format!(
                        "{}: uses `crate::{used}`, which has no layer",
                        file.strip_prefix(&root).unwrap_or(&file).display()
                    )),
                }
            }
        }
    }
    for (_, names) in &layers {
        for m in names {
            if !modules.contains(m) {
                problems.push(format!("docs/ARCHITECTURE.md lists `{m}`, which is not a module"));
            }
        }
    }
    assert!(problems.is_empty(), "engine layering problems:\n{}", problems.join("\n"));
}

#[test]
fn the_layer_check_sees_grouped_and_nested_uses() {
    let text =
        "use crate::{a::X, b::{c::Y, Z}, Root};\n// crate::hidden::Z\nlet v = crate::d::f();";
    assert_eq!(crate_modules_used(text), ["a", "b", "d"]);
}
