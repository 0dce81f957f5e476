//! `partyline new <name>` writes a project that builds and whose test passes as written:
//! the test creates one in a temporary folder and runs `cargo test` in it (its own target
//! folder, offline: every crate it needs is the engine's, already fetched).

use std::process::Command;

#[test]
fn a_new_project_builds_and_its_test_passes() {
    let parent = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("new-project");
    let _ = std::fs::remove_dir_all(parent.join("my-party"));
    std::fs::create_dir_all(&parent).expect("folder");
    let out = Command::new(env!("CARGO_BIN_EXE_partyline"))
        .args(["new", "my-party", "--path"])
        .arg(&parent)
        .output()
        .expect("partyline runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = parent.join("my-party");
    for file in ["Cargo.toml", "Cargo.lock", "src/main.rs", "tests/party.rs", "README.md"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("cargo run") && readme.contains("cargo test"), "{readme}");
    // A second time, the folder exists: refused, nothing overwritten.
    let again = Command::new(env!("CARGO_BIN_EXE_partyline"))
        .args(["new", "my-party", "--path"])
        .arg(&parent)
        .output()
        .expect("partyline runs");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let test = Command::new(cargo)
        .args(["test", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", parent.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let said =
        String::from_utf8_lossy(&test.stdout).into_owned() + &String::from_utf8_lossy(&test.stderr);
    assert!(test.status.success(), "cargo test in the new project failed:\n{said}");
    assert!(said.contains("2 passed"), "both template tests run: {said}");
}
