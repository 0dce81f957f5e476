//! Each scenario, briefly and with few connections, against a real partyline server on an
//! ephemeral loopback port: the numbers must add up (nothing lost or reordered, every
//! round trip timed, every connection counted). Two runs go through the binary with two
//! worker processes: one with two source addresses, one writing the JSON and HTML reports
//! (then compared with `compare`).

use partyline::{Config, Server};
use partyline_loadtest::runner::{self, Scenario};
use partyline_loadtest::scenario::{Target, connect, echo, fanout, idle};

fn server() -> partyline::RunningServer {
    server_with(partyline::Limits::default())
}

fn server_with(limits: partyline::Limits) -> partyline::RunningServer {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        shards: 2,
        pin_cores: false,
        admin: partyline::Admin::Off,
        limits,
        data: std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "loadtest-{}-{}",
            std::process::id(),
            next_server()
        )),
        ..Config::default()
    };
    Server::new(config).with_builtin_parties().start().expect("server starts")
}

/// Numbers the servers of this process, so each gets its own data folder.
fn next_server() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn target(server: &partyline::RunningServer) -> Target {
    Target {
        addrs: vec![server.local_addr()],
        workers: 2,
        processes: 1,
        server_pids: vec![std::process::id()],
        connect_concurrency: 16,
        source_addrs: Vec::new(),
        tls_ca: None,
    }
}

fn run(server: &partyline::RunningServer, scenario: Scenario) -> serde_json::Value {
    runner::run(&scenario, &target(server), &[]).expect("scenario runs").results
}

#[test]
fn connect_counts_connections_and_first_messages() {
    let srv = server();
    let r = run(
        &srv,
        Scenario::Connect(connect::Params {
            connections: 50,
            rooms: 3,
            party: "main".into(),
            room_prefix: "c".into(),
            ramp_per_s: 0.0,
            first_message: true,
            hold_s: 0.1,
        }),
    );
    assert_eq!(r["connected"], 50, "{r}");
    assert_eq!(r["upgrade"]["count"], 50, "{r}");
    assert_eq!(r["first_message"]["count"], 50, "{r}");
    assert_eq!(r["connect_failures"], serde_json::json!({}), "{r}");
    assert!(r["connections_per_s"].as_f64().unwrap() > 0.0, "{r}");
    srv.shutdown().unwrap();
}

#[test]
fn echo_times_every_round_trip() {
    let srv = server();
    let r = run(
        &srv,
        Scenario::Echo(echo::Params {
            clients: 4,
            round_trips: 50,
            payload: 100,
            party: "echo".into(),
            room: "t".into(),
            pause_ms: 0,
        }),
    );
    assert_eq!(r["round_trips"], 200, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["rtt"]["p50_us"].as_u64().unwrap() > 0, "{r}");
    srv.shutdown().unwrap();
}

