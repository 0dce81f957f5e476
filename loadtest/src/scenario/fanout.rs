//! `fanout` and `rooms`: connections in relay rooms sending stamped messages at a fixed
//! rate. Each message carries its sender, a sequence number and its send time; receivers
//! record every delivery's latency and check the order per sender; the sums tell how many
//! deliveries were expected, so nothing can go missing unnoticed.
//!
//! - `fanout`: one room; `senders` connections send (and read, discarding), `receivers`
//!   connections count deliveries.
//! - `rooms`: `rooms` rooms of `clients_per_room` connections that each send and count.

use super::{
    Coordinator, CpuSampler, Failures, Hist, Part, Target, add_failures, connect_all, floor_u64,
    indices, merged, run_workers, sleep_until,
};
use crate::now_ns;
use crate::report::{self, Histograms, Latency};
use futures_lite::FutureExt;
use partyline_protocol::ws::Opcode;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct FanoutParams {
    #[arg(long, default_value_t = 1000)]
    pub receivers: usize,
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Messages per second, all senders together.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup_s: f64,
    #[arg(long, default_value_t = 5.0)]
    pub duration_s: f64,
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    #[arg(long, default_value = "relay")]
    pub party: String,
    #[arg(long, default_value = "loadtest-fanout")]
    pub room: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct RoomsParams {
    #[arg(long, default_value_t = 1000)]
    pub rooms: usize,
    #[arg(long, default_value_t = 3)]
    pub clients_per_room: usize,
    /// Messages per second per client.
    #[arg(long, default_value_t = 1.0)]
    pub rate_per_client: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup_s: f64,
    #[arg(long, default_value_t = 5.0)]
    pub duration_s: f64,
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    #[arg(long, default_value = "relay")]
    pub party: String,
    #[arg(long, default_value = "loadtest-room")]
    pub room_prefix: String,
    /// Connections started per second (0: as fast as the concurrency allows).
    #[arg(long, default_value_t = 0.0)]
    pub ramp_per_s: f64,
}

/// What every connection of a run does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub total: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub payload: usize,
    pub party: String,
    pub ramp_per_s: f64,
    /// Per connection: room name index, messages per second it sends, whether it counts
    /// deliveries.
    pub room_of: RoomOf,
}

/// How connection indices map to rooms and roles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RoomOf {
    /// One room; the first `senders` send at `rate / senders` each, the rest count.
    Fanout { room: String, senders: usize, rate: f64 },
    /// `rooms` rooms, connection i in room `i % rooms`; everyone sends and counts.
    Rooms { prefix: String, rooms: usize, rate_per_client: f64 },
}

impl RoomOf {
    fn room(&self, i: usize) -> (u32, String) {
        match self {
            RoomOf::Fanout { room, .. } => (0, room.clone()),
            RoomOf::Rooms { prefix, rooms, .. } => {
                let r = i % rooms;
                (u32::try_from(r).unwrap_or(u32::MAX), format!("{prefix}-{r}"))
            }
        }
    }

    fn rate(&self, i: usize) -> f64 {
        match self {
            RoomOf::Fanout { senders, rate, .. } if i < *senders => rate / *senders as f64,
            RoomOf::Fanout { .. } => 0.0,
            RoomOf::Rooms { rate_per_client, .. } => *rate_per_client,
        }
    }

    fn counts(&self, i: usize) -> bool {
        match self {
            RoomOf::Fanout { senders, .. } => i >= *senders,
            RoomOf::Rooms { .. } => true,
        }
    }
}

impl Plan {
    pub fn fanout(p: &FanoutParams) -> Plan {
        Plan {
            total: p.receivers + p.senders,
            warmup_s: p.warmup_s,
            duration_s: p.duration_s,
            payload: p.payload,
            party: p.party.clone(),
            ramp_per_s: 0.0,
            room_of: RoomOf::Fanout { room: p.room.clone(), senders: p.senders, rate: p.rate },
        }
    }

    pub fn rooms(p: &RoomsParams) -> Plan {
        Plan {
            total: p.rooms * p.clients_per_room,
            warmup_s: p.warmup_s,
            duration_s: p.duration_s,
            payload: p.payload,
            party: p.party.clone(),
            ramp_per_s: p.ramp_per_s,
            room_of: RoomOf::Rooms {
                prefix: p.room_prefix.clone(),
                rooms: p.rooms,
                rate_per_client: p.rate_per_client,
            },
        }
    }
}

