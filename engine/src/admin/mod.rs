//! The admin listener: `GET /metrics` in the Prometheus text format (0.0.4) and
//! `GET /health`, on its own address (`admin` in the config, `--admin ADDR`), loopback by
//! default since it has no authentication. It runs on one plain thread of its own, never
//! on a shard: a scrape reads the shards' published gauges ([`Gauges`], at most one sweep
//! old) and the process's own figures from `/proc`, so it cannot slow a room down, and a
//! stuck scraper cannot hold up anything but other scrapers.
//!
//! Bounded: at most [`ADMIN_CONNECTIONS_MAX`] requests are served at once (more get 503),
//! each request head is at most [`ADMIN_REQUEST_BYTES_MAX`], and every read and write has
//! a deadline of [`ADMIN_IO_TIMEOUT_MS`]. The accept loop polls with a short timeout so
//! that shutdown ends it.

use crate::edge::{STATUSES, close_label};
use crate::home::{PartyCounts, WAKE_BUCKETS_US};
use crate::limits::{ADMIN_CONNECTIONS_MAX, ADMIN_IO_TIMEOUT_MS, ADMIN_REQUEST_BYTES_MAX};
use crate::route::{Members, Placement};
use crate::shard::query::Query;
use crate::shard::{Gauges, ShardStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

mod rooms;

/// What the admin listener reads: every shard's gauges, the parties' names (in the order
/// of their indexes), and the store (for `/health`).
#[derive(Debug)]
pub(crate) struct View {
    pub gauges: Arc<[Gauges]>,
    pub parties: Arc<[String]>,
    pub store: partyline_storage::Store,
    /// The other nodes' links, in a cluster.
    pub links: Option<Arc<crate::route::NodeLinks>>,
    /// Set when the server starts to drain: `/health` answers 503 from then on.
    pub draining: Arc<AtomicBool>,
    /// The bearer token every path but `/health` requires, if any.
    pub token: Option<String>,
    /// Each shard's question queue (the rooms API asks them).
    pub queries: Vec<crossbeam_channel::Sender<Query>>,
    /// Where rooms live, and the cluster's node names.
    pub placement: Placement,
    pub members: Members,
}

impl View {
    /// Each party's counts, summed over shards, by name.
    pub fn parties(&self) -> Vec<(&str, PartyCounts)> {
        self.parties.iter().map(String::as_str).zip(Gauges::sum_parties(&self.gauges)).collect()
    }
}

/// The running admin listener.
#[derive(Debug)]
pub(crate) struct AdminListener {
    pub addr: SocketAddr,
    thread: std::thread::JoinHandle<()>,
}

impl AdminListener {
    /// Binds `addr` and serves on a thread of its own until `shutdown` is set.
    pub fn start(
        addr: SocketAddr,
        view: View,
        shutdown: Arc<AtomicBool>,
    ) -> io::Result<AdminListener> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("admin listener on {addr}: {e}")))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() && view.token.is_none() {
            tracing::warn!(%addr, "the admin listener is not on loopback and has no admin_token: anyone who reaches it reads /metrics");
        }
        let view = Arc::new(view);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Metrics(view.clone())));
        let served = Arc::new(Served { registry, view });
        let thread = std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || accept_loop(&listener, &served, &shutdown))?;
        tracing::info!(%addr, "admin listening (/metrics, /health)");
        Ok(AdminListener { addr, thread })
    }

    /// Waits for the listener's thread (after shutdown was set).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// How often the accept loop looks at the shutdown flag while no one connects.
const ACCEPT_POLL_MS: i32 = 200;

/// What each request reads.
#[derive(Debug)]
struct Served {
    registry: Registry,
    view: Arc<View>,
}

