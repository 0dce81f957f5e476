//! Every wait is bounded: a hook that never returns (`on_start`, `on_connect`,
//! `on_message`, `on_request`, an edge gate) is cancelled at `hook_timeout_ms` with a
//! defined answer (1011 to the socket, 504 to the request) and the room goes on with a
//! fresh instance; a room slower than `room_answer_timeout_ms` gets 504 from the edge, and
//! a connection it accepts after the edge gave up is forgotten (its `on_close` runs).
//! Real server, real clients.

mod common;

use common::*;
use partyline::{
    Config, ConnectContext, Connection, Gate, Lobby, Message, Party, Request, Response, Result,
    Room, Server,
};
use std::time::{Duration, Instant};

/// Hangs where its room id or the request says so; otherwise echoes and answers.
struct Stuck {
    room: Room,
}

async fn forever() {
    std::future::pending::<()>().await;
}

async fn sleep_ms(ms: u64) {
    glommio::timer::sleep(Duration::from_millis(ms)).await;
}

impl Party for Stuck {
    async fn on_start(room: Room) -> Result<Self> {
        if room.id() == "hang-start" {
            forever().await;
        }
        Ok(Stuck { room })
    }

    async fn on_connect(&mut self, conn: &Connection, ctx: &ConnectContext) -> Result<()> {
        if ctx.request.target.contains("hang-connect") {
            forever().await;
        }
        if ctx.request.target.contains("slow-connect") {
            sleep_ms(1_000).await;
        }
        conn.send("hello")
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        if message.text()? == "hang" {
            forever().await;
        }
        sender.send(message)
    }

    async fn on_request(&mut self, request: Request) -> Result<Response> {
        match self.room.sub_path(&request) {
            "/hang" => forever().await,
            "/slow" => sleep_ms(1_000).await,
            _ => {}
        }
        let open = self.room.connections(None).len();
        Ok(Response::text(200, format!("open {open}")))
    }

    async fn on_before_connect(request: Request, _lobby: &Lobby) -> Result<Gate> {
        if request.target.contains("hang-gate") {
            forever().await;
        }
        Ok(Gate::Continue(request))
    }
}

fn server(
    hook_timeout_ms: u64,
    room_answer_timeout_ms: u64,
) -> (partyline::RunningServer, std::net::SocketAddr) {
    let mut cfg: Config = config(2);
    cfg.limits.hook_timeout_ms = hook_timeout_ms;
    cfg.limits.room_answer_timeout_ms = room_answer_timeout_ms;
    start(Server::new(cfg).party::<Stuck>("stuck"))
}

/// The status of a refused upgrade.
fn refused(addr: std::net::SocketAddr, path: &str) -> u16 {
    match try_ws(addr, path) {
        Err(tungstenite::Error::Http(r)) => r.status().as_u16(),
        other => panic!("{path}: expected a refused upgrade, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_hung_on_start_fails_each_event_in_bounded_time_and_harms_no_other_room() {
    let (srv, addr) = server(300, 5_000);
    let started = Instant::now();
    let (mut hung, _) = ws(addr, "/parties/stuck/hang-start");
    assert_eq!(read_close(&mut hung), (1011, "on_start timed out after 300 ms".into()));
    let (status, body) = http(addr, "GET", "/parties/stuck/hang-start", "");
    assert_eq!((status, body.as_str()), (504, "on_start timed out after 300 ms\n"));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    // Another room on the same shards is fine.
    assert_eq!(http(addr, "GET", "/parties/stuck/fine", ""), (200, "open 0".into()));
    srv.shutdown().unwrap();
}

#[test]
fn hung_hooks_are_cancelled_and_the_room_starts_again() {
    let (srv, addr) = server(300, 5_000);
    // on_connect never returns: 101, then 1011 with the reason.
    let (mut hung, _) = ws(addr, "/parties/stuck/r/hang-connect");
    assert_eq!(read_close(&mut hung), (1011, "on_connect timed out after 300 ms".into()));
    // on_request never returns: 504; the next request gets a fresh instance.
    assert_eq!(http(addr, "GET", "/parties/stuck/r/hang", "").0, 504);
    assert_eq!(http(addr, "GET", "/parties/stuck/r", ""), (200, "open 0".into()));
    // on_message never returns: its sender is closed with 1011; others in the room go on.
    let (mut a, _) = ws(addr, "/parties/stuck/r?_pk=a");
    assert_eq!(read_text(&mut a), "hello");
    let (mut b, _) = ws(addr, "/parties/stuck/r?_pk=b");
    assert_eq!(read_text(&mut b), "hello");
    send_text(&mut a, "hang");
    assert_eq!(read_close(&mut a), (1011, "on_message timed out after 300 ms".into()));
    send_text(&mut b, "still here");
    assert_eq!(read_text(&mut b), "still here");
    // An edge gate that never returns: 504 instead of an upgrade.
    assert_eq!(refused(addr, "/parties/stuck/r/hang-gate"), 504);
    srv.shutdown().unwrap();
}

#[test]
fn a_late_room_gets_504_from_the_edge_and_forgets_the_socket_it_accepts_too_late() {
    let (srv, addr) = server(10_000, 400);
    let started = Instant::now();
    assert_eq!(refused(addr, "/parties/stuck/late/slow-connect?_pk=gone"), 504);
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    let (status, body) = http(addr, "GET", "/parties/stuck/late/slow", "");
    assert_eq!(status, 504, "{body}");
    // The room accepted "gone" after the edge answered 504: the edge tells it the socket
    // is gone, so the room's registry ends up empty again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http(addr, "GET", "/parties/stuck/late", "");
        if (status, body.as_str()) == (200, "open 0") {
            break;
        }
        assert!(Instant::now() < deadline, "the room kept a connection nobody holds: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    srv.shutdown().unwrap();
}
