//! Shared harness for the engine's integration tests: start a real server on an ephemeral
//! loopback port (in this process, with the parties a test registers) and talk to it with
//! real clients: tungstenite for WebSockets, raw TCP for HTTP.

#![allow(dead_code)] // Each test file uses part of the harness.

use partyline::{Config, Limits, RunningServer, Server};
use partyline_protocol::ws::{Decoded, FrameDecoder, FrameLimits, Opcode, Role};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tungstenite::protocol::WebSocket;

pub mod browser;
pub mod node;
pub mod pki;

/// Limits for tests: short timeouts so slow-client tests finish quickly.
pub fn test_limits() -> Limits {
    Limits { handshake_timeout_ms: 800, http_idle_timeout_ms: 2_000, ..Limits::default() }
}

pub fn config(shards: usize) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        shards,
        pin_cores: false,
        limits: test_limits(),
        data: data_dir(),
        // Every test server has its own admin listener, on a port of its own.
        admin: partyline::Admin::At("127.0.0.1:0".parse().expect("address")),
        ..Config::default()
    }
}

/// A fresh, empty data folder under Cargo's per-target temporary folder (one server per
/// folder: the store locks it).
pub fn data_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("engine-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Free loopback ports for listeners a test names in config (bound and released: a
/// test-only race, acceptable on a test machine).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<_> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

/// Starts `server` and returns it with its address.
pub fn start(server: Server) -> (RunningServer, SocketAddr) {
    let running = server.start().expect("server starts");
    let addr = running.local_addr();
    (running, addr)
}

pub type Ws = WebSocket<TcpStream>;

/// Opens a WebSocket to `path`; returns the socket and the edge shard that accepted it.
pub fn ws(addr: SocketAddr, path: &str) -> (Ws, usize) {
    try_ws(addr, path).unwrap_or_else(|e| panic!("upgrade to {path} failed: {e}"))
}

pub fn try_ws(addr: SocketAddr, path: &str) -> Result<(Ws, usize), tungstenite::Error> {
    let stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let (socket, response) = tungstenite::client::client(format!("ws://{addr}{path}"), stream)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::ConnectionClosed,
        })?;
    let shard = response
        .headers()
        .get("x-partyline-shard")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("x-partyline-shard header");
    Ok((socket, shard))
}

/// Reads the next data message as text (skipping pings/pongs).
pub fn read_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("read") {
            tungstenite::Message::Text(t) => return t.as_str().to_owned(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame; returns its code and reason.
pub fn read_close(ws: &mut Ws) -> (u16, String) {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(f))) => {
                return (f.code.into(), f.reason.as_str().to_owned());
            }
            Ok(tungstenite::Message::Close(None)) => return (1005, String::new()),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame, got error {e}"),
        }
    }
}

pub fn send_text(ws: &mut Ws, text: &str) {
    ws.send(tungstenite::Message::Text(text.into())).expect("send");
}

