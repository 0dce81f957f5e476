//! `yjs`: typing into one collaborative document. Every connection joins one room of a
//! y-websocket party (`yjs`); one sender types, `rate` one-character updates a second (the
//! size of a keystroke), each a real Yjs update (v1 encoding, appended to the `Y.Text`
//! named `t` after the sender's previous character), sent as a sync update message. The
//! server stores each update durably, applies it and sends it to every other connection.
//! A receiver times each update from send to arrival; the report has that latency, the
//! updates per second applied, the deliveries they made, and the server's CPU. A server
//! may merge several updates into one message: the receiver reads which keystrokes a
//! message carries (the sender's clock in the update's state vector), so each is timed
//! and counted, and the report also gives the messages they came in.
//!
//! The sender and the timing receiver are the first two connections of the first worker
//! of the first process (one clock); with `--workers 2` or more that worker holds only them.

use super::{
    Coordinator, CpuSampler, Failures, Hist, Part, Target, add_failures, connect_all, floor_u64,
    merged, run_workers, sleep_until,
};
use crate::now_ns;
use crate::report::{self, Histograms, Latency};
use partyline_protocol::ws::Opcode;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct Params {
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    #[arg(long, default_value = "yjs")]
    pub party: String,
    #[arg(long, default_value = "loadtest-yjs")]
    pub room: String,
    /// Updates (keystrokes) per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup_s: f64,
    #[arg(long, default_value_t = 5.0)]
    pub duration_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Partial {
    latency: Hist,
    sent: u64,
    received: u64,
    /// The messages that carried them.
    #[serde(default)]
    messages: u64,
    failures: Failures,
    errors: u64,
    server_cpu_s: Option<f64>,
    measured_s: f64,
}

/// lib0's variable-length unsigned integer.
fn var_uint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(u8::try_from(n & 0x7f).unwrap_or(0) | 0x80);
        n >>= 7;
    }
    out.push(u8::try_from(n).unwrap_or(0));
}

fn var_string(out: &mut Vec<u8>, s: &str) {
    var_uint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The sync update message for client `client`'s character number `clock`: the first one
/// names the root text `t` as its parent; each later one follows the previous (its left
/// origin), as an editor typing at the end sends.
pub fn keystroke(client: u64, clock: u64) -> Vec<u8> {
    let mut update = Vec::with_capacity(24);
    var_uint(&mut update, 1); // one client
    var_uint(&mut update, 1); // one struct
    var_uint(&mut update, client);
    var_uint(&mut update, clock);
    if clock == 0 {
        update.push(0x04); // a string item with no origins: the parent follows
        var_uint(&mut update, 1); // parent named by its root key
        var_string(&mut update, "t");
    } else {
        update.push(0x84); // a string item after its left origin
        var_uint(&mut update, client);
        var_uint(&mut update, clock - 1);
    }
    var_string(&mut update, "x");
    var_uint(&mut update, 0); // no deletions
    let mut message = vec![0, 2]; // sync, update
    var_uint(&mut message, update.len() as u64);
    message.extend(update);
    message
}

/// How many of `client`'s keystrokes a sync update message has brought so far: the end of
/// the last clock range `client` inserted in it (0 if it has none).
pub fn keystrokes_in(message: &[u8], client: u64) -> u64 {
    use yrs::updates::decoder::Decode;
    let Ok(yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(update))) =
        yrs::sync::Message::decode_v1(message)
    else {
        return 0;
    };
    let Ok(update) = yrs::Update::decode_v1(&update) else { return 0 };
    let insertions = update.insertions(true);
    let end = insertions.get(&client).and_then(|r| r.iter().map(|r| r.end).max());
    end.map_or(0, u64::from)
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
            let mine = super::wake::owned(p.connections, part, t.workers, w);
            let path = format!("/parties/{}/{}", p.party, p.room);
            let (conns, failures) = connect_all(&t, &mine, &|_| path.clone(), 0.0, false).await;
            let start = c.ready();
            sleep_until(start).await;
            let mut clients: Vec<_> = conns.into_iter().filter_map(|c| c.client).collect();
            let timing = part.index == 0 && w == 0 && clients.len() >= 2;
            let pair = timing.then(|| {
                let receiver = clients.remove(1);
                (clients.remove(0), receiver)
            });
            let run_ns = floor_u64((p.warmup_s + p.duration_s) * 1e9);
            let end = start + run_ns;
            for mut client in clients {
                glommio::spawn_local(async move {
                    let mut ignore = |_: Opcode, _: &[u8]| {};
                    while let Ok(true) = client.read_frames(&mut ignore).await {}
                })
                .detach();
            }
            let mut latency = report::histogram();
            let (mut sent, mut received, mut messages, mut errors) = (0u64, 0u64, 0u64, 0u64);
            let cpu = CpuSampler::start(&t.server_pids);
            let measure_from = start + floor_u64(p.warmup_s * 1e9);
            if let Some((mut sender, mut receiver)) = pair {
                let times: Rc<RefCell<VecDeque<u64>>> = Rc::default();
                let send_times = times.clone();
                let interval_ns = floor_u64(1e9 / p.rate.max(0.001));
                let client_id = 0x5eed_0000 + u64::from(std::process::id() & 0xffff);
                let sending = glommio::spawn_local(async move {
                    let mut n = 0u64;
                    loop {
                        let due = start + n * interval_ns;
                        if due >= end {
                            return (n, 0u64);
                        }
                        sleep_until(due).await;
                        send_times.borrow_mut().push_back(now_ns());
                        if sender.send(Opcode::Binary, &keystroke(client_id, n)).await.is_err() {
                            return (n, 1);
                        }
                        n += 1;
                    }
                });
                // Updates arrive in the order sent (one sender, one room), one or several
                // to a message: each keystroke up to the message's clock has arrived.
                let deadline = end + 2_000_000_000;
                let mut arrived = 0u64;
                while now_ns() < deadline {
                    let mut on_frame = |op: Opcode, data: &[u8]| {
                        if op != Opcode::Binary || !data.starts_with(&[0, 2]) {
                            return;
                        }
                        let upto = keystrokes_in(data, client_id);
                        if upto > arrived {
                            messages += 1;
                        }
                        while arrived < upto {
                            arrived += 1;
                            let Some(at) = times.borrow_mut().pop_front() else { break };
                            received += 1;
                            if at >= measure_from {
                                let _ = latency.record(((now_ns() - at) / 1000).max(1));
                            }
                        }
                    };
                    let timer = sleep_until(deadline);
                    let read =
                        futures_lite::FutureExt::or(receiver.read_frames(&mut on_frame), async {
                            timer.await;
                            Ok(false)
                        })
                        .await;
                    if !matches!(read, Ok(true)) {
                        break;
                    }
                    if now_ns() >= end && times.borrow().is_empty() {
                        break;
                    }
                }
                let (n, e) = sending.await;
                sent = n;
                errors += e;
            } else {
                sleep_until(end + 2_000_000_000).await;
            }
            let server_cpu_s = if timing { cpu.stop().1 } else { None };
            Partial {
                latency: Hist::of(&latency),
                sent,
                received,
                messages,
                failures,
                errors,
                server_cpu_s,
                measured_s: p.duration_s,
            }
        }
    })
}

