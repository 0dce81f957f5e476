//! Each scenario, briefly and with few connections, against a real partyline server on an
//! ephemeral loopback port: the numbers must add up (nothing lost or reordered, every
//! round trip timed).

use partyline::{Config, Server};
use partyline_loadtest::scenario::{self, EchoParams, FanoutParams, Target};

fn server() -> partyline::RunningServer {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        shards: 2,
        pin_cores: false,
        ..Config::default()
    };
    Server::new(config)
        .with_builtin_parties()
        .start()
        .expect("server starts")
}

fn target(server: &partyline::RunningServer) -> Target {
    Target {
        addr: server.local_addr(),
        workers: 2,
        server_pid: Some(std::process::id()),
        connect_concurrency: 16,
    }
}

#[test]
fn echo_times_every_round_trip() {
    let srv = server();
    let params = EchoParams {
        clients: 4,
        round_trips: 50,
        payload: 100,
        party: "echo".into(),
        room: "t".into(),
    };
    let r = scenario::echo(&target(&srv), &params);
    assert_eq!(r["round_trips"], 200, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["rtt"]["p50_us"].as_u64().unwrap() > 0, "{r}");
    srv.shutdown().unwrap();
}

#[test]
fn fanout_delivers_everything_in_order() {
    let srv = server();
    let params = FanoutParams {
        receivers: 20,
        senders: 2,
        rate: 400,
        warmup_s: 0.2,
        duration_s: 0.5,
        payload: 64,
        party: "relay".into(),
        room: "t".into(),
    };
    let r = scenario::fanout(&target(&srv), &params);
    let sent = r["messages_sent"].as_u64().unwrap();
    assert!(sent >= 200, "{r}");
    // Relay skips the sender: each message reaches the 20 receivers and the other sender.
    assert_eq!(r["expected_deliveries"].as_u64().unwrap(), sent * 20, "{r}");
    assert!(r["deliveries"].as_u64().unwrap() >= sent * 20, "{r}");
    assert_eq!(r["undelivered_at_stop"], 0, "{r}");
    assert_eq!(r["reordered"], 0, "{r}");
    assert_eq!(r["closed_by_server"], 0, "{r}");
    assert!(r["cpu"]["server_cpu_s"].as_f64().is_some(), "{r}");
    srv.shutdown().unwrap();
}
