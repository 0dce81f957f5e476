//! The scenarios. Each splits its connections over the workers, runs, and returns its
//! results as JSON for the report.
//!
//! - `echo`: clients each do round trips through the `echo` party, one at a time; the
//!   round-trip time of each is recorded.
//! - `fanout`: receivers and senders join one `relay` room; senders send at a fixed total
//!   rate, each message stamped with its sender, sequence number and send time; every
//!   receiver records each delivery's latency and checks the order per sender.

use crate::client::{Client, ConnectFailure};
use crate::report::{self, CpuUse, Latency};
use crate::{now_ns, sys};
use futures_lite::FutureExt;
use hdrhistogram::Histogram;
use partyline_protocol::ws::Opcode;
use serde::Serialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// Where and how hard to drive.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub addr: SocketAddr,
    /// Worker threads (each a glommio executor).
    pub workers: usize,
    /// The server's pid, for its CPU seconds and memory.
    pub server_pid: Option<u32>,
    /// Connection attempts in flight per worker.
    pub connect_concurrency: usize,
}

/// Runs `make(worker)` on `n` glommio executors and collects what each returns.
pub fn run_workers<T, F, Fut>(n: usize, make: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = T> + 'static,
{
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let make = make.clone();
            glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                .name(&format!("loadtest-{i}"))
                .io_memory(512 * 1024)
                .spawn(move || make(i))
                .expect("worker executor starts")
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("worker finishes"))
        .collect()
}

/// Opens `paths.len()` connections with at most `concurrency` attempts in flight.
async fn connect_all(
    addr: SocketAddr,
    paths: Vec<(u64, String)>,
    concurrency: usize,
) -> (Vec<Option<Client>>, BTreeMap<ConnectFailure, u64>) {
    let gate = Rc::new(glommio::sync::Semaphore::new(concurrency.max(1) as u64));
    let tasks: Vec<_> = paths
        .into_iter()
        .map(|(seed, path)| {
            let gate = gate.clone();
            glommio::spawn_local(async move {
                let _permit = gate.acquire_permit(1).await.expect("semaphore open");
                Client::connect(addr, &path, seed).await
            })
            .detach()
        })
        .collect();
    let mut clients = Vec::with_capacity(tasks.len());
    let mut failures = BTreeMap::new();
    for t in tasks {
        match t.await {
            Some(Ok(c)) => clients.push(Some(c)),
            Some(Err(kind)) => {
                *failures.entry(kind).or_insert(0) += 1;
                clients.push(None);
            }
            None => clients.push(None),
        }
    }
    (clients, failures)
}

fn failures_json(f: &BTreeMap<ConnectFailure, u64>) -> BTreeMap<String, u64> {
    f.iter().map(|(k, v)| (format!("{k:?}"), *v)).collect()
}

fn merge_failures(into: &mut BTreeMap<ConnectFailure, u64>, from: &BTreeMap<ConnectFailure, u64>) {
    for (k, v) in from {
        *into.entry(*k).or_insert(0) += v;
    }
}

// ---- echo ------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct EchoParams {
    pub clients: usize,
    pub round_trips: usize,
    pub payload: usize,
    pub party: String,
    pub room: String,
}

struct EchoWorker {
    rtt: Histogram<u64>,
    failures: BTreeMap<ConnectFailure, u64>,
    errors: u64,
    elapsed_s: f64,
}

/// The `echo` scenario.
pub fn echo(target: &Target, params: &EchoParams) -> serde_json::Value {
    let workers = target.workers.min(params.clients).max(1);
    let (t, p) = (target.clone(), params.clone());
    let results = run_workers(workers, move |w| {
        let (t, p) = (t.clone(), p.clone());
        async move {
            let mine: Vec<(u64, String)> = (w..p.clients)
                .step_by(workers)
                .map(|i| (i as u64, format!("/parties/{}/{}-{}", p.party, p.room, i)))
                .collect();
            let (clients, failures) = connect_all(t.addr, mine, t.connect_concurrency).await;
            let rtt = Rc::new(RefCell::new(report::histogram()));
            let errors = Rc::new(RefCell::new(0u64));
            let start = now_ns();
            let tasks: Vec<_> = clients
                .into_iter()
                .flatten()
                .map(|mut c| {
                    let (rtt, errors, p) = (rtt.clone(), errors.clone(), p.clone());
                    glommio::spawn_local(async move {
                        let mut payload = vec![0u8; p.payload.max(8)];
                        for _ in 0..p.round_trips {
                            let sent = now_ns();
                            payload[..8].copy_from_slice(&sent.to_le_bytes());
                            let mut got = false;
                            if c.send(Opcode::Binary, &payload).await.is_err() {
                                *errors.borrow_mut() += 1;
                                return;
                            }
                            while !got {
                                let mut on_frame =
                                    |op: Opcode, _: &[u8]| got |= op == Opcode::Binary;
                                match c.read_frames(&mut on_frame).await {
                                    Ok(true) => {}
                                    _ => {
                                        *errors.borrow_mut() += 1;
                                        return;
                                    }
                                }
                            }
                            let _ = rtt.borrow_mut().record(((now_ns() - sent) / 1000).max(1));
                        }
                    })
                    .detach()
                })
                .collect();
            for task in tasks {
                task.await;
            }
            let elapsed_s = (now_ns() - start) as f64 / 1e9;
            let rtt = rtt.borrow().clone();
            let errors = *errors.borrow();
            EchoWorker {
                rtt,
                failures,
                errors,
                elapsed_s,
            }
        }
    });
    let mut rtt = report::histogram();
    let mut failures = BTreeMap::new();
    let mut errors = 0;
    let mut elapsed_s: f64 = 0.0;
    for r in &results {
        report::merge(&mut rtt, &r.rtt);
        merge_failures(&mut failures, &r.failures);
        errors += r.errors;
        elapsed_s = elapsed_s.max(r.elapsed_s);
    }
    serde_json::json!({
        "round_trips": rtt.len(),
        "round_trips_per_s": rtt.len() as f64 / elapsed_s.max(1e-9),
        "rtt": Latency::of(&rtt),
        "connect_failures": failures_json(&failures),
        "errors": errors,
        "elapsed_s": elapsed_s,
    })
}

