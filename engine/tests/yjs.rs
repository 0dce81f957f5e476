//! The built-in `yjs` party against a real server, with `yrs` documents as clients speaking
//! the y-websocket protocol over tungstenite: two clients edit one text concurrently and
//! converge, a third joins later and gets everything, the document survives a restart, a
//! hibernation cycle and compaction, read-only connections change nothing, `GET` answers
//! the document, malformed input closes only its own connection (1003, 1007) with the
//! document unchanged, and an update passed on survives `kill -9` of the binary.

mod common;

use common::*;
use partyline::Server;
use std::time::Duration;
use yrs::sync::{Message as YMessage, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, Text, Transact, Update};

/// A y-websocket client: a local document synced through one socket.
struct Peer {
    ws: Ws,
    doc: Doc,
}

impl Peer {
    /// Connects and completes the sync: answers the server's step 1 and applies its step 2.
    fn join(addr: std::net::SocketAddr, room: &str, query: &str) -> Peer {
        let (ws, _) = ws(addr, &format!("/parties/yjs/{room}{query}"));
        let mut peer = Peer { ws, doc: Doc::new() };
        let sv = peer.doc.transact().state_vector();
        peer.send(YMessage::Sync(SyncMessage::SyncStep1(sv)));
        // The server's step 1 (its state vector) and its step 2 (what we lack).
        let mut got_step2 = false;
        while !got_step2 {
            for m in peer.read() {
                match m {
                    YMessage::Sync(SyncMessage::SyncStep1(server_sv)) => {
                        let update = peer.doc.transact().encode_state_as_update_v1(&server_sv);
                        peer.send(YMessage::Sync(SyncMessage::SyncStep2(update)));
                    }
                    YMessage::Sync(SyncMessage::SyncStep2(u)) => {
                        peer.apply(&u);
                        got_step2 = true;
                    }
                    _ => {}
                }
            }
        }
        peer
    }

    fn send(&mut self, m: YMessage) {
        self.ws.send(tungstenite::Message::binary(m.encode_v1())).unwrap();
    }

    /// The messages in the next binary frame.
    fn read(&mut self) -> Vec<YMessage> {
        loop {
            match self.ws.read().expect("a message") {
                tungstenite::Message::Binary(b) => {
                    let mut decoder = yrs::updates::decoder::DecoderV1::from(&b[..]);
                    return yrs::sync::MessageReader::new(&mut decoder)
                        .map(|m| m.expect("the server's messages decode"))
                        .collect();
                }
                tungstenite::Message::Close(f) => panic!("closed: {f:?}"),
                _ => {}
            }
        }
    }

    fn apply(&self, update: &[u8]) {
        self.doc.transact_mut().apply_update(Update::decode_v1(update).unwrap()).unwrap();
    }

    /// Edits the text and sends the change as an update.
    fn insert(&mut self, at: u32, text: &str) {
        let t = self.doc.get_or_insert_text("t");
        let before = self.doc.transact().state_vector();
        t.insert(&mut self.doc.transact_mut(), at, text);
        let update = self.doc.transact().encode_state_as_update_v1(&before);
        self.send(YMessage::Sync(SyncMessage::Update(update)));
    }

    /// Applies incoming updates until `text` holds.
    fn wait_for(&mut self, check: impl Fn(&str) -> bool) -> String {
        let t = self.doc.get_or_insert_text("t");
        loop {
            let now = t.get_string(&self.doc.transact());
            if check(&now) {
                return now;
            }
            for m in self.read() {
                if let YMessage::Sync(SyncMessage::Update(u) | SyncMessage::SyncStep2(u)) = m {
                    self.apply(&u);
                }
            }
        }
    }
}

