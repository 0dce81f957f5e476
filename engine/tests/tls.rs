//! TLS on the client listener, against a real server with certificates made at test time
//! (a throwaway CA and leaves from `rcgen`) and a real TLS client (rustls under
//! tungstenite): `wss://` and `https://` serve rooms as plain TCP does (history, relay,
//! messages spanning many records, sockets that park and resume with their session);
//! plain HTTP, garbage and silence on the TLS port end in a bounded time and harm nobody;
//! a reload (and SIGHUP to the binary) serves the new certificate to new connections while
//! open ones go on. The official `partysocket` client over `wss://` is in
//! `partysocket.rs`.

mod common;

use common::pki::{Pki, TlsStream, Wss};
use common::*;
use partyline::Server;
use rustls::pki_types::CertificateDer;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn tls_server(
    pki: &Pki,
    edit: impl FnOnce(&mut partyline::Config),
) -> (partyline::RunningServer, SocketAddr) {
    let mut cfg = config(2);
    cfg.tls_cert = Some(pki.cert());
    cfg.tls_key = Some(pki.key());
    edit(&mut cfg);
    start(Server::new(cfg).with_builtin_parties())
}

fn text(ws: &mut Wss) -> String {
    loop {
        match ws.read().expect("a message") {
            tungstenite::Message::Text(t) => return t.to_string(),
            tungstenite::Message::Binary(b) => return String::from_utf8_lossy(&b).into_owned(),
            _ => {}
        }
    }
}

fn peer_leaf(stream: &TlsStream) -> CertificateDer<'static> {
    stream.conn.peer_certificates().expect("the server's chain")[0].clone().into_owned()
}

