//! `wake`: how long a sleeping room takes to wake. Every connection joins one room of a
//! hibernating party (`relay`); then, `rounds` times, all stay silent for `quiet_ms` (set
//! it well above the server's `hibernate_after_ms`, so the room is asleep) and one sender
//! sends a message: the time until a receiver gets it is the room's wake (read its archive,
//! `on_start`, rebuild the sender) plus one delivery. Also the server's CPU seconds per
//! round (one sleep and one wake of a room of `connections` connections).
//!
//! The sender and the receiver are the first two connections of the first worker of the
//! first process, so one clock times both; with `--workers 2` or more that worker holds
//! only them (the others drain the broadcast).

use super::{
    Coordinator, CpuSampler, Failures, Hist, Part, Target, add_failures, connect_all, indices,
    merged, run_workers, sleep_until,
};
use crate::now_ns;
use crate::report::{self, Histograms, Latency};
use partyline_protocol::ws::Opcode;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct Params {
    #[arg(long, default_value_t = 1_000)]
    pub connections: usize,
    #[arg(long, default_value = "relay")]
    pub party: String,
    #[arg(long, default_value = "loadtest-wake")]
    pub room: String,
    /// Sleep/wake rounds (one timed message each).
    #[arg(long, default_value_t = 50)]
    pub rounds: usize,
    /// Silence before each message, in milliseconds (above the server's
    /// `hibernate_after_ms` plus its 200 ms sweep).
    #[arg(long, default_value_t = 600)]
    pub quiet_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Partial {
    /// Empty except in the worker that times.
    wake: Hist,
    failures: Failures,
    errors: u64,
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
            let mine = owned(p.connections, part, t.workers, w);
            let path = format!("/parties/{}/{}", p.party, p.room);
            let (conns, failures) = connect_all(&t, &mine, &|_| path.clone(), 0.0, false).await;
            let start = c.ready();
            sleep_until(start).await;
            let mut clients: Vec<_> = conns.into_iter().filter_map(|c| c.client).collect();
            let timing = part.index == 0 && w == 0 && clients.len() >= 2;
            let (mut sender, mut receiver) = if timing {
                let receiver = clients.remove(1);
                (Some(clients.remove(0)), Some(receiver))
            } else {
                (None, None)
            };
            // Everyone else only drains what the room sends.
            for mut client in clients {
                glommio::spawn_local(async move {
                    let mut ignore = |_: Opcode, _: &[u8]| {};
                    while let Ok(true) = client.read_frames(&mut ignore).await {}
                })
                .detach();
            }
            let mut wake = report::histogram();
            let mut errors = 0u64;
            let cpu = CpuSampler::start(&t.server_pids);
            if let (Some(sender), Some(receiver)) = (sender.as_mut(), receiver.as_mut()) {
                for round in 0..p.rounds as u64 {
                    glommio::timer::sleep(Duration::from_millis(p.quiet_ms)).await;
                    let sent = now_ns();
                    if sender.send(Opcode::Binary, &round.to_le_bytes()).await.is_err() {
                        errors += 1;
                        break;
                    }
                    let mut got = false;
                    while !got {
                        let mut on_frame = |op: Opcode, data: &[u8]| {
                            got |= op == Opcode::Binary && data == round.to_le_bytes();
                        };
                        if !matches!(receiver.read_frames(&mut on_frame).await, Ok(true)) {
                            errors += 1;
                            break;
                        }
                    }
                    if !got {
                        break;
                    }
                    let _ = wake.record(((now_ns() - sent) / 1000).max(1));
                }
            } else {
                // Hold the connections as long as the timing worker runs.
                let rounds = u32::try_from(p.rounds).unwrap_or(u32::MAX);
                glommio::timer::sleep(Duration::from_millis(p.quiet_ms) * rounds).await;
                glommio::timer::sleep(Duration::from_secs(2)).await;
            }
            let server_cpu_s = if timing { cpu.stop().1 } else { None };
            Partial { wake: Hist::of(&wake), failures, errors, server_cpu_s }
        }
    })
}

/// The connections worker `w` owns: with two workers or more, the first worker holds
/// only the sender and the receiver, so draining the broadcast to every other connection
/// happens elsewhere and does not delay the timed read.
pub(super) fn owned(total: usize, part: Part, workers: usize, w: usize) -> Vec<usize> {
    if workers < 2 || part.count > 1 {
        return indices(total, part, workers, w);
    }
    match w {
        0 => (0..total.min(2)).collect(),
        _ => (2..total).filter(|i| i % (workers - 1) == w - 1).collect(),
    }
}

/// The results, and the wakes' histogram (`wake_to_first_delivery`).
pub fn finish(parts: &[Partial]) -> (serde_json::Value, Histograms) {
    let wake = merged(parts.iter().map(|p| &p.wake));
    let mut failures = Failures::new();
    for p in parts {
        add_failures(&mut failures, &p.failures);
    }
    let server_cpu_s = parts.iter().find_map(|p| p.server_cpu_s);
    let rounds = wake.len();
    let results = serde_json::json!({
        "rounds": rounds,
        "wake_to_first_delivery": Latency::of(&wake),
        "server_cpu_s": server_cpu_s,
        "server_cpu_ms_per_round": server_cpu_s.filter(|_| rounds > 0).map(|s| s * 1e3 / rounds as f64),
        "connect_failures": failures,
        "errors": parts.iter().map(|p| p.errors).sum::<u64>(),
    });
    (results, Histograms::from([("wake_to_first_delivery".to_owned(), Hist::of(&wake))]))
}