#[test]
fn echo_with_pauses_times_round_trips_through_parked_sockets() {
    // Sockets park after 1 s of silence; the pauses are longer, so every round trip
    // starts on a parked socket.
    let srv = server_with(partyline::Limits { ws_park_after_ms: 1_000, ..Default::default() });
    let scenario = Scenario::Echo(echo::Params {
        clients: 4,
        round_trips: 2,
        payload: 100,
        party: "echo".into(),
        room: "p".into(),
        pause_ms: 2_600,
    });
    let t = target(&srv);
    let running =
        std::thread::spawn(move || runner::run(&scenario, &t, &[]).expect("runs").results);
    let mut most_parked = 0;
    while !running.is_finished() {
        most_parked = most_parked.max(srv.stats().iter().map(|s| s.parked).sum::<usize>());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = running.join().expect("scenario thread");
    assert_eq!(most_parked, 4, "every client's socket parked during its pauses");
    assert_eq!(r["round_trips"], 8, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    srv.shutdown().unwrap();
}

fn assert_complete(r: &serde_json::Value) {
    assert!(r["messages_sent"].as_u64().unwrap() > 0, "{r}");
    assert!(r["expected_deliveries"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["deliveries"], r["expected_deliveries"], "{r}");
    assert_eq!(r["undelivered_at_stop"], 0, "{r}");
    assert_eq!(r["reordered"], 0, "{r}");
    assert_eq!(r["closed_by_server"], 0, "{r}");
}

#[test]
fn fanout_delivers_everything_in_order() {
    let srv = server();
    let r = run(
        &srv,
        Scenario::Fanout(fanout::FanoutParams {
            receivers: 20,
            senders: 2,
            rate: 400.0,
            warmup_s: 0.2,
            duration_s: 0.5,
            payload: 64,
            party: "relay".into(),
            room: "t".into(),
        }),
    );
    assert_complete(&r);
    // Each message reaches the 20 receivers (senders do not count).
    assert_eq!(
        r["expected_deliveries"].as_u64(),
        r["messages_sent"].as_u64().map(|s| s * 20),
        "{r}"
    );
    assert!(r["cpu"]["server_cpu_s"].as_f64().is_some(), "{r}");
    srv.shutdown().unwrap();
}

/// `--tls-ca`: the same fan-out over TLS (a CA and a `localhost` certificate made for the
/// test), with messages large enough to span records: nothing lost or reordered.
#[test]
fn fanout_over_tls_delivers_everything_in_order() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "loadtest-tls-{}-{}",
        std::process::id(),
        next_server()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (ca_file, cert, key_file) = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        shards: 2,
        pin_cores: false,
        admin: partyline::Admin::Off,
        data: dir.join("data"),
        tls_cert: Some(cert),
        tls_key: Some(key_file),
        ..Config::default()
    };
    let srv = Server::new(config).with_builtin_parties().start().expect("server starts");
    let scenario = Scenario::Fanout(fanout::FanoutParams {
        receivers: 20,
        senders: 2,
        rate: 200.0,
        warmup_s: 0.2,
        duration_s: 0.5,
        payload: 20_000,
        party: "relay".into(),
        room: "tls".into(),
    });
    let target = Target { tls_ca: Some(ca_file), ..target(&srv) };
    let r = runner::run(&scenario, &target, &[]).expect("scenario runs").results;
    assert_complete(&r);
    srv.shutdown().unwrap();
}

/// One room's connections spread over the two nodes of a cluster (`--target A,B`): the
/// fan-out crosses the node link and still loses and reorders nothing.
#[test]
fn fanout_over_two_nodes_of_a_cluster_loses_nothing() {
    let peers: Vec<std::net::TcpListener> =
        (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let cluster = partyline::Cluster {
        nodes: ["a", "b"]
            .iter()
            .zip(&peers)
            .map(|(id, l)| partyline::NodeSpec { id: (*id).into(), peer: l.local_addr().unwrap() })
            .collect(),
    };
    drop(peers);
    let node = |id: &str| {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            shards: 1,
            pin_cores: false,
            admin: partyline::Admin::Off,
            cluster: cluster.clone(),
            node: Some(id.into()),
            data: std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
                "loadtest-{}-{}",
                std::process::id(),
                next_server()
            )),
            ..Config::default()
        };
        Server::new(config).with_builtin_parties().start().expect("node starts")
    };
    let (a, b) = (node("a"), node("b"));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(a.link_stats().iter().all(|l| l.up) && b.link_stats().iter().all(|l| l.up)) {
        assert!(std::time::Instant::now() < until, "the nodes did not link");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let target = Target { addrs: vec![a.local_addr(), b.local_addr()], ..target(&a) };
    let scenario = Scenario::Fanout(fanout::FanoutParams {
        receivers: 40,
        senders: 2,
        rate: 200.0,
        warmup_s: 0.2,
        duration_s: 0.5,
        payload: 64,
        party: "relay".into(),
        room: "across".into(),
    });
    let r = runner::run(&scenario, &target, &[]).expect("scenario runs").results;
    assert_complete(&r);
    assert_eq!(
        r["expected_deliveries"].as_u64(),
        r["messages_sent"].as_u64().map(|s| s * 40),
        "{r}"
    );
    // The room is on one node; the other carried its messages both ways over the link.
    let crossed: u64 = [&a, &b].iter().flat_map(|n| n.link_stats()).map(|l| l.messages_in).sum();
    assert!(crossed > r["messages_sent"].as_u64().unwrap(), "{:?}", a.link_stats());
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

#[test]
fn rooms_chat_without_loss() {
    let srv = server();
    let r = run(
        &srv,
        Scenario::Rooms(fanout::RoomsParams {
            rooms: 10,
            clients_per_room: 3,
            rate_per_client: 20.0,
            warmup_s: 0.2,
            duration_s: 0.5,
            payload: 32,
            party: "relay".into(),
            room_prefix: "small".into(),
            ramp_per_s: 0.0,
        }),
    );
    assert_complete(&r);
    // Each message reaches the 2 other members of its room.
    assert_eq!(
        r["expected_deliveries"].as_u64(),
        r["messages_sent"].as_u64().map(|s| s * 2),
        "{r}"
    );
    srv.shutdown().unwrap();
}

#[test]
fn idle_connections_are_held_and_memory_is_read() {
    let srv = server();
    let r = run(
        &srv,
        Scenario::Idle(idle::Params {
            connections: 100,
            rooms: 2,
            party: "relay".into(),
            room_prefix: "idle".into(),
            hold_s: 0.5,
            ramp_per_s: 0.0,
            server_rss_before: partyline_loadtest::sys::rss_bytes(std::process::id()),
            server_anon_before: partyline_loadtest::sys::anon_bytes(std::process::id()),
        }),
    );
    assert_eq!(r["connected"], 100, "{r}");
    assert_eq!(r["closed_during_hold"], 0, "{r}");
    assert!(r["server_rss_held"].as_u64().is_some(), "{r}");
    assert!(r["server_bytes_per_connection"].as_f64().is_some(), "{r}");
    assert!(r["server_anon_held"].as_u64().is_some(), "{r}");
    assert!(r["server_anon_bytes_per_connection"].as_f64().is_some(), "{r}");
    srv.shutdown().unwrap();
}

#[test]
fn binary_spreads_over_processes_and_source_addresses() {
    let srv = server();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_partyline-loadtest"))
        .args(["--target", &srv.local_addr().to_string(), "--processes", "2", "--workers", "1"])
        .args(["--source-addrs", "127.0.0.2-127.0.0.3", "--connect-concurrency", "8"])
        .args([
            "fanout",
            "--receivers",
            "10",
            "--senders",
            "1",
            "--rate",
            "200",
            "--warmup-s",
            "0.2",
            "--duration-s",
            "0.5",
        ])
        .output()
        .expect("loadtest binary runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["scenario"], "fanout");
    assert_eq!(report["params"]["target"]["processes"], 2);
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert_complete(&report["results"]);
    srv.shutdown().unwrap();
}

/// `s` has no reference to anything outside the file.
fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..html.len().min(200)]);
    for bad in ["http://", "https://", "<script", "<link", "<img", "@import", "url("] {
        assert!(!html.contains(bad), "the page contains {bad}");
    }
    for attr in ["src=", "href="] {
        for (at, _) in html.match_indices(attr) {
            let target = &html[at + attr.len()..];
            assert!(
                target.starts_with("\"#"),
                "an {attr} that is not an anchor: {}",
                &target[..40]
            );
        }
    }
}

