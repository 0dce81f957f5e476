//! One room must never stall another: a `main` room flooded by four clients sending 8 KiB
//! messages as fast as the server reads them, next to probe rooms (echo) homed on every
//! shard with clients on every shard. The probes' round trips, an HTTP request to another
//! room and a new handshake must stay close to what they are on an unloaded server: the
//! flood's backpressure has to reach the flooding sockets, never a channel other rooms share.

mod common;

use common::*;
use partyline::Server;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Probe rooms; with eight, both shards are home to some (the chance that eight FNV hashes
/// land on one of two shards is 1 in 128, and the test checks it from the server's header).
const PROBE_ROOMS: usize = 8;

struct Probes {
    clients: Vec<Ws>,
}

impl Probes {
    /// Two clients per probe room, until clients sit on both edges.
    fn connect(addr: std::net::SocketAddr) -> Probes {
        let mut clients = Vec::new();
        let mut edges = [false; 2];
        for room in 0..PROBE_ROOMS {
            for _ in 0..2 {
                let (c, edge) = ws(addr, &format!("/parties/echo/probe-{room}"));
                edges[edge] = true;
                clients.push(c);
            }
        }
        let mut extra = 0;
        while edges != [true, true] && extra < 64 {
            let (c, edge) = ws(addr, "/parties/echo/probe-0");
            edges[edge] = true;
            clients.push(c);
            extra += 1;
        }
        assert_eq!(edges, [true, true], "probe clients all landed on one shard");
        Probes { clients }
    }

    /// Round trips through every probe client, `rounds` times; the sorted times.
    fn round_trips(&mut self, rounds: usize) -> Vec<Duration> {
        let mut times = Vec::new();
        for round in 0..rounds {
            for c in &mut self.clients {
                let text = format!("probe {round}");
                let started = Instant::now();
                send_text(c, &text);
                assert_eq!(read_text(c), text);
                times.push(started.elapsed());
            }
        }
        times.sort();
        times
    }
}

/// The `per_mille`th value of `sorted` (500: the median).
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    sorted[((sorted.len() - 1) * per_mille / 1000).min(sorted.len() - 1)]
}

/// Starts a flooding client: one thread writes 8 KiB text messages until `stop`, another
/// reads (and drops) what the room broadcasts to it, so it never counts as a slow consumer.
fn flood(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let (ws, _) = ws(addr, "/parties/main/flooded");
    let mut stream = ws.into_inner();
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    stream.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut reader = stream.try_clone().unwrap();
    let reading = stop.clone();
    let read_thread = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while !reading.load(Ordering::Relaxed) {
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    });
    let write_thread = std::thread::spawn(move || {
        let payload = "f".repeat(8 * 1024);
        let frame = partyline_protocol::ws::encode::client_frame(
            true,
            partyline_protocol::ws::Opcode::Text,
            payload.as_bytes(),
            [9, 8, 7, 6],
        );
        let mut written = 0usize;
        while !stop.load(Ordering::Relaxed) {
            // A blocked write (the server stopped reading) times out and tries again.
            match std::io::Write::write(&mut stream, &frame[written..]) {
                Ok(n) => written = (written + n) % frame.len(),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    });
    vec![read_thread, write_thread]
}

#[test]
fn a_flooded_room_does_not_stall_other_rooms() {
    let (srv, addr) = start(Server::new(config(2)).with_builtin_parties());
    let mut probes = Probes::connect(addr);
    let quiet = probes.round_trips(20);
    let (quiet_p50, quiet_p99) = (percentile(&quiet, 500), percentile(&quiet, 990));

    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4).flat_map(|_| flood(addr, stop.clone())).collect();
    // Let the flood fill every queue it can, and check that it does: the flooding sockets'
    // reads are held back for their room.
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.stats().iter().map(|s| s.reads_held).sum::<u64>() < 100 {
        assert!(Instant::now() < deadline, "the flood never filled the room: {:?}", srv.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    let loaded = probes.round_trips(20);
    let (loaded_p50, loaded_p99) = (percentile(&loaded, 500), percentile(&loaded, 990));
    // HTTP to another room and a new handshake during the flood.
    let started = Instant::now();
    assert_eq!(http(addr, "GET", "/parties/main/elsewhere", "").0, 200);
    let http_time = started.elapsed();
    let started = Instant::now();
    let (mut late, _) = ws(addr, "/parties/echo/late");
    send_text(&mut late, "hi");
    assert_eq!(read_text(&mut late), "hi");
    let handshake_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    eprintln!("{:?}", srv.stats());
    eprintln!(
        "probe round trips: quiet p50 {quiet_p50:?} p99 {quiet_p99:?}; flooded p50 \
         {loaded_p50:?} p99 {loaded_p99:?}; http {http_time:?}; handshake {handshake_time:?}"
    );
    // "A few milliseconds" on a shared 2-core machine running the flood clients too.
    // (Today's main gave 1.1 to 5.8 s here; this one about 1-2 ms.)
    let allowance = Duration::from_millis(25);
    assert!(loaded_p50 < quiet_p50 + Duration::from_millis(5), "flooded p50 {loaded_p50:?}");
    assert!(loaded_p99 < quiet_p99 + allowance, "flooded p99 {loaded_p99:?}");
    assert!(http_time < allowance, "HTTP to another room took {http_time:?}");
    assert!(handshake_time < allowance, "a new handshake took {handshake_time:?}");
    srv.shutdown().unwrap();
}
