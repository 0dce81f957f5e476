//! Progress while a run goes on: process-wide counters that workers bump (once per
//! connection attempt, once per read and once per closed client, not per message), and a
//! thread that prints them to stderr every second, so a long run shows it is alive and how
//! fast it goes, and keeps them as a [`Timeline`] for the report's charts.
//!
//! A timeline's figures count from the moment its reporter started (the counters are
//! process-wide, so they are read as differences). Several processes' timelines merge by
//! second ([`Timeline::merge`]).

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

static CONNECTED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static MESSAGES: AtomicU64 = AtomicU64::new(0);
/// Clients upgraded and not yet dropped.
static OPEN: AtomicU64 = AtomicU64::new(0);

/// Most samples a timeline keeps: one a second for a day. Later samples are dropped (the
/// run's end still replaces the last one); at about 75 bytes of JSON each, a full timeline
/// is about 6.5 MB in the report.
pub const TIMELINE_SAMPLES_MAX: usize = 86_400;

/// How late after its whole second a sample may be taken and still count for that second
/// when timelines merge (the sampling thread wakes within a millisecond or so; a loaded
/// machine may take longer).
const SAMPLE_LATE_MAX_S: f64 = 0.25;

/// A connection attempt ended.
pub fn connection(ok: bool) {
    if ok { &CONNECTED } else { &FAILED }.fetch_add(1, Ordering::Relaxed);
}

/// `n` messages (deliveries or round trips) were received.
pub fn messages(n: u64) {
    if n > 0 {
        MESSAGES.fetch_add(n, Ordering::Relaxed);
    }
}

/// A client finished its upgrade (`true`) or was dropped (`false`).
pub fn open(opened: bool) {
    if opened {
        OPEN.fetch_add(1, Ordering::Relaxed);
    } else {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The counters at one moment of a run, counted from the start of its timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the timeline started.
    pub elapsed_s: f64,
    /// Connection attempts that succeeded, so far.
    pub connected: u64,
    /// Connection attempts that failed, so far.
    pub failed: u64,
    /// Messages received (deliveries or round trips), so far.
    pub messages: u64,
    /// Connections open at that moment.
    pub open: u64,
}

/// One sample a second, and one at the end of the run; at most [`TIMELINE_SAMPLES_MAX`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timeline(pub Vec<Sample>);

impl Timeline {
    /// Adds `s` unless the timeline is full.
    fn push(&mut self, s: Sample) {
        if self.0.len() < TIMELINE_SAMPLES_MAX {
            self.0.push(s);
        }
    }

    /// The second a sample counts for when timelines merge: whole-second samples (taken a
    /// little after their second) count for that second, the end sample for the next.
    fn second_of(elapsed_s: f64) -> u64 {
        crate::scenario::floor_u64((elapsed_s - SAMPLE_LATE_MAX_S).ceil())
    }

    /// Merges the timelines of the processes of one run (started together) by second: each
    /// second's figures are the sums of every process's latest sample of that second or
    /// before (counters only grow, so a process that sampled a second late or ended early
    /// still counts what it had). A merged sample's time is the latest of its second.
    pub fn merge(parts: &[Timeline]) -> Timeline {
        let mut seconds: Vec<u64> = parts
            .iter()
            .flat_map(|t| t.0.iter().map(|s| Timeline::second_of(s.elapsed_s)))
            .collect();
        seconds.sort_unstable();
        seconds.dedup();
        let mut merged = Timeline::default();
        for &second in &seconds {
            let mut sum = Sample::default();
            for part in parts {
                let Some(latest) =
                    part.0.iter().rev().find(|s| Timeline::second_of(s.elapsed_s) <= second)
                else {
                    continue;
                };
                if Timeline::second_of(latest.elapsed_s) == second {
                    sum.elapsed_s = sum.elapsed_s.max(latest.elapsed_s);
                }
                sum.connected += latest.connected;
                sum.failed += latest.failed;
                sum.messages += latest.messages;
                sum.open += latest.open;
            }
            merged.push(sum);
        }
        merged
    }

    /// A counter's change per second between consecutive samples (from 0 at the start), as
    /// steps: `(start, rate), (end, rate)` for each interval. At most `points_max` intervals:
    /// when there are more samples, rates are taken over several seconds (the counters are
    /// cumulative, so nothing is lost).
    pub fn rate(&self, counter: fn(&Sample) -> u64, points_max: usize) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let mut last = Sample::default();
        for s in self.thinned(points_max) {
            let dt = s.elapsed_s - last.elapsed_s;
            if dt > 1e-3 {
                let rate = counter(&s).saturating_sub(counter(&last)) as f64 / dt;
                out.extend([(last.elapsed_s, rate), (s.elapsed_s, rate)]);
                last = s;
            }
        }
        out
    }

    /// `(elapsed s, value)` of a gauge, from 0 at the start; at most `points_max` samples.
    pub fn gauge(&self, value: fn(&Sample) -> u64, points_max: usize) -> Vec<(f64, f64)> {
        let start = (!self.0.is_empty()).then_some((0.0, 0.0));
        start
            .into_iter()
            .chain(self.thinned(points_max).map(|s| (s.elapsed_s, value(&s) as f64)))
            .collect()
    }

    /// Every `k`-th sample, so that at most `points_max` remain, and always the last.
    fn thinned(&self, points_max: usize) -> impl Iterator<Item = Sample> + '_ {
        let step = self.0.len().div_ceil(points_max.max(1)).max(1);
        let last = self.0.len().saturating_sub(1);
        self.0
            .iter()
            .enumerate()
            .filter(move |(i, _)| (i + 1) % step == 0 || *i == last)
            .map(|(_, s)| *s)
    }
}

