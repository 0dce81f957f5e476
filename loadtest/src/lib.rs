//! partyline-loadtest: a load tester for PartyKit-style servers that speaks only the wire
//! protocol (HTTP/1.1 upgrade and WebSocket frames, through `partyline-protocol`), so it can
//! drive partyline, `partykit dev`, or any server with the same URL conventions.
//!
//! Workers are glommio executors, one per thread; each holds its share of the connections.
//! Every latency goes into an hdrhistogram per worker; the histograms are merged at the
//! end. Reports are printed for people and written as JSON for machines, and as one
//! self-contained HTML page of charts (`html`, `plot`) for people.

pub mod client;
pub mod html;
pub mod plot;
pub mod progress;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sys;

/// Nanoseconds on the machine's monotonic clock (CLOCK_MONOTONIC): the clock every worker
/// stamps messages with. It is the same in every process of the machine, so a message sent
/// by one worker process and received by another gets a meaningful latency.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}
