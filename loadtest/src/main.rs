//! The `partyline-loadtest` command: parses a scenario and its parameters, runs it against
//! a target (loopback by default), prints a summary and writes a JSON report.

use clap::{Parser, Subcommand};
use partyline_loadtest::report::{Machine, Report};
use partyline_loadtest::scenario::{self, EchoParams, FanoutParams, Target};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "partyline-loadtest",
    version,
    about = "Load tests for PartyKit-style servers"
)]
struct Cli {
    /// Server address.
    #[arg(long, global = true, default_value = "127.0.0.1:1999")]
    target: SocketAddr,
    /// Worker threads (default: one per core).
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// The server's pid, to report its CPU seconds.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Connection attempts in flight per worker.
    #[arg(long, global = true, default_value_t = 256)]
    connect_concurrency: usize,
    /// Where to write the JSON report.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Round trips through the `echo` party, one at a time per client.
    Echo {
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[arg(long, default_value_t = 10_000)]
        round_trips: usize,
        #[arg(long, default_value_t = 32)]
        payload: usize,
        #[arg(long, default_value = "echo")]
        party: String,
        #[arg(long, default_value = "loadtest-echo")]
        room: String,
    },
    /// Receivers and senders in one `relay` room; senders at a fixed total rate.
    Fanout {
        #[arg(long, default_value_t = 1000)]
        receivers: usize,
        #[arg(long, default_value_t = 1)]
        senders: usize,
        /// Messages per second, all senders together.
        #[arg(long, default_value_t = 100)]
        rate: u64,
        #[arg(long, default_value_t = 1.0)]
        warmup_s: f64,
        #[arg(long, default_value_t = 5.0)]
        duration_s: f64,
        #[arg(long, default_value_t = 64)]
        payload: usize,
        #[arg(long, default_value = "relay")]
        party: String,
        #[arg(long, default_value = "loadtest-fanout")]
        room: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let target = Target {
        addr: cli.target,
        workers: cli
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        server_pid: cli.server_pid,
        connect_concurrency: cli.connect_concurrency,
    };
    let (name, params, results) = match cli.scenario {
        Scenario::Echo {
            clients,
            round_trips,
            payload,
            party,
            room,
        } => {
            let p = EchoParams {
                clients,
                round_trips,
                payload,
                party,
                room,
            };
            (
                "echo",
                serde_json::to_value(&p),
                scenario::echo(&target, &p),
            )
        }
        Scenario::Fanout {
            receivers,
            senders,
            rate,
            warmup_s,
            duration_s,
            payload,
            party,
            room,
        } => {
            let p = FanoutParams {
                receivers,
                senders,
                rate,
                warmup_s,
                duration_s,
                payload,
                party,
                room,
            };
            (
                "fanout",
                serde_json::to_value(&p),
                scenario::fanout(&target, &p),
            )
        }
    };
    let mut params = params.unwrap_or_default();
    params["target"] = serde_json::to_value(&target).unwrap_or_default();
    let report = Report {
        scenario: name.to_owned(),
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