/// A short fan-out over two processes writes its JSON and HTML reports: the page has the
/// three plots, the parameters, and the JSON's p50 and p99 on its percentile line; the JSON
/// has the histogram behind them and the merged timeline; `compare` renders both reports.
#[test]
fn binary_writes_html_reports_and_compares_them() {
    let srv = server();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("loadtest-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, page) = (dir.join("fanout-run.json"), dir.join("run.html"));
    let bin = env!("CARGO_BIN_EXE_partyline-loadtest");
    let out = std::process::Command::new(bin)
        .args(["--target", &srv.local_addr().to_string(), "--processes", "2", "--workers", "1"])
        .args(["--server-pid", &std::process::id().to_string()])
        .arg("--json")
        .arg(&json)
        .arg("--report-html")
        .arg(&page)
        .args(["fanout", "--receivers", "10", "--senders", "2", "--rate", "400"])
        .args(["--warmup-s", "0.2", "--duration-s", "0.8", "--room", "html"])
        .output()
        .expect("loadtest binary runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    srv.shutdown().unwrap();

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).expect("JSON report");
    let r = &report["results"];
    assert_complete(r);
    // The histogram behind the percentiles, as (µs, count) pairs.
    let pairs = report["histograms"]["latency"].as_array().expect("latency histogram");
    let count: u64 = pairs.iter().map(|p| p[1].as_u64().unwrap()).sum();
    assert_eq!(count, r["latency"]["count"].as_u64().unwrap(), "{report}");
    // Both processes' timelines, summed: every connection, and every delivery counted.
    let timeline = report["timeline"].as_array().expect("timeline");
    let last = timeline.last().expect("a sample at the end");
    assert_eq!(last["connected"], 12, "{timeline:?}");
    assert!(last["messages"].as_u64().unwrap() >= r["deliveries"].as_u64().unwrap());
    assert!(timeline.len() >= 2, "a sample a second and one at the end: {timeline:?}");
    assert!(report["server"]["cpu_s"].as_f64().is_some(), "{}", report["server"]);

    let html = std::fs::read_to_string(&page).expect("HTML report");
    assert_self_contained(&html);
    assert_eq!(html.matches("<svg").count(), 3, "percentiles, throughput, connections");
    for param in ["receivers", "senders", "rate", "duration_s", "room"] {
        assert!(html.contains(&format!("<th>{param}</th>")), "parameter {param} missing");
    }
    assert!(html.contains("<th>receivers</th><td class=\"n\">10</td>"));
    for (q, key) in [("0.5", "p50_us"), ("0.99", "p99_us")] {
        let us = r["latency"][key].as_u64().unwrap();
        assert!(
            html.contains(&format!(r#"data-q="{q}" data-us="{us}""#)),
            "{key} {us} not on the plot"
        );
    }

    // The same report twice, under two labels: one section, ratios of 1.
    let (copy, compared) = (dir.join("copy").join("fanout-run.json"), dir.join("compare.html"));
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&json, &copy).unwrap();
    let out = std::process::Command::new(bin)
        .args(["compare", "--report-html"])
        .arg(&compared)
        .args(["--label", "first<&>"])
        .arg(&json)
        .args(["--label", "second"])
        .arg(&copy)
        .output()
        .expect("compare runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&compared).expect("comparison page");
    assert_self_contained(&html);
    assert_eq!(html.matches("<section").count(), 1);
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("first&lt;&amp;&gt;") && !html.contains("first<&>"));
    assert!(html.contains("<th>second</th>") && html.contains("1.00×"));
    // One report alone: its run's page again.
    let again = dir.join("again.html");
    let out = std::process::Command::new(bin)
        .args(["compare", "--report-html"])
        .arg(&again)
        .arg(&json)
        .output()
        .expect("compare runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&again).unwrap();
    let p50 = r["latency"]["p50_us"].as_u64().unwrap();
    assert!(html.contains(&format!(r#"data-q="0.5" data-us="{p50}""#)));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `yjs`: keystrokes into one document reach every connection, in order, and the server's
/// document holds them all (each a real Yjs update: the server checks and applies it).
#[test]
fn yjs_keystrokes_reach_everyone_and_build_the_document() {
    use partyline_loadtest::scenario::yjs;
    partyline::parties::yjs::wire::check(&yjs::keystroke(7, 0)).expect("a valid update");
    partyline::parties::yjs::wire::check(&yjs::keystroke(7, 1)).expect("a valid update");
    let srv = server();
    let r = run(
        &srv,
        Scenario::Yjs(yjs::Params {
            connections: 20,
            party: "yjs".into(),
            room: "typing".into(),
            rate: 200.0,
            warmup_s: 0.2,
            duration_s: 0.5,
        }),
    );
    let sent = r["updates_sent"].as_u64().unwrap();
    assert!(sent > 50, "{r}");
    assert_eq!(r["updates_received"].as_u64(), Some(sent), "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    let addr = srv.local_addr();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(
        &mut tcp,
        b"GET /parties/yjs/typing?text=t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut tcp, &mut response).unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_eq!(body.len() as u64, sent, "every keystroke is in the document");
    srv.shutdown().unwrap();
}
