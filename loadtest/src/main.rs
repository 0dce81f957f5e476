//! The `partyline-loadtest` command: parses a scenario and its parameters, runs it against
//! a target (loopback by default) in one or several processes, prints the report (JSON) on
//! stdout and optionally writes it to a file.

use clap::{Parser, Subcommand};
use partyline_loadtest::report::{Machine, Report};
use partyline_loadtest::runner::{self, Scenario};
use partyline_loadtest::scenario::{Target, connect, echo, fanout, idle};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "partyline-loadtest", version, about = "Load tests for PartyKit-style servers")]
struct Cli {
    /// Server address.
    #[arg(long, global = true, default_value = "127.0.0.1:1999")]
    target: SocketAddr,
    /// Worker threads per process (default: one per core).
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// Worker processes: each has its own open-files limit (20,000 on our machines).
    #[arg(long, global = true, default_value_t = 1)]
    processes: usize,
    /// The server's pid, to report its CPU seconds and memory.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
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
    scenario: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open connections (paced or as fast as allowed): connections/s, time to 101 and to
    /// the first message, failures by kind.
    Connect {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        #[arg(long, default_value = "main")]
        party: String,
        #[arg(long, default_value = "loadtest-connect")]
        room_prefix: String,
        /// Connections started per second in all (0: as fast as allowed).
        #[arg(long, default_value_t = 0.0)]
        ramp_per_s: f64,
        /// Do not wait for a first message (for parties that send nothing on connect).
        #[arg(long)]
        no_first_message: bool,
        #[arg(long, default_value_t = 0.0)]
        hold_s: f64,
    },
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
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
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
    /// Many small rooms chatting: every client sends and receives.
    Rooms {
        #[arg(long, default_value_t = 1000)]
        rooms: usize,
        #[arg(long, default_value_t = 3)]
        clients_per_room: usize,
        /// Messages per second per client.
        #[arg(long, default_value_t = 1.0)]
        rate_per_client: f64,
        #[arg(long, default_value_t = 1.0)]
        warmup_s: f64,
        #[arg(long, default_value_t = 5.0)]
        duration_s: f64,
        #[arg(long, default_value_t = 64)]
        payload: usize,
        #[arg(long, default_value = "relay")]
        party: String,
        #[arg(long, default_value = "loadtest-room")]
        room_prefix: String,
        #[arg(long, default_value_t = 0.0)]
        ramp_per_s: f64,
    },
    /// Hold idle connections; with --server-pid, the server's bytes per connection.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        #[arg(long, default_value = "relay")]
        party: String,
        #[arg(long, default_value = "loadtest-idle")]
        room_prefix: String,
        #[arg(long, default_value_t = 10.0)]
        hold_s: f64,
        #[arg(long, default_value_t = 0.0)]
        ramp_per_s: f64,
    },
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
        addr: cli.target,
        workers: cli
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
        processes: cli.processes.max(1),
        server_pid: cli.server_pid,
        connect_concurrency: cli.connect_concurrency,
        source_addrs,
    };
    let server_rss_before = if cli.child.is_none() {
        cli.server_pid.and_then(partyline_loadtest::sys::rss_bytes)
    } else {
        None
    };
    let scenario = match cli.scenario {
        Command::Connect {
            connections,
            rooms,
            party,
            room_prefix,
            ramp_per_s,
            no_first_message,
            hold_s,
        } => Scenario::Connect(connect::Params {
            connections,
            rooms,
            party,
            room_prefix,
            ramp_per_s,
            first_message: !no_first_message,
            hold_s,
        }),
        Command::Echo { clients, round_trips, payload, party, room } => {
            Scenario::Echo(echo::Params { clients, round_trips, payload, party, room })
        }
        Command::Fanout {
            receivers,
            senders,
            rate,
            warmup_s,
            duration_s,
            payload,
            party,
            room,
        } => Scenario::Fanout(fanout::FanoutParams {
            receivers,
            senders,
            rate,
            warmup_s,
            duration_s,
            payload,
            party,
            room,
        }),
        Command::Rooms {
            rooms,
            clients_per_room,
            rate_per_client,
            warmup_s,
            duration_s,
            payload,
            party,
            room_prefix,
            ramp_per_s,
        } => Scenario::Rooms(fanout::RoomsParams {
            rooms,
            clients_per_room,
            rate_per_client,
            warmup_s,
            duration_s,
            payload,
            party,
            room_prefix,
            ramp_per_s,
        }),
        Command::Idle { connections, rooms, party, room_prefix, hold_s, ramp_per_s } => {
            Scenario::Idle(idle::Params {
                connections,
                rooms,
                party,
                room_prefix,
                hold_s,
                ramp_per_s,
                server_rss_before,
            })
        }
    };
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
