//! The `partyline-loadtest` command: parses a scenario and its parameters, runs it against
//! a target (loopback by default) in one or several processes, prints the report (JSON) on
//! stdout and optionally writes it to a file, and its HTML page to another. `compare`
//! writes one HTML page from several JSON reports.

use clap::{CommandFactory, FromArgMatches};
use partyline_loadtest::html::{self, Labelled};
use partyline_loadtest::report::{self, Machine, Report, ServerUse};
use partyline_loadtest::runner::{self, Scenario};
use partyline_loadtest::scenario::{CpuSampler, Target};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(clap::Parser)]
#[command(
    name = "partyline-loadtest",
    version,
    about = "Load tests for PartyKit-style servers",
    after_help = "Reports: the JSON report goes to stdout (and to --json FILE); --report-html FILE \
                  writes the run's page: latency percentiles (HDR-style plot), throughput and \
                  connections over time, results, parameters, machine. One self-contained file, \
                  no external references.\n\nCompare runs: partyline-loadtest compare \
                  --report-html OUT.html --label partyline a.json --label uws b.json"
)]
struct Cli {
    /// Server address; several, comma-separated, spread the connections over them (the
    /// nodes of a cluster, say).
    #[arg(long, global = true, default_value = "127.0.0.1:1999", value_delimiter = ',')]
    target: Vec<SocketAddr>,
    /// Worker threads per process (default: one per core).
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// Worker processes: each has its own open-files limit (20,000 on our machines).
    #[arg(long, global = true, default_value_t = 1)]
    processes: usize,
    /// The server's pid, to report its CPU seconds and memory; several, comma-separated,
    /// are summed (every process of a cluster).
    #[arg(long, global = true, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Connection attempts in flight per worker.
    #[arg(long, global = true, default_value_t = 256)]
    connect_concurrency: usize,
    /// Source addresses to connect from: a list (127.0.0.2,127.0.0.3) or an IPv4 range
    /// (127.0.0.2-127.0.0.17). Each offers ~28k ports per server address.
    #[arg(long, global = true)]
    source_addrs: Option<String>,
    /// Where to write the JSON report.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Connect over TLS (`wss://`), trusting only the CA in this PEM file; the server's
    /// certificate must name `localhost`.
    #[arg(long, global = true, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Where to write the HTML report: one self-contained page (inline CSS and SVG, no
    /// external references) with the latency percentile plot, throughput and connections
    /// over time, the results, the parameters and the machine. With `compare`, the page
    /// comparing the reports.
    #[arg(long, global = true, value_name = "FILE")]
    report_html: Option<PathBuf>,
    /// Internal: run as worker process N of a multi-process run.
    #[arg(long, global = true, hide = true)]
    child: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    #[command(flatten)]
    Scenario(Scenario),
    /// Write one HTML page (--report-html FILE) comparing JSON reports (--json) side by
    /// side: each scenario's percentile curves overlaid, throughput and connections over
    /// time, results with ratios to the first label's. One report alone gives its run's
    /// page again.
    Compare(CompareArgs),
}

#[derive(clap::Args)]
struct CompareArgs {
    /// The name of the reports after it, up to the next --label (a server, a build); the
    /// first is the baseline of the ratios. Reports before any --label go by their file
    /// names.
    #[arg(long, value_name = "NAME")]
    label: Vec<String>,
    /// JSON reports, written with --json. Reports of one scenario share a section; when
    /// one label has several of a scenario, reports with the same file name do.
    #[arg(value_name = "REPORT.json", required = true)]
    reports: Vec<PathBuf>,
}

/// Each report with its label: the last `--label` before it on the command line (by
/// argument position), else `None`.
fn labelled_paths(
    labels: &[(usize, String)],
    reports: &[(usize, PathBuf)],
) -> Vec<(Option<String>, PathBuf)> {
    reports
        .iter()
        .map(|(at, path)| {
            let label = labels.iter().filter(|(l, _)| l < at).max_by_key(|(l, _)| *l);
            (label.map(|(_, name)| name.clone()), path.clone())
        })
        .collect()
}

/// A file's name without its extension.
fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

/// `compare`: reads the reports and writes the page.
fn compare(matches: &clap::ArgMatches, out: Option<&Path>) -> Result<(), String> {
    let out = out.ok_or("compare writes an HTML page: give --report-html FILE")?;
    let sub = matches.subcommand_matches("compare").ok_or("no compare arguments")?;
    let with_index = |id: &str| -> Vec<(usize, String)> {
        let values = sub.get_raw(id).into_iter().flatten();
        let indices = sub.indices_of(id).into_iter().flatten();
        indices.zip(values).map(|(i, v)| (i, v.to_string_lossy().into_owned())).collect()
    };
    let reports: Vec<(usize, PathBuf)> =
        with_index("reports").into_iter().map(|(i, p)| (i, PathBuf::from(p))).collect();
    let mut labelled = Vec::new();
    for (label, path) in labelled_paths(&with_index("label"), &reports) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let report: Report = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a load test report: {e}", path.display()))?;
        let file_stem = file_stem(&path);
        labelled.push(Labelled {
            label: label.unwrap_or_else(|| file_stem.clone()),
            file_stem,
            report,
        });
    }
    let page = match labelled.as_slice() {
        [one] => html::report_page(&one.report),
        many => html::comparison_page(many),
    };
    std::fs::write(out, page).map_err(|e| format!("cannot write {}: {e}", out.display()))
}

