//! Three `partyline serve` processes, linked as one cluster, behind a real HAProxy in TCP
//! mode with `send-proxy` (the Debian package `haproxy`, which `.ci/run` installs). Clients
//! of one room land on different nodes and see one room; rooms see the clients' own
//! addresses; `kill -9` of a room's home node closes that room's sockets on the other
//! nodes with 1013 and answers new ones 503 while every other room goes on; the node comes
//! back with the room's storage; a node that hangs (SIGSTOP) is lost once its link is
//! silent, and links again when it resumes.
//!
//! Without `haproxy` on the PATH the test says so and passes, unless
//! `PARTYLINE_REQUIRE_HAPROXY` is set (as `.ci/run` sets it).

mod common;

use common::{Ws, http, read_text, send_text, ws};
use partyline::{Cluster, NodeSpec, home_node};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODES: [&str; 3] = ["a", "b", "c"];

/// A child process killed at the end of the test.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("PARTYLINE_REQUIRE_HAPROXY").is_none(),
            "haproxy is required (PARTYLINE_REQUIRE_HAPROXY) but not installed"
        );
        eprintln!("SKIPPED: haproxy is not installed (apt install haproxy)");
    }
    found
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The ports of one node.
#[derive(Clone, Copy)]
struct Ports {
    listen: u16,
    admin: u16,
    peer: u16,
}

/// Starts node `id` and waits until it listens.
fn start_node(config: &Path, id: &str, ports: Ports, data: &Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_partyline"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--node", id, "--shards", "1", "--no-pin"])
        .args(["--listen", &local(ports.listen).to_string()])
        .args(["--admin", &local(ports.admin).to_string()])
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("partyline binary runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("the node logged that it listens").expect("utf-8 log");
        if line.contains("partyline listening") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Proc(child)
}