/// The results, and the update latency's histogram (`latency`).
pub fn finish(parts: &[Partial], params: &Params) -> (serde_json::Value, Histograms) {
    let latency = merged(parts.iter().map(|p| &p.latency));
    let mut failures = Failures::new();
    for p in parts {
        add_failures(&mut failures, &p.failures);
    }
    let sent: u64 = parts.iter().map(|p| p.sent).sum();
    let received: u64 = parts.iter().map(|p| p.received).sum();
    let messages: u64 = parts.iter().map(|p| p.messages).sum();
    let server_cpu_s = parts.iter().find_map(|p| p.server_cpu_s);
    let run_s = params.warmup_s + params.duration_s;
    let receivers = params.connections.saturating_sub(1) as f64;
    let updates_per_s = received as f64 / run_s;
    let results = serde_json::json!({
        "updates_sent": sent,
        "updates_received": received,
        "update_messages_received": messages,
        "updates_per_s": updates_per_s,
        "deliveries_per_s": updates_per_s * receivers,
        "latency": Latency::of(&latency),
        "server_cpu_s": server_cpu_s,
        "updates_per_server_cpu_s": server_cpu_s.filter(|s| *s > 0.0).map(|s| received as f64 / s),
        "connect_failures": failures,
        "errors": parts.iter().map(|p| p.errors).sum::<u64>(),
        "measured_s": parts.first().map_or(0.0, |p| p.measured_s),
    });
    (results, Histograms::from([("latency".to_owned(), Hist::of(&latency))]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystrokes_are_what_yjs_encodes() {
        // The first character: parent by root key "t"; then one after the other.
        assert_eq!(keystroke(7, 0), [0, 2, 11, 1, 1, 7, 0, 4, 1, 1, b't', 1, b'x', 0]);
        assert_eq!(keystroke(7, 1), [0, 2, 10, 1, 1, 7, 1, 0x84, 7, 0, 1, b'x', 0]);
    }

    #[test]
    fn a_merged_update_counts_every_keystroke_it_carries() {
        use yrs::updates::decoder::Decode;
        use yrs::updates::encoder::Encode;
        let update = |n: u64| {
            let m = keystroke(7, n);
            match yrs::sync::Message::decode_v1(&m) {
                Ok(yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(u))) => u,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(keystrokes_in(&keystroke(7, 0), 7), 1);
        assert_eq!(keystrokes_in(&keystroke(7, 4), 7), 5);
        assert_eq!(keystrokes_in(&keystroke(7, 4), 8), 0, "another client's");
        let merged = yrs::Update::merge_updates(
            (2..6).map(|n| yrs::Update::decode_v1(&update(n)).expect("decodes")),
        );
        let message = yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(merged.encode_v1()))
            .encode_v1();
        assert_eq!(keystrokes_in(&message, 7), 6, "keystrokes 2 to 5 merged: up to clock 6");
        assert_eq!(keystrokes_in(&[0, 2, 1, 0xff], 7), 0, "garbage counts nothing");
    }
}
