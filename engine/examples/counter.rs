//! A party of your own in about 20 lines: a shared counter. Every message increments it and
//! everyone in the room gets the new value; new connections get the current one.
//!
//! Run: `cargo run --example counter` (it takes the flags of `partyline serve`: `-- --help`),
//! then connect to ws://127.0.0.1:1999/parties/counter/any-room

use partyline::{ConnectContext, Connection, Message, Party, Result, Room, Server};

struct Counter {
    room: Room,
    count: u64,
}

impl Party for Counter {
    async fn on_start(room: Room) -> Result<Self> {
        Ok(Counter { room, count: 0 })
    }

    async fn on_connect(&mut self, conn: &Connection, _ctx: &ConnectContext) -> Result<()> {
        conn.send(self.count.to_string())
    }

    async fn on_message(&mut self, _message: Message, _sender: &Connection) -> Result<()> {
        self.count += 1;
        self.room.broadcast(self.count.to_string(), &[])
    }
}

fn main() -> std::process::ExitCode {
    Server::from_args().party::<Counter>("counter").run()
}