fn accept_loop(listener: &TcpListener, served: &Arc<Served>, shutdown: &Arc<AtomicBool>) {
    let busy = Arc::new(AtomicUsize::new(0));
    while !shutdown.load(Ordering::Relaxed) {
        let mut poll = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `poll` points to one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, ACCEPT_POLL_MS) };
        if ready <= 0 {
            continue;
        }
        let Ok((stream, _)) = listener.accept() else {
            // Out of descriptors, say: the listener stays readable, so do not spin.
            std::thread::sleep(Duration::from_millis(ACCEPT_POLL_MS.unsigned_abs().into()));
            continue;
        };
        if busy.fetch_add(1, Ordering::AcqRel) >= ADMIN_CONNECTIONS_MAX {
            busy.fetch_sub(1, Ordering::AcqRel);
            let _ = respond(&stream, 503, "text/plain", b"admin listener busy\n");
            continue;
        }
        let (served, held, stop) = (served.clone(), busy.clone(), shutdown.clone());
        let spawned = std::thread::Builder::new().name("admin-request".into()).spawn(move || {
            serve(stream, &served, &stop);
            held.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_err() {
            // The request (and its socket) went with the closure; only the count is left.
            busy.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Answers one request, then closes the connection.
fn serve(mut stream: TcpStream, served: &Served, shutdown: &AtomicBool) {
    // One deadline for the whole request head, however slowly it trickles in.
    let deadline = std::time::Instant::now() + Duration::from_millis(ADMIN_IO_TIMEOUT_MS);
    let timeout = Some(Duration::from_millis(ADMIN_IO_TIMEOUT_MS));
    if stream.set_write_timeout(timeout).is_err() {
        return;
    }
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (method, path, authorized) = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        head.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                let method = request.method.unwrap_or_default().to_owned();
                let path = request.path.unwrap_or_default().to_owned();
                let authorized = served.view.token.as_deref().is_none_or(|token| {
                    let header = request.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("authorization")
                            && bearer_matches(h.value, token.as_bytes())
                    });
                    // The dashboard in a browser cannot set headers: `?token=` too.
                    let query = path.split_once('?').is_some_and(|(_, q)| {
                        q.split('&').any(|kv| {
                            kv.strip_prefix("token=").is_some_and(|t| {
                                let t = partyline_protocol::route::percent_decode(t);
                                bearer_matches(format!("Bearer {t}").as_bytes(), token.as_bytes())
                            })
                        })
                    });
                    header || query
                });
                break (method, path, authorized);
            }
            Ok(httparse::Status::Partial) if head.len() < ADMIN_REQUEST_BYTES_MAX => {}
            Ok(httparse::Status::Partial) => {
                let _ = respond(&stream, 431, "text/plain", b"request head too large\n");
                return;
            }
            Err(e) => {
                let _ =
                    respond(&stream, 400, "text/plain", format!("bad request: {e}\n").as_bytes());
                return;
            }
        }
    };
    let (path, query) = path.split_once('?').unwrap_or((&path, ""));
    if !authorized && path != "/health" {
        let _ = respond(&stream, 401, "text/plain", b"a bearer token is required (admin_token)\n");
        return;
    }
    let _ = match (method.as_str(), path) {
        ("GET", "/metrics") => {
            let mut body = String::with_capacity(8 * 1024);
            match prometheus_client::encoding::prometheus_text::encode(&mut body, &served.registry)
            {
                Ok(()) => respond(
                    &stream,
                    200,
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    body.as_bytes(),
                ),
                Err(_) => respond(&stream, 500, "text/plain", b"cannot encode the metrics\n"),
            }
        }
        ("GET", "/health") if served.view.draining.load(Ordering::Relaxed) => {
            respond(&stream, 503, "text/plain", b"draining\n")
        }
        ("GET", "/health") => match served.view.store.health() {
            Ok(()) => respond(&stream, 200, "text/plain", b"ok\n"),
            Err(e) => respond(&stream, 503, "text/plain", format!("storage: {e}\n").as_bytes()),
        },
        ("GET", "/") => respond(&stream, 200, "text/html; charset=utf-8", DASHBOARD.as_bytes()),
        ("GET", "/api/summary") => {
            respond(&stream, 200, "application/json", summary(&served.view).to_string().as_bytes())
        }
        ("GET", "/events") => {
            events(&stream, &served.view, shutdown);
            return;
        }
        ("GET", rooms) if rooms.starts_with("/rooms/") => {
            let (status, body) = rooms::rooms_api(&served.view, &rooms["/rooms/".len()..], query);
            respond(&stream, status, "application/json", body.as_bytes())
        }
        ("GET", conns) if conns.starts_with("/connections/") => {
            let rest = &conns["/connections/".len()..];
            let (status, body) = rooms::connections_api(&served.view, rest, query);
            respond(&stream, status, "application/json", body.as_bytes())
        }
        (_, "/metrics" | "/health") => respond(&stream, 405, "text/plain", b"GET only\n"),
        _ => respond(
            &stream,
            404,
            "text/plain",
            b"not found: try /metrics, /health, /rooms/<party> or /connections/<party>/<id>\n",
        ),
    };
    let _ = stream.flush();
}

