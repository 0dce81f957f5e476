//! Room storage and alarms through the real server: party code reads and writes its
//! room's storage, the `main` chat's history survives a restart, alarms fire at their time
//! on a manual clock (no real waiting for the alarm's time), load unloaded rooms, survive
//! restarts, know their room id, and are retried with backoff when the handler fails; the
//! `ephemeral` and `items` examples do what their docs say.

mod common;

use common::*;
use partyline::{Clock, Connection, Party, Request, Response, Result, Room, Server};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// The manual clock's start: 2026-11-23, in ms since the Unix epoch.
const T0: u64 = 1_795_392_000_000;

/// Storage over HTTP, for tests: `GET|PUT|DELETE /k/<key>`, `POST /alarm` (body: delay in
/// ms from now), `GET /alarm`, `DELETE /alarm`. `on_alarm` records what it saw.
struct Kv {
    room: Room,
}

impl Party for Kv {
    async fn on_start(room: Room) -> Result<Self> {
        Ok(Kv { room })
    }

    async fn on_request(&mut self, request: Request) -> Result<Response> {
        let storage = self.room.storage();
        let sub = self.room.sub_path(&request).to_owned();
        let text = |v: Option<bytes::Bytes>| match v {
            Some(v) => Response::text(200, String::from_utf8_lossy(&v).into_owned()),
            None => Response::text(404, "none"),
        };
        Ok(match (request.method.as_str(), sub.as_str()) {
            ("GET", "/alarm") => {
                Response::json(200, serde_json::to_string(&storage.get_alarm().await?)?)
            }
            ("POST", "/alarm") => {
                let delay: u64 = request.text()?.parse()?;
                storage.set_alarm(self.room.now_ms() + delay).await?;
                Response::text(200, "set")
            }
            ("DELETE", "/alarm") => {
                storage.delete_alarm().await?;
                Response::text(200, "deleted")
            }
            ("GET", k) => text(storage.get(k.trim_start_matches("/k/")).await?),
            ("PUT", k) => {
                storage.put(k.trim_start_matches("/k/"), request.body.clone()).await?;
                Response::text(200, "stored")
            }
            ("DELETE", k) => {
                Response::text(200, storage.delete(k.trim_start_matches("/k/")).await?.to_string())
            }
            _ => Response::text(405, "no"),
        })
    }

    async fn on_connect(
        &mut self,
        conn: &Connection,
        _ctx: &partyline::ConnectContext,
    ) -> Result<()> {
        conn.send("hello")
    }

    async fn on_alarm(&mut self) -> Result<()> {
        let storage = self.room.storage();
        let fired: u64 = storage.get_json("fired_count").await?.unwrap_or(0);
        storage.put_json("fired_count", &(fired + 1)).await?;
        storage
            .put_json("fired", &json!({ "room": self.room.id(), "at": self.room.now_ms() }))
            .await?;
        self.room.broadcast(format!("alarm in {}", self.room.id()), &[])?;
        // Room ids starting with "fail" fail until their attempt number in the id
        // ("fail-3" succeeds on the third attempt; "fail-never" never does).
        if let Some(n) = self.room.id().strip_prefix("fail-") {
            let succeed_at: u64 = n.parse().unwrap_or(u64::MAX);
            if fired + 1 < succeed_at {
                return Err(format!("attempt {} failed", fired + 1).into());
            }
        }
        Ok(())
    }
}

fn server(data: &Path, clock: &Clock) -> (partyline::RunningServer, SocketAddr) {
    let config = partyline::Config { data: data.to_owned(), ..config(2) };
    start(Server::new(config).with_builtin_parties().party::<Kv>("kv").clock(clock.clone()))
}

/// Polls `check` until it returns `Some`, for up to 10 s of real time.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, "");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

