//! `/metrics` is complete enough to run on: after real traffic (a chat between two
//! sockets, a refused upgrade, a protocol error) the counters of messages and bytes in and
//! out, upgrades, refusals by status, closes by code, storage requests, fsyncs and their
//! latency, and each shard's CPU time are there, with the values the traffic implies, and
//! labels from fixed sets only (no room ids).

mod common;

use common::*;
use partyline::Server;
use std::time::{Duration, Instant};

/// The sum over all samples of `name` (any labels) whose labels contain `with`.
fn sum(srv: &partyline::RunningServer, name: &str, with: &str) -> f64 {
    let admin = srv.admin_addr().expect("admin listener");
    let (_, body) = http(admin, "GET", "/metrics", "");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .filter(|(sample, _)| {
            (sample == &name || sample.strip_prefix(name).is_some_and(|r| r.starts_with('{')))
                && sample.contains(with)
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

fn wait_sum(srv: &partyline::RunningServer, name: &str, with: &str, check: impl Fn(f64) -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let v = sum(srv, name, with);
        if check(v) {
            return;
        }
        assert!(Instant::now() < until, "{name}{{{with}}} = {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn traffic_storage_and_load_show_up_in_metrics() {
    let (srv, addr) = start(Server::new(config(2)).with_builtin_parties());
    let (mut a, _) = ws(addr, "/parties/main/metered");
    let (mut b, _) = ws(addr, "/parties/main/metered");
    assert_eq!(read_text(&mut a), "[]");
    assert_eq!(read_text(&mut b), "[]");
    for text in ["one", "two", "three"] {
        send_text(&mut a, text);
        assert_eq!(read_text(&mut b), text);
    }
    // A refused upgrade (unknown party) and a protocol error (an unmasked client frame).
    assert!(matches!(try_ws(addr, "/parties/nobody/x"), Err(tungstenite::Error::Http(_))));
    let mut raw = Raw::connect(addr, "/parties/echo/e");
    raw.send(&[0x81, 0x01, b'x']);
    assert_eq!(raw.close_code(), 1002);

    wait_sum(&srv, "partyline_websocket_messages_received_total", "", |v| v >= 3.0);
    assert_eq!(sum(&srv, "partyline_websocket_received_bytes_total", ""), 11.0, "3+3+5 bytes");
    wait_sum(&srv, "partyline_websocket_upgrades_total", "", |v| v >= 3.0);
    wait_sum(&srv, "partyline_frames_sent_total", "", |v| v >= 5.0);
    wait_sum(&srv, "partyline_sent_bytes_total", "", |v| v > 0.0);
    wait_sum(&srv, "partyline_refusals_total", "status=\"404\"", |v| v == 1.0);
    wait_sum(&srv, "partyline_server_closes_total", "code=\"1002\"", |v| v == 1.0);
    // The chat stores every message: requests, writes and fsyncs, each timed.
    assert!(sum(&srv, "partyline_storage_writes_total", "") >= 3.0);
    assert!(sum(&srv, "partyline_storage_fsyncs_total", "") >= 1.0);
    assert!(sum(&srv, "partyline_storage_fsync_duration_seconds_count", "") >= 1.0);
    assert!(sum(&srv, "partyline_storage_queue_depth", "") >= 0.0);
    wait_sum(&srv, "partyline_shard_cpu_seconds_total", "", |v| v > 0.0);
    // No label names a room.
    let (_, body) = http(srv.admin_addr().unwrap(), "GET", "/metrics", "");
    assert!(!body.contains("metered"), "a room id leaked into a label");
    srv.shutdown().unwrap();
}

/// With `admin_token`, everything on the admin listener but `/health` needs the bearer
/// token (401 without it, or with a wrong one); `/health` stays open for balancers.
#[test]
fn the_admin_token_guards_everything_but_health() {
    let config = partyline::Config { admin_token: Some("s3cret".into()), ..config(1) };
    let (srv, _) = start(Server::new(config).with_builtin_parties());
    let admin = srv.admin_addr().expect("admin listener");
    let get = |auth: Option<&str>, path: &str| {
        let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
        raw_http(admin, request.as_bytes())
    };
    assert!(get(None, "/metrics").starts_with("HTTP/1.1 401"));
    assert!(get(Some("Bearer wrong!"), "/metrics").starts_with("HTTP/1.1 401"));
    assert!(get(Some("Basic s3cret"), "/metrics").starts_with("HTTP/1.1 401"));
    let ok = get(Some("Bearer s3cret"), "/metrics");
    assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("partyline_rooms"), "{ok}");
    assert!(get(None, "/health").starts_with("HTTP/1.1 200"));
    srv.shutdown().unwrap();
}

/// The rooms API on the admin listener: a party's rooms, loaded now or only stored, paged;
/// one room's state, connections, storage and alarm; unknown parties are 404.
#[test]
fn the_rooms_api_lists_loaded_and_stored_rooms_in_pages() {
    let data = data_dir();
    let first = partyline::Config { data: data.clone(), ..config(2) };
    let (srv, addr) = start(Server::new(first).with_builtin_parties());
    for room in ["s1", "s2", "s3"] {
        assert_eq!(http(addr, "POST", &format!("/parties/main/{room}"), "kept").0, 201);
    }
    srv.shutdown().unwrap();
    // A new server on the same data: s1-s3 are stored, not loaded; "live" is loaded.
    let (srv, addr) =
        start(Server::new(partyline::Config { data, ..config(2) }).with_builtin_parties());
    let admin = srv.admin_addr().unwrap();
    let (mut live, _) = ws(addr, "/parties/main/live");
    assert_eq!(read_text(&mut live), "[]");
    let json = |path: &str| {
        let (status, body) = http(admin, "GET", path, "");
        (
            status,
            serde_json::from_str::<serde_json::Value>(&body)
                .unwrap_or_else(|e| panic!("{e}: {body}")),
        )
    };
    let (status, all) = json("/rooms/main");
    assert_eq!(status, 200, "{all}");
    let rows: Vec<(String, String, u64)> = all["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().into(),
                r["state"].as_str().unwrap().into(),
                r["connections"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected =
        [("s1", "stored", 0), ("s2", "stored", 0), ("s3", "stored", 0), ("live", "awake", 1)];
    let expected: Vec<(String, String, u64)> =
        expected.iter().map(|(i, s, c)| ((*i).into(), (*s).into(), *c)).collect();
    assert_eq!(rows, expected, "{all}");
    assert!(all["next"].is_null());
    // Pages of two, following `next`.
    let (_, page) = json("/rooms/main?limit=2");
    assert_eq!(page["rooms"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], "s2");
    let (_, page) = json("/rooms/main?limit=2&after=s2");
    let ids: Vec<&str> =
        page["rooms"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["s3", "live"]);
    // One room: stored, unloaded, with its key and no alarm; the live one awake.
    let (status, one) = json("/rooms/main/s1");
    assert_eq!(status, 200, "{one}");
    assert_eq!(
        (one["state"].as_str(), one["storage"]["keys"].as_u64()),
        (Some("unloaded"), Some(1))
    );
    assert!(one["storage"]["bytes"].as_u64().unwrap() > 4, "{one}");
    assert!(one["alarm"].is_null());
    assert_eq!(one["home"]["node"], "local");
    let (_, live_room) = json("/rooms/main/live");
    assert_eq!(
        (live_room["state"].as_str(), live_room["connections"].as_u64()),
        (Some("awake"), Some(1))
    );
    assert_eq!(json("/rooms/nobody").0, 404);
    srv.shutdown().unwrap();
}

/// `/connections/<party>/<id>`: a page of a room's connections (id, socket, shard, uri,
/// state) while it is awake, the same from its archive while it sleeps, paged by socket.
#[test]
fn the_connections_api_lists_a_room_awake_and_asleep() {
    let mut cfg = config(2);
    cfg.hibernate_after_ms = 300;
    let (srv, addr) = start(Server::new(cfg).with_builtin_parties());
    let admin = srv.admin_addr().unwrap();
    let json = |path: &str| {
        let (status, body) = http(admin, "GET", path, "");
        let value = serde_json::from_str::<serde_json::Value>(&body)
            .unwrap_or_else(|e| panic!("{e}: {body}"));
        (status, value)
    };
    let mut sockets = Vec::new();
    for who in ["ann", "bo", "cy"] {
        let (mut s, _) = ws(addr, &format!("/parties/presence/lobby?_pk={who}"));
        let _ = read_text(&mut s);
        send_text(&mut s, &format!("{{\"name\":\"{who}\"}}"));
        sockets.push(s);
    }
    // Each sees the others' states, so every state is set.
    for s in &mut sockets[..2] {
        while !read_text(s).contains("\"cy\"") {}
    }
    let ids = |v: &serde_json::Value| -> Vec<String> {
        let mut ids: Vec<String> = v["connections"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let (status, awake) = json("/connections/presence/lobby");
    assert_eq!(status, 200, "{awake}");
    assert_eq!((awake["state"].as_str(), awake["total"].as_u64()), (Some("awake"), Some(3)));
    assert_eq!(ids(&awake), ["ann", "bo", "cy"]);
    let ann = awake["connections"].as_array().unwrap().iter().find(|c| c["id"] == "ann").unwrap();
    assert_eq!(ann["state"], "{\"name\":\"ann\"}", "{ann}");
    assert!(ann["uri"].as_str().unwrap().ends_with("/parties/presence/lobby?_pk=ann"), "{ann}");
    assert_eq!(ann["node"], "local");
    // Pages of two, in socket order, following `next`.
    let (_, first) = json("/connections/presence/lobby?limit=2");
    let next = first["next"].as_str().expect("a next page").to_owned();
    let (_, second) = json(&format!("/connections/presence/lobby?limit=2&after={next}"));
    let mut all = ids(&first);
    all.extend(ids(&second));
    all.sort();
    assert_eq!(all, ["ann", "bo", "cy"]);
    assert!(second["next"].is_null());
    // Asleep: the same connections, read from the room's archive.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let asleep = loop {
        let (_, v) = json("/connections/presence/lobby");
        if v["state"] == "asleep" {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "the room never slept: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (asleep["total"].as_u64(), ids(&asleep)),
        (Some(3), vec!["ann".into(), "bo".into(), "cy".into()])
    );
    let sleeping_ann = asleep["connections"].as_array().unwrap().iter().find(|c| c["id"] == "ann");
    assert_eq!(sleeping_ann.unwrap()["state"], "{\"name\":\"ann\"}");
    // Not loaded, unknown, malformed.
    let (_, nobody) = json("/connections/presence/empty");
    assert_eq!((nobody["state"].as_str(), nobody["total"].as_u64()), (Some("unloaded"), Some(0)));
    assert_eq!(json("/connections/nobody/x").0, 404);
    assert_eq!(json("/connections/presence/lobby?after=nope").0, 400);
    drop(sockets);
    srv.shutdown().unwrap();
}
