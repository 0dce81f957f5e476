//! The built-in parties, tested the way party authors test theirs: with `TestRoom`, no
//! sockets and no server, on a manual clock, reading what each connection received, what
//! was broadcast and stored, and which alarm is set. (engine/tests/storage.rs and
//! binary.rs test the same parties end to end over real sockets.)

use partyline::parties::{Chat, Echo, Ephemeral, Items, Relay};
use partyline::{
    CloseCode, Config, ConnectContext, Connection, Message, Party, Request, Response, Result, Room,
    TestRoom,
};
use serde_json::{Value, json};

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn chat_sends_history_first_then_messages_to_everyone_else() {
    let mut room = TestRoom::<Chat>::new("main", "lobby");
    let a = room.connect("a");
    assert_eq!(room.received_text(&a), ["[]"]);
    room.send(&a, "hello");
    let b = room.connect("b");
    assert_eq!(room.received_text(&b), [r#"["hello"]"#]);
    room.send(&b, "hi a");
    assert_eq!(room.received_text(&a), ["hi a"]);
    assert!(room.received(&b).is_empty(), "the sender gets no echo");
    // Each message is durable under its own key.
    assert_eq!(room.stored("h:0000000000000001").as_deref(), Some(&b"hi a"[..]));
    // HTTP: the history, and a POST that goes to everyone.
    let history = room.request(Request::new("GET", "/parties/main/lobby"));
    assert_eq!((history.status(), &history.body()[..]), (200, &br#"["hello","hi a"]"#[..]));
    let posted = room.request(Request::new("POST", "/parties/main/lobby").with_body("from http"));
    assert_eq!(posted.status(), 201);
    assert_eq!(room.received_text(&a), ["from http"]);
    assert_eq!(room.received_text(&b), ["from http"]);
}

#[test]
fn chat_refuses_bad_input_and_changes_nothing() {
    let mut room = TestRoom::<Chat>::new("main", "strict");
    let a = room.connect("a");
    room.received(&a);
    // Not UTF-8: the client's fault, 400.
    let bad =
        room.request(Request::new("POST", "/parties/main/strict").with_body(vec![0xff, 0xfe]));
    assert_eq!(bad.status(), 400);
    // Over the storage value limit: 413 over HTTP, an error back over the socket.
    let huge = "x".repeat(200_000);
    let too_big =
        room.request(Request::new("POST", "/parties/main/strict").with_body(huge.clone()));
    assert_eq!(too_big.status(), 413);
    room.send(&a, huge.as_str());
    let reply = json_of(&room.received_text(&a)[0]);
    assert!(reply["error"].as_str().unwrap().contains("exceeds the limit"), "{reply}");
    let history = room.request(Request::new("GET", "/parties/main/strict"));
    assert_eq!(&history.body()[..], b"[]");
    assert!(room.broadcasts().is_empty());
}

#[test]
fn echo_and_relay() {
    let mut echo = TestRoom::<Echo>::new("echo", "e");
    let a = echo.connect("a");
    echo.send(&a, "text");
    echo.send(&a, vec![0u8, 1, 2]);
    assert_eq!(echo.received(&a), [Message::from("text"), Message::from(vec![0u8, 1, 2])]);

    let mut relay = TestRoom::<Relay>::new("relay", "r");
    let (a, b, c) = (relay.connect("a"), relay.connect("b"), relay.connect("c"));
    relay.send(&a, "from a");
    assert!(relay.received(&a).is_empty());
    assert_eq!(relay.received_text(&b), ["from a"]);
    assert_eq!(relay.received_text(&c), ["from a"]);
    relay.close(&c, CloseCode::NORMAL, "bye");
    relay.send(&b, "from b");
    assert_eq!(relay.received_text(&a), ["from b"]);
    assert!(relay.received(&c).is_empty(), "a closed connection receives nothing");
}

#[test]
fn ephemeral_messages_expire_when_the_alarm_fires() {
    let mut config = Config::default();
    config.env.insert("EPHEMERAL_TTL_MS".into(), "1000".into());
    let mut room = TestRoom::<Ephemeral>::with_config("ephemeral", "e", config);
    let a = room.connect("a");
    assert_eq!(json_of(&room.received_text(&a)[0]), json!({ "type": "history", "messages": [] }));
    let sent_at = room.now_ms();
    room.send(&a, "soon gone");
    let message = json_of(&room.received_text(&a)[0]);
    assert_eq!(
        (message["type"].as_str(), message["text"].as_str()),
        (Some("message"), Some("soon gone"))
    );
    assert_eq!(room.alarm(), Some(sent_at + 1000));
    // Not yet: 1 ms before the alarm nothing happens.
    room.advance(999);
    assert!(room.received(&a).is_empty());
    room.advance(1);
    assert_eq!(json_of(&room.received_text(&a)[0]), json!({ "type": "expired", "ids": [0] }));
    assert_eq!(room.alarm(), None, "no message left, no alarm");
    let live = room.request(Request::new("GET", "/parties/ephemeral/e"));
    assert_eq!(&live.body()[..], b"[]");
}

#[test]
fn items_are_stored_one_key_each_and_changes_are_broadcast() {
    let mut room = TestRoom::<Items>::new("items", "shop");
    let watcher = room.connect("w");
    assert_eq!(json_of(&room.received_text(&watcher)[0]), json!({ "type": "count", "count": 0 }));
    let put =
        room.request(Request::new("PUT", "/parties/items/shop/apple").with_body(r#"{"n":1}"#));
    assert_eq!((put.status(), &put.body()[..]), (200, &br#"{"created":true}"#[..]));
    assert_eq!(
        json_of(&room.received_text(&watcher)[0]),
        json!({ "type": "put", "id": "apple", "value": { "n": 1 } })
    );
    assert_eq!(room.stored("item:apple").as_deref(), Some(&br#"{"n":1}"#[..]));
    assert_eq!(room.stored("meta:count").as_deref(), Some(&b"1"[..]));
    let get = room.request(Request::new("GET", "/parties/items/shop/apple"));
    assert_eq!(&get.body()[..], br#"{"n":1}"#);
    let not_json = room.request(Request::new("PUT", "/parties/items/shop/pear").with_body("{"));
    assert_eq!(not_json.status(), 400);
    let delete = room.request(Request::new("DELETE", "/parties/items/shop/apple"));
    assert_eq!(&delete.body()[..], br#"{"deleted":true}"#);
    assert_eq!(room.stored("meta:count").as_deref(), Some(&b"0"[..]));
    assert_eq!(room.request(Request::new("GET", "/parties/items/shop/apple")).status(), 404);
}

/// A party for the harness's own guarantees: hook failures and panics are contained as on
/// a server, a close the room asks for runs `on_close`, and fetches to other rooms reach
/// the test's handler.
struct Strict {
    room: Room,
    closed: Vec<String>,
}

impl Party for Strict {
    async fn on_start(room: Room) -> Result<Self> {
        Ok(Strict { room, closed: Vec::new() })
    }

    async fn on_connect(&mut self, conn: &Connection, ctx: &ConnectContext) -> Result<()> {
        if ctx.request.target.contains("deny") {
            return Err("not you".into());
        }
        conn.send(format!("closed so far: {}", self.closed.join(",")))
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        match message.text()? {
            "panic" => panic!("asked to"),
            "leave" => {
                sender.close(CloseCode(4001), "asked to leave");
                Ok(())
            }
            "ask" => {
                let answer = self.room.fetch("other", "x", Request::new("GET", "/q")).await?;
                sender.send(String::from_utf8_lossy(answer.body()).into_owned())
            }
            other => sender.send(other.to_owned()),
        }
    }

    async fn on_close(&mut self, conn: &Connection, code: CloseCode, _reason: &str) -> Result<()> {
        self.closed.push(format!("{}:{}", conn.id(), code.0));
        Ok(())
    }
}

#[test]
fn the_harness_contains_failures_and_reports_closes_as_a_server_does() {
    let mut room = TestRoom::<Strict>::new("strict", "s");
    let denied = room.connect_with("d", Request::new("GET", "/parties/strict/s/deny"));
    assert_eq!(room.closed(&denied), Some((CloseCode::INTERNAL_ERROR, "not you".into())));
    let a = room.connect("a");
    assert_eq!(room.received_text(&a), ["closed so far: "]);
    room.send(&a, "leave");
    assert_eq!(room.closed(&a), Some((CloseCode(4001), "asked to leave".into())));
    let b = room.connect("b");
    assert_eq!(room.received_text(&b), ["closed so far: a:4001"], "on_close ran");
    room.on_fetch(|party, id, _request| Response::text(200, format!("{party}/{id} says hi")));
    room.send(&b, "ask");
    assert_eq!(room.received_text(&b), ["other/x says hi"]);
    // A panic closes the sender with 1011 and drops the instance: the next connection
    // meets a fresh one (its list of closes starts again, with b's).
    room.send(&b, "panic");
    assert_eq!(room.closed(&b), Some((CloseCode::INTERNAL_ERROR, "internal error".into())));
    let c = room.connect("c");
    assert_eq!(room.received_text(&c), ["closed so far: b:1011"]);
}

/// The README's `Counter`, tested as the README shows.
struct Counter {
    room: Room,
    count: u64,
}

impl Party for Counter {
    async fn on_start(room: Room) -> Result<Self> {
        Ok(Counter { room, count: 0 })
    }
    async fn on_connect(&mut self, conn: &Connection, _ctx: &ConnectContext) -> Result<()> {
        conn.send(self.count.to_string())
    }
    async fn on_message(&mut self, _message: Message, _sender: &Connection) -> Result<()> {
        self.count += 1;
        self.room.broadcast(self.count.to_string(), &[])
    }
}

#[test]
fn the_readme_example() {
    let mut room = TestRoom::<Counter>::new("counter", "r1");
    let alice = room.connect("alice");
    assert_eq!(room.received_text(&alice), ["0"]);
    room.send(&alice, "hi");
    assert_eq!(room.received_text(&alice), ["1"]);
}

#[test]
fn presence_keeps_each_connections_state_across_sleep() {
    use partyline::parties::Presence;
    let mut room = TestRoom::<Presence>::new("presence", "p");
    let alice = room.connect("alice");
    assert_eq!(json_of(&room.received_text(&alice)[0]), json!({}));
    room.send(&alice, r#"{"cursor":[1,2]}"#);
    let bob = room.connect("bob");
    assert_eq!(json_of(&room.received_text(&bob)[0]), json!({ "alice": { "cursor": [1, 2] } }));
    room.hibernate();
    assert!(room.is_asleep());
    let carol = room.connect("carol");
    assert_eq!(
        json_of(&room.received_text(&carol)[0]),
        json!({ "alice": { "cursor": [1, 2] }, "bob": null }),
        "states survived the sleep"
    );
    room.send(&bob, r#""typing""#);
    let update = json!({ "id": "bob", "state": "typing" });
    assert_eq!(json_of(&room.received_text(&alice)[0]), update);
    assert_eq!(json_of(&room.received_text(&carol)[0]), update);
    // Bad input changes nothing and gets an error back.
    room.send(&bob, "not json");
    room.send(&bob, format!("\"{}\"", "x".repeat(1100)).as_str());
    let errors = room.received_text(&bob);
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| json_of(e)["error"].is_string()), "{errors:?}");
    assert!(room.broadcasts().iter().all(|m| m.text().is_ok_and(|t| !t.contains("not json"))));
    room.close(&alice, CloseCode::NORMAL, "");
    assert_eq!(json_of(&room.received_text(&carol)[0]), json!({ "id": "alice", "left": true }));
}

/// Inside `on_alarm`, the firing alarm no longer counts (Durable Objects' rule): the first
/// `get_alarm` is `None`; once the handler sets a new alarm it reads that one back, and
/// that alarm stands after the handler returns.
#[test]
fn get_alarm_in_on_alarm_sees_only_an_alarm_the_handler_set() {
    struct Ticker {
        room: Room,
        seen: Vec<Option<u64>>,
    }
    impl Party for Ticker {
        async fn on_start(room: Room) -> Result<Self> {
            Ok(Ticker { room, seen: Vec::new() })
        }
        async fn on_request(&mut self, _request: Request) -> Result<Response> {
            let at = self.room.now_ms() + 100;
            self.room.storage().set_alarm(at).await?;
            Ok(Response::json(200, serde_json::to_string(&self.seen)?))
        }
        async fn on_alarm(&mut self) -> Result<()> {
            let storage = self.room.storage();
            self.seen.push(storage.get_alarm().await?);
            if self.seen.len() < 2 {
                storage.set_alarm(self.room.now_ms() + 50).await?;
                self.seen.push(storage.get_alarm().await?);
            }
            Ok(())
        }
    }
    let mut room = TestRoom::<Ticker>::new("ticker", "t");
    let t0 = room.now_ms();
    room.request(Request::new("POST", "/parties/ticker/t"));
    assert_eq!(room.alarm(), Some(t0 + 100));
    room.advance(100);
    // First run: none while firing, then the one it set, which stands afterwards.
    assert_eq!(room.alarm(), Some(t0 + 150));
    room.advance(50);
    // Second run sets none: the alarm that fired is cleared.
    assert_eq!(room.alarm(), None);
    let seen = room.request(Request::new("GET", "/parties/ticker/t"));
    let seen: Vec<Option<u64>> = serde_json::from_slice(seen.body()).unwrap();
    assert_eq!(seen[..3], [None, Some(t0 + 150), None]);
}

/// Takes at most 3 messages a call with the default `on_messages` (one `on_message` each):
/// a failure goes to `on_error` for its own sender and the rest of the batch goes on.
struct Tally {
    room: Room,
}

impl Party for Tally {
    const MESSAGE_BATCH_MAX: usize = 3;

    async fn on_start(room: Room) -> Result<Self> {
        Ok(Tally { room })
    }

    async fn on_message(&mut self, message: Message, _sender: &Connection) -> Result<()> {
        match message.text()? {
            "bad" => Err("a bad message".into()),
            text => self.room.broadcast(format!("one:{text}"), &[]),
        }
    }

    async fn on_error(&mut self, conn: &Connection, error: &partyline::Error) -> Result<()> {
        conn.send(format!("error:{error}"))
    }
}

/// Answers a batch as a whole; panics if a message says so.
struct Grouped {
    room: Room,
}

impl Party for Grouped {
    const MESSAGE_BATCH_MAX: usize = 8;

    async fn on_start(room: Room) -> Result<Self> {
        Ok(Grouped { room })
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        self.on_messages(vec![(message, sender.clone())]).await
    }

    async fn on_messages(&mut self, batch: Vec<(Message, Connection)>) -> Result<()> {
        let texts = batch.iter().map(|(m, _)| m.text()).collect::<Result<Vec<_>>>()?;
        assert!(!texts.contains(&"panic"), "asked to panic");
        self.room.broadcast(format!("batch:{}", texts.join(",")), &[])
    }
}

#[test]
fn the_harness_sends_batches_as_a_busy_room_takes_them() {
    // The default on_messages: on_message per message, on_error per failure.
    let mut room = TestRoom::<Tally>::new("tally", "t");
    let (a, b) = (room.connect("a"), room.connect("b"));
    let batch: Vec<(&_, Message)> =
        vec![(&a, "x".into()), (&b, "bad".into()), (&a, "y".into()), (&a, "z".into())];
    room.send_batch(batch);
    let texts = |ms: Vec<Message>| -> Vec<String> {
        ms.into_iter().map(|m| m.text().unwrap().to_owned()).collect()
    };
    assert_eq!(texts(room.broadcasts()), ["one:x", "one:y", "one:z"]);
    assert_eq!(room.received_text(&b), ["one:x", "error:a bad message", "one:y", "one:z"]);
    assert!(room.is_open(&b), "a failed message does not close its sender");

    // A party's own on_messages gets the batch whole (split at MESSAGE_BATCH_MAX).
    let mut room = TestRoom::<Grouped>::new("grouped", "g");
    let (a, b) = (room.connect("a"), room.connect("b"));
    let batch: Vec<(&_, Message)> =
        (0..10).map(|i| (if i % 2 == 0 { &a } else { &b }, Message::from(i.to_string()))).collect();
    room.send_batch(batch);
    assert_eq!(texts(room.broadcasts()), ["batch:0,1,2,3,4,5,6,7", "batch:8,9"]);
    // A lone message comes to on_message.
    room.send_batch(vec![(&a, "solo".into())]);
    assert_eq!(texts(room.broadcasts()), ["batch:solo"]);
    // A panic closes every sender of the batch with 1011 and drops the instance.
    room.send_batch(vec![(&a, "fine".into()), (&b, "panic".into())]);
    assert_eq!(room.closed(&a), Some((CloseCode::INTERNAL_ERROR, "internal error".into())));
    assert_eq!(room.closed(&b), Some((CloseCode::INTERNAL_ERROR, "internal error".into())));
    let c = room.connect("c");
    room.send(&c, "after");
    assert_eq!(texts(room.broadcasts()), ["batch:after"]);

    // A party that takes one message at a time gets a batch one by one.
    let mut room = TestRoom::<Counter>::new("counter", "c");
    let a = room.connect("a");
    room.send_batch(vec![(&a, "1".into()), (&a, "2".into()), (&a, "3".into())]);
    assert_eq!(room.received_text(&a), ["0", "1", "2", "3"]);
}
