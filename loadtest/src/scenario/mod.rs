//! The scenarios, and what they share: how connections are split over processes and
//! workers, how every worker agrees on a start time, and results that merge.
//!
//! A run is `processes` x `workers` glommio executors. Connection `i` belongs to process
//! `i % processes` and, inside it, to worker `(i / processes) % workers`; it connects from
//! source address `i % source_addrs.len()`. Each worker returns a partial result; partial
//! results are plain data (histograms as value/count pairs) so they cross processes as
//! JSON and merge in any order.

pub mod connect;
pub mod echo;
pub mod fanout;
pub mod idle;
pub mod wake;
pub mod yjs;

use crate::client::{Client, ConnectFailure};
use crate::report;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// Where and how hard to drive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// The server's addresses: connection `i` goes to `addrs[i % len]` (several processes
    /// or nodes of one cluster, each with its own listener).
    pub addrs: Vec<SocketAddr>,
    /// Worker threads per process (each a glommio executor).
    pub workers: usize,
    /// Worker processes (each capped by its own open-files limit).
    pub processes: usize,
    /// The server's pids (every process of a cluster on this machine), for their CPU
    /// seconds and memory, summed.
    pub server_pids: Vec<u32>,
    /// Connection attempts in flight per worker.
    pub connect_concurrency: usize,
    /// Source addresses to connect from, round robin (empty: the kernel's choice).
    pub source_addrs: Vec<IpAddr>,
    /// Connect with TLS, trusting only this CA (PEM); the server is named `localhost`.
    #[serde(default)]
    pub tls_ca: Option<std::path::PathBuf>,
}

impl Target {
    /// Where connection `i` goes.
    pub fn addr_for(&self, i: usize) -> SocketAddr {
        self.addrs[i % self.addrs.len()]
    }

    /// The server processes' resident and anonymous memory, summed (`None` without pids,
    /// or if one cannot be read).
    pub fn server_memory(&self) -> (Option<u64>, Option<u64>) {
        let sum = |f: fn(u32) -> Option<u64>| -> Option<u64> {
            if self.server_pids.is_empty() {
                return None;
            }
            self.server_pids.iter().map(|p| f(*p)).sum()
        };
        (sum(crate::sys::rss_bytes), sum(crate::sys::anon_bytes))
    }
}

/// Which of the run's processes this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub index: usize,
    pub count: usize,
}

impl Part {
    pub const WHOLE: Part = Part { index: 0, count: 1 };
}

/// The connection indices (of `total`) that worker `w` of `workers` in `part` owns.
pub fn indices(total: usize, part: Part, workers: usize, w: usize) -> Vec<usize> {
    (part.index..total).step_by(part.count).filter(|i| (i / part.count) % workers == w).collect()
}

/// How the workers of a run agree on when to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// One process: its workers agree among themselves.
    Local,
    /// A child process: its leader says READY on stdout and waits for `GO <ns>` on stdin.
    Child,
}

/// Shared by the workers of one process.
#[derive(Debug, Clone)]
pub struct Coordinator {
    barrier: Arc<Barrier>,
    start: Arc<AtomicU64>,
    sync: Sync,
}

impl Coordinator {
    pub fn new(workers: usize, sync: Sync) -> Self {
        Coordinator {
            barrier: Arc::new(Barrier::new(workers)),
            start: Arc::new(AtomicU64::new(0)),
            sync,
        }
    }

    /// Called by every worker once its connections are open; returns the common start time
    /// (`now_ns` clock). Blocks the worker thread, which has nothing else to do until then.
    pub fn ready(&self) -> u64 {
        if self.barrier.wait().is_leader() {
            let start = match self.sync {
                Sync::Local => crate::now_ns() + 100_000_000,
                Sync::Child => {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "READY");
                    let _ = out.flush();
                    let mut line = String::new();
                    let _ = std::io::stdin().lock().read_line(&mut line);
                    line.trim()
                        .strip_prefix("GO ")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(crate::now_ns)
                }
            };
            self.start.store(start, Ordering::SeqCst);
        }
        self.barrier.wait();
        self.start.load(Ordering::SeqCst)
    }
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
    handles.into_iter().map(|h| h.join().expect("worker finishes")).collect()
}

/// A histogram as (value, count) pairs: what crosses processes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hist(pub Vec<(u64, u64)>);

impl Hist {
    pub fn of(h: &Histogram<u64>) -> Hist {
        Hist(h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect())
    }

    /// Adds these values into `h`.
    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for &(value, count) in &self.0 {
            let _ = h.record_n(value, count);
        }
    }
}

/// Merges the partial histograms into one.
pub fn merged<'a>(parts: impl IntoIterator<Item = &'a Hist>) -> Histogram<u64> {
    let mut h = report::histogram();
    for p in parts {
        p.add_to(&mut h);
    }
    h
}

/// The path of connection `i` when connections are spread over `rooms` rooms named
/// `<prefix>-<n>` of `party`.
pub fn spread_path(party: &str, prefix: &str, rooms: usize, i: usize) -> String {
    format!("/parties/{party}/{prefix}-{}", i % rooms.max(1))
}

/// Connection failures by kind.
pub type Failures = BTreeMap<String, u64>;

pub fn add_failures(into: &mut Failures, from: &Failures) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

/// A connection attempt's outcome with its timings.
#[derive(Debug)]
pub struct Connected {
    pub index: usize,
    pub client: Option<Client>,
    /// When the attempt started (`now_ns` clock).
    pub started_ns: u64,
    /// Attempt start to the 101, in µs.
    pub upgrade_us: u64,
    /// Attempt start to the first message, in µs, when asked for and one came.
    pub first_message_us: Option<u64>,
}