#[test]
fn party_code_reads_and_writes_its_room_storage_durably() {
    let data = data_dir();
    let clock = Clock::system();
    {
        let (srv, addr) = server(&data, &clock);
        assert_eq!(http(addr, "PUT", "/parties/kv/a/k/color", "blue"), (200, "stored".into()));
        assert_eq!(http(addr, "GET", "/parties/kv/a/k/color", ""), (200, "blue".into()));
        // Rooms are separate, even with the same key.
        assert_eq!(http(addr, "GET", "/parties/kv/b/k/color", ""), (404, "none".into()));
        assert_eq!(http(addr, "DELETE", "/parties/kv/a/k/gone", ""), (200, "false".into()));
        // A value over the limit is refused with the storage's own message; nothing changes.
        let big = "x".repeat(131_073);
        let (status, body) = http(addr, "PUT", "/parties/kv/a/k/color", &big);
        assert_eq!(status, 500);
        assert!(body.contains("value of 131073 bytes exceeds the limit of 131072 bytes"), "{body}");
        assert_eq!(http(addr, "GET", "/parties/kv/a/k/color", ""), (200, "blue".into()));
        srv.shutdown().unwrap();
    }
    // A new server on the same folder (the old one released it) finds everything.
    let (srv, addr) = server(&data, &clock);
    assert_eq!(http(addr, "GET", "/parties/kv/a/k/color", ""), (200, "blue".into()));
    srv.shutdown().unwrap();
}

#[test]
fn a_second_server_on_the_same_data_folder_is_refused() {
    let data = data_dir();
    let (srv, _) = server(&data, &Clock::system());
    let config = partyline::Config { data: data.clone(), ..config(1) };
    let err = Server::new(config).with_builtin_parties().start().unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    srv.shutdown().unwrap();
}

