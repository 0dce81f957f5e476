//! `storage-bench`: durable puts per second and their latency through partyline's store,
//! with many rooms writing at once the way rooms on shards do (each room awaits its own
//! put before the next, as a room's hook would), group commit on or off; and reads per
//! second, through the storage thread and from the rooms' caches (measured first, on the
//! same freshly written keys for every setting). Prints one JSON object.
//!
//! ```sh
//! cargo run --release -p partyline-bench --bin storage-bench -- --rooms 256 --seconds 5
//! cargo run --release -p partyline-bench --bin storage-bench -- --rooms 256 --group-commit-max 1
//! ```
//! bench/scripts/storage.sh runs the comparison recorded in docs/benchmarks.md.

use clap::Parser;
use hdrhistogram::Histogram;
use partyline_storage::{RoomStorage, Store, StoreConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Durable puts/s and reads/s through partyline's store")]
struct Args {
    /// Rooms writing at once (each awaits its put before the next).
    #[arg(long, default_value_t = 256)]
    rooms: usize,
    /// Threads the rooms run on (shards).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds of writing (and again of reading).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Distinct keys each room cycles through.
    #[arg(long, default_value_t = 64)]
    keys_per_room: usize,
    /// Requests one fsync covers at most; 1 = one fsync per put.
    #[arg(long, default_value_t = partyline_storage::limits::GROUP_MAX)]
    group_commit_max: usize,
    /// Folder for the database (a fresh subfolder is made and removed).
    #[arg(long, default_value = "target/storage-bench")]
    dir: PathBuf,
}

/// What one thread's rooms did.
struct Tally {
    ops: u64,
    latency_us: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Runs `rooms` concurrently on this thread until `deadline`, each doing `op` in a loop.
fn drive<F, Fut>(rooms: &[RoomStorage], deadline: Instant, op: F) -> Tally
where
    F: Fn(&RoomStorage, u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let tally = std::cell::RefCell::new(Tally { ops: 0, latency_us: histogram() });
    let loops = rooms.iter().map(|room| {
        let (op, tally) = (&op, &tally);
        async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                let start = Instant::now();
                op(room, i).await;
                let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                {
                    let mut t = tally.borrow_mut();
                    t.ops += 1;
                    let _ = t.latency_us.record(us.max(1));
                }
                i += 1;
                // Let the other rooms of this thread run, as a shard would between events
                // (a cache hit never waits, and would otherwise run alone until the end).
                futures_lite::future::yield_now().await;
            }
        }
    });
    futures_lite::future::block_on(futures_util::future::join_all(loops));
    tally.into_inner()
}

/// Runs a phase on `threads` threads; returns (ops/s, merged latency, seconds).
fn phase<F, Fut>(store: &Store, args: &Args, cached: bool, op: F) -> (f64, Histogram<u64>, f64)
where
    F: Fn(&RoomStorage, u64) -> Fut + Sync,
    Fut: std::future::Future<Output = ()>,
{
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                let op = &op;
                scope.spawn(move || {
                    let rooms: Vec<RoomStorage> = (0..args.rooms)
                        .filter(|r| r % args.threads == t)
                        .map(|r| {
                            let name = format!("room-{r}");
                            let room = if cached {
                                store.room_with_cache("bench", &name)
                            } else {
                                store.room("bench", &name)
                            };
                            room.expect("room")
                        })
                        .collect();
                    drive(&rooms, deadline, op)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("bench thread")).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut merged = histogram();
    let mut ops = 0;
    for t in tallies {
        ops += t.ops;
        merged.add(&t.latency_us).expect("same bounds");
    }
    (ops as f64 / seconds, merged, seconds)
}

fn summary(rate: f64, h: &Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "per_s": rate.round(),
        "p50_us": h.value_at_quantile(0.50),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = args.dir.join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = StoreConfig { group_commit_max: args.group_commit_max, ..StoreConfig::default() };
    let store = Store::open(&dir, config)?;
    let value = bytes::Bytes::from(vec![b'v'; args.value_bytes]);
    let keys: Vec<String> = (0..args.keys_per_room).map(|k| format!("key-{k:04}")).collect();

    // Every room's keys exist before anything is measured (reads must find them).
    for r in 0..args.rooms {
        let room = store.room("bench", &format!("room-{r}"))?;
        for chunk in keys.chunks(partyline_storage::limits::BATCH_KEYS_MAX) {
            futures_lite::future::block_on(
                room.put_many(chunk.iter().map(|k| (k, value.clone()))),
            )?;
        }
    }

    // Reads first, so both group-commit settings read the same data (one version of each
    // key); then the puts.
    let read = |room: &RoomStorage, i: u64| {
        let room = room.clone();
        let key = &keys[usize::try_from(i).unwrap_or(0) % keys.len()];
        async move {
            room.get(key).await.expect("get").expect("written before");
        }
    };
    let (read_rate, read_latency, _) = phase(&store, &args, false, read);
    let (cached_rate, cached_latency, _) = phase(&store, &args, true, read);

    let before = store.stats();
    let (put_rate, put_latency, _) = phase(&store, &args, false, |room, i| {
        let (room, value) = (room.clone(), value.clone());
        let key = &keys[usize::try_from(i).unwrap_or(0) % keys.len()];
        async move { room.put(key, value).await.expect("put") }
    });
    let after = store.stats();
    let fsyncs = after.fsyncs - before.fsyncs;
    let writes = after.writes - before.writes;
    store.close();
    let _ = std::fs::remove_dir_all(&dir);

    let report = serde_json::json!({
        "rooms": args.rooms,
        "threads": args.threads,
        "value_bytes": args.value_bytes,
        "group_commit_max": args.group_commit_max,
        "seconds": args.seconds,
        "puts": summary(put_rate, &put_latency),
        "writes_per_fsync": if fsyncs > 0 { (writes as f64 / fsyncs as f64 * 10.0).round() / 10.0 } else { 0.0 },
        "reads": summary(read_rate, &read_latency),
        "cached_reads": summary(cached_rate, &cached_latency),
    });
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, format!("{report}\n").as_bytes())?;
    Ok(())
}
