//! The official client: runs engine/tests/js/partysocket.test.mjs (Node's test runner, the
//! unmodified npm packages `partysocket` and `ws`) against a real server on an ephemeral
//! loopback port, over plain TCP and over TLS (`wss://`, with a CA made for the test).
//! Installs the npm packages first if they are missing.

mod common;

use common::*;
use partyline::{ConnectContext, Connection, Party, Result, Room, Server};

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
    let host = addr.to_string();
    let ca = pki.map(|p| p.ca_file().display().to_string());
    let mut env = vec![("PARTYLINE_HOST", host.as_str())];
    if let Some(ca) = &ca {
        env.extend([("PARTYLINE_TLS", "1"), ("NODE_EXTRA_CA_CERTS", ca.as_str())]);
    }
    common::node::run_node_tests("partysocket.test.mjs", &env, 5);
}