/// Bytes of the stamp at the start of each payload: sender, sequence, send time.
const STAMP: usize = 4 + 8 + 8;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Partial {
    latency: Hist,
    deliveries: u64,
    measured: u64,
    /// Deliveries received during the measured window, whenever sent: the server's
    /// throughput even when it is overloaded and latencies exceed the window.
    in_window: u64,
    reordered: u64,
    closed_by_server: u64,
    /// Messages sent, per sender.
    sent: BTreeMap<u32, u64>,
    /// Each sender's room, and whether the sender also counts deliveries.
    sender_room: BTreeMap<u32, (u32, bool)>,
    /// Connected connections that count deliveries, per room.
    counting_members: BTreeMap<u32, u64>,
    failures: Failures,
    loadtest_cpu_s: f64,
    server_cpu_s: Option<f64>,
}

#[derive(Default)]
struct Stats {
    deliveries: u64,
    measured: u64,
    in_window: u64,
    reordered: u64,
    closed_by_server: u64,
    sent: BTreeMap<u32, u64>,
}

pub fn run(target: &Target, plan: &Plan, part: Part, coordinator: &Coordinator) -> Vec<Partial> {
    let (t, p, c) = (target.clone(), plan.clone(), coordinator.clone());
    run_workers(target.workers, move |w| {
        let (t, p, c) = (t.clone(), p.clone(), c.clone());
        async move {
            let mine = indices(p.total, part, t.workers, w);
            let path_of = |i: usize| format!("/parties/{}/{}", p.party, p.room_of.room(i).1);
            let ramp = p.ramp_per_s / (t.workers * part.count) as f64;
            let (conns, failures) = connect_all(&t, &mine, &path_of, ramp, false).await;
            let start = c.ready();
            let measure_from = start + floor_u64(p.warmup_s * 1e9);
            let measure_to = measure_from + floor_u64(p.duration_s * 1e9);
            let stop = measure_to + 1_000_000_000;

            let latency = Rc::new(RefCell::new(report::histogram()));
            let stats = Rc::new(RefCell::new(Stats::default()));
            let mut partial = Partial { failures, ..Partial::default() };
            for conn in conns {
                let Some(client) = conn.client else { continue };
                let i = conn.index;
                let id = u32::try_from(i).unwrap_or(u32::MAX);
                let (room, _) = p.room_of.room(i);
                let counts = p.room_of.counts(i);
                let rate = p.room_of.rate(i);
                if counts {
                    *partial.counting_members.entry(room).or_insert(0) += 1;
                }
                if rate > 0.0 {
                    partial.sender_room.insert(id, (room, counts));
                }
                let (stats, latency, payload) =
                    (stats.clone(), latency.clone(), p.payload.max(STAMP));
                glommio::spawn_local(connection(
                    client,
                    id,
                    rate,
                    counts,
                    payload,
                    [start, measure_from, measure_to],
                    stats,
                    latency,
                ))
                .detach();
            }
            // Worker 0 samples CPU over the measured window.
            if w == 0 {
                sleep_until(measure_from).await;
                let sampler =
                    CpuSampler::start(if part.index == 0 { &t.server_pids[..] } else { &[] });
                sleep_until(measure_to).await;
                let (me, server) = sampler.stop();
                partial.loadtest_cpu_s = me;
                partial.server_cpu_s = server;
            }
            sleep_until(stop).await;
            let s = std::mem::take(&mut *stats.borrow_mut());
            partial.latency = Hist::of(&latency.borrow());
            partial.deliveries = s.deliveries;
            partial.measured = s.measured;
            partial.in_window = s.in_window;
            partial.reordered = s.reordered;
            partial.closed_by_server = s.closed_by_server;
            partial.sent = s.sent;
            partial
        }
    })
}

