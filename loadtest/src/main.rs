//! The `partyline-loadtest` command: parses a scenario and its parameters, runs it against
//! a target (loopback by default) in one or several processes, prints the report (JSON) on
//! stdout and optionally writes it to a file.

use clap::Parser;
use partyline_loadtest::report::{Machine, Report};
use partyline_loadtest::runner::{self, Scenario};
use partyline_loadtest::scenario::Target;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "partyline-loadtest", version, about = "Load tests for PartyKit-style servers")]
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
    /// Internal: run as worker process N of a multi-process run.
    #[arg(long, global = true, hide = true)]
    child: Option<usize>,
    #[command(subcommand)]
    scenario: Scenario,
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
    let cli = Cli::parse();
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
    };
    let server_before =
        (cli.child.is_none() && !target.server_pids.is_empty()).then(|| target.server_memory());
    let mut scenario = cli.scenario;
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
    let results = match runner::run(&scenario, &target, &args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("load test failed: {e}");
            std::process::exit(1);
        }
    };
    let mut params = serde_json::to_value(&scenario).unwrap_or_default();
    params["target"] = serde_json::to_value(&target).unwrap_or_default();
    let report = Report {
        scenario: scenario.name().to_owned(),
        command: std::env::args().collect(),
        machine: Machine::detect(),
        params,
        results,
    };
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    // The report is the program's output: stdout for pipes, and the file when asked.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    if let Some(path) = cli.json
        && let Err(e) = std::fs::write(&path, &text)
    {
        eprintln!("cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
}
