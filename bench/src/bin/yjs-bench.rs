//! `yjs-bench`: what a Yjs document costs the server (issue 14). Runs a one-shard server
//! in this process (rooms hibernate after 500 ms) with the built-in `yjs` party and real
//! y-websocket clients (tungstenite, updates made with `yrs`), then measures:
//!
//! - memory per loaded document: `--docs` rooms, one socket each; resident memory with
//!   the rooms awake and empty, then after each received an update of `--doc-kb` of text;
//! - memory per sleeping document: the same after every room slept (freed memory handed
//!   back first);
//! - wake time of a large document: one room with `--big-kb` of text sleeps, then a `GET`
//!   of its text wakes it (read the snapshot and log, apply them, encode the text), timed
//!   `--cycles` times, against the same `GET` while awake.
//!
//! Prints one JSON object. Resident memory is the whole process's (client sockets
//! included, the same in every phase).

use clap::Parser;
use partyline::{Admin, Config, Server};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use yrs::sync::{Message as YMessage, SyncMessage};
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Documents (rooms) loaded at once for the memory figures.
    #[arg(long, default_value_t = 500)]
    docs: usize,
    /// Text in each of them, in KiB.
    #[arg(long, default_value_t = 10)]
    doc_kb: usize,
    /// Text in the large document, in KiB.
    #[arg(long, default_value_t = 1000)]
    big_kb: usize,
    /// Sleep/wake cycles of the large document.
    #[arg(long, default_value_t = 5)]
    cycles: usize,
}

type Ws = tungstenite::WebSocket<TcpStream>;

fn connect(addr: SocketAddr, room: &str) -> Ws {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let (ws, _) = tungstenite::client::client(format!("ws://{addr}/parties/yjs/{room}"), tcp)
        .expect("upgrade");
    ws
}

/// An update inserting `kb` KiB of text into the root text `t`.
fn text_update(kb: usize) -> Vec<u8> {
    let doc = Doc::new();
    let t = doc.get_or_insert_text("t");
    let text: String =
        (0..kb * 1024).map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap_or(0))).collect();
    t.insert(&mut doc.transact_mut(), 0, &text);
    let update = doc.transact().encode_state_as_update_v1(&StateVector::default());
    YMessage::Sync(SyncMessage::Update(update)).encode_v1()
}

fn get_text(addr: SocketAddr, room: &str) -> (Duration, usize) {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).expect("connect");
    let request =
        format!("GET /parties/yjs/{room}?text=t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).expect("request");
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).expect("response");
    (started.elapsed(), response.len())
}

/// Waits until the room's text reads back at least `kb` KiB (its update stored and
/// applied).
fn wait_text(addr: SocketAddr, room: &str, kb: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get_text(addr, room).1 <= kb * 1024 {
        assert!(Instant::now() < deadline, "room {room} never got its document");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn resident(settle: Duration) -> u64 {
    std::thread::sleep(settle);
    partyline::rt::release_freed_memory();
    partyline::rt::usage().resident_bytes
}

fn wait_asleep(srv: &partyline::RunningServer, rooms: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while srv.stats().iter().map(|s| s.rooms_asleep).sum::<usize>() < rooms {
        assert!(Instant::now() < deadline, "rooms did not fall asleep");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let args = Args::parse();
    let data = std::env::temp_dir().join(format!("yjs-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        shards: 1,
        pin_cores: false,
        admin: Admin::Off,
        data: data.clone(),
        hibernate_after_ms: 500,
        ..Config::default()
    };
    let srv = Server::new(config).with_builtin_parties().start().expect("server starts");
    let addr = srv.local_addr();

    // Wake time of a large document.
    let mut big = connect(addr, "big");
    big.send(tungstenite::Message::binary(text_update(args.big_kb))).expect("send");
    wait_text(addr, "big", args.big_kb);
    let awake: Vec<f64> =
        (0..args.cycles).map(|_| get_text(addr, "big").0.as_secs_f64() * 1e3).collect();
    let mut wakes = Vec::new();
    for _ in 0..args.cycles {
        // Past the 500 ms of quiet and a sweep: the only room is asleep again.
        std::thread::sleep(Duration::from_millis(1_200));
        wait_asleep(&srv, 1);
        wakes.push(get_text(addr, "big").0.as_secs_f64() * 1e3);
    }
    drop(big);

    // Memory: rooms awake and empty, then each with its document, then all asleep.
    let mut sockets: Vec<Ws> = (0..args.docs).map(|i| connect(addr, &format!("d{i}"))).collect();
    let empty = resident(Duration::from_millis(300));
    let update = text_update(args.doc_kb);
    for ws in &mut sockets {
        ws.send(tungstenite::Message::binary(update.clone())).expect("send");
    }
    // Every room has stored and applied its update once its text reads back.
    for i in 0..args.docs {
        wait_text(addr, &format!("d{i}"), args.doc_kb);
    }
    let loaded = resident(Duration::from_millis(100));
    wait_asleep(&srv, args.docs);
    let asleep = resident(Duration::from_millis(500));
    drop(sockets);

    let report = serde_json::json!({
        "docs": args.docs,
        "doc_kb": args.doc_kb,
        "resident_bytes": { "awake_empty": empty, "loaded": loaded, "asleep": asleep },
        "bytes_per_loaded_doc": (loaded as f64 - empty as f64) / args.docs as f64,
        "bytes_per_sleeping_doc": (asleep as f64 - empty as f64) / args.docs as f64,
        "big_kb": args.big_kb,
        "get_text_awake_ms_median": median(awake),
        "wake_and_get_text_ms_median": median(wakes.clone()),
        "wake_and_get_text_ms": wakes,
    });
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    let _ = writeln!(std::io::stdout(), "{text}");
    srv.shutdown().expect("shutdown");
    let _ = std::fs::remove_dir_all(&data);
}
