//! The live dashboard on the admin listener, loaded in a real headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) against a server with traffic: the figures the
//! page shows match `/metrics`, the party table lists the party, and a screenshot is kept
//! as a test artifact (`target/tmp/dashboard.png`).
//!
//! Without Chromium the test says so and passes, unless `PARTYLINE_REQUIRE_CHROMIUM` is
//! set (as `.ci/run` sets it).

mod common;

use common::*;
use partyline::Server;
use std::process::Command;

fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()));
    if found.is_none() {
        assert!(
            std::env::var_os("PARTYLINE_REQUIRE_CHROMIUM").is_none(),
            "Chromium is required (PARTYLINE_REQUIRE_CHROMIUM) but not installed"
        );
        eprintln!("SKIPPED: chromium is not installed (apt install chromium)");
    }
    found
}

/// Runs headless Chromium on `url` with `args`; returns its stdout.
fn headless(browser: &str, url: &str, args: &[&str]) -> String {
    let profile = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("chromium-profile-{}", std::process::id()));
    let out = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=5000", "--window-size=1280,900"])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `data-value` of the element with id `id` in a dumped DOM.
fn shown(dom: &str, id: &str) -> Option<f64> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let tag_end = at + dom[at..].find('>')?;
    let tag_start = dom[..at].rfind('<')?;
    let tag = &dom[tag_start..tag_end];
    let v = tag.split("data-value=\"").nth(1)?.split('"').next()?;
    v.parse().ok()
}

#[test]
fn the_dashboard_shows_what_metrics_say() {
    let Some(browser) = chromium() else { return };
    let (srv, addr) = start(Server::new(config(2)).with_builtin_parties());
    let mut sockets: Vec<_> = (0..3).map(|_| ws(addr, "/parties/main/dash").0).collect();
    for s in &mut sockets {
        assert_eq!(read_text(s), "[]");
    }
    wait_metric(&srv, r#"partyline_connections{party="main"}"#, |n| n == 3.0);
    let admin = srv.admin_addr().expect("admin listener");
    // `?once`: one snapshot, no live stream, so the headless page finishes loading.
    let url = format!("http://{admin}/?once");
    let dom = headless(browser, &url, &["--dump-dom"]);
    assert!(dom.contains("partyline"), "no page: {dom}");
    let connections = shown(&dom, "connections").unwrap_or_else(|| panic!("no figure: {dom}"));
    let metrics = metric(&srv, r#"partyline_connections{party="main"}"#).expect("metric");
    assert_eq!(connections, metrics, "the page shows what /metrics says");
    assert!(dom.contains("data-party=\"main\""), "the party table lists main: {dom}");
    let rooms = shown(&dom, "rooms").expect("rooms figure");
    assert!(rooms >= 1.0, "{rooms}");
    // The screenshot, kept as an artifact.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    headless(browser, &url, &[&format!("--screenshot={}", shot.display())]);
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "a screenshot of the dashboard ({size} bytes)");
    srv.shutdown().unwrap();
}
