//! Results: latency histograms (one per worker, merged), counters, and the report printed
//! for people and written as JSON with the machine, the command and the parameters.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

/// A latency histogram in microseconds, 1 µs to 100 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// Adds `other` into `into` (workers' histograms share bounds, so this cannot fail).
pub fn merge(into: &mut Histogram<u64>, other: &Histogram<u64>) {
    into.add(other).expect("histograms with the same bounds merge");
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// The machine a run happened on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_bytes: u64,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<u64>().ok())
            .map_or(0, |k| k * 1024);
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel,
            memory_bytes,
        }
    }
}

/// CPU used during the measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuUse {
    pub loadtest_cpu_s: f64,
    /// `None` when no server pid was given.
    pub server_cpu_s: Option<f64>,
}

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub command: Vec<String>,
    pub machine: Machine,
    pub params: serde_json::Value,
    pub results: serde_json::Value,
}

/// Connection failures by kind.
pub type Failures = BTreeMap<String, u64>;

/// Deliveries per second of CPU, the figure that stays comparable when client and server
/// share a machine.
pub fn per_cpu_second(count: u64, cpu_s: Option<f64>) -> Option<f64> {
    cpu_s.filter(|s| *s > 0.0).map(|s| count as f64 / s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_histograms_equal_one_histogram_of_everything() {
        let mut whole = histogram();
        let mut parts = vec![histogram(), histogram(), histogram()];
        for v in 1..=30_000u64 {
            whole.record(v).unwrap();
            parts[(v % 3) as usize].record(v).unwrap();
        }
        let mut merged = histogram();
        for p in &parts {
            merge(&mut merged, p);
        }
        assert_eq!(Latency::of(&merged), Latency::of(&whole));
        let l = Latency::of(&merged);
        assert_eq!(l.count, 30_000);
        // 3 significant digits: p50 of 1..=30000 is 15000 within 0.1 %.
        assert!((l.p50_us as f64 - 15_000.0).abs() <= 15.0, "{l:?}");
        assert!(l.p90_us <= l.p99_us && l.p99_us <= l.p999_us && l.p999_us <= l.max_us);
    }

    #[test]
    fn per_cpu_second_arithmetic() {
        assert_eq!(per_cpu_second(1000, Some(0.5)), Some(2000.0));
        assert_eq!(per_cpu_second(1000, Some(0.0)), None);
        assert_eq!(per_cpu_second(1000, None), None);
    }
}