/// One connection: sends at `rate` until the window ends, and reads all along (counting
/// deliveries if `counts`, discarding otherwise).
#[allow(clippy::too_many_arguments)]
async fn connection(
    mut client: crate::client::Client,
    id: u32,
    rate: f64,
    counts: bool,
    payload: usize,
    [start, measure_from, measure_to]: [u64; 3],
    stats: Rc<RefCell<Stats>>,
    latency: Rc<RefCell<hdrhistogram::Histogram<u64>>>,
) {
    let mut last_seq: HashMap<u32, u64> = HashMap::new();
    let mut seq: u64 = 0;
    // One payload buffer, re-stamped for each message; allocated only by senders.
    let mut message: Vec<u8> = Vec::new();
    sleep_until(start).await;
    loop {
        let now = now_ns();
        if rate > 0.0 && now < measure_to {
            let due = floor_u64(now.saturating_sub(start) as f64 / 1e9 * rate);
            if due > seq {
                message.resize(payload, 0);
                message[..4].copy_from_slice(&id.to_le_bytes());
                let stamp = |m: &mut [u8], i: u64| {
                    m[4..12].copy_from_slice(&(seq + i).to_le_bytes());
                    m[12..20].copy_from_slice(&now_ns().to_le_bytes());
                };
                if client.send_batch(Opcode::Binary, &mut message, due - seq, stamp).await.is_err()
                {
                    stats.borrow_mut().closed_by_server += 1;
                    return;
                }
                *stats.borrow_mut().sent.entry(id).or_insert(0) += due - seq;
                seq = due;
            }
        }
        let mut on_frame = |_: Opcode, m: &[u8]| {
            if !counts || m.len() < STAMP {
                return;
            }
            let now = now_ns();
            let sender = u32::from_le_bytes([m[0], m[1], m[2], m[3]]);
            let s = u64::from_le_bytes(m[4..12].try_into().unwrap_or_default());
            let sent = u64::from_le_bytes(m[12..20].try_into().unwrap_or_default());
            let mut st = stats.borrow_mut();
            st.deliveries += 1;
            if (measure_from..measure_to).contains(&now) {
                st.in_window += 1;
            }
            let last = last_seq.entry(sender).or_insert(u64::MAX);
            if *last != u64::MAX && s <= *last {
                st.reordered += 1;
            }
            *last = s;
            if (measure_from..measure_to).contains(&sent) {
                st.measured += 1;
                let _ = latency.borrow_mut().record((now.saturating_sub(sent) / 1000).max(1));
            }
        };
        // Read until the next send tick (1 ms) when sending, else until data comes. A read
        // pending at the tick is dropped before it consumed anything.
        let read = if rate > 0.0 && now_ns() < measure_to {
            let tick = async {
                glommio::timer::sleep(Duration::from_millis(1)).await;
                Ok(true)
            };
            client.read_frames(&mut on_frame).or(tick).await
        } else {
            client.read_frames(&mut on_frame).await
        };
        if !matches!(read, Ok(true)) {
            stats.borrow_mut().closed_by_server += 1;
            return;
        }
    }
}

/// The results, and the histogram of the measured deliveries' latencies (`latency`).
pub fn finish(parts: &[Partial], duration_s: f64) -> (serde_json::Value, Histograms) {
    let latency = merged(parts.iter().map(|p| &p.latency));
    let mut failures = Failures::new();
    let mut sent: BTreeMap<u32, u64> = BTreeMap::new();
    let mut sender_room: BTreeMap<u32, (u32, bool)> = BTreeMap::new();
    let mut counting: BTreeMap<u32, u64> = BTreeMap::new();
    for p in parts {
        add_failures(&mut failures, &p.failures);
        for (s, n) in &p.sent {
            *sent.entry(*s).or_insert(0) += n;
        }
        sender_room.extend(&p.sender_room);
        for (r, n) in &p.counting_members {
            *counting.entry(*r).or_insert(0) += n;
        }
    }
    // Each message should reach every counting member of its room but its sender (relay
    // skips the sender, which may itself be a counting member).
    let expected: u64 = sent
        .iter()
        .map(|(sender, n)| {
            let (room, sender_counts) = sender_room.get(sender).copied().unwrap_or((0, false));
            n * counting.get(&room).copied().unwrap_or(0).saturating_sub(u64::from(sender_counts))
        })
        .sum();
    let deliveries: u64 = parts.iter().map(|p| p.deliveries).sum();
    let measured: u64 = parts.iter().map(|p| p.measured).sum();
    let in_window: u64 = parts.iter().map(|p| p.in_window).sum();
    let loadtest_cpu_s: f64 = parts.iter().map(|p| p.loadtest_cpu_s).sum();
    let server_cpu_s = parts.iter().find_map(|p| p.server_cpu_s);
    let results = serde_json::json!({
        "messages_sent": sent.values().sum::<u64>(),
        "deliveries": deliveries,
        "expected_deliveries": expected,
        // Not delivered one second after the last send: lost, or still queued in an
        // overloaded server (its latency then shows it). 0 unless the server closed sockets.
        "undelivered_at_stop": expected.saturating_sub(deliveries),
        "reordered": parts.iter().map(|p| p.reordered).sum::<u64>(),
        "closed_by_server": parts.iter().map(|p| p.closed_by_server).sum::<u64>(),
        "measured_deliveries": measured,
        // Deliveries of messages sent in the window (their latencies are the histogram).
        "deliveries_per_s": measured as f64 / duration_s,
        // Deliveries received in the window, whenever sent: throughput under overload.
        "received_in_window_per_s": in_window as f64 / duration_s,
        "received_in_window_per_server_cpu_s": report::per_cpu_second(in_window, server_cpu_s),
        "latency": Latency::of(&latency),
        "cpu": { "loadtest_cpu_s": loadtest_cpu_s, "server_cpu_s": server_cpu_s },
        "deliveries_per_server_cpu_s": report::per_cpu_second(measured, server_cpu_s),
        "connect_failures": failures,
    });
    (results, Histograms::from([("latency".to_owned(), Hist::of(&latency))]))
}
