//! Results: latency histograms (one per worker, merged), counters, and the report printed
//! for people and written as JSON with the machine, the command and the parameters; the
//! JSON also holds the run's histograms and timeline, so its HTML page (`html`) can be
//! written again from it later.

use crate::progress::Timeline;
use crate::scenario::Hist;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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

/// A run's latency histograms by name: the name of the field of the results that gives
/// its percentiles (`latency`, `rtt`, `upgrade`, ...).
pub type Histograms = BTreeMap<String, Hist>;

/// What the server's processes (`--server-pid`) used over the whole run, connecting
/// included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerUse {
    pub pids: Vec<u32>,
    pub cpu_s: Option<f64>,
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub anon_before_bytes: Option<u64>,
    pub anon_after_bytes: Option<u64>,
}

/// A whole report. The fields after `results` came later; reports written before them
/// read back with them empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub command: Vec<String>,
    pub machine: Machine,
    pub params: serde_json::Value,
    pub results: serde_json::Value,
    /// When the run started, UTC (`2025-01-31T12:34:56Z`).
    #[serde(default)]
    pub started_utc: String,
    /// `None` without `--server-pid`.
    #[serde(default)]
    pub server: Option<ServerUse>,
    /// The latency histograms behind the results' percentiles, as (value µs, count) pairs.
    #[serde(default)]
    pub histograms: Histograms,
    /// The progress counters, sampled every second (all processes summed).
    #[serde(default)]
    pub timeline: Timeline,
}

impl Report {
    /// The report as JSON for people and machines: objects indented as
    /// `serde_json::to_string_pretty` does, but each element of an array on one line of its
    /// own (a histogram's `[value, count]` pair, a timeline's sample), so the histograms and
    /// the timeline stay compact.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, ReportFormatter::default());
        // Serializing plain data into a Vec cannot fail.
        let _ = self.serialize(&mut ser);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Where [`ReportFormatter`] is: in an indented object, in an array whose elements go on
/// lines of their own, or inside such an element (everything on one line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nesting {
    Object,
    Array,
    Inline,
}

/// Indents objects; writes each element of an outermost array on its own line, and
/// everything inside an element inline.
#[derive(Debug, Default)]
struct ReportFormatter {
    /// Open containers, innermost last, each with whether it has had a value.
    open: Vec<(Nesting, bool)>,
}

impl ReportFormatter {
    fn indent<W: ?Sized + std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        let depth = self.open.iter().filter(|(n, _)| *n != Nesting::Inline).count();
        w.write_all(b"\n")?;
        for _ in 0..depth {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    fn begin<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        pretty: Nesting,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        let inline = matches!(self.open.last(), Some((Nesting::Array | Nesting::Inline, _)));
        self.open.push((if inline { Nesting::Inline } else { pretty }, false));
        w.write_all(bracket)
    }

    fn end<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        if let Some((nesting, had_value)) = self.open.pop()
            && nesting != Nesting::Inline
            && had_value
        {
            self.indent(w)?;
        }
        w.write_all(bracket)
    }

    fn item<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        match self.open.last_mut() {
            Some((Nesting::Inline, _)) | None => Ok(()),
            Some((_, had_value)) => {
                *had_value = true;
                self.indent(w)
            }
        }
    }
}

impl serde_json::ser::Formatter for ReportFormatter {
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.begin(w, Nesting::Object, b"{")
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.end(w, b"}")
    }
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.begin(w, Nesting::Array, b"[")
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.end(w, b"]")
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        let inline = matches!(self.open.last(), Some((Nesting::Inline, _)));
        w.write_all(if inline { b":" } else { b": " })
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(w, first)
    }
}

/// `unix_s` (seconds since 1970, UTC) as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc(unix_s: u64) -> String {
    let (days, rest) = (unix_s / 86_400, unix_s % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01 (unsigned: no dates before).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Now, UTC, as [`utc`] writes it.
pub fn utc_now() -> String {
    utc(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()))
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
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(utc(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn reports_without_the_later_fields_read_back() {
        let old = r#"{"scenario":"echo","command":["x"],"machine":{"cpus":2,"cpu_model":"m",
            "kernel":"k","memory_bytes":1},"params":{},"results":{"round_trips":1}}"#;
        let r: Report = serde_json::from_str(old).expect("an old report reads");
        assert!(r.histograms.is_empty() && r.timeline.0.is_empty() && r.server.is_none());
    }

    #[test]
    fn reports_are_indented_with_arrays_an_element_a_line() {
        let mut h = histogram();
        h.record_n(100, 3).unwrap();
        h.record(2000).unwrap();
        let report = Report {
            scenario: "echo".into(),
            command: vec!["a".into(), "b".into()],
            machine: Machine::default(),
            params: serde_json::json!({ "n": 1, "empty": [], "nested": { "x": [1, 2] } }),
            results: serde_json::json!({ "rtt": { "p50_us": 100 } }),
            started_utc: utc(0),
            server: None,
            histograms: Histograms::from([("rtt".to_owned(), Hist::of(&h))]),
            timeline: Timeline(vec![crate::progress::Sample {
                elapsed_s: 1.5,
                ..Default::default()
            }]),
        };
        let text = report.to_json();
        let back: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back, serde_json::to_value(&report).unwrap());
        assert!(
            text.starts_with("{\n  \"scenario\": \"echo\",\n  \"command\": [\n    \"a\",\n"),
            "{text}"
        );
        assert!(text.contains("\"rtt\": [\n      [100,3],\n      [2000,1]\n    ]"), "{text}");
        assert!(text.contains("\"empty\": [],"), "{text}");
        assert!(text.contains("\"x\": [\n        1,\n        2\n      ]"), "{text}");
        assert!(
            text.contains("\"timeline\": [\n    {\"elapsed_s\":1.5,\"connected\":0,"),
            "{text}"
        );
        assert!(text.ends_with("\n}"), "{text}");
    }

    #[test]
    fn per_cpu_second_arithmetic() {
        assert_eq!(per_cpu_second(1000, Some(0.5)), Some(2000.0));
        assert_eq!(per_cpu_second(1000, Some(0.0)), None);
        assert_eq!(per_cpu_second(1000, None), None);
    }
}
