//! Several nodes act as one server: three in-process nodes on loopback, linked over TCP,
//! each with its own data folder and client listener. Clients of one room on different
//! nodes see one room; a node that stops takes only its own rooms down (their sockets
//! elsewhere are closed with 1013, new ones get 503 with Retry-After), and its rooms come
//! back with their storage when it starts again.

mod common;

use common::{http, read_close, read_text, send_text, try_ws, ws};
use partyline::{Cluster, Config, NodeSpec, RunningServer, Server, home_node};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const NODES: [&str; 3] = ["a", "b", "c"];

fn cluster(ports: &[u16]) -> Cluster {
    Cluster {
        nodes: NODES
            .iter()
            .zip(ports)
            .map(|(id, port)| NodeSpec {
                id: (*id).into(),
                peer: SocketAddr::from(([127, 0, 0, 1], *port)),
            })
            .collect(),
    }
}

fn node_config(cluster: &Cluster, node: &str, data: PathBuf, listen: SocketAddr) -> Config {
    Config { cluster: cluster.clone(), node: Some(node.into()), listen, data, ..common::config(2) }
}

fn start_node(config: Config) -> RunningServer {
    Server::new(config).with_builtin_parties().start().expect("node starts")
}

/// Waits until every node is linked to every other.
fn wait_linked(nodes: &[&RunningServer]) {
    let until = Instant::now() + Duration::from_secs(10);
    while !nodes.iter().all(|n| n.link_stats().iter().all(|l| l.up)) {
        assert!(
            Instant::now() < until,
            "nodes did not link: {:?}",
            nodes.iter().map(|n| n.link_stats()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A room of party `main` homed on `node`.
fn room_on(cluster: &Cluster, node: &str, tag: &str) -> String {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .find(|r| home_node(cluster, "main", r).as_deref() == Some(node))
        .expect("some room lands on every node")
}

#[test]
fn clients_on_three_nodes_share_one_room_and_a_stopped_node_takes_only_its_rooms() {
    let ports = common::free_ports(3);
    let cluster = cluster(&ports);
    let data: Vec<PathBuf> = (0..3).map(|_| common::data_dir()).collect();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut nodes: Vec<Option<RunningServer>> = NODES
        .iter()
        .zip(&data)
        .map(|(id, d)| Some(start_node(node_config(&cluster, id, d.clone(), any))))
        .collect();
    wait_linked(&nodes.iter().flatten().collect::<Vec<_>>());
    let addr: Vec<SocketAddr> = nodes.iter().flatten().map(|n| n.local_addr()).collect();

    // One room homed on c, one on a; clients of each on all three nodes.
    let on_c = room_on(&cluster, "c", "chat");
    let on_a = room_on(&cluster, "a", "chat");
    let path = |room: &str| format!("/parties/main/{room}");
    let mut in_c: Vec<_> = addr.iter().map(|a| ws(*a, &path(&on_c)).0).collect();
    let mut in_a: Vec<_> = addr.iter().map(|a| ws(*a, &path(&on_a)).0).collect();
    for w in in_c.iter_mut().chain(in_a.iter_mut()) {
        assert_eq!(read_text(w), "[]", "a new connection first gets the (empty) history");
    }
    // A message from node a's client reaches the others on b and c, not its sender.
    send_text(&mut in_c[0], "hello from a");
    assert_eq!(read_text(&mut in_c[1]), "hello from a");
    assert_eq!(read_text(&mut in_c[2]), "hello from a");
    send_text(&mut in_c[2], "hello from c");
    assert_eq!(read_text(&mut in_c[0]), "hello from c", "the sender's own message was skipped");
    assert_eq!(read_text(&mut in_c[1]), "hello from c");
    // The history is one room's, whichever node is asked.
    for a in &addr {
        let (status, body) = http(*a, "GET", &path(&on_c), "");
        assert_eq!((status, body.as_str()), (200, r#"["hello from a","hello from c"]"#));
    }
    // A request through node b appends and broadcasts, like a socket's message.
    let (status, _) = http(addr[1], "POST", &path(&on_c), "posted via b");
    assert_eq!(status, 201);
    for w in &mut in_c {
        assert_eq!(read_text(w), "posted via b");
    }

    // Node c stops: its room's sockets on a and b are closed with 1013; node a's room
    // keeps working across a and b.
    nodes[2].take().unwrap().shutdown().expect("c stops");
    let stopped = Instant::now();
    for w in &mut in_c[..2] {
        assert_eq!(read_close(w).0, 1013, "a socket in a room homed on a lost node");
    }
    assert!(stopped.elapsed() < Duration::from_secs(5), "closed within {:?}", stopped.elapsed());
    match try_ws(addr[0], &path(&on_c)) {
        Err(tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 503);
            assert!(r.headers().get("retry-after").is_some(), "503 says when to retry");
        }
        other => panic!("expected 503 for a room on a stopped node, got {other:?}"),
    }
    assert_eq!(http(addr[1], "GET", &path(&on_c), "").0, 503);
    send_text(&mut in_a[1], "a lives");
    assert_eq!(read_text(&mut in_a[0]), "a lives");

    // Node c comes back (same data, same peer port): its room is there with its history.
    nodes[2] = Some(start_node(node_config(&cluster, "c", data[2].clone(), addr[2])));
    wait_linked(&nodes.iter().flatten().collect::<Vec<_>>());
    let (mut back, _) = ws(addr[0], &path(&on_c));
    assert_eq!(read_text(&mut back), r#"["hello from a","hello from c","posted via b"]"#);
    for n in nodes.into_iter().flatten() {
        n.shutdown().expect("stops");
    }
}

/// Two nodes whose member lists differ never link (each would place rooms differently):
/// rooms on the other node get 503 instead of reaching a room that may also live elsewhere.
#[test]
fn nodes_with_different_member_lists_refuse_to_link() {
    let ports = common::free_ports(3);
    let two = Cluster { nodes: cluster(&ports).nodes[..2].to_vec() };
    let three = cluster(&ports);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = start_node(node_config(&two, "a", common::data_dir(), any));
    let b = start_node(node_config(&three, "b", common::data_dir(), any));
    std::thread::sleep(Duration::from_millis(800));
    assert!(a.link_stats().iter().all(|l| !l.up && l.linked == 0), "{:?}", a.link_stats());
    assert!(b.link_stats().iter().all(|l| !l.up && l.linked == 0), "{:?}", b.link_stats());
    // A room a's list puts on b is answered 503 by a, at once.
    let on_b = room_on(&two, "b", "apart");
    match try_ws(a.local_addr(), &format!("/parties/main/{on_b}")) {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}
