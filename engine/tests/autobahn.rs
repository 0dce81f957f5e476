//! The Autobahn|Testsuite fuzzing client (PyPI `autobahntestsuite` 0.8.2, Python 2.7)
//! against the `echo` party: every case of sections 1-10 must end OK, NON-STRICT or
//! INFORMATIONAL, and every close must be OK or INFORMATIONAL.
//!
//! `wstest` is found through `PARTYLINE_WSTEST`, then `PATH`, then `~/.local/bin`. Without
//! it the test says so and passes, unless `PARTYLINE_REQUIRE_AUTOBAHN=1` (set by .ci/run,
//! which installs it) makes its absence a failure.

mod common;

use common::*;
use partyline::Server;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn find_wstest() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PARTYLINE_WSTEST") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("wstest"));
    let local = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/bin/wstest"));
    on_path.chain(local).find(|p| p.is_file())
}

#[test]
fn autobahn_fuzzingclient_sections_1_to_10() {
    let Some(wstest) = find_wstest() else {
        let required = std::env::var("PARTYLINE_REQUIRE_AUTOBAHN").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "wstest not found: install it with `python2.7 -m pip install --user autobahntestsuite==0.8.2` \
             or set PARTYLINE_WSTEST"
        );
        eprintln!("SKIPPED autobahn: wstest not found (see the test's doc comment)");
        return;
    };
    let mut cfg = config(2);
    // Section 9 sends messages up to 16 MiB: the large profile.
    cfg.limits.message_size_max = partyline_protocol::limits::WS_MESSAGE_SIZE_MAX_LARGE;
    cfg.limits.outbound_bytes_max = 2 * cfg.limits.message_size_max;
    let (srv, addr) = start(Server::new(cfg).with_builtin_parties());

    let dir = std::env::temp_dir().join(format!("partyline-autobahn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let reports = dir.join("reports");
    let spec = serde_json::json!({
        "outdir": reports,
        "servers": [{ "agent": "partyline", "url": format!("ws://{addr}/parties/echo/autobahn") }],
        "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "8.*", "9.*", "10.*"],
        "exclude-cases": [],
        "exclude-agent-cases": {}
    });
    let spec_path = dir.join("fuzzingclient.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();

    let mut child = Command::new(&wstest)
        .args(["-m", "fuzzingclient", "-s"])
        .arg(&spec_path)
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("wstest runs");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(900) {
            let _ = child.kill();
            panic!("wstest ran for more than 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "wstest failed: {status}");

    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("index.json")).unwrap())
            .unwrap();
    let cases = index["partyline"].as_object().expect("results for agent partyline");
    let mut bad = Vec::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (case, result) in cases {
        let behavior = result["behavior"].as_str().unwrap_or("?");
        let close = result["behaviorClose"].as_str().unwrap_or("?");
        *counts.entry(behavior.to_owned()).or_default() += 1;
        if !matches!(behavior, "OK" | "NON-STRICT" | "INFORMATIONAL")
            || !matches!(close, "OK" | "INFORMATIONAL")
        {
            bad.push(format!("{case}: {behavior} / close {close}"));
        }
    }
    eprintln!("autobahn: {} cases, {counts:?}", cases.len());
    assert!(cases.len() >= 300, "only {} cases ran", cases.len());
    assert!(bad.is_empty(), "failing Autobahn cases:\n{}", bad.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
    srv.shutdown().unwrap();
}
