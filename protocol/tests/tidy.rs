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