fn text_over_http(addr: std::net::SocketAddr, room: &str) -> String {
    let (status, body) = http(addr, "GET", &format!("/parties/yjs/{room}?text=t"), "");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn two_clients_converge_a_third_gets_everything_and_a_restart_keeps_it() {
    let data = data_dir();
    let cfg = partyline::Config { data: data.clone(), ..config(2) };
    let (srv, addr) = start(Server::new(cfg).with_builtin_parties());
    let mut a = Peer::join(addr, "doc", "");
    let mut b = Peer::join(addr, "doc", "");
    a.insert(0, "hello");
    b.wait_for(|t| t == "hello");
    // Concurrent edits at both ends.
    a.insert(5, " world");
    b.insert(0, ">> ");
    let at_a = a.wait_for(|t| t.len() == 14);
    let at_b = b.wait_for(|t| t.len() == 14);
    assert_eq!(at_a, at_b, "both converge");
    assert!(at_a.contains("hello world") && at_a.starts_with(">> "), "{at_a}");
    let mut c = Peer::join(addr, "doc", "");
    assert_eq!(c.wait_for(|t| t.len() == 14), at_a, "a late joiner gets the whole document");
    assert_eq!(text_over_http(addr, "doc"), at_a);
    // The whole document over HTTP, as one update.
    let raw =
        raw_http(addr, b"GET /parties/yjs/doc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(raw.contains("application/octet-stream"), "{raw}");
    drop((a, b, c));
    srv.shutdown().unwrap();
    // A new process on the same data.
    let cfg = partyline::Config { data, ..config(2) };
    let (srv, addr) = start(Server::new(cfg).with_builtin_parties());
    assert_eq!(text_over_http(addr, "doc"), at_a, "the document survives a restart");
    let mut d = Peer::join(addr, "doc", "");
    assert_eq!(d.wait_for(|t| t.len() == 14), at_a);
    srv.shutdown().unwrap();
}

#[test]
fn malformed_input_closes_only_its_connection_and_changes_nothing() {
    let (srv, addr) = start(Server::new(config(1)).with_builtin_parties());
    let mut a = Peer::join(addr, "bad", "");
    a.insert(0, "kept");
    let mut b = Peer::join(addr, "bad", "");
    b.wait_for(|t| t == "kept");
    // A state vector announcing four billion entries in a few bytes: refused, not decoded.
    let (mut evil, _) = ws(addr, "/parties/yjs/bad");
    evil.send(tungstenite::Message::binary(vec![0u8, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x0f])).unwrap();
    assert_eq!(read_close(&mut evil).0, 1007);
    // Truncated update, then a text frame.
    let (mut cut, _) = ws(addr, "/parties/yjs/bad");
    cut.send(tungstenite::Message::binary(vec![0u8, 2, 10, 1, 1])).unwrap();
    assert_eq!(read_close(&mut cut).0, 1007);
    let (mut texty, _) = ws(addr, "/parties/yjs/bad");
    texty.send(tungstenite::Message::text("hello")).unwrap();
    assert_eq!(read_close(&mut texty).0, 1003);
    // The others go on, and the document is as it was.
    a.insert(4, "!");
    assert_eq!(b.wait_for(|t| t == "kept!"), "kept!");
    assert_eq!(text_over_http(addr, "bad"), "kept!");
    srv.shutdown().unwrap();
}

#[test]
fn readonly_connections_read_and_change_nothing() {
    let (srv, addr) = start(Server::new(config(1)).with_builtin_parties());
    let mut writer = Peer::join(addr, "ro", "");
    writer.insert(0, "mine");
    let mut reader = Peer::join(addr, "ro", "?readonly=1");
    reader.wait_for(|t| t == "mine");
    reader.insert(0, "not ");
    writer.insert(4, "!");
    reader.wait_for(|t| t.ends_with('!'));
    assert_eq!(text_over_http(addr, "ro"), "mine!", "the read-only edit never reached the room");
    srv.shutdown().unwrap();
}

#[test]
fn the_document_and_awareness_survive_hibernation_and_compaction() {
    let mut cfg = config(1);
    cfg.hibernate_after_ms = 300;
    let (srv, addr) = start(Server::new(cfg).with_builtin_parties());
    let mut a = Peer::join(addr, "sleepy", "");
    // Past the log's bound: the room compacts into a snapshot on the way.
    for i in 0..(partyline::parties::yjs::LOG_UPDATES_MAX + 20) {
        a.insert(u32::try_from(i).unwrap(), "x");
    }
    let expected = "x".repeat(partyline::parties::yjs::LOG_UPDATES_MAX + 20);
    // Awareness: one client's state, as y-protocols encodes it.
    let state = r#"{"user":{"name":"ann"}}"#;
    let mut entries = vec![1u8, 42, 1, u8::try_from(state.len()).unwrap()];
    entries.extend_from_slice(state.as_bytes());
    let mut awareness = vec![1u8, u8::try_from(entries.len()).unwrap()];
    awareness.extend(entries);
    a.ws.send(tungstenite::Message::binary(awareness)).unwrap();
    // The room falls asleep (its instance and document leave memory).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while srv.stats().iter().map(|s| s.rooms_asleep).sum::<usize>() == 0 {
        assert!(std::time::Instant::now() < deadline, "the room never slept");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A newcomer wakes it: it gets the whole document and ann's awareness.
    let (mut ws_c, _) = ws(addr, "/parties/yjs/sleepy");
    let mut saw_awareness = false;
    let mut saw_step1 = false;
    while !(saw_awareness && saw_step1) {
        let tungstenite::Message::Binary(b) = ws_c.read().unwrap() else { continue };
        let mut decoder = yrs::updates::decoder::DecoderV1::from(&b[..]);
        for m in yrs::sync::MessageReader::new(&mut decoder) {
            match m.unwrap() {
                YMessage::Awareness(u) => {
                    assert_eq!(&*u.clients[&42].json, state);
                    saw_awareness = true;
                }
                YMessage::Sync(SyncMessage::SyncStep1(_)) => saw_step1 = true,
                _ => {}
            }
        }
    }
    drop(ws_c);
    assert_eq!(text_over_http(addr, "sleepy"), expected, "the document survives sleep");
    let c = Peer::join(addr, "sleepy", "");
    let t = c.doc.get_or_insert_text("t");
    assert_eq!(t.get_string(&c.doc.transact()), expected);
    // Leaving announces ann gone: her state null, one clock later.
    let mut c = c;
    a.ws.close(None).unwrap();
    drop(a);
    let gone = loop {
        let found = c.read().into_iter().find_map(|m| match m {
            YMessage::Awareness(u) => u.clients.get(&42).map(|e| (e.clock, e.json.to_string())),
            _ => None,
        });
        if let Some(found) = found {
            break found;
        }
    };
    assert_eq!(gone, (2, "null".to_owned()));
    srv.shutdown().unwrap();
}

/// An update another client has received was stored first: `kill -9` right after loses
/// nothing.
#[test]
fn an_update_passed_on_survives_kill_9() {
    let data = data_dir();
    let mut server = Served::start(&data, &["--shards", "1"]);
    let mut a = Peer::join(server.addr, "crash", "");
    let mut b = Peer::join(server.addr, "crash", "");
    let mut at = 0;
    for word in ["durable ", "before ", "the kill"] {
        a.insert(at, word);
        at += u32::try_from(word.len()).unwrap();
        b.wait_for(|t| t.ends_with(word));
    }
    server.kill_9();
    drop((a, b));
    let server = Served::start(&data, &["--shards", "1"]);
    assert_eq!(text_over_http(server.addr, "crash"), "durable before the kill");
}

/// Updates that queued together (here fed as one batch through the party harness) are
/// stored as one merged update with one write and reach everyone as one message; a
/// malformed one in the batch closes only its sender and costs the others nothing.
#[test]
fn a_batch_of_updates_is_one_durable_write_and_one_message() {
    use partyline::parties::Yjs;
    use partyline::{CloseCode, Message, TestRoom};
    let mut room = TestRoom::<Yjs>::new("yjs", "batch");
    let (a, b, bad, c) =
        (room.connect("a"), room.connect("b"), room.connect("x"), room.connect("c"));
    for conn in [&a, &b, &bad, &c] {
        room.received(conn);
    }
    let typed = |client: u64, text: &str| -> Message {
        let doc = Doc::with_client_id(client);
        let t = doc.get_or_insert_text("t");
        t.insert(&mut doc.transact_mut(), 0, text);
        let update = doc.transact().encode_state_as_update_v1(&Default::default());
        YMessage::Sync(SyncMessage::Update(update)).encode_v1().into()
    };
    // A sync update whose payload is not an update.
    let garbage: Message = vec![0u8, 2, 3, 0xff, 0xff, 0xff].into();
    room.send_batch(vec![(&a, typed(1, "left ")), (&bad, garbage), (&b, typed(2, "right"))]);
    assert_eq!(room.closed(&bad).map(|(code, _)| code), Some(CloseCode::INVALID_PAYLOAD));
    assert!(room.is_open(&a) && room.is_open(&b));
    // One log entry for both.
    assert!(room.stored("y:u:0000000000000000:0000").is_some(), "the batch is stored");
    assert!(room.stored("y:u:0000000000000001:0000").is_none(), "as one update");
    // c gets one message with both; so do the senders (two of them sent the batch).
    let doc = Doc::new();
    let got = room.received(&c);
    assert_eq!(got.len(), 1, "one message for the batch");
    for m in got {
        let Message::Binary(bytes) = m else { panic!("binary") };
        let Ok(YMessage::Sync(SyncMessage::Update(u))) = YMessage::decode_v1(&bytes) else {
            panic!("an update")
        };
        doc.transact_mut().apply_update(Update::decode_v1(&u).unwrap()).unwrap();
    }
    let text = doc.get_or_insert_text("t").get_string(&doc.transact());
    assert!(text.contains("left ") && text.contains("right"), "{text}");
    assert_eq!(room.received(&a).len(), 1);
    // What is stored is what was sent: a restarted room reads the same document.
    room.restart();
    let (status, body) = {
        let r = room.request(partyline::Request::new("GET", "/parties/yjs/batch?text=t"));
        (r.status(), String::from_utf8_lossy(r.body()).into_owned())
    };
    assert_eq!((status, body), (200, text));
}

/// A write that fails stores nothing and sends nothing on: the sender is closed with 1011
/// (a y-websocket client reconnects and syncs, sending what the room lacks), and the
/// document is read back from storage before the room answers from it again.
#[test]
fn a_failed_write_sends_nothing_on_and_closes_the_sender() {
    use partyline::parties::Yjs;
    use partyline::{CloseCode, Message, TestRoom};
    let mut room = TestRoom::<Yjs>::new("yjs", "fails");
    let (a, b) = (room.connect("a"), room.connect("b"));
    room.received(&a);
    room.received(&b);
    let doc = Doc::with_client_id(1);
    doc.get_or_insert_text("t").insert(&mut doc.transact_mut(), 0, "lost?");
    let update = doc.transact().encode_state_as_update_v1(&Default::default());
    let message: Message = YMessage::Sync(SyncMessage::Update(update)).encode_v1().into();
    // The store refuses writes from now on.
    room.store().close();
    room.send(&a, message);
    assert_eq!(room.closed(&a).map(|(code, _)| code), Some(CloseCode::INTERNAL_ERROR));
    assert!(room.received(&b).is_empty(), "nothing unstored is sent on");
    assert!(room.broadcasts().is_empty());
}

/// A batch larger than `BATCH_BYTES_MAX` is stored in groups of at most that (or one
/// larger update), one write and one message each.
#[test]
fn a_large_batch_is_stored_in_groups_of_bounded_size() {
    use partyline::parties::Yjs;
    use partyline::parties::yjs::BATCH_BYTES_MAX;
    use partyline::{Message, TestRoom};
    let mut room = TestRoom::<Yjs>::new("yjs", "large");
    let (a, b, c) = (room.connect("a"), room.connect("b"), room.connect("c"));
    room.received(&c);
    let big = |client: u64| -> Message {
        let doc = Doc::with_client_id(client);
        let text = "x".repeat(BATCH_BYTES_MAX * 2 / 3);
        doc.get_or_insert_text("t").insert(&mut doc.transact_mut(), 0, &text);
        let update = doc.transact().encode_state_as_update_v1(&Default::default());
        YMessage::Sync(SyncMessage::Update(update)).encode_v1().into()
    };
    room.send_batch(vec![(&a, big(1)), (&b, big(2)), (&a, big(3))]);
    // One message per write, each of one update (the log was then compacted).
    let got = room.received(&c);
    assert_eq!(got.len(), 3, "one message per write");
    assert!(got.iter().all(|m| m.len() < BATCH_BYTES_MAX), "each holds one update");
    assert!(room.stored("y:s:0000").is_some(), "compacted into a snapshot");
    let r = room.request(partyline::Request::new("GET", "/parties/yjs/large?text=t"));
    assert_eq!(r.body().len(), BATCH_BYTES_MAX * 2 / 3 * 3);
}
