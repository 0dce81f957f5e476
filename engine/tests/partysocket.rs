//! The official client: runs engine/tests/js/partysocket.test.mjs (Node's test runner, the
//! unmodified npm packages `partysocket` and `ws`) against a real server on an ephemeral
//! loopback port, over plain TCP and over TLS (`wss://`, with a CA made for the test).
//! Installs the npm packages first if they are missing.

mod common;

use common::*;
use partyline::{ConnectContext, Connection, Party, Result, Room, Server};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the client tests may take (they take about 2 s).
const NODE_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends each connection its own id, so the client can check `_pk` handling.
struct WhoAmI;

impl Party for WhoAmI {
    async fn on_start(_room: Room) -> Result<Self> {
        Ok(WhoAmI)
    }

    async fn on_connect(&mut self, conn: &Connection, _ctx: &ConnectContext) -> Result<()> {
        conn.send(conn.id().to_owned())
    }
}

#[test]
fn official_partysocket_client() {
    let mut cfg = config(2);
    // Rooms hibernate after 300 ms of quiet, so the client also meets sleeping rooms.
    cfg.hibernate_after_ms = 300;
    let (srv, addr) = start(Server::new(cfg).with_builtin_parties().party::<WhoAmI>("whoami"));
    run_client_tests(addr, None);
    srv.shutdown().unwrap();
}

/// The same client tests over `wss://` and `https://`, Node trusting the test's CA.
#[test]
fn official_partysocket_client_over_tls() {
    let pki = common::pki::Pki::new();
    pki.issue();
    let mut cfg = config(2);
    cfg.hibernate_after_ms = 300;
    cfg.tls_cert = Some(pki.cert());
    cfg.tls_key = Some(pki.key());
    let (srv, addr) = start(Server::new(cfg).with_builtin_parties().party::<WhoAmI>("whoami"));
    run_client_tests(addr, Some(&pki));
    srv.shutdown().unwrap();
}

/// Runs engine/tests/js/partysocket.test.mjs against `addr` (over TLS with `pki`).
fn run_client_tests(addr: std::net::SocketAddr, pki: Option<&common::pki::Pki>) {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if !js.join("node_modules/partysocket").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&js)
            .status()
            .expect("npm must be installed to run the partysocket test (apt-get install npm)");
        assert!(status.success(), "npm ci failed in {}", js.display());
    }
    let mut command = Command::new("node");
    command
        .args(["--test", "--test-reporter=spec", "partysocket.test.mjs"])
        .current_dir(&js)
        .env("PARTYLINE_HOST", addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(pki) = pki {
        command.env("PARTYLINE_TLS", "1").env("NODE_EXTRA_CA_CERTS", pki.ca_file());
    }
    let mut node = command.spawn().expect("node must be installed to run the partysocket test");
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
    assert!(status.is_some(), "partysocket tests still running after {NODE_TIMEOUT:?}:\n{report}");
    assert!(out.status.success(), "partysocket tests failed:\n{report}");
    assert!(report.contains("pass 5"), "expected 5 passing client tests:\n{report}");
}