/// The counters, as read at one moment.
#[derive(Debug, Clone, Copy)]
struct Counters {
    connected: u64,
    failed: u64,
    messages: u64,
    open: u64,
}

impl Counters {
    fn now() -> Counters {
        Counters {
            connected: CONNECTED.load(Ordering::Relaxed),
            failed: FAILED.load(Ordering::Relaxed),
            messages: MESSAGES.load(Ordering::Relaxed),
            open: OPEN.load(Ordering::Relaxed),
        }
    }

    /// A sample of what changed since `base`.
    fn since(self, base: Counters, elapsed_s: f64) -> Sample {
        Sample {
            // Milliseconds are plenty for a once-a-second sample.
            elapsed_s: (elapsed_s * 1000.0).round() / 1000.0,
            connected: self.connected.saturating_sub(base.connected),
            failed: self.failed.saturating_sub(base.failed),
            messages: self.messages.saturating_sub(base.messages),
            // Other runs in this process (tests) may hold connections opened before.
            open: self.open.saturating_sub(base.open),
        }
    }
}

/// Prints progress every second, and keeps it as a timeline, until the returned reporter
/// is finished or dropped.
pub fn report(label: String) -> Reporter {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let start = Instant::now();
    let base = Counters::now();
    let thread = std::thread::spawn(move || {
        let mut timeline = Timeline::default();
        let mut last = base.messages;
        for second in 1u64.. {
            let due = start + Duration::from_secs(second);
            // Park in short slices, so a stop is seen within 100 ms.
            loop {
                if flag.load(Ordering::Relaxed) {
                    return timeline;
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                std::thread::park_timeout((due - now).min(Duration::from_millis(100)));
            }
            let elapsed_s = start.elapsed().as_secs_f64();
            let now = Counters::now();
            timeline.push(now.since(base, elapsed_s));
            eprintln!(
                "[{label}] {elapsed_s:>5.1} s  connected {}  failed {}  messages {} ({}/s)",
                now.connected,
                now.failed,
                now.messages,
                now.messages.saturating_sub(last)
            );
            last = now.messages;
        }
        timeline
    });
    Reporter { stop, start, base, thread: Some(thread) }
}

/// Stops the progress thread when finished or dropped.
#[derive(Debug)]
pub struct Reporter {
    stop: Arc<AtomicBool>,
    start: Instant,
    base: Counters,
    thread: Option<std::thread::JoinHandle<Timeline>>,
}

impl Reporter {
    /// Stops the thread; its timeline, with a last sample taken now.
    pub fn finish(mut self) -> Timeline {
        let mut timeline = self.stop_thread();
        if timeline.0.len() >= TIMELINE_SAMPLES_MAX {
            timeline.0.pop();
        }
        timeline.push(Counters::now().since(self.base, self.start.elapsed().as_secs_f64()));
        timeline
    }

    fn stop_thread(&mut self) -> Timeline {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => {
                t.thread().unpark();
                t.join().unwrap_or_default()
            }
            None => Timeline::default(),
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(elapsed_s: f64, messages: u64, open: u64) -> Sample {
        Sample { elapsed_s, connected: open, failed: 0, messages, open }
    }

    #[test]
    fn merge_sums_by_second_and_carries_a_finished_process_forward() {
        let a = Timeline(vec![sample(1.001, 10, 5), sample(2.002, 30, 5), sample(2.4, 35, 0)]);
        // B samples its seconds late and ends after A.
        let b = Timeline(vec![
            sample(1.2, 100, 7),
            sample(2.1, 200, 7),
            sample(3.05, 300, 7),
            sample(3.5, 310, 0),
        ]);
        let m = Timeline::merge(&[a, b]);
        let got: Vec<(f64, u64, u64)> =
            m.0.iter().map(|s| (s.elapsed_s, s.messages, s.open)).collect();
        assert_eq!(
            got,
            vec![
                (1.2, 110, 12),
                // A's end (2.4 s) counts for second 3, but second 2 has its 2.002 sample.
                (2.1, 230, 12),
                (3.05, 335, 7),
                (3.5, 345, 0),
            ]
        );
    }

    #[test]
    fn merge_of_one_timeline_is_itself() {
        let a = Timeline(vec![sample(1.0, 10, 5), sample(2.0, 30, 5), sample(2.5, 35, 0)]);
        assert_eq!(Timeline::merge(std::slice::from_ref(&a)), a);
        assert_eq!(Timeline::merge(&[]), Timeline::default());
    }

    #[test]
    fn rates_are_differences_over_time_and_thinning_keeps_the_totals() {
        let t =
            Timeline((1..=10u32).map(|s| sample(f64::from(s), u64::from(s) * 100, 1)).collect());
        let r = t.rate(|s| s.messages, 100);
        assert_eq!(r.len(), 20, "a step per second");
        assert_eq!((r[0], r[1], r[2]), ((0.0, 100.0), (1.0, 100.0), (1.0, 100.0)));
        assert!(r.iter().all(|&(_, v)| (v - 100.0).abs() < 1e-9), "{r:?}");
        let thin = t.rate(|s| s.messages, 3);
        assert!(thin.len() <= 8, "{thin:?}");
        assert_eq!(thin.last().map(|p| p.0), Some(10.0));
        assert!(thin.iter().all(|&(_, v)| (v - 100.0).abs() < 1e-9), "{thin:?}");
        let open = t.gauge(|s| s.open, 100);
        assert_eq!((open.len(), open[0], open[1]), (11, (0.0, 0.0), (1.0, 1.0)));
        assert!(Timeline::default().gauge(|s| s.open, 100).is_empty());
    }

    #[test]
    fn a_reporter_records_its_end() {
        let r = report("test".into());
        connection(true);
        messages(3);
        let t = r.finish();
        let last = t.0.last().copied().unwrap_or_default();
        // Other tests of this process bump the same counters: at least ours are there.
        assert!(last.connected >= 1 && last.messages >= 3, "{t:?}");
        assert!(last.elapsed_s < 1.0, "{t:?}");
    }
}
