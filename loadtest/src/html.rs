//! The HTML report: one self-contained page for a run (`--report-html`), or one comparing
//! runs side by side (`compare`). Inline CSS and inline SVG charts (`plot`), no scripts,
//! no fonts and no external references, so the file opens anywhere, offline, and can be
//! mailed or archived as it is.
//!
//! Both pages are written from [`Report`]s alone, so a JSON report (`--json`) renders the
//! same page later. A comparison groups its reports into sections by scenario; when one
//! label has several reports of a scenario (`fanout` at two rates, say), they are told
//! apart by their file names (`fanout-fixed.json`, `fanout-max.json`), so each section
//! pairs runs with the same file name.

use crate::plot::{self, Chart, Series, XAxis, escape, format_number};
use crate::progress::{Sample, Timeline};
use crate::report::Report;
use crate::scenario::Hist;
use serde_json::Value;
use std::fmt::Write;

/// Most points a line over time gets; longer runs are averaged over several seconds.
const TIME_POINTS_MAX: usize = 1_500;

/// The page's style sheet.
const CSS: &str = "\
body{font:14px/1.45 system-ui,sans-serif;color:#222;max-width:1100px;margin:24px auto;padding:0 16px}\
h1{font-size:22px;margin:0 0 4px}\
h2{font-size:19px;margin:32px 0 8px;border-bottom:1px solid #ccc;padding-bottom:4px}\
h3{font-size:15px;margin:20px 0 6px}\
.meta{color:#555;margin:2px 0 8px}\
pre{background:#f4f4f4;padding:8px 10px;white-space:pre-wrap;word-break:break-all;margin:6px 0}\
svg.chart{max-width:100%;height:auto;display:block;margin:10px 0}\
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}\
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
thead th{background:#f1f1f1}\
td.n{text-align:right;white-space:nowrap}\
.ratio{color:#777;font-size:12px;margin-left:6px}\
tr.diff td{background:#fff4cc}\
nav a{margin-right:14px}\
details{margin:10px 0}\
footer{margin-top:36px;color:#777;font-size:12px}";

/// A report, the name it goes by on a comparison page (a server, a build), and its file
/// name without `.json` (what tells apart one label's reports of one scenario).
#[derive(Debug, Clone)]
pub struct Labelled {
    pub label: String,
    pub file_stem: String,
    pub report: Report,
}

/// The page of one run.
pub fn report_page(r: &Report) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<header><h1>{} load test</h1><p class=\"meta\">{} · {}</p><pre>{}</pre></header>",
        escape(&r.scenario),
        escape(&started(r)),
        escape(&machine_line(r)),
        escape(&command_line(&r.command))
    );

    body.push_str("<h2>Latency percentiles</h2>");
    let names: Vec<&String> = r.histograms.keys().collect();
    let series: Vec<Series> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            plot::percentile_series(&describe(name), i, &histogram(&r.histograms[*name]))
        })
        .collect();
    body.push_str(
        &Chart {
            title: format!("{}: latency by percentile", r.scenario),
            x: XAxis::Percentile,
            y_label: "latency (ms)".into(),
            series,
        }
        .svg(),
    );
    if names.is_empty() {
        body.push_str("<p class=\"meta\">This scenario times no latencies.</p>");
    } else {
        let rows = names.iter().map(|n| (describe(n), &r.histograms[*n])).collect::<Vec<_>>();
        body.push_str(&percentile_table("histogram", &rows));
    }

    body.push_str("<h2>Throughput and connections</h2>");
    body.push_str(&throughput_chart(&r.scenario, &[("messages received".into(), 0, &r.timeline)]));
    let mut lines = vec![
        Series {
            label: "open".into(),
            color: 0,
            points: r.timeline.gauge(|s| s.open, TIME_POINTS_MAX),
            ..Series::default()
        },
        Series {
            label: "opened per second".into(),
            color: 1,
            points: r.timeline.rate(|s| s.connected, TIME_POINTS_MAX),
            ..Series::default()
        },
    ];
    if r.timeline.0.iter().any(|s| s.failed > 0) {
        lines.push(Series {
            label: "failed per second".into(),
            color: 2,
            points: r.timeline.rate(|s| s.failed, TIME_POINTS_MAX),
            ..Series::default()
        });
    }
    body.push_str(
        &Chart {
            title: format!("{}: connections over time", r.scenario),
            x: XAxis::Seconds,
            y_label: "connections".into(),
            series: lines,
        }
        .svg(),
    );
    if r.timeline.0.is_empty() {
        body.push_str(
            "<p class=\"meta\">This report has no timeline (written before it was recorded).</p>",
        );
    }

    body.push_str("<h2>Results</h2>");
    body.push_str(&side_by_side(&["".into()], &[&r.results], false, false));
    body.push_str("<h2>Parameters</h2>");
    body.push_str(&side_by_side(&["".into()], &[&r.params], false, false));
    body.push_str("<h2>Machine and server</h2>");
    body.push_str(&runs_table(&[("".into(), r)]));

    page(&format!("{} load test, {}", r.scenario, started(r)), &body)
}