#[test]
fn main_chat_history_survives_a_restart() {
    let data = data_dir();
    let clock = Clock::system();
    {
        let (srv, addr) = server(&data, &clock);
        assert_eq!(http(addr, "POST", "/parties/main/lobby", "first").0, 201);
        let (mut alice, _) = ws(addr, "/parties/main/lobby?_pk=alice");
        assert_eq!(read_text(&mut alice), r#"["first"]"#);
        let (mut bob, _) = ws(addr, "/parties/main/lobby?_pk=bob");
        assert_eq!(read_text(&mut bob), r#"["first"]"#);
        send_text(&mut alice, "second");
        // Stored before it is broadcast: once bob sees it, it is durable.
        assert_eq!(read_text(&mut bob), "second");
        // Too big to store: the sender hears why; nobody else gets it.
        send_text(&mut alice, &"y".repeat(131_073));
        let error: Value = serde_json::from_str(&read_text(&mut alice)).unwrap();
        assert!(error["error"].as_str().unwrap().contains("exceeds the limit"), "{error}");
        let (status, _) = http(addr, "POST", "/parties/main/lobby", &"z".repeat(131_073));
        assert_eq!(status, 413);
        send_text(&mut alice, "third");
        assert_eq!(read_text(&mut bob), "third");
        srv.shutdown().unwrap();
    }
    let (srv, addr) = server(&data, &clock);
    assert_eq!(get_json(addr, "/parties/main/lobby"), json!(["first", "second", "third"]));
    let (mut carol, _) = ws(addr, "/party/lobby?_pk=carol");
    assert_eq!(read_text(&mut carol), r#"["first","second","third"]"#);
    send_text(&mut carol, "fourth");
    // The message and the request travel separately (maybe through different shards).
    let all = json!(["first", "second", "third", "fourth"]);
    eventually("the fourth message", || {
        (get_json(addr, "/parties/main/lobby") == all).then_some(())
    });
    srv.shutdown().unwrap();
}

#[test]
fn alarms_fire_at_their_time_with_the_room_id_and_are_cleared() {
    let data = data_dir();
    let clock = Clock::manual(T0);
    let (srv, addr) = server(&data, &clock);
    let (mut near_ws, _) = ws(addr, "/parties/kv/near");
    assert_eq!(read_text(&mut near_ws), "hello");
    // One alarm a second away (scheduled at once), one an hour away (beyond the shards'
    // horizon: the store poll brings it when it nears).
    assert_eq!(http(addr, "POST", "/parties/kv/near/alarm", "1000"), (200, "set".into()));
    assert_eq!(http(addr, "POST", "/parties/kv/far/alarm", "3600000"), (200, "set".into()));
    assert_eq!(get_json(addr, "/parties/kv/near/alarm"), json!(T0 + 1000));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(http(addr, "GET", "/parties/kv/near/k/fired", "").0, 404, "not yet due");

    clock.advance(999);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(http(addr, "GET", "/parties/kv/near/k/fired", "").0, 404, "1 ms early");
    clock.advance(1);
    assert_eq!(read_text(&mut near_ws), "alarm in near");
    assert_eq!(
        get_json(addr, "/parties/kv/near/k/fired"),
        json!({ "room": "near", "at": T0 + 1000 })
    );
    eventually("the near alarm cleared", || {
        (get_json(addr, "/parties/kv/near/alarm") == Value::Null).then_some(())
    });

    clock.advance(3_600_000);
    let fired = eventually("the far alarm", || {
        let (status, body) = http(addr, "GET", "/parties/kv/far/k/fired", "");
        (status == 200).then(|| serde_json::from_str::<Value>(&body).unwrap())
    });
    assert_eq!(fired["room"], "far");
    assert!(fired["at"].as_u64().unwrap() >= T0 + 3_600_000);
    // Each ran exactly once.
    clock.advance(60_000);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(http(addr, "GET", "/parties/kv/near/k/fired_count", ""), (200, "1".into()));
    assert_eq!(http(addr, "GET", "/parties/kv/far/k/fired_count", ""), (200, "1".into()));

    // A deleted alarm never fires; a moved one fires at its new time only.
    http(addr, "POST", "/parties/kv/moved/alarm", "500");
    http(addr, "POST", "/parties/kv/moved/alarm", "5000");
    http(addr, "POST", "/parties/kv/deleted/alarm", "500");
    http(addr, "DELETE", "/parties/kv/deleted/alarm", "");
    clock.advance(1_000);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(http(addr, "GET", "/parties/kv/moved/k/fired", "").0, 404);
    clock.advance(4_000);
    eventually("the moved alarm", || {
        (http(addr, "GET", "/parties/kv/moved/k/fired", "").0 == 200).then_some(())
    });
    assert_eq!(http(addr, "GET", "/parties/kv/deleted/k/fired", "").0, 404);
    srv.shutdown().unwrap();
}

#[test]
fn alarms_survive_a_restart_and_load_their_room() {
    let data = data_dir();
    let clock = Clock::manual(T0);
    {
        let (srv, addr) = server(&data, &clock);
        assert_eq!(http(addr, "POST", "/parties/kv/sleeper/alarm", "60000").0, 200);
        // An alarm of a party the next server does not have, due earlier: left stored,
        // and it must not hold up the others.
        let orphan = srv.store().room("gone", "x").unwrap();
        futures_lite::future::block_on(orphan.set_alarm(T0)).unwrap();
        srv.shutdown().unwrap();
    }
    // Down while it came due; the new server runs it at start without any request.
    clock.advance(120_000);
    let (srv, _addr) = server(&data, &clock);
    let room = srv.store().room("kv", "sleeper").unwrap();
    let fired = eventually("the alarm after restart", || {
        futures_lite::future::block_on(room.get("fired")).unwrap()
    });
    let fired: Value = serde_json::from_slice(&fired).unwrap();
    assert_eq!(fired, json!({ "room": "sleeper", "at": T0 + 120_000 }));
    eventually("the alarm cleared", || {
        futures_lite::future::block_on(room.get_alarm()).unwrap().is_none().then_some(())
    });
    let orphan = srv.store().room("gone", "x").unwrap();
    assert_eq!(futures_lite::future::block_on(orphan.get_alarm()).unwrap(), Some(T0));
    srv.shutdown().unwrap();
}

#[test]
fn a_failing_alarm_is_retried_with_backoff_then_dropped() {
    let data = data_dir();
    let clock = Clock::manual(T0);
    let (srv, addr) = server(&data, &clock);
    let count = |room: &str| -> u64 {
        match http(addr, "GET", &format!("/parties/kv/{room}/k/fired_count"), "") {
            (200, n) => n.parse().unwrap(),
            _ => 0,
        }
    };
    let alarm = |room: &str| get_json(addr, &format!("/parties/kv/{room}/alarm")).as_u64();
    http(addr, "POST", "/parties/kv/fail-3/alarm", "0");
    eventually("first attempt", || (count("fail-3") == 1).then_some(()));
    // Retried 2 s later (not sooner), then 4 s after that, when it succeeds.
    eventually("the retry set", || (alarm("fail-3") == Some(T0 + 2_000)).then_some(()));
    clock.advance(1_999);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(count("fail-3"), 1);
    clock.advance(1);
    eventually("second attempt", || (count("fail-3") == 2).then_some(()));
    eventually("the next retry set", || (alarm("fail-3") == Some(T0 + 6_000)).then_some(()));
    clock.advance(4_000);
    eventually("third attempt, which succeeds", || (count("fail-3") == 3).then_some(()));
    eventually("cleared", || alarm("fail-3").is_none().then_some(()));

    // The hopeless one: retried after 2, 4, 8, 16, 32 and 64 s, then dropped.
    http(addr, "POST", "/parties/kv/fail-never/alarm", "0");
    let mut attempt_at = clock.now_ms();
    eventually("first attempt", || (count("fail-never") == 1).then_some(()));
    for retry in 1..=6u64 {
        let due = eventually("the retry set", || alarm("fail-never"));
        assert_eq!(due, attempt_at + (2_000 << (retry - 1)), "retry {retry}");
        clock.set(due);
        attempt_at = due;
        eventually("the retry", || (count("fail-never") == retry + 1).then_some(()));
    }
    eventually("dropped", || alarm("fail-never").is_none().then_some(()));
    clock.advance(600_000);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(count("fail-never"), 7);
    assert_eq!(count("fail-3"), 3);
    srv.shutdown().unwrap();
}

#[test]
fn ephemeral_messages_expire_by_alarm() {
    let data = data_dir();
    let clock = Clock::manual(T0);
    let (srv, addr) = server(&data, &clock);
    let (mut ws1, _) = ws(addr, "/parties/ephemeral/e");
    assert_eq!(
        serde_json::from_str::<Value>(&read_text(&mut ws1)).unwrap(),
        json!({ "type": "history", "messages": [] })
    );
    send_text(&mut ws1, "first");
    let m: Value = serde_json::from_str(&read_text(&mut ws1)).unwrap();
    assert_eq!(m, json!({ "type": "message", "id": 0, "text": "first", "expires": T0 + 60_000 }));
    clock.advance(30_000);
    send_text(&mut ws1, "second");
    read_text(&mut ws1);
    let (mut ws2, _) = ws(addr, "/parties/ephemeral/e");
    let history: Value = serde_json::from_str(&read_text(&mut ws2)).unwrap();
    assert_eq!(history["messages"].as_array().unwrap().len(), 2);

    clock.advance(30_000); // the first expires
    assert_eq!(
        serde_json::from_str::<Value>(&read_text(&mut ws1)).unwrap(),
        json!({ "type": "expired", "ids": [0] })
    );
    let live = get_json(addr, "/parties/ephemeral/e");
    assert_eq!(live.as_array().unwrap().len(), 1);
    assert_eq!(live[0]["text"], "second");
    assert_eq!(
        srv.store()
            .room("ephemeral", "e")
            .ok()
            .map(|r| futures_lite::future::block_on(r.get_alarm()).unwrap()),
        Some(Some(T0 + 90_000))
    );

    clock.advance(30_000); // the second expires; no alarm is left
    assert_eq!(serde_json::from_str::<Value>(&read_text(&mut ws2)).unwrap()["type"], "expired");
    assert_eq!(get_json(addr, "/parties/ephemeral/e"), json!([]));
    let room = srv.store().room("ephemeral", "e").unwrap();
    eventually("no alarm left", || {
        futures_lite::future::block_on(room.get_alarm()).unwrap().is_none().then_some(())
    });
    srv.shutdown().unwrap();
}

#[test]
fn items_shard_a_large_collection_across_keys() {
    let data = data_dir();
    let clock = Clock::system();
    let value = json!({ "blob": "i".repeat(1000) });
    {
        let (srv, addr) = server(&data, &clock);
        let (mut watcher, _) = ws(addr, "/parties/items/shop");
        assert_eq!(
            serde_json::from_str::<Value>(&read_text(&mut watcher)).unwrap(),
            json!({ "type": "count", "count": 0 })
        );
        // 300 items of ~1 KB: far more than one value may hold.
        for i in 0..300 {
            let (status, body) =
                http(addr, "PUT", &format!("/parties/items/shop/{i:04}"), &value.to_string());
            assert_eq!((status, body.as_str()), (200, r#"{"created":true}"#));
        }
        assert_eq!(serde_json::from_str::<Value>(&read_text(&mut watcher)).unwrap()["id"], "0000");
        assert_eq!(
            http(addr, "PUT", "/parties/items/shop/0007", "{\"v\":2}"),
            (200, r#"{"created":false}"#.into())
        );
        assert_eq!(http(addr, "PUT", "/parties/items/shop/bad", "not json").0, 400);
        let huge = json!({ "blob": "h".repeat(140_000) }).to_string();
        assert_eq!(http(addr, "PUT", "/parties/items/shop/huge", &huge).0, 413);
        assert_eq!(http(addr, "GET", "/parties/items/shop/huge", "").0, 404);
        assert_eq!(http(addr, "GET", "/parties/items/shop/a/b", "").0, 400);
        srv.shutdown().unwrap();
    }
    let (srv, addr) = server(&data, &clock);
    assert_eq!(get_json(addr, "/parties/items/shop/0007"), json!({ "v": 2 }));
    // Page through everything in id order.
    let (mut seen, mut after) = (Vec::new(), None::<String>);
    loop {
        let path = match &after {
            Some(a) => format!("/parties/items/shop?limit=128&after={a}"),
            None => "/parties/items/shop?limit=128".to_owned(),
        };
        let page = get_json(addr, &path);
        assert_eq!(page["count"], 300);
        seen.extend(
            page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, (0..300).map(|i| format!("{i:04}")).collect::<Vec<_>>());
    assert_eq!(http(addr, "GET", "/parties/items/shop?limit=0", "").0, 400);
    // Over a socket: changes go to everyone, deletes count down.
    let (mut a, _) = ws(addr, "/parties/items/shop");
    let (mut b, _) = ws(addr, "/parties/items/shop");
    read_text(&mut a);
    read_text(&mut b);
    send_text(&mut a, r#"{"type":"delete","id":"0000"}"#);
    let deleted = json!({ "type": "delete", "id": "0000" });
    assert_eq!(serde_json::from_str::<Value>(&read_text(&mut b)).unwrap(), deleted);
    assert_eq!(serde_json::from_str::<Value>(&read_text(&mut a)).unwrap(), deleted);
    send_text(&mut a, r#"{"type":"bogus"}"#);
    assert_eq!(serde_json::from_str::<Value>(&read_text(&mut a)).unwrap()["type"], "error");
    assert_eq!(
        http(addr, "DELETE", "/parties/items/shop/0001", ""),
        (200, r#"{"deleted":true}"#.into())
    );
    assert_eq!(
        http(addr, "DELETE", "/parties/items/shop/0001", ""),
        (200, r#"{"deleted":false}"#.into())
    );
    assert_eq!(get_json(addr, "/parties/items/shop?limit=1")["count"], 298);
    srv.shutdown().unwrap();
}

#[test]
fn a_room_id_too_long_for_storage_gets_a_clear_error_and_storage_lives_on() {
    let data = data_dir();
    let mut cfg = config(1);
    cfg.data = data;
    cfg.limits.http_head_size_max = 1024 * 1024;
    cfg.limits.handshake_timeout_ms = 10_000;
    let (srv, addr) = start(Server::new(cfg).with_builtin_parties().party::<Kv>("kv"));
    // 65,510 bytes of room id: with its namespace and any key, over fjall's key limit.
    let long = "r".repeat(65_510);
    let (status, body) = http(addr, "PUT", &format!("/parties/kv/{long}/k/x"), "v");
    assert_eq!(status, 414, "{body}");
    assert!(body.contains("storage allows at most"), "{body}");
    // `main` answers the same way, and storage goes on for every other room.
    let (status, body) = http(addr, "POST", &format!("/parties/main/{long}"), "hi");
    assert_eq!(status, 414, "{body}");
    assert_eq!(http(addr, "PUT", "/parties/kv/short/k/x", "v"), (200, "stored".into()));
    assert_eq!(http(addr, "GET", "/parties/kv/short/k/x", ""), (200, "v".into()));
    assert_eq!(http(addr, "GET", "/health", ""), (200, "ok\n".into()));
    // When storage is down, /health says so (a balancer stops sending clients here).
    srv.store().close();
    let (status, body) = http(addr, "GET", "/health", "");
    assert_eq!((status, body.as_str()), (503, "storage: storage is closed\n"));
    srv.shutdown().unwrap();
}
