//! `connect`: open connections into one room (or spread over rooms) as fast as allowed,
//! optionally paced, and hold them: connections per second, time to the 101 and to the
//! first message (the `main` party sends its history on connect), failures by kind.

use super::{
    Coordinator, CpuSampler, Failures, Hist, Part, Target, add_failures, connect_all, indices,
    merged, run_workers, sleep_until, spread_path,
};
use crate::report::{self, Histograms, Latency};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct Params {
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    #[arg(long, default_value = "main")]
    pub party: String,
    #[arg(long, default_value = "loadtest-connect")]
    pub room_prefix: String,
    /// Connections started per second, all workers together (0: as fast as allowed).
    #[arg(long, default_value_t = 0.0)]
    pub ramp_per_s: f64,
    /// Wait for each connection's first message (needs a party that sends on connect);
    /// `--no-first-message` turns it off.
    #[arg(long = "no-first-message", action = clap::ArgAction::SetFalse)]
    pub first_message: bool,
    /// Seconds to keep the connections open after all are in.
    #[arg(long, default_value_t = 0.0)]
    pub hold_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Partial {
    upgrade: Hist,
    first_message: Hist,
    connected: u64,
    failures: Failures,
    first_attempt_ns: u64,
    last_connected_ns: u64,
    /// Server CPU seconds while connecting (sampled by the first worker of the first part).
    server_cpu_s: Option<f64>,
}

pub fn run(
    target: &Target,
    params: &Params,
    part: Part,
    coordinator: &Coordinator,
) -> Vec<Partial> {
    let (t, p, c) = (target.clone(), params.clone(), coordinator.clone());
    run_workers(target.workers, move |w| {
        let (t, p, c) = (t.clone(), p.clone(), c.clone());
        async move {
            let mine = indices(p.connections, part, t.workers, w);
            let path_of = |i: usize| spread_path(&p.party, &p.room_prefix, p.rooms, i);
            let ramp = p.ramp_per_s / (t.workers * part.count) as f64;
            let sampler = (w == 0 && part.index == 0).then(|| CpuSampler::start(&t.server_pids));
            let (conns, failures) = connect_all(&t, &mine, &path_of, ramp, p.first_message).await;
            let mut upgrade = report::histogram();
            let mut first_message = report::histogram();
            let mut first_attempt_ns = u64::MAX;
            let mut last_connected_ns = 0;
            let mut clients = Vec::new();
            for conn in conns {
                first_attempt_ns = first_attempt_ns.min(conn.started_ns);
                if let Some(client) = conn.client {
                    let _ = upgrade.record(conn.upgrade_us);
                    if let Some(us) = conn.first_message_us {
                        let _ = first_message.record(us);
                    }
                    last_connected_ns =
                        last_connected_ns.max(conn.started_ns + conn.upgrade_us * 1000);
                    clients.push(client);
                }
            }
            let start = c.ready();
            let server_cpu_s = sampler.and_then(|s| s.stop().1);
            sleep_until(start + super::floor_u64(p.hold_s * 1e9)).await;
            drop(clients);
            Partial {
                upgrade: Hist::of(&upgrade),
                first_message: Hist::of(&first_message),
                connected: upgrade.len(),
                failures,
                first_attempt_ns,
                last_connected_ns,
                server_cpu_s,
            }
        }
    })
}

/// The results, and the histograms of the upgrades (`upgrade`) and, when timed, of the
/// first messages (`first_message`).
pub fn finish(parts: &[Partial]) -> (serde_json::Value, Histograms) {
    let upgrade = merged(parts.iter().map(|p| &p.upgrade));
    let first = merged(parts.iter().map(|p| &p.first_message));
    let mut failures = Failures::new();
    for p in parts {
        add_failures(&mut failures, &p.failures);
    }
    let connected: u64 = parts.iter().map(|p| p.connected).sum();
    let from = parts.iter().map(|p| p.first_attempt_ns).min().unwrap_or(0);
    let to = parts.iter().map(|p| p.last_connected_ns).max().unwrap_or(0);
    let elapsed_s = to.saturating_sub(from) as f64 / 1e9;
    let results = serde_json::json!({
        "connected": connected,
        "connect_failures": failures,
        "elapsed_s": elapsed_s,
        "connections_per_s": if elapsed_s > 0.0 { connected as f64 / elapsed_s } else { 0.0 },
        "server_cpu_s": parts.iter().find_map(|p| p.server_cpu_s),
        "connections_per_server_cpu_s": report::per_cpu_second(connected, parts.iter().find_map(|p| p.server_cpu_s)),
        "upgrade": Latency::of(&upgrade),
        "first_message": if first.is_empty() { serde_json::Value::Null } else { serde_json::to_value(Latency::of(&first)).unwrap_or_default() },
    });
    let mut histograms = Histograms::from([("upgrade".to_owned(), Hist::of(&upgrade))]);
    if !first.is_empty() {
        histograms.insert("first_message".to_owned(), Hist::of(&first));
    }
    (results, histograms)
}