/// The page comparing `reports`; the first one's label is the baseline of the ratios.
pub fn comparison_page(reports: &[Labelled]) -> String {
    let labels = labels_in_order(reports);
    let sections = sections(reports);
    let mut body = String::new();
    let _ = write!(
        body,
        "<header><h1>Comparison: {}</h1><p class=\"meta\">Each ratio is a value divided by \
         {}'s; {} report(s) in {} section(s); written {}.</p></header>",
        escape(&labels.join(" · ")),
        escape(labels.first().map_or("", String::as_str)),
        reports.len(),
        sections.len(),
        escape(&crate::report::utc_now())
    );
    body.push_str("<nav>");
    for s in &sections {
        let _ = write!(body, "<a href=\"#{}\">{}</a>", s.anchor, escape(&s.title));
    }
    body.push_str("</nav>");
    for s in &sections {
        let runs: Vec<(String, usize, &Report)> = s
            .runs
            .iter()
            .map(|(name, i)| {
                (
                    name.clone(),
                    labels.iter().position(|l| *l == reports[*i].label).unwrap_or(0),
                    &reports[*i].report,
                )
            })
            .collect();
        let _ = write!(body, "<section id=\"{}\"><h2>{}</h2>", s.anchor, escape(&s.title));

        body.push_str("<h3>Latency percentiles</h3>");
        let mut names: Vec<&String> = Vec::new();
        for (_, _, r) in &runs {
            for n in r.histograms.keys() {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        if names.is_empty() {
            body.push_str("<p class=\"meta\">This scenario times no latencies.</p>");
        }
        for name in names {
            let with: Vec<&(String, usize, &Report)> =
                runs.iter().filter(|(_, _, r)| r.histograms.contains_key(name)).collect();
            let series = with
                .iter()
                .map(|(label, color, r)| {
                    plot::percentile_series(label, *color, &histogram(&r.histograms[name]))
                })
                .collect();
            body.push_str(
                &Chart {
                    title: format!("{}: {} by percentile", s.title, describe(name)),
                    x: XAxis::Percentile,
                    y_label: "latency (ms)".into(),
                    series,
                }
                .svg(),
            );
            let rows: Vec<(String, &Hist)> =
                with.iter().map(|(label, _, r)| (label.clone(), &r.histograms[name])).collect();
            body.push_str(&percentile_table(&describe(name), &rows));
        }

        body.push_str("<h3>Throughput and connections</h3>");
        let timelines: Vec<(String, usize, &Timeline)> =
            runs.iter().map(|(label, color, r)| (label.clone(), *color, &r.timeline)).collect();
        body.push_str(&throughput_chart(&s.title, &timelines));
        body.push_str(
            &Chart {
                title: format!("{}: open connections over time", s.title),
                x: XAxis::Seconds,
                y_label: "open connections".into(),
                series: timelines
                    .iter()
                    .map(|(label, color, t)| Series {
                        label: label.clone(),
                        color: *color,
                        points: t.gauge(|s: &Sample| s.open, TIME_POINTS_MAX),
                        ..Series::default()
                    })
                    .collect(),
            }
            .svg(),
        );

        let heads: Vec<String> = runs.iter().map(|(label, _, _)| label.clone()).collect();
        body.push_str("<h3>Results</h3>");
        let results: Vec<&Value> = runs.iter().map(|(_, _, r)| &r.results).collect();
        body.push_str(&side_by_side(&heads, &results, true, false));
        body.push_str("<h3>Parameters</h3>");
        let params: Vec<&Value> = runs.iter().map(|(_, _, r)| &r.params).collect();
        body.push_str(&side_by_side(&heads, &params, false, true));
        body.push_str("<details><summary>Machines, servers and commands</summary>");
        let named: Vec<(String, &Report)> =
            runs.iter().map(|(label, _, r)| (label.clone(), *r)).collect();
        body.push_str(&runs_table(&named));
        body.push_str("</details></section>");
    }
    page(&format!("partyline-loadtest comparison: {}", labels.join(", ")), &body)
}

/// A section of a comparison page: one scenario (and file name, where needed), with its
/// runs as (column name, index into the reports).
#[derive(Debug)]
struct Section {
    title: String,
    anchor: String,
    runs: Vec<(String, usize)>,
}

/// The labels, in the order they first appear.
fn labels_in_order(reports: &[Labelled]) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for r in reports {
        if !labels.contains(&r.label) {
            labels.push(r.label.clone());
        }
    }
    labels
}

/// Groups the reports into sections, in the order they first appear: by scenario, and by
/// file name too for a scenario of which some label has several reports.
fn sections(reports: &[Labelled]) -> Vec<Section> {
    let repeated = |scenario: &str| {
        reports.iter().enumerate().any(|(i, a)| {
            reports[..i].iter().any(|b| {
                b.label == a.label && b.report.scenario == scenario && a.report.scenario == scenario
            })
        })
    };
    let mut out: Vec<Section> = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let title = if repeated(&r.report.scenario) {
            format!("{}: {}", r.report.scenario, r.file_stem)
        } else {
            r.report.scenario.clone()
        };
        let at = match out.iter().position(|s| s.title == title) {
            Some(at) => at,
            None => {
                let anchor: String = title
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
                    .collect();
                out.push(Section {
                    title,
                    anchor: format!("s{}-{anchor}", out.len()),
                    runs: Vec::new(),
                });
                out.len() - 1
            }
        };
        let section = &mut out[at];
        let same = section.runs.iter().filter(|(_, j)| reports[*j].label == r.label).count();
        let name = if same == 0 { r.label.clone() } else { format!("{} ({})", r.label, same + 1) };
        section.runs.push((name, i));
    }
    out
}

