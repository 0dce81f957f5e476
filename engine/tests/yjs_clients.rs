//! The official Yjs providers, unmodified from npm (y-websocket's `WebsocketProvider`,
//! y-partykit's `YPartyKitProvider`, y-partyserver's `YProvider`), against the built-in
//! `yjs` party under Node (engine/tests/js/yjs.test.mjs): concurrent edits converge, a
//! late joiner gets everything, awareness comes and goes, rooms hibernate (300 ms) and
//! wake with document and awareness, and after a restart on the same data every document
//! is still there.

mod common;

use common::*;
use partyline::Server;

#[test]
fn the_npm_yjs_providers_sync_through_sleep_and_restart() {
    let data = data_dir();
    let server = |data: &std::path::Path| {
        let mut cfg = partyline::Config { data: data.to_owned(), ..config(2) };
        cfg.hibernate_after_ms = 300;
        start(Server::new(cfg).with_builtin_parties())
    };
    let (srv, addr) = server(&data);
    let tag = format!("{}", std::process::id());
    let host = addr.to_string();
    common::node::run_node_tests(
        "yjs.test.mjs",
        &[("PARTYLINE_HOST", &host), ("YJS_PHASE", "edit"), ("YJS_TAG", &tag)],
        3,
    );
    srv.shutdown().unwrap();
    let (srv, addr) = server(&data);
    let host = addr.to_string();
    common::node::run_node_tests(
        "yjs.test.mjs",
        &[("PARTYLINE_HOST", &host), ("YJS_PHASE", "check"), ("YJS_TAG", &tag)],
        3,
    );
    srv.shutdown().unwrap();
}
