//! partyline: a thread-per-core engine for PartyKit-style rooms.
//!
//! A room is a stateful, single-threaded instance of a [`Party`] addressed by
//! `(party, room id)`; every WebSocket and HTTP request with the same address reaches the
//! same instance. The server runs one glommio executor (a *shard*) per core; a socket stays
//! on the shard that accepted it (its edge) while its room runs on the room's home shard,
//! chosen by hashing the address. docs/ARCHITECTURE.md explains the design.
//!
//! A party in a few lines:
//!
//! ```no_run
//! use partyline::{Config, Connection, Message, Party, Result, Room, Server};
//!
//! /// Counts messages and tells everyone the count.
//! struct Counter { room: Room, count: u64 }
//!
//! impl Party for Counter {
//!     async fn on_start(room: Room) -> Result<Self> {
//!         Ok(Counter { room, count: 0 })
//!     }
//!     async fn on_message(&mut self, _message: Message, _sender: &Connection) -> Result<()> {
//!         self.count += 1;
//!         self.room.broadcast(self.count.to_string(), &[]);
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     Server::new(Config::default()).party::<Counter>("counter").serve()
//! }
//! ```

mod alarm;
mod clock;
mod config;
mod connection;
mod edge;
pub mod limits;
mod mesh;
mod park;
pub mod parties;
mod party;
mod room;
pub mod rt;
mod server;
mod shard;
mod storage;

pub use clock::Clock;
pub use config::Config;
pub use connection::Connection;
pub use limits::Limits;
pub use party::{ConnectContext, Error, Gate, Message, Party, Request, Result};
pub use partyline_protocol::http::Response;
/// The storage types party code meets: list options, transactions, errors, the store's
/// configuration.
pub use partyline_storage::{
    Error as StorageError, ListOptions, Profile as StorageProfile, StoreConfig, Transaction,
};
pub use room::Room;
pub use server::{FetchHandler, RunningServer, Server, ShardStats};
pub use storage::Storage;