fn parse_source_addrs(spec: &str) -> Result<Vec<IpAddr>, String> {
    if let Some((a, b)) = spec.split_once('-') {
        let (a, b): (Ipv4Addr, Ipv4Addr) = (
            a.trim().parse().map_err(|e| format!("{a}: {e}"))?,
            b.trim().parse().map_err(|e| format!("{b}: {e}"))?,
        );
        let (a, b) = (u32::from(a), u32::from(b));
        if b < a || b - a > 65_535 {
            return Err(format!("bad address range {spec}"));
        }
        return Ok((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect());
    }
    spec.split(',').map(|s| s.trim().parse().map_err(|e| format!("{s}: {e}"))).collect()
}

fn main() {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let mut scenario = match cli.command {
        Command::Scenario(s) => s,
        Command::Compare(_) => {
            if let Err(e) = compare(&matches, cli.report_html.as_deref()) {
                eprintln!("compare: {e}");
                std::process::exit(1);
            }
            return;
        }
    };
    let source_addrs = match cli.source_addrs.as_deref().map(parse_source_addrs).transpose() {
        Ok(a) => a.unwrap_or_default(),
        Err(e) => {
            eprintln!("--source-addrs: {e}");
            std::process::exit(2);
        }
    };
    let target = Target {
        addrs: cli.target,
        workers: cli
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
        processes: cli.processes.max(1),
        server_pids: cli.server_pid.clone(),
        connect_concurrency: cli.connect_concurrency,
        source_addrs,
        tls_ca: cli.tls_ca.clone(),
    };
    if let Some(Err(e)) = target.tls_ca.as_deref().map(partyline_loadtest::client::tls_config) {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let server_before =
        (cli.child.is_none() && !target.server_pids.is_empty()).then(|| target.server_memory());
    if let Scenario::Idle(p) = &mut scenario
        && let Some((rss, anon)) = server_before
    {
        (p.server_rss_before, p.server_anon_before) = (rss, anon);
    }
    if let Some(index) = cli.child {
        runner::run_child(&scenario, &target, index);
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let started_utc = report::utc_now();
    let server_cpu =
        (!target.server_pids.is_empty()).then(|| CpuSampler::start(&target.server_pids));
    let outcome = match runner::run(&scenario, &target, &args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("load test failed: {e}");
            std::process::exit(1);
        }
    };
    let mut params = serde_json::to_value(&scenario).unwrap_or_default();
    params["target"] = serde_json::to_value(&target).unwrap_or_default();
    let server = server_cpu.map(|cpu| {
        let ((rss_before, anon_before), (rss_after, anon_after)) =
            (server_before.unwrap_or_default(), target.server_memory());
        ServerUse {
            pids: target.server_pids.clone(),
            cpu_s: cpu.stop().1,
            rss_before_bytes: rss_before,
            rss_after_bytes: rss_after,
            anon_before_bytes: anon_before,
            anon_after_bytes: anon_after,
        }
    });
    let report = Report {
        scenario: scenario.name().to_owned(),
        command: std::env::args().collect(),
        machine: Machine::detect(),
        params,
        results: outcome.results,
        started_utc,
        server,
        histograms: outcome.histograms,
        timeline: outcome.timeline,
    };
    let text = report.to_json();
    // The report is the program's output: stdout for pipes, and the file when asked.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    if let Some(path) = cli.json
        && let Err(e) = std::fs::write(&path, &text)
    {
        eprintln!("cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    if let Some(path) = cli.report_html
        && let Err(e) = std::fs::write(&path, html::report_page(&report))
    {
        eprintln!("cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compare_matches(args: &[&str]) -> clap::ArgMatches {
        let argv = ["partyline-loadtest", "compare"].iter().chain(args);
        Cli::command().try_get_matches_from(argv).expect("arguments parse")
    }

    #[test]
    fn a_label_names_the_reports_after_it() {
        let m = compare_matches(&[
            "--report-html",
            "o.html",
            "first.json",
            "--label",
            "a",
            "x.json",
            "y.json",
            "--label",
            "b",
            "z.json",
        ]);
        let sub = m.subcommand_matches("compare").unwrap();
        let idx = |id: &str| -> Vec<usize> { sub.indices_of(id).unwrap().collect() };
        let labels: Vec<(usize, String)> =
            idx("label").into_iter().zip(["a", "b"]).map(|(i, l)| (i, l.to_owned())).collect();
        let reports: Vec<(usize, PathBuf)> = idx("reports")
            .into_iter()
            .zip(["first.json", "x.json", "y.json", "z.json"])
            .map(|(i, p)| (i, PathBuf::from(p)))
            .collect();
        let got: Vec<(Option<String>, String)> = labelled_paths(&labels, &reports)
            .into_iter()
            .map(|(l, p)| (l, p.display().to_string()))
            .collect();
        let want = [
            (None, "first.json"),
            (Some("a"), "x.json"),
            (Some("a"), "y.json"),
            (Some("b"), "z.json"),
        ];
        let want: Vec<(Option<String>, String)> =
            want.iter().map(|(l, p)| (l.map(str::to_owned), (*p).to_owned())).collect();
        assert_eq!(got, want);
        assert_eq!(m.get_one::<PathBuf>("report_html"), Some(&PathBuf::from("o.html")));
    }

    #[test]
    fn compare_needs_a_report() {
        let argv = ["partyline-loadtest", "compare", "--report-html", "o.html"];
        assert!(Cli::command().try_get_matches_from(argv).is_err());
        Cli::command().debug_assert();
    }
}
