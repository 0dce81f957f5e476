//! The `partyline` binary: `partyline serve` runs a server with the built-in parties
//! (`main`, `echo`, `relay`, `ephemeral`, `items`, `presence`) on 127.0.0.1:1999, one shard per core, with
//! room storage in `./.partyline/storage`, like `partykit dev`.

use clap::{Parser, Subcommand};
use partyline::{Admin, Config, Server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "partyline", version, about = "Self-hosted PartyKit-style realtime rooms")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server with the built-in parties.
    Serve {
        /// Address to listen on.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Admin listener (`/metrics`, `/health`): an address, or `off`
        /// (default 127.0.0.1:9464).
        #[arg(long, value_name = "ADDR")]
        admin: Option<Admin>,
        /// Number of shards (default: one per core).
        #[arg(long)]
        shards: Option<usize>,
        /// Folder for on-disk state.
        #[arg(long)]
        data: Option<PathBuf>,
        /// A TOML config file (flags override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Do not pin shards to cores.
        #[arg(long)]
        no_pin: bool,
        /// Which node of the config's `[cluster]` list this process is.
        #[arg(long, value_name = "ID")]
        node: Option<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let Command::Serve { listen, admin, shards, data, config, no_pin, node } = Cli::parse().command;
    let mut cfg = match config {
        Some(path) => match Config::from_toml_file(&path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if let Some(a) = admin {
        cfg.admin = a;
    }
    if let Some(s) = shards {
        cfg.shards = s;
    }
    if let Some(d) = data {
        cfg.data = d;
    }
    if no_pin {
        cfg.pin_cores = false;
    }
    if node.is_some() {
        cfg.node = node;
    }
    if let Err(e) = std::fs::create_dir_all(&cfg.data) {
        tracing::error!("cannot create data folder {}: {e}", cfg.data.display());
        return ExitCode::from(2);
    }
    match Server::new(cfg).with_builtin_parties().serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