/// The whole page around `body`.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body>\n{body}\n<footer>Written by \
         partyline-loadtest {}. The JSON report (<code>--json</code>) holds everything on \
         this page; <code>partyline-loadtest compare --report-html PAGE.html REPORT.json \
         ...</code> writes it again, or compares reports.</footer></body></html>\n",
        escape(title),
        env!("CARGO_PKG_VERSION")
    )
}

/// A histogram from its (value, count) pairs.
fn histogram(h: &Hist) -> hdrhistogram::Histogram<u64> {
    crate::scenario::merged([h])
}

/// What a histogram of the reports measures, by its name.
pub fn describe(name: &str) -> String {
    match name {
        "latency" => "delivery latency (send to receipt)",
        "rtt" => "round trip",
        "upgrade" => "attempt to 101",
        "first_message" => "attempt to first message",
        "wake_to_first_delivery" => "message to a sleeping room to first delivery",
        other => other,
    }
    .to_owned()
}

/// A table of percentiles in milliseconds, a row per histogram.
fn percentile_table(first: &str, rows: &[(String, &Hist)]) -> String {
    let mut t = format!("<table><thead><tr><th>{}</th><th>count</th>", escape(first));
    for (_, name) in plot::MARKED_QUANTILES {
        let _ = write!(t, "<th>{name} (ms)</th>");
    }
    t.push_str("<th>max (ms)</th></tr></thead><tbody>");
    for (label, h) in rows {
        let h = histogram(h);
        let _ = write!(
            t,
            "<tr><th>{}</th><td class=\"n\">{}</td>",
            escape(label),
            format_number(h.len() as f64, 0)
        );
        for (q, _) in plot::MARKED_QUANTILES {
            let v =
                if h.is_empty() { "–".into() } else { plot::format_ms(h.value_at_quantile(q)) };
            let _ = write!(t, "<td class=\"n\">{v}</td>");
        }
        let max = if h.is_empty() { "–".into() } else { plot::format_ms(h.max()) };
        let _ = write!(t, "<td class=\"n\">{max}</td></tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// Messages received per second, a line per timeline.
fn throughput_chart(title: &str, timelines: &[(String, usize, &Timeline)]) -> String {
    Chart {
        title: format!("{title}: messages received per second"),
        x: XAxis::Seconds,
        y_label: "messages/s".into(),
        series: timelines
            .iter()
            .map(|(label, color, t)| Series {
                label: label.clone(),
                color: *color,
                points: t.rate(|s| s.messages, TIME_POINTS_MAX),
                ..Series::default()
            })
            .collect(),
    }
    .svg()
}

/// `values` (JSON objects) flattened to dotted keys, one column each; with `ratios`, each
/// number after the first column also as a ratio to the first; with `mark_differences`,
/// rows whose values differ are highlighted.
fn side_by_side(
    heads: &[String],
    values: &[&Value],
    ratios: bool,
    mark_differences: bool,
) -> String {
    let flat: Vec<Vec<(String, Value)>> = values
        .iter()
        .map(|v| {
            let mut out = Vec::new();
            flatten("", v, &mut out);
            out
        })
        .collect();
    let mut keys: Vec<&String> = Vec::new();
    for f in &flat {
        for (k, _) in f {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    let mut t = String::from("<table>");
    if heads.iter().any(|h| !h.is_empty()) {
        t.push_str("<thead><tr><th></th>");
        for h in heads {
            let _ = write!(t, "<th>{}</th>", escape(h));
        }
        t.push_str("</tr></thead>");
    }
    t.push_str("<tbody>");
    for key in keys {
        let cells: Vec<Option<&Value>> =
            flat.iter().map(|f| f.iter().find(|(k, _)| k == key).map(|(_, v)| v)).collect();
        let differs = mark_differences && cells.windows(2).any(|w| w[0] != w[1]);
        let _ = write!(
            t,
            "<tr{}><th>{}</th>",
            if differs { " class=\"diff\"" } else { "" },
            escape(key)
        );
        for (i, cell) in cells.iter().enumerate() {
            let numeric = cell.is_some_and(|v| v.is_number());
            let _ = write!(t, "<td{}>", if numeric { " class=\"n\"" } else { "" });
            t.push_str(&cell.map_or_else(|| "–".into(), show));
            if let (true, true, Some(a), Some(b)) =
                (ratios, i > 0, cell.and_then(|v| v.as_f64()), cells[0].and_then(|v| v.as_f64()))
                && b != 0.0
            {
                let _ = write!(t, "<span class=\"ratio\">{}×</span>", format_number(a / b, 2));
            }
            t.push_str("</td>");
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// The leaves of a JSON value under dotted keys (`latency.p99_us`); empty objects and
/// arrays are leaves.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, x, out);
            }
        }
        _ => out.push((prefix.to_owned(), v.clone())),
    }
}

/// A JSON leaf for a table cell, escaped.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => format_number(u as f64, 0),
            (_, Some(i), _) => format_number(i as f64, 0),
            (_, _, Some(f)) => show_f64(f),
            _ => n.to_string(),
        },
        Value::String(s) => escape(s),
        Value::Array(a) if a.is_empty() => "none".into(),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::Object(_) | Value::Array(_) => escape(&x.to_string()),
                _ => show(x),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(_) => "none".into(),
    }
}

/// A measured figure with the digits that matter.
fn show_f64(f: f64) -> String {
    let a = f.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format_number(f, 0)
    } else if a >= 1.0 {
        format_number(f, 2)
    } else if a >= 0.01 {
        format_number(f, 3)
    } else {
        format!("{f:.2e}")
    }
}

