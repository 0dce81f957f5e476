//! Crash recovery: a child process writes and acknowledges keys as fast as it can from
//! several threads (so writes are group-committed), is killed with SIGKILL at a random
//! moment, and the store is reopened: every key the child saw acknowledged must be there
//! with its value. Beside them, one thread replaces a room's archive over and over, large
//! ones (written as their own table) and small ones (through the journal) in turn: after
//! the kill the archive must be the last acknowledged one or the one in flight, whole.
//! Repeated over one data folder, so each round also recovers the last.
//! `PARTYLINE_CRASH_ROUNDS=200 cargo test -p partyline-storage --test crash --release` is
//! the longer run (docs/benchmarks.md records it).

use futures_lite::future::block_on;
use partyline_storage::{Store, StoreConfig};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: usize = 4;

fn value_of(round: u64, writer: usize, i: u64) -> String {
    format!("value {round}/{writer}/{i} {}", "x".repeat(64))
}

/// Archive `i` of a round: every third small, the others large, of varying chunk counts,
/// each byte marked with the round and `i` so a torn or stale archive cannot pass.
fn archive_of(round: u64, i: u64) -> bytes::Bytes {
    let ingest = partyline_storage::limits::ARCHIVE_INGEST_BYTES as u64;
    let size = if i % 3 == 2 { 100 + i } else { ingest + (i % 4) * 20_000 + i };
    let mark = round.wrapping_mul(31).wrapping_add(i).to_le_bytes()[0];
    (0..size).map(|b| mark ^ b.to_le_bytes()[0]).collect::<Vec<u8>>().into()
}

/// The child: runs only when the parent starts it (ignored otherwise).
#[test]
#[ignore = "started by acknowledged_writes_survive_sigkill as a child process"]
fn crash_child() {
    let dir = std::env::var("PARTYLINE_CRASH_DIR").expect("child of the crash test");
    let round: u64 = std::env::var("PARTYLINE_CRASH_ROUND").unwrap().parse().unwrap();
    let store = Store::open(std::path::Path::new(&dir), StoreConfig::default()).unwrap();
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let room = store.room("crash", &format!("writer-{w}")).unwrap();
            std::thread::spawn(move || {
                for i in 0.. {
                    let key = format!("{round}/{i}");
                    block_on(room.put(&key, value_of(round, w, i))).expect("put");
                    // Acknowledged: durable from here on. The parent counts on it.
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {w} {i}").and_then(|()| out.flush()).expect("stdout");
                }
            })
        })
        .collect();
    let archiver = store.room("crash", "archiver").unwrap();
    for i in 0.. {
        block_on(archiver.put_archive(0, archive_of(round, i))).expect("put_archive");
        let mut out = std::io::stdout().lock();
        writeln!(out, "ARCHIVE {i}").and_then(|()| out.flush()).expect("stdout");
    }
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let rounds: u64 =
        std::env::var("PARTYLINE_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let mut seed = u64::from(clock.subsec_nanos()) ^ u64::from(std::process::id()) << 32 | 1;
    let mut total_acked = 0usize;
    let mut total_archives = 0u64;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("PARTYLINE_CRASH_DIR", dir.path())
            .env("PARTYLINE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("child starts");
        let acked: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
        let archived: Arc<Mutex<Option<u64>>> = Arc::default();
        let reader = {
            let (acked, archived) = (acked.clone(), archived.clone());
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(i) = line.strip_prefix("ARCHIVE ") {
                        *archived.lock().unwrap() = Some(i.parse().unwrap());
                        continue;
                    }
                    let mut parts = line.strip_prefix("ACK ").unwrap_or("").split(' ');
                    if let (Some(w), Some(i)) = (parts.next(), parts.next()) {
                        acked.lock().unwrap().push((w.parse().unwrap(), i.parse().unwrap()));
                    }
                }
            })
        };
        // Kill at a random moment once writes are flowing.
        let started = Instant::now();
        while acked.lock().unwrap().is_empty() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 300));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        reader.join().unwrap();
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        assert!(!acked.is_empty(), "round {round}: the child acknowledged nothing");
        total_acked += acked.len();

        let store = Store::open(dir.path(), StoreConfig::default()).expect("reopens after kill");
        let rooms: Vec<_> =
            (0..WRITERS).map(|w| store.room("crash", &format!("writer-{w}")).unwrap()).collect();
        for (w, i) in acked {
            let got = block_on(rooms[w].get(format!("{round}/{i}"))).unwrap();
            assert_eq!(
                got.as_deref(),
                Some(value_of(round, w, i).as_bytes()),
                "round {round}: acknowledged write {w}/{i} lost"
            );
        }
        if let Some(last) = *archived.lock().unwrap() {
            let archiver = store.room("crash", "archiver").unwrap();
            let got = block_on(archiver.get_archive(0)).unwrap().expect("an archive");
            assert!(
                got == archive_of(round, last) || got == archive_of(round, last + 1),
                "round {round}: archive {last} acknowledged, found {} bytes of another",
                got.len()
            );
            total_archives += last + 1;
        }
    }
    eprintln!(
        "{rounds} rounds, {total_acked} acknowledged writes and {total_archives} archives, all recovered"
    );
}