/// Waits until `check` holds for the node's `/metrics`.
fn wait_metrics(admin: u16, what: &str, check: impl Fn(&str) -> bool) {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = http(local(admin), "GET", "/metrics", "");
        if status == 200 && check(&body) {
            return;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_linked(ports: &[Ports]) {
    for (i, p) in ports.iter().enumerate() {
        wait_metrics(p.admin, "links up", |m| {
            NODES
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .all(|(_, n)| m.contains(&format!("partyline_node_link_up{{node=\"{n}\"}} 1")))
        });
    }
}

/// Open WebSockets on a node (its one shard), from its `/metrics`.
fn websockets(admin: u16) -> u64 {
    let (_, body) = http(local(admin), "GET", "/metrics", "");
    body.lines()
        .find_map(|l| l.strip_prefix("partyline_websockets{shard=\"0\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A room of `main` homed on `node`.
fn room_on(cluster: &Cluster, node: &str, tag: &str) -> String {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .find(|r| home_node(cluster, "main", r).as_deref() == Some(node))
        .expect("a room for every node")
}

/// A WebSocket straight to a node (not through HAProxy), with the PROXY header the node
/// expects first.
fn ws_direct(port: u16, path: &str) -> Ws {
    let mut stream = TcpStream::connect(local(port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(b"PROXY TCP4 192.0.2.1 127.0.0.1 40000 1999\r\n").expect("header");
    let (ws, _) = tungstenite::client::client(format!("ws://{}{path}", local(port)), stream)
        .expect("upgrade");
    ws
}

/// The close code the server sent, or `None` if the connection just ended.
fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(f))) => return Some(f.code.into()),
            Ok(tungstenite::Message::Close(None)) => return Some(1005),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

#[test]
fn three_nodes_behind_haproxy_act_as_one_server() {
    let Some(haproxy_bin) = haproxy() else { return };
    let p = common::free_ports(10);
    let ports: Vec<Ports> =
        (0..3).map(|i| Ports { listen: p[i], admin: p[3 + i], peer: p[6 + i] }).collect();
    let front = local(p[9]);
    let dir = common::data_dir();
    std::fs::create_dir_all(&dir).expect("test folder");
    let cluster = Cluster {
        nodes: NODES
            .iter()
            .zip(&ports)
            .map(|(id, p)| NodeSpec { id: (*id).into(), peer: local(p.peer) })
            .collect(),
    };
    let nodes_toml: Vec<String> = NODES
        .iter()
        .zip(&ports)
        .map(|(id, p)| format!("  {{ id = \"{id}\", peer = \"127.0.0.1:{}\" }},", p.peer))
        .collect();
    let config = dir.join("cluster.toml");
    std::fs::write(
        &config,
        format!("proxy_protocol = true\n\n[cluster]\nnodes = [\n{}\n]\n", nodes_toml.join("\n")),
    )
    .expect("config written");
    let data: Vec<PathBuf> = NODES.iter().map(|n| dir.join(format!("data-{n}"))).collect();
    let mut nodes: Vec<Option<Proc>> = NODES
        .iter()
        .zip(&ports)
        .zip(&data)
        .map(|((id, p), d)| Some(start_node(&config, id, *p, d)))
        .collect();
    wait_linked(&ports);

    // HAProxy in TCP mode, round robin, the PROXY header on every connection, health from
    // each node's admin /health.
    let servers: Vec<String> = NODES
        .iter()
        .zip(&ports)
        .map(|(id, p)| {
            format!(
                "  server {id} 127.0.0.1:{} send-proxy check port {} inter 200ms fall 2 rise 1",
                p.listen, p.admin
            )
        })
        .collect();
    let haproxy_cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &haproxy_cfg,
        format!(
            "global\n  maxconn 2000\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  retries 2\n  option redispatch\n\nfrontend partyline\n  bind {front}\n  default_backend nodes\n\nbackend nodes\n  balance roundrobin\n  option httpchk GET /health\n{}\n",
            servers.join("\n")
        ),
    )
    .expect("haproxy config written");
    let mut haproxy = Proc(
        Command::new(&haproxy_bin)
            .arg("-db")
            .arg("-f")
            .arg(&haproxy_cfg)
            .stdout(Stdio::null())
            .spawn()
            .expect("haproxy runs"),
    );
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(front).is_err() {
        assert!(Instant::now() < until, "haproxy did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A front port taken in between (ports are picked before haproxy binds) would make
    // haproxy exit and the test talk to whoever holds the port: say so instead.
    std::thread::sleep(Duration::from_millis(100));
    assert!(haproxy.0.try_wait().expect("wait").is_none(), "haproxy exited: front port taken?");

    // One room homed on c; six clients through the balancer, two per node.
    let on_c = room_on(&cluster, "c", "chat");
    let path = format!("/parties/main/{on_c}");
    let mut clients: Vec<Ws> = (0..6).map(|_| ws(front, &path).0).collect();
    for c in &mut clients {
        assert_eq!(read_text(c), "[]");
    }
    // Round robin spreads them (how evenly depends on when health checks settled).
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let per_node: Vec<u64> = ports.iter().map(|p| websockets(p.admin)).collect();
        if per_node.iter().sum::<u64>() == 6 && per_node.iter().all(|&n| n >= 1) {
            break;
        }
        assert!(Instant::now() < until, "sockets per node: {per_node:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    send_text(&mut clients[0], "one");
    for c in &mut clients[1..] {
        assert_eq!(read_text(c), "one");
    }
    send_text(&mut clients[3], "two");
    assert_eq!(read_text(&mut clients[0]), "two", "a sender does not get its own message");
    for (i, c) in clients.iter_mut().enumerate().filter(|(i, _)| *i != 0 && *i != 3) {
        assert_eq!(read_text(c), "two", "client {i}");
    }
    assert_eq!(http(front, "GET", &path, "").1, r#"["one","two"]"#);

    // The room sees the client's own address, through HAProxy and a node link.
    for _ in 0..3 {
        let mut s = TcpStream::connect(front).expect("connect");
        let me = s.local_addr().expect("local address");
        s.write_all(b"GET /parties/echo/whois HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .expect("request");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("answer");
        assert!(answer.contains(&format!("\"client\":\"{me}\"")), "{answer}");
    }

    // A room homed on a, with clients on every node.
    let on_a = room_on(&cluster, "a", "chat");
    let path_a = format!("/parties/main/{on_a}");
    let mut others: Vec<Ws> = (0..3).map(|_| ws(front, &path_a).0).collect();
    for c in &mut others {
        assert_eq!(read_text(c), "[]");
    }

    // A presence room on a with one socket on a and one on c: when c dies, a's room runs
    // on_close for the socket it can no longer reach, and the other hears it left.
    let presence = (0..)
        .map(|i| format!("who-{i}"))
        .find(|r| home_node(&cluster, "presence", r).as_deref() == Some("a"))
        .expect("a presence room on a");
    let mut stays = ws_direct(ports[0].listen, &format!("/parties/presence/{presence}?_pk=stays"));
    assert_eq!(read_text(&mut stays), "{}");
    let mut goes = ws_direct(ports[2].listen, &format!("/parties/presence/{presence}?_pk=goes"));
    assert_eq!(read_text(&mut goes), r#"{"stays":null}"#);

    // kill -9 of c: c's room's sockets on a and b are closed with 1013 (those on c just
    // end); new sockets for that room get 503; the room on a goes on.
    let killed = Instant::now();
    drop(nodes[2].take());
    let codes: Vec<Option<u16>> = clients.iter_mut().map(close_code).collect();
    let closed_in = killed.elapsed();
    assert_eq!(codes.iter().filter(|c| **c == Some(1013)).count(), 4, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 2, "{codes:?}");
    assert!(closed_in < Duration::from_secs(5), "closed in {closed_in:?}");
    assert_eq!(read_text(&mut stays), r#"{"id":"goes","left":true}"#);
    assert!(killed.elapsed() < Duration::from_secs(5), "on_close ran in {:?}", killed.elapsed());
    match common::try_ws(front, &path) {
        Err(tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 503);
            assert!(r.headers().get("retry-after").is_some());
        }
        other => panic!("expected 503 while the room's node is down, got {other:?}"),
    }
    // a's room goes on: a new client's message reaches every earlier client that was not
    // on c (those on c just end), and a second new client.
    let (mut fresh, _) = ws(front, &path_a);
    assert_eq!(read_text(&mut fresh), "[]");
    let (mut fresh2, _) = ws(front, &path_a);
    assert_eq!(read_text(&mut fresh2), "[]");
    send_text(&mut fresh, "a goes on");
    assert_eq!(read_text(&mut fresh2), "a goes on");
    let reached = others
        .iter_mut()
        .map(|w| matches!(w.read(), Ok(tungstenite::Message::Text(t)) if t.as_str() == "a goes on"))
        .filter(|reached| *reached)
        .count();
    assert!(reached >= 1, "no earlier client of a's room was reached");

    // c comes back: the room is there again, with its history.
    nodes[2] = Some(start_node(&config, "c", ports[2], &data[2]));
    wait_linked(&ports);
    let until = Instant::now() + Duration::from_secs(10);
    let mut back = loop {
        match common::try_ws(front, &path) {
            Ok((w, _)) => break w,
            Err(e) => {
                assert!(Instant::now() < until, "the room did not come back: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(read_text(&mut back), r#"["one","two"]"#);

    // A node that hangs without closing anything (SIGSTOP) is lost once its link is silent
    // for 3 s: its room's sockets on a get 1013; after SIGCONT it links again and serves.
    let on_b = room_on(&cluster, "b", "hang");
    let path_b = format!("/parties/main/{on_b}");
    let mut via_a = ws_direct(ports[0].listen, &path_b);
    assert_eq!(read_text(&mut via_a), "[]");
    let pid_b = i32::try_from(nodes[1].as_ref().expect("b runs").0.id()).expect("pid");
    // SAFETY: kill(2) with a pid we spawned and valid signal numbers.
    assert_eq!(unsafe { libc::kill(pid_b, libc::SIGSTOP) }, 0);
    let stopped = Instant::now();
    assert_eq!(close_code(&mut via_a), Some(1013));
    let lost_in = stopped.elapsed();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid_b, libc::SIGCONT) }, 0);
    assert!(lost_in >= Duration::from_secs(2) && lost_in < Duration::from_secs(6), "{lost_in:?}");
    wait_linked(&ports);
    let mut again = ws_direct(ports[0].listen, &path_b);
    assert_eq!(read_text(&mut again), "[]");
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}