/// Waits (up to 10 s) until `check` holds for the server's shard stats (published a few
/// times a second).
pub fn wait_stats(
    srv: &RunningServer,
    what: &str,
    check: impl Fn(&[partyline::ShardStats]) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check(&srv.stats()) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            srv.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of one sample on the admin listener's `/metrics` (`name{labels}` exactly as
/// written there), or `None` if it is not there.
pub fn metric(srv: &RunningServer, sample: &str) -> Option<f64> {
    let admin = srv.admin_addr().expect("the test server has an admin listener");
    let (status, body) = http(admin, "GET", "/metrics", "");
    assert_eq!(status, 200, "{body}");
    body.lines().find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

/// The sum of every sample of metric `name` on `/metrics`, whatever their labels (a
/// counter over all shards, say).
pub fn metric_sum(srv: &RunningServer, name: &str) -> f64 {
    let admin = srv.admin_addr().expect("the test server has an admin listener");
    let (status, body) = http(admin, "GET", "/metrics", "");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits (up to 10 s) until `check` holds for the sum of metric `name`'s samples.
pub fn wait_metric_sum(srv: &RunningServer, name: &str, check: impl Fn(f64) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let value = metric_sum(srv, name);
        if check(value) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {name}: {value}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (up to 10 s) until `check` holds for a sample on `/metrics`.
pub fn wait_metric(srv: &RunningServer, sample: &str, check: impl Fn(f64) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let value = metric(srv, sample);
        if value.is_some_and(&check) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {sample}: {value:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends raw bytes and reads until the server closes; returns everything it sent.
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(request).expect("write");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A simple request with `Connection: close`; returns (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let text = raw_http(addr, request.as_bytes());
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The mask client frames are sent with.
pub const MASK: [u8; 4] = [1, 2, 3, 4];

/// A WebSocket client at the byte level.
pub struct Raw {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Raw {
    pub fn connect(addr: SocketAddr, path: &str) -> Raw {
        Raw::connect_with(addr, path, None)
    }

    /// Like [`Raw::connect`], with a small receive buffer (`rcvbuf` bytes) so that what
    /// the client does not read stays queued on the server.
    pub fn connect_with(addr: SocketAddr, path: &str, rcvbuf: Option<usize>) -> Raw {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size).unwrap();
        }
        socket.connect(&addr.into()).unwrap();
        let mut stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .unwrap();
        let mut raw = Raw { stream, buf: Vec::new() };
        let end = loop {
            if let Some(i) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            raw.fill();
        };
        let head = String::from_utf8_lossy(&raw.buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        raw.buf.drain(..end);
        raw
    }

    pub fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed during the handshake");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next frame from the server: (opcode, payload); `None` at end of stream.
    pub fn frame(&mut self) -> Option<(Opcode, Vec<u8>)> {
        let decoder = FrameDecoder::new(Role::Client, FrameLimits { message_size_max: 64 << 20 });
        loop {
            match decoder.decode(&mut self.buf).unwrap() {
                Decoded::Frame { frame, len } => {
                    let out = (frame.opcode, frame.payload.to_vec());
                    self.buf.drain(..len);
                    return Some(out);
                }
                Decoded::NeedMore { .. } => {
                    let mut chunk = [0u8; 65536];
                    match self.stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return None,
                        Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                    }
                }
            }
        }
    }

    /// Reads frames until a close; returns its code.
    pub fn close_code(&mut self) -> u16 {
        while let Some((op, payload)) = self.frame() {
            if op == Opcode::Close {
                return if payload.len() >= 2 {
                    u16::from_be_bytes([payload[0], payload[1]])
                } else {
                    1005
                };
            }
        }
        panic!("stream ended without a close frame");
    }
}

/// A `partyline serve` child process on ephemeral loopback ports, killed when the test
/// ends, passing or not. Its addresses come from its own log (`partyline listening
/// addr=...`), never from a port picked beforehand: a released port can be taken by another
/// test's server in between, and the test would then talk to that server.
pub struct Served {
    pub child: std::process::Child,
    /// The client listener.
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// Every log line so far (a thread keeps reading, so the server never blocks on a full
    /// pipe).
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Runs `partyline serve --listen 127.0.0.1:0 --admin 127.0.0.1:0 --no-pin --data
    /// <data>` with `more` arguments; returns once both listeners are bound (within 20 s).
    pub fn start(data: &std::path::Path, more: &[&str]) -> Served {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_partyline"))
            .args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--no-pin"])
            .arg("--data")
            .arg(data)
            .args(more)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("partyline runs");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (found, addrs) = std::sync::mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let (log, found) = (log.clone(), found.clone());
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines() {
                    let Ok(line) = line else { return };
                    let admin = line.contains("admin listening");
                    if admin || line.contains("partyline listening") {
                        let addr = line.split("addr=").nth(1).and_then(|rest| {
                            rest.split_whitespace().next()?.parse::<SocketAddr>().ok()
                        });
                        let _ = found.send((admin, addr.expect("the address in the log")));
                    }
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let (mut addr, mut admin) = (None, None);
        while addr.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match addrs.recv_timeout(left) {
                Ok((true, a)) => admin = Some(a),
                Ok((false, a)) => addr = Some(a),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = log.lock().unwrap_or_else(|e| e.into_inner());
                    panic!("partyline did not say it listens within 20 s:\n{log}");
                }
            }
        }
        Served { child, addr: addr.unwrap(), admin: admin.unwrap(), log }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `kill -9`, and waits for the process to be gone.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
