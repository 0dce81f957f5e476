//! Integration tests of parking (idle WebSockets give back their task and wait in the
//! shard's epoll set): sockets park after `ws_park_after_ms` with no traffic, and resume on
//! every event that concerns them — bytes from the client, frames from the room, a close
//! from either side, shutdown — without losing or reordering anything. Real server, real
//! clients, two shards.

mod common;

use common::*;
use partyline::{Limits, RunningServer, Server};
use std::io::Write;
use std::time::{Duration, Instant};

fn parking_server(shards: usize) -> (RunningServer, std::net::SocketAddr) {
    let mut config = config(shards);
    config.limits = Limits { ws_park_after_ms: 1_000, ..test_limits() };
    start(Server::new(config).with_builtin_parties())
}

fn parked(server: &RunningServer) -> usize {
    server.stats().iter().map(|s| s.parked).sum()
}

fn websockets(server: &RunningServer) -> usize {
    server.stats().iter().map(|s| s.websockets).sum()
}

/// Waits (up to 10 s) until `parked(server) == n`.
fn wait_parked(server: &RunningServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while parked(server) != n {
        assert!(
            Instant::now() < deadline,
            "expected {n} parked sockets, have {} of {} ({:?})",
            parked(server),
            websockets(server),
            server.stats()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn parked_sockets_resume_on_reads_and_writes_in_order() {
    let (server, addr) = parking_server(2);
    let mut clients: Vec<Ws> = (0..12).map(|_| ws(addr, "/parties/relay/park").0).collect();
    wait_parked(&server, 12);

    // A parked sender resumes on its bytes; parked receivers resume on the room's frames.
    for i in 0..5 {
        send_text(&mut clients[0], &format!("m{i}"));
    }
    for c in &mut clients[1..] {
        for i in 0..5 {
            assert_eq!(read_text(c), format!("m{i}"));
        }
    }
    // With the traffic over, everyone parks again, and resumes again.
    wait_parked(&server, 12);
    send_text(&mut clients[11], "again");
    for c in &mut clients[..11] {
        assert_eq!(read_text(c), "again");
    }
    wait_parked(&server, 12);

    // A parked socket's close reaches the room and gets the close handshake.
    clients[3].close(None).expect("close");
    let (code, _) = read_close(&mut clients[3]);
    assert_eq!(code, 1005, "the server answers a code-less close without a code");
    let deadline = Instant::now() + Duration::from_secs(5);
    while websockets(&server) != 11 {
        assert!(Instant::now() < deadline, "the closed socket is still counted");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Shutdown closes parked sockets with 1012.
    server.begin_shutdown();
    for (i, c) in clients.iter_mut().enumerate().filter(|(i, _)| *i != 3) {
        let (code, reason) = read_close(c);
        assert_eq!((code, reason.as_str()), (1012, "server shutting down"), "client {i}");
    }
    server.wait().expect("clean stop");
}

#[test]
fn a_socket_mid_frame_does_not_park_and_its_frame_completes() {
    let (server, addr) = parking_server(1);
    let (mut idle, _) = ws(addr, "/parties/echo/mid");
    let (mut busy, _) = ws(addr, "/parties/echo/mid");
    // A masked text frame "hello", sent in two halves with a pause longer than the park
    // delay between them.
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 5];
    frame.extend_from_slice(&mask);
    frame.extend(b"hello".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    busy.get_mut().write_all(&frame[..4]).expect("first half");
    // The idle one parks; the one holding half a frame does not.
    wait_parked(&server, 1);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(parked(&server), 1, "{:?}", server.stats());
    busy.get_mut().write_all(&frame[4..]).expect("second half");
    assert_eq!(read_text(&mut busy), "hello");
    // The parked one still works.
    send_text(&mut idle, "still here");
    assert_eq!(read_text(&mut idle), "still here");
    server.shutdown().expect("clean stop");
}

#[test]
fn a_client_that_vanishes_while_parked_is_closed_in_its_room() {
    let (server, addr) = parking_server(2);
    let (mut watcher, _) = ws(addr, "/parties/main/vanish");
    let (gone, _) = ws(addr, "/parties/main/vanish");
    // History replay and join messages of `main` are traffic: wait until both are quiet.
    wait_parked(&server, 2);
    drop(gone); // TCP FIN without a close frame: the parked socket wakes on EOF.
    let deadline = Instant::now() + Duration::from_secs(5);
    while websockets(&server) != 1 {
        assert!(Instant::now() < deadline, "the vanished socket is still counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    send_text(&mut watcher, "anyone?");
    server.shutdown().expect("clean stop");
}
