//! The welcome page `partyline serve` shows at `/`: two tabs of a real headless Chromium in
//! one room chat through the official `partysocket` client that the binary serves itself
//! (no request leaves the server), and the embedded client is byte for byte the npm
//! package's. A `serve` folder replaces the page.

mod common;

use common::browser::Browser;
use common::*;
use partyline::Server;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn two_tabs_chat_in_one_room_through_the_bundled_partysocket() {
    let Some(mut browser) = Browser::launch() else { return };
    let (_srv, addr) = start(Server::new(config(2)).with_builtin_parties().with_welcome_page());
    let alice = browser.open(&format!("http://{addr}/?room=tabs&name=alice"));
    let bob = browser.open(&format!("http://{addr}/?room=tabs&name=bob"));
    for page in [&alice, &bob] {
        browser.wait_until(page, "document.body.dataset.state === 'open'", WAIT, "connected");
    }
    let say = |text: &str| {
        format!(
            "document.getElementById('text').value = {text:?};
             document.getElementById('say').requestSubmit(); true"
        )
    };
    let log = "[...document.querySelectorAll('#log li')].map(li => li.textContent)";
    browser.eval(&alice, &say("hello from alice"));
    browser.wait_until(
        &bob,
        &format!("{log}.includes('alice: hello from alice')"),
        WAIT,
        "bob sees alice's message",
    );
    browser.eval(&bob, &say("hi alice <b>bold</b>"));
    browser.wait_until(
        &alice,
        &format!("{log}.includes('bob: hi alice <b>bold</b>')"),
        WAIT,
        "alice sees bob's message, as text",
    );
    assert_eq!(
        browser.eval(&alice, "document.querySelectorAll('#log b').length"),
        serde_json::json!(0),
        "a message is shown as text, never as markup"
    );
    // Every resource the page loaded came from this server: nothing from a CDN.
    let foreign = browser.eval(
        &alice,
        "performance.getEntriesByType('resource').map(r => r.name)
           .filter(n => !n.startsWith(location.origin))",
    );
    assert_eq!(foreign, serde_json::json!([]), "only this server's files are loaded");
    let loaded = browser.eval(
        &alice,
        "performance.getEntriesByType('resource').map(r => new URL(r.name).pathname)",
    );
    assert!(
        loaded.to_string().contains("/_partyline/partysocket/index.js"),
        "the page uses the bundled partysocket: {loaded}"
    );
    // A third tab joining later gets the conversation from the room's history.
    let carol = browser.open(&format!("http://{addr}/?room=tabs&name=carol"));
    browser.wait_until(
        &carol,
        &format!(
            "{log}.includes('alice: hello from alice') && {log}.includes('bob: hi alice <b>bold</b>')"
        ),
        WAIT,
        "a new tab sees the history",
    );
    // The same conversation is the room's HTTP history.
    let (status, body) = http(addr, "GET", "/parties/main/tabs", "");
    assert_eq!(status, 200);
    assert!(body.contains("alice: hello from alice"), "{body}");
}

#[test]
fn the_embedded_partysocket_is_the_npm_package_unmodified() {
    let (_srv, addr) = start(Server::new(config(1)).with_builtin_parties().with_welcome_page());
    let npm =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/node_modules/partysocket");
    for (served, file) in [("index.js", "dist/index.js"), ("ws.js", "dist/ws.js")] {
        let (status, body) = http(addr, "GET", &format!("/_partyline/partysocket/{served}"), "");
        assert_eq!(status, 200, "{served}");
        match std::fs::read_to_string(npm.join(file)) {
            // `.ci/run` installs the pinned package (engine/tests/js/package-lock.json).
            Ok(original) => assert!(body == original, "{served} differs from npm's {file}"),
            Err(_) => eprintln!("SKIPPED comparison: npm's partysocket is not installed"),
        }
    }
    let version = std::fs::read_to_string(npm.join("package.json")).unwrap_or_default();
    assert!(
        version.is_empty() || version.contains("\"version\": \"1.3.0\""),
        "the welcome page embeds partysocket 1.3.0; update engine/ui/vendor with the package"
    );
    let (status, page) = http(addr, "GET", "/", "");
    assert_eq!(status, 200);
    assert!(page.contains("/_partyline/partysocket/index.js"));
}

#[test]
fn a_serve_folder_replaces_the_welcome_page() {
    let dir = data_dir();
    let public = dir.join("public");
    std::fs::create_dir_all(&public).unwrap();
    std::fs::write(public.join("index.html"), "mine").unwrap();
    let mut cfg = config(1);
    cfg.serve = Some(public);
    let (_srv, addr) = start(Server::new(cfg).with_builtin_parties().with_welcome_page());
    assert_eq!(http(addr, "GET", "/", ""), (200, "mine".to_owned()));
    assert_eq!(http(addr, "GET", "/_partyline/partysocket/index.js", "").0, 404);
    // Without the welcome page (a party author's own server), `/` is theirs: 404 here.
    let (_plain, plain) = start(Server::new(config(1)).with_builtin_parties());
    assert_eq!(http(plain, "GET", "/", "").0, 404);
}
