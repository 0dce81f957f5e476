//! Runs a Node test file (Node's own test runner) from engine/tests/js against a server,
//! with the unmodified npm packages pinned there (installed with `npm ci` if missing),
//! within a deadline; returns its report or fails the test with it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one Node test file may take.
const NODE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `file` with `env`; asserts it passed `passes` tests; returns the report.
pub fn run_node_tests(file: &str, env: &[(&str, &str)], passes: usize) -> String {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if !js.join("node_modules/yjs").exists() || !js.join("node_modules/partysocket").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&js)
            .status()
            .expect("npm must be installed to run the client tests (apt-get install npm)");
        assert!(status.success(), "npm ci failed in {}", js.display());
    }
    let mut command = Command::new("node");
    command
        .args(["--test", "--test-reporter=spec", file])
        .current_dir(&js)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut node = command.spawn().expect("node must be installed to run the client tests");
    // A client left open after a failure keeps node alive: bound the wait.
    let deadline = Instant::now() + NODE_TIMEOUT;
    let status = loop {
        if let Some(status) = node.try_wait().expect("node's status") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = node.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = node.wait_with_output().expect("node's output");
    let report =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(status.is_some(), "{file} still running after {NODE_TIMEOUT:?}:\n{report}");
    assert!(out.status.success(), "{file} failed:\n{report}");
    assert!(
        report.contains(&format!("pass {passes}")),
        "expected {passes} passing tests:\n{report}"
    );
    report
}
