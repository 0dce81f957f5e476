//! The live dashboard on the admin listener, loaded in a real headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) against a server with traffic: the figures the
//! page shows match `/metrics`, the party table lists the party, and a screenshot is kept
//! as a test artifact (`target/tmp/dashboard.png`); driven over DevTools, the live page
//! follows the server second by second (server-sent events), and a room's page lists its
//! connections.
//!
//! Without Chromium the test says so and passes, unless `PARTYLINE_REQUIRE_CHROMIUM` is
//! set (as `.ci/run` sets it).

mod common;

use common::browser::chromium;
use common::*;
use partyline::Server;
use std::process::Command;

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

#[test]
fn the_live_dashboard_follows_the_server_and_a_room_page_lists_its_connections() {
    let Some(mut browser) = common::browser::Browser::launch() else { return };
    let (srv, addr) = start(Server::new(config(2)).with_builtin_parties());
    let mut sockets = Vec::new();
    let mut join = |who: &str| {
        let (mut s, _) = ws(addr, &format!("/parties/presence/lobby?_pk={who}"));
        let _ = read_text(&mut s);
        send_text(&mut s, &format!("{{\"name\":\"{who}\"}}"));
        sockets.push(s);
    };
    join("ann");
    join("bo");
    wait_metric(&srv, r#"partyline_connections{party="presence"}"#, |n| n == 2.0);
    let admin = srv.admin_addr().expect("admin listener");
    let page = browser.open(&format!("http://{admin}/"));
    let wait = std::time::Duration::from_secs(10);
    let shows = |n: u32| format!("document.getElementById('connections')?.dataset.value === '{n}'");
    browser.wait_until(&page, &shows(2), wait, "the page shows 2 connections");
    // The stream keeps the page current: a third socket shows without a reload.
    join("cy");
    browser.wait_until(&page, &shows(3), wait, "the live page shows the third connection");
    assert!(
        browser
            .eval(&page, "document.getElementById('status').textContent")
            .to_string()
            .contains("live"),
        "the status says live"
    );
    // Party, then room, then its connections.
    browser.eval(&page, "document.querySelector('tr[data-party=presence] a').click(); true");
    browser.wait_until(
        &page,
        "document.querySelector('tr[data-room=lobby] a')",
        wait,
        "rooms listed",
    );
    browser.eval(&page, "document.querySelector('tr[data-room=lobby] a').click(); true");
    browser.wait_until(
        &page,
        "document.querySelectorAll('#room-connections tr').length === 3",
        wait,
        "the room page lists its three connections",
    );
    let ann = browser.eval(&page, "document.querySelector('tr[data-connection=ann]').textContent");
    assert!(ann.to_string().contains(r#"{\"name\":\"ann\"}"#), "ann's row shows her state: {ann}");
    let facts = browser.eval(&page, "document.getElementById('room-facts').textContent");
    assert!(facts.to_string().contains("3 connections"), "{facts}");
    drop(sockets);
    srv.shutdown().unwrap();
}
