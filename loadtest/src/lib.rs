//! partyline-loadtest: a load tester for PartyKit-style servers that speaks only the wire
//! protocol (HTTP/1.1 upgrade and WebSocket frames, through `partyline-protocol`), so it can
//! drive partyline, `partykit dev`, or any server with the same URL conventions.
//!
//! Workers are glommio executors, one per thread; each holds its share of the connections.
//! Every latency goes into an hdrhistogram per worker; the histograms are merged at the
//! end. Reports are printed for people and written as JSON for machines.

pub mod client;
pub mod report;
pub mod scenario;
pub mod sys;

/// Nanoseconds since the process-wide start instant: the clock every worker stamps
/// messages with, so send and receive times compare across threads.
pub fn now_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