/// When a run started, or that its report does not say.
fn started(r: &Report) -> String {
    if r.started_utc.is_empty() {
        "date not recorded".into()
    } else {
        r.started_utc.replace('T', " ").replace('Z', " UTC")
    }
}

/// The machine in one line.
fn machine_line(r: &Report) -> String {
    let m = &r.machine;
    format!(
        "{} CPUs ({}), Linux {}, {} memory",
        m.cpus,
        m.cpu_model,
        m.kernel,
        bytes(m.memory_bytes)
    )
}

/// A byte count for people: `15.6 GiB`.
fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < units.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", units[unit]) }
}

/// The command as one shell line, arguments quoted where needed.
fn command_line(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
            if plain { a.clone() } else { format!("'{}'", a.replace('\'', r"'\''")) }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each run's date, command, machine and server use, a column per run.
fn runs_table(runs: &[(String, &Report)]) -> String {
    let column = |r: &Report| {
        let server = r.server.clone().unwrap_or_default();
        let opt_bytes = |b: Option<u64>| b.map_or_else(|| "–".into(), bytes);
        serde_json::json!({
            "started": started(r),
            "command": command_line(&r.command),
            "cpus": r.machine.cpus,
            "cpu model": r.machine.cpu_model,
            "kernel": r.machine.kernel,
            "memory": bytes(r.machine.memory_bytes),
            "server pids": if server.pids.is_empty() { "not given (--server-pid)".to_owned() } else { server.pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ") },
            "server CPU seconds (whole run)": server.cpu_s,
            "server RSS before": opt_bytes(server.rss_before_bytes),
            "server RSS after": opt_bytes(server.rss_after_bytes),
            "server anonymous RSS before": opt_bytes(server.anon_before_bytes),
            "server anonymous RSS after": opt_bytes(server.anon_after_bytes),
        })
    };
    let heads: Vec<String> = runs.iter().map(|(label, _)| label.clone()).collect();
    let columns: Vec<Value> = runs.iter().map(|(_, r)| column(r)).collect();
    side_by_side(&heads, &columns.iter().collect::<Vec<_>>(), false, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Sample;
    use crate::report::{Histograms, Machine, histogram as new_histogram};

    fn report(scenario: &str, rtt_us: &[u64], rate: u64) -> Report {
        let mut h = new_histogram();
        for &v in rtt_us {
            h.record(v).unwrap();
        }
        let latency = crate::report::Latency::of(&h);
        Report {
            scenario: scenario.into(),
            command: vec![
                "partyline-loadtest".into(),
                "echo".into(),
                "--room".into(),
                "a b".into(),
            ],
            machine: Machine {
                cpus: 2,
                cpu_model: "Test CPU".into(),
                kernel: "6.1".into(),
                memory_bytes: 1 << 30,
            },
            params: serde_json::json!({ "scenario": scenario, "clients": 4, "target": { "addrs": ["127.0.0.1:1999"] } }),
            results: serde_json::json!({ "round_trips": h.len(), "rtt": latency, "round_trips_per_s": rate as f64 / 2.0 }),
            started_utc: "2025-01-02T03:04:05Z".into(),
            server: None,
            histograms: Histograms::from([("rtt".to_owned(), Hist::of(&h))]),
            timeline: Timeline(
                (1..=3u32)
                    .map(|s| Sample {
                        elapsed_s: f64::from(s),
                        connected: 4,
                        failed: 0,
                        messages: u64::from(s) * rate,
                        open: 4,
                    })
                    .collect(),
            ),
        }
    }

    fn labelled(label: &str, file_stem: &str, report: Report) -> Labelled {
        Labelled { label: label.into(), file_stem: file_stem.into(), report }
    }

    #[test]
    fn a_run_page_is_self_contained_and_shows_everything() {
        let r = report("echo", &[100, 200, 300, 5000], 1000);
        let html = report_page(&r);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(html.matches("<svg").count(), 3, "percentiles, throughput, connections");
        assert!(!html.contains("http:") && !html.contains("https:") && !html.contains("<script"));
        assert!(html.contains("2025-01-02 03:04:05 UTC"));
        assert!(html.contains("partyline-loadtest echo --room &#39;a b&#39;"), "{html}");
        assert!(html.contains("<th>clients</th><td class=\"n\">4</td>"), "{html}");
        assert!(html.contains("<th>target.addrs</th><td>127.0.0.1:1999</td>"), "{html}");
        assert!(html.contains("Test CPU") && html.contains("1.0 GiB"));
        let p50 = r.results["rtt"]["p50_us"].as_u64().unwrap();
        assert!(html.contains(&format!(r#"data-q="0.5" data-us="{p50}""#)), "{html}");
        assert!(html.contains("<th>rtt.p99_us</th>"));
    }

    #[test]
    fn a_page_from_an_old_report_says_what_is_missing() {
        let mut r = report("idle", &[], 0);
        r.histograms.clear();
        r.timeline = Timeline::default();
        r.started_utc.clear();
        let html = report_page(&r);
        assert!(html.contains("times no latencies") && html.contains("no timeline"));
        assert!(html.contains("date not recorded"));
        assert!(html.contains("no samples"));
    }

    #[test]
    fn a_comparison_pairs_runs_by_scenario_and_gives_ratios() {
        let reports = vec![
            labelled("fast", "echo", report("echo", &[100, 100, 200], 2000)),
            labelled("fast", "fanout-fixed", report("fanout", &[10], 1)),
            labelled("fast", "fanout-max", report("fanout", &[20], 1)),
            labelled("slow", "echo", report("echo", &[400, 400, 800], 1000)),
            labelled("slow", "fanout-max", report("fanout", &[30], 1)),
        ];
        let s = sections(&reports);
        let got: Vec<(&str, Vec<&str>)> = s
            .iter()
            .map(|s| (s.title.as_str(), s.runs.iter().map(|(n, _)| n.as_str()).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("echo", vec!["fast", "slow"]),
                ("fanout: fanout-fixed", vec!["fast"]),
                ("fanout: fanout-max", vec!["fast", "slow"]),
            ]
        );
        let html = comparison_page(&reports);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("http:") && !html.contains("https:"));
        // Per section: one percentile chart, throughput, connections.
        assert_eq!(html.matches("<svg").count(), 9);
        // slow's round trips per second are half fast's.
        assert!(html.contains("<span class=\"ratio\">0.50×</span>"), "{html}");
        assert!(html.contains("href=\"#s0-echo\"") && html.contains("id=\"s0-echo\""));
    }

    #[test]
    fn the_same_label_twice_in_a_section_is_numbered() {
        let reports = vec![
            labelled("a", "x", report("echo", &[1], 1)),
            labelled("a", "y", report("echo", &[2], 1)),
        ];
        let s = sections(&reports);
        assert_eq!(s.len(), 2, "{s:?}");
        let reports = vec![
            labelled("a", "x", report("echo", &[1], 1)),
            labelled("b", "x", report("echo", &[2], 1)),
            labelled("b", "x", report("echo", &[3], 1)),
        ];
        let s = sections(&reports);
        assert_eq!(s.len(), 1, "b repeats echo, but in files of one name: {s:?}");
        assert_eq!(s[0].title, "echo: x");
        assert_eq!(s[0].runs.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["a", "b", "b (2)"]);
    }

    #[test]
    fn cells_show_figures_for_people() {
        assert_eq!(show(&serde_json::json!(1234567)), "1,234,567");
        assert_eq!(show(&serde_json::json!(12.3456)), "12.35");
        assert_eq!(show(&serde_json::json!(0.5)), "0.500");
        assert_eq!(show(&serde_json::json!(null)), "–");
        assert_eq!(show(&serde_json::json!({})), "none");
        assert_eq!(show(&serde_json::json!("<b>")), "&lt;b&gt;");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(command_line(&["a".into(), "it's".into()]), r"a 'it'\''s'");
    }
}
