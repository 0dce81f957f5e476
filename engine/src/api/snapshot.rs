//! Party snapshots, beyond PartyKit: a party opts in to keeping its own fields across
//! sleep, unload and restart with no storage code of its own. It puts the fields it wants
//! kept in one type deriving rkyv's `Archive`, `Serialize` and `Deserialize`, and points
//! [`Snapshot::fields`] at them:
//!
//! ```
//! use partyline::{Party, Result, Room, Snapshot};
//!
//! #[derive(Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
//! struct Kept { count: u64, names: Vec<String> }
//!
//! struct Counter { room: Room, kept: Kept }
//!
//! impl Party for Counter {
//!     const HIBERNATE: bool = true;
//!     async fn on_start(room: Room) -> Result<Self> {
//!         Ok(Counter { room, kept: Kept::default() })
//!     }
//! }
//!
//! impl Snapshot for Counter {
//!     type Fields = Kept;
//!     fn fields(&mut self) -> &mut Kept { &mut self.kept }
//! }
//! // Register with `Server::party_with_snapshots::<Counter>("counter")`.
//! ```
//!
//! When the engine drops an instance on purpose (the room goes to sleep, is unloaded, or
//! the server shuts down), it saves the fields into the room's store (one durable write,
//! framed with a checksum like the connection archive). Whenever it builds an instance
//! (`on_start` on first load, after a wake, after a restart), it reads them back and puts
//! them in place right after `on_start` returns, before any event. An instance dropped
//! because a hook panicked or timed out is not saved (it may be inconsistent): the next
//! one gets the last saved fields. A snapshot that cannot be read is logged with the
//! room's name and deleted, and the room keeps what `on_start` built.

use super::Party;
use rkyv::api::high::{HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::de::Pool;
use rkyv::rancor::{Error as RkyvError, Strategy};
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

/// A party whose fields survive sleep, unload and restart. See the module docs.
pub trait Snapshot: Party {
    /// The fields kept: any type deriving rkyv's `Archive`, `Serialize`, `Deserialize`.
    type Fields: SnapshotFields;

    /// Where the fields live in the instance (read to save, overwritten to restore).
    fn fields(&mut self) -> &mut Self::Fields;
}

/// What rkyv needs of a snapshot's fields; every type deriving rkyv's `Archive`,
/// `Serialize` and `Deserialize` (with validation, the default) has it.
pub trait SnapshotFields:
    rkyv::Archive<
        Archived: for<'a> CheckBytes<HighValidator<'a, RkyvError>>
                      + rkyv::Deserialize<Self, Strategy<Pool, RkyvError>>,
    > + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, RkyvError>>
    + Sized
{
}

impl<T> SnapshotFields for T where
    T: rkyv::Archive<
            Archived: for<'a> CheckBytes<HighValidator<'a, RkyvError>>
                          + rkyv::Deserialize<T, Strategy<Pool, RkyvError>>,
        > + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, RkyvError>>
{
}

/// Serializes a party's fields (the payload, without the engine's frame).
pub(crate) fn save<P: Snapshot>(party: &mut P) -> Result<AlignedVec, String> {
    let payload = rkyv::to_bytes::<RkyvError>(party.fields()).map_err(|e| e.to_string())?;
    crate::api::archive::release_scratch(payload.len());
    Ok(payload)
}

/// Validates a payload written by [`save`] (aligned) and puts the fields in place.
pub(crate) fn restore<P: Snapshot>(party: &mut P, payload: &[u8]) -> Result<(), String> {
    let fields = rkyv::from_bytes::<P::Fields, RkyvError>(payload).map_err(|e| e.to_string())?;
    *party.fields() = fields;
    Ok(())
}