/// How long a connection waits for its first message when the scenario asks for one.
const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(10);

/// Opens the connections `indices` (paths from `path_of`) with at most `concurrency`
/// attempts in flight and at most `rate_per_s` started per second (0: no pacing).
pub async fn connect_all(
    target: &Target,
    indices: &[usize],
    path_of: &dyn Fn(usize) -> String,
    rate_per_s: f64,
    await_first_message: bool,
) -> (Vec<Connected>, Failures) {
    let gate = Rc::new(glommio::sync::Semaphore::new(target.connect_concurrency.max(1) as u64));
    // Checked by the command before any scenario starts.
    let tls = target
        .tls_ca
        .as_ref()
        .map(|ca| crate::client::tls_config(ca).unwrap_or_else(|e| panic!("{e}")));
    let started = crate::now_ns();
    let mut tasks = Vec::with_capacity(indices.len());
    for (n, &i) in indices.iter().enumerate() {
        if rate_per_s > 0.0 {
            let due = started + floor_u64(n as f64 / rate_per_s * 1e9);
            sleep_until(due).await;
        }
        let (gate, path, addr, tls) = (gate.clone(), path_of(i), target.addr_for(i), tls.clone());
        let from = (!target.source_addrs.is_empty())
            .then(|| target.source_addrs[i % target.source_addrs.len()]);
        tasks.push(
            glommio::spawn_local(async move {
                let _permit = gate.acquire_permit(1).await.expect("semaphore open");
                let t0 = crate::now_ns();
                let result = Client::connect(from, addr, &path, i as u64, tls.as_ref()).await;
                crate::progress::connection(result.is_ok());
                let upgrade_us = ((crate::now_ns() - t0) / 1000).max(1);
                let mut first = None;
                let result = match result {
                    Ok(mut client) if await_first_message => {
                        let deadline =
                            t0 + u64::try_from(FIRST_MESSAGE_WAIT.as_nanos()).unwrap_or(u64::MAX);
                        let mut got = false;
                        while !got && crate::now_ns() < deadline {
                            let timer = sleep_until(deadline);
                            let timeout = async {
                                timer.await;
                                Ok(true)
                            };
                            let mut on_frame =
                                |_: partyline_protocol::ws::Opcode, _: &[u8]| got = true;
                            let read = futures_lite::FutureExt::or(
                                client.read_frames(&mut on_frame),
                                timeout,
                            )
                            .await;
                            if !matches!(read, Ok(true)) {
                                break;
                            }
                        }
                        if got {
                            first = Some(((crate::now_ns() - t0) / 1000).max(1));
                        }
                        Ok(client)
                    }
                    other => other,
                };
                (result, t0, upgrade_us, first)
            })
            .detach(),
        );
    }
    let mut out = Vec::with_capacity(tasks.len());
    let mut failures = Failures::new();
    for (task, &index) in tasks.into_iter().zip(indices) {
        match task.await {
            Some((Ok(client), started_ns, upgrade_us, first_message_us)) => {
                out.push(Connected {
                    index,
                    client: Some(client),
                    started_ns,
                    upgrade_us,
                    first_message_us,
                });
            }
            Some((Err(kind), started_ns, _, _)) => {
                *failures.entry(format!("{kind:?}")).or_insert(0) += 1;
                out.push(Connected {
                    index,
                    client: None,
                    started_ns,
                    upgrade_us: 0,
                    first_message_us: None,
                });
            }
            None => {
                *failures.entry(format!("{:?}", ConnectFailure::Handshake)).or_insert(0) += 1;
                out.push(Connected {
                    index,
                    client: None,
                    started_ns: 0,
                    upgrade_us: 0,
                    first_message_us: None,
                });
            }
        }
    }
    (out, failures)
}

pub async fn sleep_until(t_ns: u64) {
    let now = crate::now_ns();
    if t_ns > now {
        glommio::timer::sleep(Duration::from_nanos(t_ns - now)).await;
    }
}

/// `x` rounded down to an integer, 0 for negatives and NaN, saturating at `u64::MAX`.
#[allow(clippy::cast_possible_truncation)] // Float-to-int `as` saturates; that is the intent.
pub fn floor_u64(x: f64) -> u64 {
    x.max(0.0) as u64
}

/// CPU seconds of this process and of the server (all its processes) between two samples.
#[derive(Debug)]
pub struct CpuSampler {
    server_pids: Vec<u32>,
    self0: Option<f64>,
    server0: Option<f64>,
}

/// The CPU seconds of `pids`, summed (`None` for none, or if one cannot be read).
fn cpu_sum(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| crate::sys::cpu_seconds(*p)).sum()
}

impl CpuSampler {
    pub fn start(server_pids: &[u32]) -> Self {
        CpuSampler {
            server_pids: server_pids.to_vec(),
            self0: crate::sys::cpu_seconds(crate::sys::self_pid()),
            server0: cpu_sum(server_pids),
        }
    }

    /// (this process, server) CPU seconds since `start`.
    pub fn stop(&self) -> (f64, Option<f64>) {
        let self1 = crate::sys::cpu_seconds(crate::sys::self_pid());
        let server1 = cpu_sum(&self.server_pids);
        (
            self1.zip(self.self0).map_or(0.0, |(a, b)| a - b),
            server1.zip(self.server0).map(|(a, b)| a - b),
        )
    }
}
