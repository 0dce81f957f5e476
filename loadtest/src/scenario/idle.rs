//! `idle`: hold connections open doing nothing, and read the server's resident memory
//! before (given in the parameters, measured before any connection) and while they are
//! held: bytes per idle connection.

use super::{
    Coordinator, Failures, Part, Target, add_failures, connect_all, floor_u64, indices,
    run_workers, sleep_until, spread_path,
};
use crate::report::Histograms;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::rc::Rc;

#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct Params {
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    #[arg(long, default_value = "relay")]
    pub party: String,
    #[arg(long, default_value = "loadtest-idle")]
    pub room_prefix: String,
    #[arg(long, default_value_t = 10.0)]
    pub hold_s: f64,
    #[arg(long, default_value_t = 0.0)]
    pub ramp_per_s: f64,
    /// The server's RSS, and its anonymous part, before the run (set by the runner, from
    /// /proc).
    #[arg(skip)]
    pub server_rss_before: Option<u64>,
    #[arg(skip)]
    pub server_anon_before: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Partial {
    connected: u64,
    closed_during_hold: u64,
    failures: Failures,
    server_rss_held: Option<u64>,
    server_anon_held: Option<u64>,
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
            let (conns, failures) = connect_all(&t, &mine, &path_of, ramp, false).await;
            let start = c.ready();
            let closed = Rc::new(Cell::new(0u64));
            let mut connected = 0;
            for conn in conns {
                let Some(mut client) = conn.client else {
                    continue;
                };
                connected += 1;
                let closed = closed.clone();
                glommio::spawn_local(async move {
                    let mut ignore = |_: partyline_protocol::ws::Opcode, _: &[u8]| {};
                    while let Ok(true) = client.read_frames(&mut ignore).await {}
                    closed.set(closed.get() + 1);
                })
                .detach();
            }
            let end = start + floor_u64(p.hold_s * 1e9);
            // Sample the server's memory once everything has settled, mid-hold.
            let (server_rss_held, server_anon_held) = if w == 0 && part.index == 0 {
                sleep_until(start + (end - start) / 2).await;
                t.server_memory()
            } else {
                (None, None)
            };
            sleep_until(end).await;
            Partial {
                connected,
                closed_during_hold: closed.get(),
                failures,
                server_rss_held,
                server_anon_held,
            }
        }
    })
}

/// The results (no latencies: no histograms).
pub fn finish(parts: &[Partial], params: &Params) -> (serde_json::Value, Histograms) {
    let mut failures = Failures::new();
    for p in parts {
        add_failures(&mut failures, &p.failures);
    }
    let connected: u64 = parts.iter().map(|p| p.connected).sum();
    let per_connection = |held: Option<u64>, before: Option<u64>| {
        held.zip(before)
            .filter(|_| connected > 0)
            .map(|(h, b)| (h as f64 - b as f64) / connected as f64)
    };
    let held = parts.iter().find_map(|p| p.server_rss_held);
    let anon_held = parts.iter().find_map(|p| p.server_anon_held);
    let results = serde_json::json!({
        "connected": connected,
        "closed_during_hold": parts.iter().map(|p| p.closed_during_hold).sum::<u64>(),
        "connect_failures": failures,
        "server_rss_before": params.server_rss_before,
        "server_rss_held": held,
        "server_bytes_per_connection": per_connection(held, params.server_rss_before),
        "server_anon_before": params.server_anon_before,
        "server_anon_held": anon_held,
        "server_anon_bytes_per_connection": per_connection(anon_held, params.server_anon_before),
    });
    (results, Histograms::new())
}
