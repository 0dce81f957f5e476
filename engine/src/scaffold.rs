//! `partyline new <name>`: writes a ready party project: a Cargo.toml depending on this
//! engine, a party with every hook stubbed and commented (`src/main.rs`), a test with the
//! party test harness (`tests/party.rs`), a README with the two commands that run and test
//! it, and the engine's own Cargo.lock, so the project builds with the dependency versions
//! the engine was tested with.

use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("../templates/new/Cargo.toml.tmpl");
const MAIN_RS: &str = include_str!("../templates/new/main.rs.tmpl");
const TEST_RS: &str = include_str!("../templates/new/test.rs.tmpl");
const README: &str = include_str!("../templates/new/README.md.tmpl");
const CARGO_LOCK: &str = include_str!("../../Cargo.lock");

/// Where this engine's crate was built from: the default dependency of a new project.
pub fn engine_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes project `name` into `parent/name` (which must not exist yet), depending on the
/// engine crate at `engine`. Returns the project's folder.
pub fn new_project(parent: &Path, name: &str, engine: &Path) -> Result<PathBuf, String> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        return Err(format!(
            "{name:?}: a project name is 1 to 64 of a-z 0-9 _ -, starting with a letter"
        ));
    }
    if !engine.join("Cargo.toml").is_file() {
        return Err(format!(
            "no engine crate at {} (pass --engine with the path of partyline's engine/ folder)",
            engine.display()
        ));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let engine = engine.canonicalize().map_err(|e| format!("{}: {e}", engine.display()))?;
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{Name}}", &type_name(name))
            .replace("{{engine}}", &engine.display().to_string())
    };
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("Cargo.lock", CARGO_LOCK.to_owned()),
        ("src/main.rs", fill(MAIN_RS)),
        ("tests/party.rs", fill(TEST_RS)),
        ("README.md", fill(README)),
        (".gitignore", "/target\n".to_owned()),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(dir)
}

/// `my-party` -> `MyParty`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_types_derived() {
        assert_eq!(type_name("my-party_2"), "MyParty2");
        let dir = std::env::temp_dir();
        for bad in ["", "1abc", "Abc", "a b", "a/b", "..", &"a".repeat(65)] {
            assert!(new_project(&dir, bad, &engine_path()).is_err(), "{bad:?}");
        }
        assert!(
            new_project(&dir, "ok", Path::new("/nonexistent")).unwrap_err().contains("--engine")
        );
    }
}
