//! The `partyline` binary: `partyline serve` runs a server with the built-in parties
//! (`main`, `echo`, `relay`, `ephemeral`, `items`, `presence`, `yjs`) on 127.0.0.1:1999, one shard per core, with
//! room storage in `./.partyline/storage`, like `partykit dev`. A party author's own binary
//! gets the same flags with `Server::from_args()`.

use clap::{Parser, Subcommand};
use partyline::{ServeArgs, Server};
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
    Serve(ServeArgs),
    /// Write a new party project (a party with every hook, a test, a README) into NAME/.
    New {
        /// The project's (and its party's) name: a-z 0-9 _ -, starting with a letter.
        name: String,
        /// The folder to create it in.
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// The engine crate to depend on [default: the one this binary was built from].
        #[arg(long, value_name = "DIR")]
        engine: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => match Server::from_serve_args(&args) {
            Ok(server) => server.with_builtin_parties().with_welcome_page().run(),
            Err(code) => code,
        },
        Command::New { name, path, engine } => {
            let engine = engine.unwrap_or_else(partyline::scaffold::engine_path);
            match partyline::scaffold::new_project(&path, &name, &engine) {
                Ok(dir) => {
                    let d = dir.display();
                    let said = format!(
                        "created {d}\n  cd {d} && cargo run -- --listen 127.0.0.1:1999\n  cd {d} && cargo test\n"
                    );
                    // The command's output: what to type next.
                    let _ = std::io::Write::write_all(&mut std::io::stdout(), said.as_bytes());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    let said = format!("partyline new: {e}\n");
                    let _ = std::io::Write::write_all(&mut std::io::stderr(), said.as_bytes());
                    ExitCode::from(2)
                }
            }
        }
    }
}
