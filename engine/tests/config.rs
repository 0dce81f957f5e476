//! The configuration examples in the docs must stay true: the TOML block of
//! docs/operations.md parses into a `Config` (unknown keys are refused) with the values it
//! states, and its limits pass validation.

use partyline::Config;
use std::path::Path;

#[test]
fn operations_doc_example_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let doc = std::fs::read_to_string(root.join("docs/operations.md")).expect("docs/operations.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("end of the toml block");
    let path = std::env::temp_dir().join(format!("partyline-ops-{}.toml", std::process::id()));
    std::fs::write(&path, &doc[start..end]).unwrap();
    let config = Config::from_toml_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_file(&path);
    assert_eq!(config.listen.to_string(), "0.0.0.0:1999");
    assert_eq!(config.env.get("API_URL").map(String::as_str), Some("https://example.invalid"));
    assert_eq!(config.limits, partyline::Limits::default(), "the doc lists the defaults");
    assert_eq!(config.storage, partyline::StoreConfig::default(), "the doc lists the defaults");
    config.limits.validate().expect("documented limits are valid");
}

#[test]
fn unknown_keys_are_refused() {
    let path = std::env::temp_dir().join(format!("partyline-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "[limits]\nmessage_size_maximum = 5\n").unwrap();
    let err = Config::from_toml_file(&path).unwrap_err();
    let _ = std::fs::remove_file(&path);
    assert!(err.contains("message_size_maximum"), "{err}");
}