/// Whether an `Authorization` value is `Bearer <token>`, compared in constant time (a
/// wrong guess takes as long however many bytes it got right).
fn bearer_matches(value: &[u8], token: &[u8]) -> bool {
    let Some(given) = value.strip_prefix(b"Bearer ").or_else(|| value.strip_prefix(b"bearer "))
    else {
        return false;
    };
    given.len() == token.len()
        && given.iter().zip(token).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The live dashboard: one page, no external resources.
const DASHBOARD: &str = include_str!("../../ui/dashboard.html");

/// How long one `/events` stream lasts at most (the page's `EventSource` reconnects), so
/// an abandoned tab cannot hold an admin slot forever.
const EVENTS_STREAM_MAX_S: u64 = 600;

/// A snapshot of the server for the dashboard: totals, parties, shards, storage, links.
fn summary(view: &View) -> serde_json::Value {
    let shards: Vec<ShardStats> = view.gauges.iter().map(Gauges::read).collect();
    let parties = view.parties();
    let total = |f: fn(&ShardStats) -> u64| shards.iter().map(f).sum::<u64>();
    let storage = view.store.stats();
    let fsyncs: u64 = storage.fsync_buckets.iter().sum();
    let time_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
    serde_json::json!({
        "time_ms": time_ms,
        "totals": {
            "rooms": parties.iter().map(|(_, c)| c.rooms_awake + c.rooms_asleep).sum::<usize>(),
            "connections": parties.iter().map(|(_, c)| c.connections).sum::<usize>(),
            "messages_in": total(|s| s.traffic.messages_in),
            "bytes_in": total(|s| s.traffic.bytes_in),
            "frames_out": total(|s| s.traffic.frames_out),
            "bytes_out": total(|s| s.traffic.bytes_out),
            "upgrades": total(|s| s.traffic.upgrades),
            "sleeps": parties.iter().map(|(_, c)| c.sleeps).sum::<u64>(),
            "wakes": parties.iter().map(|(_, c)| c.wakes).sum::<u64>(),
        },
        "parties": parties.iter().map(|(name, c)| serde_json::json!({
            "name": name,
            "rooms_awake": c.rooms_awake,
            "rooms_asleep": c.rooms_asleep,
            "connections": c.connections,
            "sleeps": c.sleeps,
            "wakes": c.wakes,
        })).collect::<Vec<_>>(),
        "shards": shards.iter().enumerate().map(|(i, s)| serde_json::json!({
            "shard": i,
            "sockets": s.sockets,
            "websockets": s.websockets,
            "cpu_seconds": s.cpu_ns as f64 / 1e9,
        })).collect::<Vec<_>>(),
        "storage": {
            "requests": storage.requests,
            "writes": storage.writes,
            "fsyncs": storage.fsyncs,
            "fsync_mean_us": if fsyncs == 0 { 0.0 } else { storage.fsync_sum_ns as f64 / fsyncs as f64 / 1e3 },
            "queued": storage.queued,
        },
        "links": view.links.as_ref().map(|l| l.stats()).unwrap_or_default().iter().map(|l| serde_json::json!({
            "node": l.node, "up": l.up, "messages_out": l.messages_out, "messages_in": l.messages_in,
        })).collect::<Vec<_>>(),
    })
}

/// `/events`: a server-sent event with [`summary`] every second, until the client goes,
/// the server stops, or [`EVENTS_STREAM_MAX_S`] pass.
fn events(mut stream: &TcpStream, view: &View, shutdown: &AtomicBool) {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let until = std::time::Instant::now() + Duration::from_secs(EVENTS_STREAM_MAX_S);
    while std::time::Instant::now() < until && !shutdown.load(Ordering::Relaxed) {
        let event = format!("data: {}\n\n", summary(view));
        if stream.write_all(event.as_bytes()).and_then(|()| stream.flush()).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn respond(mut stream: &TcpStream, status: u16, content_type: &str, body: &[u8]) -> io::Result<()> {
    let reason = partyline_protocol::http::reason_phrase(status);
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}

/// The collector every scrape runs: reads the shards' gauges and `/proc`.
#[derive(Debug)]
struct Metrics(Arc<View>);

type Labels<'a> = [(&'static str, &'a str)];

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let view = &self.0;
        let parties = view.parties();

        // Per party.
        let family = |encoder: &mut DescriptorEncoder<'_>,
                      name: &str,
                      help: &str,
                      kind: MetricType,
                      rows: &mut dyn Iterator<Item = (Vec<(&'static str, &str)>, u64)>|
         -> Result<(), std::fmt::Error> {
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            for (labels, value) in rows {
                let labels: &Labels<'_> = &labels;
                let row = metric.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(value).encode(row)?,
                    _ => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(row)?,
                }
            }
            Ok(())
        };
        let as_u64 = |n: usize| n as u64;
        family(
            &mut encoder,
            "partyline_rooms",
            "Rooms loaded, by party and state (awake: with an instance; hibernated: asleep, connections archived)",
            MetricType::Gauge,
            &mut parties.iter().flat_map(|(party, c)| {
                [
                    (vec![("party", *party), ("state", "awake")], as_u64(c.rooms_awake)),
                    (vec![("party", *party), ("state", "hibernated")], as_u64(c.rooms_asleep)),
                ]
            }),
        )?;
        family(
            &mut encoder,
            "partyline_connections",
            "Open WebSocket connections of each party's rooms, awake or hibernated",
            MetricType::Gauge,
            &mut parties.iter().map(|(party, c)| (vec![("party", *party)], as_u64(c.connections))),
        )?;
        family(
            &mut encoder,
            "partyline_room_sleeps",
            "Times a room went to sleep",
            MetricType::Counter,
            &mut parties.iter().map(|(party, c)| (vec![("party", *party)], c.sleeps)),
        )?;
        family(
            &mut encoder,
            "partyline_room_wakes",
            "Times a sleeping room woke",
            MetricType::Counter,
            &mut parties.iter().map(|(party, c)| (vec![("party", *party)], c.wakes)),
        )?;
        {
            let mut metric = encoder.encode_descriptor(
                "partyline_room_wake_duration_seconds",
                "How long a wake took: reading the archive, rebuilding the connections, on_start",
                None,
                MetricType::Histogram,
            )?;
            for (party, c) in &parties {
                let mut cumulative = 0;
                let mut buckets = Vec::with_capacity(WAKE_BUCKETS_US.len());
                for (bound, n) in WAKE_BUCKETS_US.iter().zip(c.wake_time.buckets) {
                    cumulative += n;
                    buckets.push((*bound as f64 / 1e6, cumulative));
                }
                // The encoder writes the `+Inf` bucket (the count) itself.
                let count = c.wake_time.count();
                let labels: &Labels<'_> = &[("party", party)];
                let sum = c.wake_time.sum_ns as f64 / 1e9;
                metric
                    .encode_family(&labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        sum, count, &buckets, None,
                    )?;
            }
        }

        // Per shard.
        let shards: Vec<ShardStats> = view.gauges.iter().map(Gauges::read).collect();
        let names: Vec<String> = (0..shards.len()).map(|i| i.to_string()).collect();
        type Pick = fn(&ShardStats) -> u64;
        let per_shard: &[(&str, &str, MetricType, Pick)] = &[
            (
                "partyline_sockets",
                "Sockets accepted on the shard and not yet closed",
                MetricType::Gauge,
                |s| s.sockets as u64,
            ),
            ("partyline_websockets", "Open WebSockets on the shard", MetricType::Gauge, |s| {
                s.websockets as u64
            }),
            (
                "partyline_parked_sockets",
                "WebSockets parked (idle, with no task)",
                MetricType::Gauge,
                |s| s.parked as u64,
            ),
            (
                "partyline_remote_room_websockets",
                "Open WebSockets on the shard in rooms homed on other nodes",
                MetricType::Gauge,
                |s| s.remote_websockets as u64,
            ),
            (
                "partyline_outbound_bytes",
                "Bytes queued to write on the shard's sockets",
                MetricType::Gauge,
                |s| s.outbound_bytes as u64,
            ),
            (
                "partyline_inbound_bytes",
                "Bytes held for partly received messages",
                MetricType::Gauge,
                |s| s.inbound_bytes as u64,
            ),
            (
                "partyline_rooms_memory_charged_bytes",
                "Memory charged to the shard's rooms (rooms_memory_max)",
                MetricType::Gauge,
                |s| s.rooms_charged_bytes as u64,
            ),
            (
                "partyline_closed_for_output",
                "Sockets closed (1008) past the output budget",
                MetricType::Counter,
                |s| s.closed_for_output,
            ),
            (
                "partyline_closed_for_input",
                "Sockets closed (1009) past the input budget",
                MetricType::Counter,
                |s| s.closed_for_input,
            ),
            (
                "partyline_rooms_unloaded",
                "Rooms unloaded (idle, or for space)",
                MetricType::Counter,
                |s| s.rooms_unloaded,
            ),
            (
                "partyline_rooms_refused",
                "Connects, requests and alarms that could not load their room (503)",
                MetricType::Counter,
                |s| s.rooms_refused,
            ),
            (
                "partyline_events_refused",
                "Connects and requests refused by a full room mailbox (503)",
                MetricType::Counter,
                |s| s.events_refused,
            ),
            (
                "partyline_reads_held",
                "Socket reads that waited for a busy room's window",
                MetricType::Counter,
                |s| s.reads_held,
            ),
            (
                "partyline_websocket_messages_received",
                "WebSocket messages received from clients",
                MetricType::Counter,
                |s| s.traffic.messages_in,
            ),
            (
                "partyline_websocket_received_bytes",
                "Payload bytes of the WebSocket messages received from clients",
                MetricType::Counter,
                |s| s.traffic.bytes_in,
            ),
            (
                "partyline_frames_sent",
                "Frames queued to sockets: deliveries of sends and broadcasts, pings, closes",
                MetricType::Counter,
                |s| s.traffic.frames_out,
            ),
            (
                "partyline_sent_bytes",
                "Bytes written to sockets (frames and HTTP responses)",
                MetricType::Counter,
                |s| s.traffic.bytes_out,
            ),
            (
                "partyline_websocket_upgrades",
                "WebSocket connections accepted (101 written)",
                MetricType::Counter,
                |s| s.traffic.upgrades,
            ),
            ("partyline_parks", "Times an idle socket parked", MetricType::Counter, |s| {
                s.traffic.parks
            }),
            ("partyline_resumes", "Times a parked socket resumed", MetricType::Counter, |s| {
                s.traffic.resumes
            }),
            (
                "partyline_tls_handshakes",
                "TLS handshakes completed on the client listener",
                MetricType::Counter,
                |s| s.traffic.tls_handshakes,
            ),
            (
                "partyline_tls_handshake_failures",
                "TLS handshakes that failed or timed out",
                MetricType::Counter,
                |s| s.traffic.tls_failures,
            ),
        ];
        for (name, help, kind, pick) in per_shard.iter().copied() {
            family(
                &mut encoder,
                name,
                help,
                kind,
                &mut shards
                    .iter()
                    .zip(&names)
                    .map(|(s, shard)| (vec![("shard", shard.as_str())], pick(s))),
            )?;
        }

        // Per shard, CPU: how loaded each core is.
        {
            let mut metric = encoder.encode_descriptor(
                "partyline_shard_cpu_seconds",
                "CPU time of each shard's thread",
                None,
                MetricType::Counter,
            )?;
            for (s, shard) in shards.iter().zip(&names) {
                let labels: &Labels<'_> = &[("shard", shard.as_str())];
                ConstCounter::new(s.cpu_ns as f64 / 1e9).encode(metric.encode_family(&labels)?)?;
            }
        }

        // Refusals by status and the server's closes by code, summed over shards (fixed
        // label sets: see edge::traffic).
        let refusals: Vec<u64> = (0..=STATUSES.len())
            .map(|i| shards.iter().map(|s| s.traffic.refusals[i]).sum())
            .collect();
        let status_labels: Vec<String> = STATUSES
            .iter()
            .map(u16::to_string)
            .chain(std::iter::once("other".to_owned()))
            .collect();
        family(
            &mut encoder,
            "partyline_refusals",
            "Connections answered with an HTTP error instead of served (bad requests, 503s of full rooms and lost nodes, gate refusals), by status",
            MetricType::Counter,
            &mut status_labels
                .iter()
                .zip(&refusals)
                .filter(|(_, n)| **n > 0)
                .map(|(l, n)| (vec![("status", l.as_str())], *n)),
        )?;
        let close_labels: Vec<String> = (0..crate::edge::CLOSE_SLOTS).map(close_label).collect();
        let closes: Vec<u64> = (0..crate::edge::CLOSE_SLOTS)
            .map(|i| shards.iter().map(|s| s.traffic.closes[i]).sum())
            .collect();
        family(
            &mut encoder,
            "partyline_server_closes",
            "WebSockets the server closed, by close code (3xxx and 4xxx: the application ranges)",
            MetricType::Counter,
            &mut close_labels
                .iter()
                .zip(&closes)
                .filter(|(_, n)| **n > 0)
                .map(|(l, n)| (vec![("code", l.as_str())], *n)),
        )?;

        // Storage.
        let storage = view.store.stats();
        for (name, help, value) in [
            (
                "partyline_storage_requests",
                "Requests that reached the storage thread",
                storage.requests,
            ),
            ("partyline_storage_writes", "Of those, writes", storage.writes),
            (
                "partyline_storage_fsyncs",
                "fsyncs (group commit: writes share them)",
                storage.fsyncs,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let queued = ConstGauge::new(i64::try_from(storage.queued).unwrap_or(i64::MAX));
        queued.encode(encoder.encode_descriptor(
            "partyline_storage_queue_depth",
            "Requests waiting for the storage thread",
            None,
            queued.metric_type(),
        )?)?;
        {
            let mut cumulative = 0;
            let buckets: Vec<(f64, u64)> = partyline_storage::FSYNC_BUCKETS_US
                .iter()
                .zip(storage.fsync_buckets)
                .map(|(bound, n)| {
                    cumulative += n;
                    (*bound as f64 / 1e6, cumulative)
                })
                .collect();
            let count: u64 = storage.fsync_buckets.iter().sum();
            encoder
                .encode_descriptor(
                    "partyline_storage_fsync_duration_seconds",
                    "How long each fsync took",
                    None,
                    MetricType::Histogram,
                )?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    storage.fsync_sum_ns as f64 / 1e9,
                    count,
                    &buckets,
                    None,
                )?;
        }

        // Per node link.
        let links = view.links.as_ref().map(|l| l.stats()).unwrap_or_default();
        if !links.is_empty() {
            family(
                &mut encoder,
                "partyline_node_link_up",
                "Whether the link to another node of the cluster is up (1) or not (0)",
                MetricType::Gauge,
                &mut links.iter().map(|l| (vec![("node", l.node.as_str())], u64::from(l.up))),
            )?;
            family(
                &mut encoder,
                "partyline_node_link_losses",
                "Times the link to another node was lost",
                MetricType::Counter,
                &mut links.iter().map(|l| (vec![("node", l.node.as_str())], l.lost)),
            )?;
            family(
                &mut encoder,
                "partyline_node_link_messages",
                "Messages sent to (out) and received from (in) another node",
                MetricType::Counter,
                &mut links.iter().flat_map(|l| {
                    [
                        (vec![("node", l.node.as_str()), ("direction", "out")], l.messages_out),
                        (vec![("node", l.node.as_str()), ("direction", "in")], l.messages_in),
                    ]
                }),
            )?;
            family(
                &mut encoder,
                "partyline_node_link_bytes",
                "Bytes sent to (out) and received from (in) another node",
                MetricType::Counter,
                &mut links.iter().flat_map(|l| {
                    [
                        (vec![("node", l.node.as_str()), ("direction", "out")], l.bytes_out),
                        (vec![("node", l.node.as_str()), ("direction", "in")], l.bytes_in),
                    ]
                }),
            )?;
        }

        // The process.
        let process = crate::rt::usage();
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                process.resident_bytes,
            ),
            ("process_open_fds", "Open file descriptors", process.open_fds),
        ] {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let cpu = ConstCounter::new(process.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        Ok(())
    }
}