// ---- fanout ----------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct FanoutParams {
    pub receivers: usize,
    pub senders: usize,
    /// Messages per second, all senders together.
    pub rate: u64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub payload: usize,
    pub party: String,
    pub room: String,
}

/// Bytes of the stamp at the start of each fan-out payload: sender, sequence, send time.
const STAMP: usize = 4 + 8 + 8;

#[derive(Default)]
struct FanoutStats {
    deliveries: u64,
    measured: u64,
    reordered: u64,
    closed_by_server: u64,
    /// Last sequence seen per (receiver, sender) is kept per receiver; this is the sum.
    sent: u64,
}

struct FanoutWorker {
    latency: Histogram<u64>,
    stats: FanoutStats,
    failures: BTreeMap<ConnectFailure, u64>,
    cpu: Option<CpuUse>,
}

/// The `fanout` scenario.
pub fn fanout(target: &Target, params: &FanoutParams) -> serde_json::Value {
    let total = params.receivers + params.senders;
    let workers = target.workers.min(total).max(1);
    let barrier = Arc::new(Barrier::new(workers));
    let start_at = Arc::new(AtomicU64::new(0));
    let (t, p) = (target.clone(), params.clone());
    let results = run_workers(workers, move |w| {
        let (t, p, barrier, start_at) = (t.clone(), p.clone(), barrier.clone(), start_at.clone());
        async move {
            // Connections 0..senders are senders, the rest receivers.
            let path = format!("/parties/{}/{}", p.party, p.room);
            let mine: Vec<(u64, String)> = (w..total)
                .step_by(workers)
                .map(|i| (i as u64, path.clone()))
                .collect();
            let ids: Vec<usize> = (w..total).step_by(workers).collect();
            let (clients, failures) = connect_all(t.addr, mine, t.connect_concurrency).await;

            // Everyone connected: agree on the start time.
            if barrier.wait().is_leader() {
                start_at.store(now_ns() + 100_000_000, Ordering::SeqCst);
            }
            barrier.wait();
            let start = start_at.load(Ordering::SeqCst);
            let measure_from = start + floor_u64(p.warmup_s * 1e9);
            let measure_to = measure_from + floor_u64(p.duration_s * 1e9);
            let stop = measure_to + 1_000_000_000;

            let latency = Rc::new(RefCell::new(report::histogram()));
            let stats = Rc::new(RefCell::new(FanoutStats::default()));
            for (client, id) in clients.into_iter().zip(ids) {
                let Some(mut client) = client else { continue };
                if id < p.senders {
                    let (stats, p) = (stats.clone(), p.clone());
                    glommio::spawn_local(async move {
                        let per_sender = p.rate as f64 / p.senders as f64;
                        let mut seq: u64 = 0;
                        sleep_until(start).await;
                        while now_ns() < measure_to {
                            let due = floor_u64((now_ns() - start) as f64 / 1e9 * per_sender);
                            if due > seq {
                                let mut batch = (seq..due).map(|s| {
                                    let mut m = vec![0u8; p.payload.max(STAMP)];
                                    m[..4].copy_from_slice(
                                        &u32::try_from(id).unwrap_or(u32::MAX).to_le_bytes(),
                                    );
                                    m[4..12].copy_from_slice(&s.to_le_bytes());
                                    m[12..20].copy_from_slice(&now_ns().to_le_bytes());
                                    m
                                });
                                if client.send_batch(Opcode::Binary, &mut batch).await.is_err() {
                                    stats.borrow_mut().closed_by_server += 1;
                                    return;
                                }
                                stats.borrow_mut().sent += due - seq;
                                seq = due;
                            }
                            // Until the next tick, read (and drop) what the room sends this
                            // sender, as a real client would; a read pending at the tick is
                            // dropped before it consumed anything.
                            let mut discard = |_: Opcode, _: &[u8]| {};
                            let tick = async {
                                glommio::timer::sleep(Duration::from_millis(1)).await;
                                Ok(true)
                            };
                            if let Ok(false) | Err(_) =
                                client.read_frames(&mut discard).or(tick).await
                            {
                                stats.borrow_mut().closed_by_server += 1;
                                return;
                            }
                        }
                    })
                    .detach();
                } else {
                    let (stats, latency, senders) = (stats.clone(), latency.clone(), p.senders);
                    glommio::spawn_local(async move {
                        let mut last = vec![u64::MAX; senders];
                        loop {
                            let mut on_frame = |_: Opcode, m: &[u8]| {
                                if m.len() < STAMP {
                                    return;
                                }
                                let now = now_ns();
                                let sender = u32::from_le_bytes([m[0], m[1], m[2], m[3]]) as usize;
                                let seq =
                                    u64::from_le_bytes(m[4..12].try_into().unwrap_or_default());
                                let sent =
                                    u64::from_le_bytes(m[12..20].try_into().unwrap_or_default());
                                let mut s = stats.borrow_mut();
                                s.deliveries += 1;
                                if let Some(l) = last.get_mut(sender) {
                                    if *l != u64::MAX && seq <= *l {
                                        s.reordered += 1;
                                    }
                                    *l = seq;
                                }
                                if (measure_from..measure_to).contains(&sent) {
                                    s.measured += 1;
                                    let _ = latency
                                        .borrow_mut()
                                        .record((now.saturating_sub(sent) / 1000).max(1));
                                }
                            };
                            match client.read_frames(&mut on_frame).await {
                                Ok(true) => {}
                                _ => {
                                    stats.borrow_mut().closed_by_server += 1;
                                    return;
                                }
                            }
                        }
                    })
                    .detach();
                }
            }
            // The first worker samples CPU over the measured window.
            let cpu = if w == 0 {
                sleep_until(measure_from).await;
                let (self0, server0) = (
                    sys::cpu_seconds(sys::self_pid()),
                    t.server_pid.and_then(sys::cpu_seconds),
                );
                sleep_until(measure_to).await;
                let (self1, server1) = (
                    sys::cpu_seconds(sys::self_pid()),
                    t.server_pid.and_then(sys::cpu_seconds),
                );
                Some(CpuUse {
                    loadtest_cpu_s: self1.zip(self0).map_or(0.0, |(a, b)| a - b),
                    server_cpu_s: server1.zip(server0).map(|(a, b)| a - b),
                })
            } else {
                None
            };
            sleep_until(stop).await;
            let latency = latency.borrow().clone();
            let stats = std::mem::take(&mut *stats.borrow_mut());
            FanoutWorker {
                latency,
                stats,
                failures,
                cpu,
            }
        }
    });

    let mut latency = report::histogram();
    let mut failures = BTreeMap::new();
    let mut s = FanoutStats::default();
    let mut cpu = CpuUse::default();
    for r in &results {
        report::merge(&mut latency, &r.latency);
        merge_failures(&mut failures, &r.failures);
        s.deliveries += r.stats.deliveries;
        s.measured += r.stats.measured;
        s.reordered += r.stats.reordered;
        s.closed_by_server += r.stats.closed_by_server;
        s.sent += r.stats.sent;
        if let Some(c) = r.cpu {
            cpu = c;
        }
    }
    let connected_receivers =
        params.receivers as u64 - failures.values().sum::<u64>().min(params.receivers as u64);
    let expected = s.sent * connected_receivers;
    let per_s = s.measured as f64 / params.duration_s;
    serde_json::json!({
        "messages_sent": s.sent,
        "deliveries": s.deliveries,
        "expected_deliveries": expected,
        // Not delivered one second after the last send: lost, or still queued in an
        // overloaded server (then latency shows it). Must be 0 unless the server closed.
        "undelivered_at_stop": expected.saturating_sub(s.deliveries),
        "reordered": s.reordered,
        "closed_by_server": s.closed_by_server,
        "measured_deliveries": s.measured,
        "deliveries_per_s": per_s,
        "latency": Latency::of(&latency),
        "cpu": cpu,
        "deliveries_per_server_cpu_s": report::per_cpu_second(s.measured, cpu.server_cpu_s),
        "connect_failures": failures_json(&failures),
    })
}

/// `x` rounded down to an integer, 0 for negatives and NaN, saturating at `u64::MAX`.
#[allow(clippy::cast_possible_truncation)] // Float-to-int `as` saturates; that is the intent.
fn floor_u64(x: f64) -> u64 {
    x.max(0.0) as u64
}

async fn sleep_until(t_ns: u64) {
    let now = now_ns();
    if t_ns > now {
        glommio::timer::sleep(Duration::from_nanos(t_ns - now)).await;
    }
}
