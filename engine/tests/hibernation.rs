//! Hibernation: a room of a hibernating party that is quiet for `hibernate_after_ms` drops
//! its instance and keeps its connections (id, uri, tags, state) in the store; the next
//! event wakes it with `on_start` again. Tested through `TestRoom` (sleep on demand, a
//! damaged archive) and through a real server (rooms fall asleep on their own, clients
//! notice nothing, and messages sent across sleeps arrive once and in order).

mod common;

use common::*;
use partyline::{
    CloseCode, ConnectContext, Connection, Message, Party, Request, Result, Room, Server, TestRoom,
};
use std::collections::HashMap;

/// A hibernating party that counts its starts in storage and its messages in memory.
struct Sleepy {
    room: Room,
    /// Messages since this instance started: gone after a sleep.
    seen: u64,
}

impl Party for Sleepy {
    const HIBERNATE: bool = true;

    async fn on_start(room: Room) -> Result<Self> {
        let starts: u64 = room.storage().get_json("starts").await?.unwrap_or(0);
        room.storage().put_json("starts", &(starts + 1)).await?;
        // Keep-alives answered by the edges, without waking the room.
        room.set_auto_response(Some(("ping", "pong")))?;
        Ok(Sleepy { room, seen: 0 })
    }

    fn connection_tags(&mut self, _conn: &Connection, ctx: &ConnectContext) -> Result<Vec<String>> {
        Ok(ctx.request.query_param("tag").map(|t| vec![t.into_owned()]).unwrap_or_default())
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        self.seen += 1;
        let text = message.text()?.to_owned();
        let reply = match text.split_once(':').unwrap_or((&text, "")) {
            ("state", value) => {
                sender.set_state(value.to_owned())?;
                "ok".to_owned()
            }
            ("who", _) => {
                let mut who: Vec<String> = self
                    .room
                    .connections(None)
                    .iter()
                    .map(|c| {
                        let state = c.state().map(|s| String::from_utf8_lossy(&s).into_owned());
                        format!("{}[{}]={}", c.id(), c.tags().join(","), state.unwrap_or_default())
                    })
                    .collect();
                who.sort();
                who.join(" ")
            }
            ("seen", _) => self.seen.to_string(),
            ("auto", pair) => {
                let pair = pair.split_once('=');
                let long = "x".repeat(2049);
                let pair = if pair == Some(("long", "")) { Some((&long[..], "y")) } else { pair };
                match self.room.set_auto_response(pair) {
                    Ok(()) => format!("{:?}", self.room.auto_response()),
                    Err(e) => e.to_string(),
                }
            }
            ("starts", _) => {
                let starts: u64 = self.room.storage().get_json("starts").await?.unwrap_or(0);
                starts.to_string()
            }
            ("tagged", tag) => self.room.connections(Some(tag)).len().to_string(),
            ("lookup", id) => match self.room.connection(id)? {
                Some(c) => format!("found {}", c.id()),
                None => "none".into(),
            },
            ("all", text) => return self.room.broadcast(text.to_owned(), &[sender.id()]),
            _ => text,
        };
        sender.send(reply)
    }
}

fn connect(room: &mut TestRoom<Sleepy>, id: &str, tag: &str) -> partyline::testing::TestConn {
    let target = format!("/parties/sleepy/r?_pk={id}&tag={tag}");
    room.connect_with(id, Request::new("GET", target).with_header("host", "test"))
}

