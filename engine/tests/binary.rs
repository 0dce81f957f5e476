//! Tests of the `partyline` binary itself: `partyline serve` with the built-in parties on
//! an ephemeral port, the `main` chat over WebSocket and HTTP (new and legacy paths), and
//! SIGTERM draining (health 503 first), closing every socket with 1012 and exiting 0.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A served binary with a data folder removed at the end of the test.
struct Serving {
    served: Served,
    _data: TempDir,
}

impl std::ops::Deref for Serving {
    type Target = Served;
    fn deref(&self) -> &Served {
        &self.served
    }
}

impl std::ops::DerefMut for Serving {
    fn deref_mut(&mut self) -> &mut Served {
        &mut self.served
    }
}

/// A folder removed at the end of the test.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `partyline serve` on an ephemeral loopback port; reads the address from its log.
fn serve(shards: usize) -> Serving {
    serve_with(shards, &[])
}

/// [`serve`] with more arguments.
fn serve_with(shards: usize, more: &[&str]) -> Serving {
    let data = data_dir();
    let shards = shards.to_string();
    let args: Vec<&str> =
        ["--shards", shards.as_str()].into_iter().chain(more.iter().copied()).collect();
    Serving { served: Served::start(&data, &args), _data: TempDir(data) }
}

#[test]
fn main_chat_history_broadcast_and_http() {
    let served = serve(2);
    let addr = served.addr;
    assert_eq!(http(addr, "POST", "/parties/main/lobby", "first"), (201, "{\"ok\":true}".into()));
    assert_eq!(http(addr, "POST", "/party/lobby", "second"), (201, "{\"ok\":true}".into()));
    let (mut alice, _) = ws(addr, "/parties/main/lobby?_pk=alice");
    assert_eq!(read_text(&mut alice), r#"["first","second"]"#);
    let (mut bob, _) = ws(addr, "/party/lobby?_pk=bob");
    assert_eq!(read_text(&mut bob), r#"["first","second"]"#);
    send_text(&mut alice, "hi bob");
    assert_eq!(read_text(&mut bob), "hi bob");
    send_text(&mut bob, "hi alice");
    assert_eq!(read_text(&mut alice), "hi alice");
    let (status, body) = http(addr, "GET", "/parties/main/lobby", "");
    assert_eq!((status, body.as_str()), (200, r#"["first","second","hi bob","hi alice"]"#));
    // Another room has its own history.
    assert_eq!(http(addr, "GET", "/party/elsewhere", ""), (200, "[]".into()));
    // `--admin` put the metrics where it was told.
    let (status, metrics) = http(served.admin, "GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(metrics.contains(r#"partyline_rooms{party="main",state="awake"}"#), "{metrics}");
}

#[test]
fn sigterm_drains_then_closes_sockets_with_1012_and_exits_0() {
    let config = std::env::temp_dir().join(format!("partyline-drain-{}.toml", std::process::id()));
    std::fs::write(&config, "drain_health_ms = 700\n").expect("config written");
    let mut served = serve_with(2, &["--config", config.to_str().expect("utf-8 path")]);
    let (mut a, _) = ws(served.addr, "/parties/echo/x");
    let (mut b, _) = ws(served.addr, "/parties/relay/y");
    assert_eq!(http(served.admin, "GET", "/health", "").0, 200);
    let pid = i32::try_from(served.child.id()).expect("pid fits");
    // SAFETY: kill(2) with a pid we spawned and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let signalled = std::time::Instant::now();
    // First the balancer is told (health 503) while everything still works...
    let mut health = 200;
    while health != 503 && signalled.elapsed() < Duration::from_millis(500) {
        health = http(served.admin, "GET", "/health", "").0;
    }
    assert_eq!(health, 503, "/health says the node is draining");
    send_text(&mut a, "still here");
    assert_eq!(read_text(&mut a), "still here", "sockets are served while the node drains");
    // ...then the sockets are closed with 1012 (service restart: reconnect elsewhere).
    assert_eq!(read_close(&mut a).0, 1012);
    assert!(signalled.elapsed() >= Duration::from_millis(700), "closed only after the drain time");
    assert_eq!(read_close(&mut b).0, 1012);
    let mut waited = Duration::ZERO;
    let status = loop {
        if let Some(status) = served.child.try_wait().expect("wait") {
            break status;
        }
        assert!(waited < Duration::from_secs(10), "server did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
        waited += Duration::from_millis(50);
    };
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_file(config);
}

/// What a newcomer meets first: `--help` shows every flag with its default, and a data
/// folder that is a file is refused in one readable line, with a failing exit status.
#[test]
fn help_shows_defaults_and_a_bad_data_folder_is_said_plainly() {
    let help = Command::new(env!("CARGO_BIN_EXE_partyline"))
        .args(["serve", "--help"])
        .output()
        .expect("partyline runs");
    let help = String::from_utf8_lossy(&help.stdout);
    for expected in [
        "--listen",
        "127.0.0.1:1999",
        "--admin",
        "127.0.0.1:9464",
        "--data",
        ".partyline",
        "--node",
    ] {
        assert!(help.contains(expected), "--help lacks {expected}:\n{help}");
    }
    let file = std::env::temp_dir().join(format!("partyline-not-a-folder-{}", std::process::id()));
    std::fs::write(&file, b"x").expect("file written");
    let out = Command::new(env!("CARGO_BIN_EXE_partyline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "off", "--data"])
        .arg(&file)
        .env("NO_COLOR", "1")
        .output()
        .expect("partyline runs");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("not a folder"), "{said}");
    assert!(!said.contains("Custom {"), "no Debug dump: {said}");
    let _ = std::fs::remove_file(file);
}

/// `--log-format json` writes one JSON object per line; a room's log lines carry its party
/// and room (the room's span) without the code naming them.
#[test]
fn json_logs_carry_the_room_of_each_line() {
    let data = std::env::temp_dir().join(format!("partyline-json-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_partyline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "off", "--shards", "1", "--no-pin"])
        .args(["--log-format", "json", "--data"])
        .arg(&data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("partyline runs");
    let served = Served {
        addr: "127.0.0.1:1".parse().unwrap(),
        admin: "127.0.0.1:1".parse().unwrap(),
        log: Default::default(),
        child: {
            let stdout = child.stdout.take().expect("stdout");
            let mut lines = BufReader::new(stdout).lines();
            let addr: SocketAddr = loop {
                let line = lines.next().expect("a log line").expect("utf-8");
                let v: serde_json::Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                if v["message"] == "partyline listening" {
                    break v["addr"].as_str().expect("addr field").parse().expect("address");
                }
            };
            // A body that is not UTF-8: main's on_request refuses it, and the room logs it.
            let answer = raw_http(
                addr,
                b"POST /parties/main/logged HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n\xff\xfe",
            );
            assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
            let failed = loop {
                let line = lines.next().expect("a log line").expect("utf-8");
                let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
                if v["message"] == "on_request refused the request" {
                    break v;
                }
            };
            assert_eq!(failed["span"]["party"], "main", "{failed}");
            assert_eq!(failed["span"]["room"], "logged", "{failed}");
            assert_eq!(failed["level"], "WARN", "{failed}");
            std::thread::spawn(move || for _ in lines {});
            child
        },
    };
    drop((served, TempDir(data)));
}