#[test]
fn wss_and_https_serve_rooms_like_plain_tcp() {
    let pki = Pki::new();
    pki.issue();
    let (srv, addr) = tls_server(&pki, |cfg| cfg.limits.ws_park_after_ms = 300);
    let created = pki.https(addr, "POST", "/parties/main/tls", "first");
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let mut alice = pki.wss(addr, "/parties/main/tls?_pk=alice");
    let mut bob = pki.wss(addr, "/parties/main/tls?_pk=bob");
    assert_eq!(text(&mut alice), r#"["first"]"#);
    assert_eq!(text(&mut bob), r#"["first"]"#);
    alice.send(tungstenite::Message::text("over tls")).unwrap();
    assert_eq!(text(&mut bob), "over tls");
    // Messages far larger than a record (16 KiB), both ways.
    let mut echo = pki.wss(addr, "/parties/echo/big");
    let big: String =
        (0..300_000u32).map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap())).collect();
    for _ in 0..3 {
        echo.send(tungstenite::Message::text(big.clone())).unwrap();
        assert!(text(&mut echo) == big, "a 300 KB message comes back whole");
    }
    let history = pki.https(addr, "GET", "/parties/main/tls", "");
    assert!(history.contains(r#"["first","over tls"]"#), "{history}");
    // Idle sockets park with their TLS session and resume with it.
    wait_metric_sum(&srv, "partyline_parks_total", |n| n >= 3.0);
    bob.send(tungstenite::Message::text("after parking")).unwrap();
    assert_eq!(text(&mut alice), "after parking");
    echo.send(tungstenite::Message::text("still echoing")).unwrap();
    assert_eq!(text(&mut echo), "still echoing");
    wait_metric_sum(&srv, "partyline_resumes_total", |n| n >= 2.0);
    assert!(metric_sum(&srv, "partyline_tls_handshakes_total") >= 5.0);
    // A close is a WebSocket close inside TLS.
    alice.close(None).unwrap();
    loop {
        match alice.read() {
            Ok(tungstenite::Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    srv.shutdown().unwrap();
}

#[test]
fn plain_http_garbage_and_silence_on_the_tls_port_end_and_harm_nobody() {
    let pki = Pki::new();
    pki.issue();
    let (srv, addr) = tls_server(&pki, |_| {});
    let mut good = pki.wss(addr, "/parties/echo/calm");
    let ends_within = |mut tcp: TcpStream, what: &str| {
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        let mut sink = [0u8; 4096];
        loop {
            match tcp.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{what} ended in {:?}",
            started.elapsed()
        );
    };
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.write_all(b"GET /parties/main/x HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    ends_within(plain, "a plain HTTP request");
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5]).unwrap();
    ends_within(garbage, "a forged record");
    // Clients that leave mid-handshake (a balancer's TCP check, say) cost nothing.
    for _ in 0..3 {
        drop(TcpStream::connect(addr).unwrap());
        let mut hello_only = TcpStream::connect(addr).unwrap();
        hello_only.write_all(&[0x16, 0x03, 0x01, 0x00, 0x30, 0x01]).unwrap();
    }
    // Silence: the handshake timeout (800 ms in tests) ends it.
    ends_within(TcpStream::connect(addr).unwrap(), "a silent client");
    wait_metric_sum(&srv, "partyline_tls_handshake_failures_total", |n| n >= 9.0);
    good.send(tungstenite::Message::text("unharmed")).unwrap();
    assert_eq!(text(&mut good), "unharmed");
    srv.shutdown().unwrap();
}

#[test]
fn a_reload_serves_the_new_certificate_to_new_connections_only() {
    let pki = Pki::new();
    let first = pki.issue();
    let (srv, addr) = tls_server(&pki, |_| {});
    let mut old = pki.wss(addr, "/parties/echo/r");
    assert_eq!(peer_leaf(old.get_ref()), first);
    let second = pki.issue();
    assert_eq!(srv.reload_tls(), Ok(true));
    let fresh = pki.wss(addr, "/parties/echo/r");
    assert_eq!(peer_leaf(fresh.get_ref()), second, "a new connection gets the new certificate");
    old.send(tungstenite::Message::text("old session")).unwrap();
    assert_eq!(text(&mut old), "old session");
    // A broken renewal (a key that is not the certificate's) is refused; the pair stays.
    let third_key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(pki.key(), third_key.serialize_pem()).unwrap();
    let refused = srv.reload_tls().unwrap_err();
    assert!(refused.contains("tls_cert"), "{refused}");
    let still = pki.wss(addr, "/parties/echo/r");
    assert_eq!(peer_leaf(still.get_ref()), second);
    srv.shutdown().unwrap();
}

/// The binary: `--tls-cert`/`--tls-key` and `--serve`, and SIGHUP reloading them.
#[test]
fn the_binary_serves_tls_and_reloads_on_sighup() {
    let pki = Pki::new();
    let first = pki.issue();
    let data = data_dir();
    let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_owned();
    let (cert, key) = (path(&pki.cert()), path(&pki.key()));
    let public = data.with_extension("public");
    std::fs::create_dir_all(&public).unwrap();
    std::fs::write(public.join("index.html"), "version one").unwrap();
    let folder = path(&public);
    let mut served = Served::start(
        &data,
        &["--shards", "1", "--tls-cert", &cert, "--tls-key", &key, "--serve", &folder],
    );
    let addr = served.addr;
    let page = pki.https(addr, "GET", "/", "");
    assert!(page.starts_with("HTTP/1.1 200"), "the serve folder over https: {page}");
    assert!(page.ends_with("version one"), "{page}");
    // A deploy: new static files, served after the same SIGHUP.
    std::fs::write(public.join("index.html"), "version two").unwrap();
    let ws = pki.wss(addr, "/parties/main/hup");
    assert_eq!(peer_leaf(ws.get_ref()), first);
    let second = pki.issue();
    let pid = i32::try_from(served.child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = pki.wss(addr, "/parties/main/hup");
        if peer_leaf(fresh.get_ref()) == second {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload the certificate");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The folder is reloaded right after the certificate, on the same signal.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pki.https(addr, "GET", "/", "").ends_with("version two") {
        assert!(Instant::now() < deadline, "SIGHUP did not reload the serve folder");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the binary did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{}", served.log());
    // The log is read by a thread: give it a moment to catch up with the exit.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !served.log().contains("serve folder reloaded") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = served.log();
    assert!(log.contains("TLS certificate and key reloaded"), "{log}");
    assert!(log.contains("serve folder reloaded"), "{log}");
    let _ = std::fs::remove_dir_all(public);
}

/// A TLS client that stops reading: its queue and sealed records count against the output
/// budget, it is closed like a plain slow consumer, and the budget comes back to zero
/// (sealed records are given back when the socket ends).
#[test]
fn a_tls_client_that_stops_reading_is_closed_and_its_bytes_given_back() {
    let pki = Pki::new();
    pki.issue();
    let (srv, addr) = tls_server(&pki, |cfg| {
        cfg.shards = 1;
        cfg.limits.outbound_bytes_max = 1024 * 1024;
        cfg.limits.outbound_total_bytes_max = 1024 * 1024;
        cfg.limits.message_size_max = 64 * 1024;
    });
    let stalled = pki.wss(addr, "/parties/relay/slow");
    let mut sender = pki.wss(addr, "/parties/relay/slow");
    let chunk = "x".repeat(32 * 1024);
    // Far more than the kernel buffers, the sealed records and the queue hold.
    for _ in 0..400 {
        if sender.send(tungstenite::Message::text(chunk.clone())).is_err() {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    // Closed for its own queue's limit or for the shard's budget, whichever comes first.
    while srv.stats().iter().map(|s| s.closed_for_output).sum::<u64>() == 0
        && metric_sum(&srv, "partyline_server_closes_total") == 0.0
    {
        assert!(Instant::now() < deadline, "the stalled TLS socket was never closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held: usize = srv.stats().iter().map(|s| s.outbound_bytes).sum();
        if held == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{held} bytes still charged to the output budget");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The sender never stalled and is still served.
    let mut echo = pki.wss(addr, "/parties/echo/after");
    echo.send(tungstenite::Message::text("fine")).unwrap();
    assert_eq!(text(&mut echo), "fine");
    drop(sender);
    srv.shutdown().unwrap();
}