#[test]
fn a_sleeping_room_keeps_its_connections_and_forgets_its_fields() {
    let mut room = TestRoom::<Sleepy>::new("sleepy", "r");
    let a = connect(&mut room, "a", "red");
    let b = connect(&mut room, "b", "blue");
    room.send(&a, "state:hello");
    room.send(&a, "seen");
    assert_eq!(room.received_text(&a), ["ok", "2"]);
    room.hibernate();
    assert!(room.is_asleep());
    // The next message wakes it: on_start again, in-memory fields fresh, connections
    // (ids, tags, state) as they were.
    room.send(&b, "who");
    assert!(!room.is_asleep());
    assert_eq!(room.received_text(&b), ["a[a,red]=hello b[b,blue]="]);
    room.send(&b, "seen");
    room.send(&b, "starts");
    room.send(&b, "tagged:red");
    room.send(&b, "lookup:a");
    assert_eq!(room.received_text(&b), ["2", "2", "1", "found a"]);
    room.send(&b, "all:to a");
    assert_eq!(room.received_text(&a), ["to a"]);
    // The auto-response is answered without the room, asleep or awake.
    room.hibernate();
    room.send(&a, "ping");
    assert_eq!(room.received_text(&a), ["pong"]);
    assert!(room.is_asleep());
    room.send(&a, "auto:long=");
    assert_eq!(room.received_text(&a), ["auto-response request of 2049 bytes; at most 2048"]);
    room.send(&a, "auto:hi=there");
    room.send(&a, "hi");
    room.send(&a, "ping");
    assert_eq!(room.received_text(&a), [r#"Some(("hi", "there"))"#, "there", "ping"]);
    room.send(&a, "auto:ping=pong");
    room.received_text(&a);
    // A close while asleep wakes it, and the connection leaves.
    room.hibernate();
    room.close(&a, CloseCode::NORMAL, "bye");
    room.send(&b, "who");
    assert_eq!(room.received_text(&b), ["b[b,blue]="]);
    // A party without hibernation never sleeps.
    let mut awake = TestRoom::<partyline::parties::Echo>::new("echo", "e");
    awake.connect("x");
    awake.hibernate();
    assert!(!awake.is_asleep());
}

#[test]
fn a_damaged_archive_is_reported_and_the_room_starts_fresh() {
    let mut room = TestRoom::<Sleepy>::new("sleepy", "broken");
    let a = connect(&mut room, "a", "red");
    let b = connect(&mut room, "b", "red");
    room.hibernate();
    // Flip a byte of the stored archive.
    let storage = room.store().room("sleepy", "broken").unwrap();
    let mut bytes = room.block_on(storage.get_archive(0)).unwrap().expect("an archive").to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    room.block_on(storage.put_archive(0, bytes.into())).unwrap();
    // The next event finds it damaged: every socket of the room is closed so its client
    // reconnects, and the room goes on from its storage.
    room.send(&a, "who");
    let lost = Some((CloseCode::INTERNAL_ERROR, "the room lost its state; reconnect".into()));
    assert_eq!(room.closed(&a), lost);
    assert_eq!(room.closed(&b), lost);
    let c = connect(&mut room, "c", "green");
    room.send(&c, "who");
    room.send(&c, "starts");
    assert_eq!(room.received_text(&c), ["c[c,green]=", "2"]);
}

fn hibernating_server(hibernate_after_ms: u64) -> (partyline::RunningServer, std::net::SocketAddr) {
    let mut cfg = config(2);
    cfg.hibernate_after_ms = hibernate_after_ms;
    start(Server::new(cfg).with_builtin_parties().party::<Sleepy>("sleepy"))
}

fn asleep(stats: &[partyline::ShardStats]) -> usize {
    stats.iter().map(|s| s.rooms_asleep).sum()
}

#[test]
fn quiet_rooms_fall_asleep_and_clients_notice_nothing() {
    let (srv, addr) = hibernating_server(200);
    let (mut a, _) = ws(addr, "/parties/sleepy/live?_pk=a&tag=t");
    let (mut b, _) = ws(addr, "/parties/sleepy/live?_pk=b");
    send_text(&mut a, "state:kept");
    assert_eq!(read_text(&mut a), "ok");
    wait_stats(&srv, "the room asleep", |s| asleep(s) == 1);
    // Keep-alives are answered on the edges: the room sleeps on.
    send_text(&mut a, "ping");
    send_text(&mut b, "ping");
    assert_eq!(read_text(&mut a), "pong");
    assert_eq!(read_text(&mut b), "pong");
    // The admin listener says so, by party.
    wait_metric(&srv, r#"partyline_rooms{party="sleepy",state="hibernated"}"#, |n| n == 1.0);
    assert_eq!(metric(&srv, r#"partyline_rooms{party="sleepy",state="awake"}"#), Some(0.0));
    assert_eq!(metric(&srv, r#"partyline_connections{party="sleepy"}"#), Some(2.0));
    assert_eq!(metric(&srv, r#"partyline_room_sleeps_total{party="sleepy"}"#), Some(1.0));
    assert_eq!(metric(&srv, r#"partyline_room_wakes_total{party="sleepy"}"#), Some(0.0));
    assert_eq!(metric(&srv, r#"partyline_rooms{party="echo",state="awake"}"#), Some(0.0));
    send_text(&mut b, "who");
    assert_eq!(read_text(&mut b), "a[a,t]=kept b[b]=");
    send_text(&mut b, "starts");
    assert_eq!(read_text(&mut b), "2");
    wait_stats(&srv, "a sleep and a wake", |s| {
        s.iter().map(|s| s.room_wakes).sum::<u64>() >= 1
            && s.iter().map(|s| s.room_sleeps).sum::<u64>() >= 1
    });
    let wakes = r#"partyline_room_wake_duration_seconds_count{party="sleepy"}"#;
    wait_metric(&srv, wakes, |n| n >= 1.0);
    let stats = &srv.party_stats()["sleepy"];
    assert_eq!(stats.wakes, stats.wake_time.count());
    let all = r#"partyline_room_wake_duration_seconds_bucket{party="sleepy",le="+Inf"}"#;
    assert_eq!(metric(&srv, all), metric(&srv, wakes));
    // `presence` keeps what its connections said in their state, across a sleep.
    let (mut p1, _) = ws(addr, "/parties/presence/sleepy?_pk=p1");
    assert_eq!(read_text(&mut p1), "{}");
    send_text(&mut p1, r#"{"here":true}"#);
    wait_stats(&srv, "both rooms asleep", |s| asleep(s) == 2);
    let (mut p2, _) = ws(addr, "/parties/presence/sleepy?_pk=p2");
    assert_eq!(read_text(&mut p2), r#"{"p1":{"here":true}}"#);
    srv.shutdown().unwrap();
}

#[test]
fn messages_across_sleeps_arrive_once_and_in_order() {
    let (srv, addr) = hibernating_server(100);
    let (mut receiver, _) = ws(addr, "/parties/sleepy/waking?_pk=receiver");
    let mut senders: Vec<Ws> =
        (0..4).map(|i| ws(addr, &format!("/parties/sleepy/waking?_pk=s{i}")).0).collect();
    let bursts = 5;
    for burst in 0..bursts {
        // Quiet long enough for the room to fall asleep before each burst.
        let sleeps = u64::from(burst) + 1;
        wait_stats(&srv, "the room asleep again", |s| {
            s.iter().map(|s| s.room_sleeps).sum::<u64>() >= sleeps
        });
        for n in 0..10 {
            for (i, s) in senders.iter_mut().enumerate() {
                send_text(s, &format!("all:s{i}:{}", burst * 10 + n));
            }
        }
    }
    let mut next: HashMap<String, u32> = HashMap::new();
    for _ in 0..bursts * 10 * 4 {
        let text = read_text(&mut receiver);
        let (sender, n) = text.split_once(':').unwrap();
        let expected = next.entry(sender.to_owned()).or_insert(0);
        assert_eq!(n.parse::<u32>().unwrap(), *expected, "from {sender}");
        *expected += 1;
    }
    assert!(next.values().all(|n| *n == bursts * 10), "{next:?}");
    wait_stats(&srv, "a wake per burst", |s| {
        s.iter().map(|s| s.room_wakes).sum::<u64>() >= u64::from(bursts)
    });
    srv.shutdown().unwrap();
}

#[test]
fn the_admin_listener_answers_metrics_and_health_only() {
    let (srv, addr) = hibernating_server(10_000);
    let admin = srv.admin_addr().unwrap();
    assert_ne!(admin, addr);
    let (status, body) = http(admin, "GET", "/metrics", "");
    assert_eq!(status, 200);
    for family in [
        "# TYPE partyline_rooms gauge",
        "# TYPE partyline_connections gauge",
        "# TYPE partyline_room_sleeps_total counter",
        "# TYPE partyline_room_wakes_total counter",
        "# TYPE partyline_room_wake_duration_seconds histogram",
        "# TYPE process_resident_memory_bytes gauge",
    ] {
        assert!(body.contains(family), "{family} missing from\n{body}");
    }
    assert!(metric(&srv, "process_resident_memory_bytes").unwrap() > 1e6);
    assert_eq!(http(admin, "GET", "/health", ""), (200, "ok\n".into()));
    assert_eq!(http(admin, "POST", "/metrics", "x").0, 405);
    assert_eq!(http(admin, "GET", "/parties/echo/x", "").0, 404);
    assert!(raw_http(admin, b"GARBAGE\r\n\r\n").starts_with("HTTP/1.1 400"));
    // The public listener keeps /health and does not serve /metrics.
    assert_eq!(http(addr, "GET", "/health", "").0, 200);
    assert_eq!(http(addr, "GET", "/metrics", "").0, 404);
    srv.shutdown().unwrap();
}

/// The fields `Tally` keeps across instances.
#[derive(Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Kept {
    count: u64,
    last: String,
}

/// A hibernating party that keeps a count in its snapshot and another in memory only.
struct Tally {
    kept: Kept,
    /// Messages since this instance started: gone with it.
    scratch: u64,
}

impl Party for Tally {
    const HIBERNATE: bool = true;

    async fn on_start(_room: Room) -> Result<Self> {
        Ok(Tally { kept: Kept::default(), scratch: 0 })
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        let text = message.text()?;
        if text != "?" {
            self.kept.count += 1;
            self.scratch += 1;
            self.kept.last = text.to_owned();
        }
        sender.send(format!("{} {} {}", self.kept.count, self.scratch, self.kept.last))
    }
}

impl partyline::Snapshot for Tally {
    type Fields = Kept;

    fn fields(&mut self) -> &mut Kept {
        &mut self.kept
    }
}

#[test]
fn a_snapshot_keeps_the_party_fields_across_sleep_and_restart() {
    let mut room = TestRoom::<Tally>::new("tally", "t").with_snapshots();
    let a = room.connect("a");
    room.send(&a, "x");
    room.send(&a, "y");
    assert_eq!(room.received_text(&a), ["1 1 x", "2 2 y"]);
    room.hibernate();
    assert!(room.is_asleep());
    // Woken: the snapshot is back, the field outside it starts over.
    room.send(&a, "?");
    assert_eq!(room.received_text(&a), ["2 0 y"]);
    room.send(&a, "z");
    room.restart();
    assert_eq!(room.closed(&a), Some((CloseCode::GOING_AWAY, "server shutting down".into())));
    let b = room.connect("b");
    room.send(&b, "?");
    assert_eq!(room.received_text(&b), ["3 0 z"]);
    // Without snapshots the same party forgets.
    let mut plain = TestRoom::<Tally>::new("tally", "p");
    let c = plain.connect("c");
    plain.send(&c, "x");
    plain.hibernate();
    plain.send(&c, "?");
    assert_eq!(plain.received_text(&c), ["1 1 x", "0 0 "]);
}

#[test]
fn a_damaged_snapshot_is_reported_and_the_room_keeps_what_on_start_built() {
    let mut room = TestRoom::<Tally>::new("tally", "bad").with_snapshots();
    let a = room.connect("a");
    room.send(&a, "x");
    room.hibernate();
    let storage = room.store().room("tally", "bad").unwrap();
    let mut bytes = room.block_on(storage.get_archive(1)).unwrap().expect("a snapshot").to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    room.block_on(storage.put_archive(1, bytes.into())).unwrap();
    // The wake reads it, reports it and deletes it; the connection stays (its archive is
    // fine) and the room goes on with fresh fields.
    room.send(&a, "?");
    assert_eq!(room.received_text(&a), ["1 1 x", "0 0 "]);
    assert!(room.is_open(&a));
    assert_eq!(room.block_on(storage.get_archive(1)).unwrap(), None);
    // A snapshot that is not one (a valid frame around bytes too short for the fields)
    // fails validation the same way.
    room.send(&a, "y");
    room.hibernate();
    let framed = room.block_on(storage.get_archive(1)).unwrap().unwrap();
    let mut forged = framed[..24].to_vec();
    let junk = [0xFFu8; 5];
    forged[8..16].copy_from_slice(&5u64.to_le_bytes());
    forged[16..24].copy_from_slice(&xxhash_rust::xxh3::xxh3_64(&junk).to_le_bytes());
    forged.extend_from_slice(&junk);
    room.block_on(storage.put_archive(1, forged.into())).unwrap();
    room.send(&a, "?");
    assert_eq!(room.received_text(&a), ["1 1 y", "0 0 "]);
}

/// A two-shard server with party `P` (keeping snapshots) as `name`, storing in `data`: the
/// same folder each time, so a restart finds what the last one saved.
fn serve_snapshots<P: partyline::Snapshot>(
    data: &std::path::Path,
    name: &str,
) -> (partyline::RunningServer, std::net::SocketAddr) {
    let mut cfg = config(2);
    cfg.data = data.to_path_buf();
    start(Server::new(cfg).party_with_snapshots::<P>(name))
}

#[test]
fn snapshots_are_saved_at_shutdown_and_found_after_a_restart() {
    let data = data_dir();
    let serve = || serve_snapshots::<Tally>(&data, "tally");
    let (srv, addr) = serve();
    let (mut a, _) = ws(addr, "/parties/tally/kept?_pk=a");
    for word in ["one", "two", "three"] {
        send_text(&mut a, word);
        read_text(&mut a);
    }
    // Awake when the server stops: the shutdown saves it.
    srv.shutdown().unwrap();
    let (srv, addr) = serve();
    let (mut b, _) = ws(addr, "/parties/tally/kept?_pk=b");
    send_text(&mut b, "?");
    assert_eq!(read_text(&mut b), "3 0 three");
    srv.shutdown().unwrap();
}

/// The fields `Farewells` keeps: how many connections have closed, ever.
#[derive(Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Closes {
    count: u64,
}

/// Counts closes in its snapshot; `?` asks for the count.
struct Farewells {
    closes: Closes,
}

impl Party for Farewells {
    const HIBERNATE: bool = true;

    async fn on_start(_room: Room) -> Result<Self> {
        Ok(Farewells { closes: Closes::default() })
    }

    async fn on_message(&mut self, _message: Message, sender: &Connection) -> Result<()> {
        sender.send(self.closes.count.to_string())
    }

    async fn on_close(
        &mut self,
        _conn: &Connection,
        _code: CloseCode,
        _reason: &str,
    ) -> Result<()> {
        self.closes.count += 1;
        Ok(())
    }
}

impl partyline::Snapshot for Farewells {
    type Fields = Closes;

    fn fields(&mut self) -> &mut Closes {
        &mut self.closes
    }
}

#[test]
fn shutdown_runs_every_shards_closes_before_the_room_saves() {
    // Eight rooms whose sockets all live on shard 0's edge (those the kernel hands to shard
    // 1 are closed at once), so shard 1's edge is empty at shutdown. The rooms homed on
    // shard 1 get their shutdown closes from shard 0 only; shard 1 must wait for them, run
    // their on_close and only then stop the rooms and save their snapshots.
    let data = data_dir();
    let serve = || serve_snapshots::<Farewells>(&data, "farewells");
    let (srv, addr) = serve();
    let mut kept = Vec::new();
    let mut opened = [0u64; 8];
    for (room, opened) in opened.iter_mut().enumerate() {
        let path = format!("/parties/farewells/f{room}");
        let mut on_shard_0 = 0;
        while on_shard_0 < 3 {
            let (mut s, shard) = ws(addr, &path);
            *opened += 1;
            send_text(&mut s, "?");
            read_text(&mut s);
            if shard == 0 {
                on_shard_0 += 1;
                kept.push(s);
            } else {
                s.close(None).unwrap();
                while s.read().is_ok() {}
            }
            assert!(*opened < 200, "the kernel never picked shard 0");
        }
    }
    srv.shutdown().unwrap();
    drop(kept);
    let (srv, addr) = serve();
    for (room, opened) in opened.iter().enumerate() {
        let (mut s, _) = ws(addr, &format!("/parties/farewells/f{room}"));
        send_text(&mut s, "?");
        assert_eq!(read_text(&mut s), opened.to_string(), "room f{room}: closes counted");
    }
    srv.shutdown().unwrap();
}
