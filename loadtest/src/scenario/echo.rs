//! `echo`: clients each do sequential round trips through the `echo` party; every round
//! trip's time goes into the histogram. `--pause-ms` waits before each round trip: with a
//! pause longer than the server's idle-parking delay, it measures the first message of a
//! socket that went quiet (partyline: resuming a parked socket).

use super::{
    Coordinator, Failures, Hist, Part, Target, add_failures, connect_all, indices, merged,
    run_workers, spread_path,
};
use crate::now_ns;
use crate::report::{self, Histograms, Latency};
use partyline_protocol::ws::Opcode;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct Params {
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    #[arg(long, default_value_t = 10_000)]
    pub round_trips: usize,
    #[arg(long, default_value_t = 32)]
    pub payload: usize,
    #[arg(long, default_value = "echo")]
    pub party: String,
    #[arg(long, default_value = "loadtest-echo")]
    pub room: String,
    /// Silence before each round trip, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub pause_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Partial {
    rtt: Hist,
    failures: Failures,
    errors: u64,
    elapsed_s: f64,
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
            let mine = indices(p.clients, part, t.workers, w);
            let path_of = |i: usize| spread_path(&p.party, &p.room, p.clients, i);
            let (conns, failures) = connect_all(&t, &mine, &path_of, 0.0, false).await;
            let start = c.ready();
            super::sleep_until(start).await;
            let rtt = Rc::new(RefCell::new(report::histogram()));
            let errors = Rc::new(RefCell::new(0u64));
            let tasks: Vec<_> = conns
                .into_iter()
                .filter_map(|c| c.client)
                .map(|mut client| {
                    let (rtt, errors, p) = (rtt.clone(), errors.clone(), p.clone());
                    glommio::spawn_local(async move {
                        let mut payload = vec![0u8; p.payload.max(8)];
                        for _ in 0..p.round_trips {
                            if p.pause_ms > 0 {
                                glommio::timer::sleep(Duration::from_millis(p.pause_ms)).await;
                            }
                            let sent = now_ns();
                            payload[..8].copy_from_slice(&sent.to_le_bytes());
                            if client.send(Opcode::Binary, &payload).await.is_err() {
                                *errors.borrow_mut() += 1;
                                return;
                            }
                            let mut got = false;
                            while !got {
                                let mut on_frame =
                                    |op: Opcode, _: &[u8]| got |= op == Opcode::Binary;
                                if !matches!(client.read_frames(&mut on_frame).await, Ok(true)) {
                                    *errors.borrow_mut() += 1;
                                    return;
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
            let elapsed_s = now_ns().saturating_sub(start) as f64 / 1e9;
            let rtt = Hist::of(&rtt.borrow());
            let errors = *errors.borrow();
            Partial { rtt, failures, errors, elapsed_s }
        }
    })
}

/// The results, and the round trips' histogram (`rtt`).
pub fn finish(parts: &[Partial]) -> (serde_json::Value, Histograms) {
    let rtt = merged(parts.iter().map(|p| &p.rtt));
    let mut failures = Failures::new();
    for p in parts {
        add_failures(&mut failures, &p.failures);
    }
    let elapsed_s = parts.iter().map(|p| p.elapsed_s).fold(0.0, f64::max);
    let results = serde_json::json!({
        "round_trips": rtt.len(),
        "round_trips_per_s": rtt.len() as f64 / elapsed_s.max(1e-9),
        "rtt": Latency::of(&rtt),
        "connect_failures": failures,
        "errors": parts.iter().map(|p| p.errors).sum::<u64>(),
        "elapsed_s": elapsed_s,
    });
    (results, Histograms::from([("rtt".to_owned(), Hist::of(&rtt))]))
}
