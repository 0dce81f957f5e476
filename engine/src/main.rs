//! The `partyline` binary: `partyline serve` runs a server with the built-in parties
//! (`main`, `echo`, `relay`, `ephemeral`, `items`, `presence`) on 127.0.0.1:1999, one shard per core, with
//! room storage in `./.partyline/storage`, like `partykit dev`. A party author's own binary
//! gets the same flags with `Server::from_args()`.

use clap::{Parser, Subcommand};
use partyline::{ServeArgs, Server};
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
    Serve(ServeArgs),
}

fn main() -> ExitCode {
    let Command::Serve(args) = Cli::parse().command;
    match Server::from_serve_args(&args) {
        Ok(server) => server.with_builtin_parties().run(),
        Err(code) => code,
    }
}
