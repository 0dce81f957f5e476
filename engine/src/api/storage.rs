//! [`Storage`]: a room's durable key-value store and alarm, as party code sees it through
//! [`crate::Room::storage`]. The key-value calls are those of
//! [`partyline_storage::RoomStorage`] (PartyKit's API: bytes in, bytes out, every
//! acknowledged write fsynced, a small per-room read cache); alarm calls also tell the
//! room's home shard when to run `on_alarm`; `get_json` / `put_json` add typed access.
//!
//! ```no_run
//! use partyline::{Connection, Message, Party, Result, Room};
//!
//! #[derive(serde::Serialize, serde::Deserialize, Default)]
//! struct Score { points: u64 }
//!
//! struct Game { room: Room }
//!
//! impl Party for Game {
//!     async fn on_start(room: Room) -> Result<Self> {
//!         Ok(Game { room })
//!     }
//!     async fn on_message(&mut self, _m: Message, sender: &Connection) -> Result<()> {
//!         let storage = self.room.storage();
//!         let key = format!("score:{}", sender.id());
//!         let mut score: Score = storage.get_json(&key).await?.unwrap_or_default();
//!         score.points += 1;
//!         storage.put_json(&key, &score).await?; // durable when this returns
//!         // Run on_alarm in a minute (the room is loaded for it if it is not).
//!         storage.set_alarm(self.room.now_ms() + 60_000).await?;
//!         sender.send_json(&score.points)
//!     }
//!     async fn on_alarm(&mut self) -> Result<()> {
//!         self.room.broadcast(format!("a minute passed in {}", self.room.id()), &[])
//!     }
//! }
//! ```

use super::runtime::Runtime;
use crate::route::{RoomKey, ToHome};
use bytes::Bytes;
use partyline_storage::{Error, ListOptions, Result, RoomStorage, Transaction};
use std::cell::Cell;
use std::rc::Rc;

/// One room's storage. Valid only on the room's home shard, like the room.
pub struct Storage {
    /// `Err` only if the room's address cannot be namespaced (names over 64 KiB, which
    /// routes refuse long before): then every call returns that error.
    inner: std::result::Result<RoomStorage, Error>,
    runtime: Rc<Runtime>,
    key: RoomKey,
    /// Bumped by every `set_alarm` / `delete_alarm`: after `on_alarm`, the runtime clears
    /// the alarm that fired only if the handler did not set or delete one itself.
    alarm_changes: Cell<u64>,
    /// While `on_alarm` runs: `alarm_changes` when it started (the alarm that is firing
    /// counts as gone until the handler sets another).
    firing: Cell<Option<u64>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("party", &self.key.party)
            .field("room", &self.key.room)
            .finish_non_exhaustive()
    }
}

impl Storage {
    pub(crate) fn new(runtime: Rc<Runtime>, key: RoomKey) -> Storage {
        // The room is the only writer of its keys: its cache sees every change.
        let inner = runtime.store.room_with_cache(&key.party, &key.room);
        Storage { inner, runtime, key, alarm_changes: Cell::new(0), firing: Cell::new(None) }
    }

    fn room(&self) -> Result<&RoomStorage> {
        self.inner.as_ref().map_err(Clone::clone)
    }

    /// The value of `key`, if it is set.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.room()?.get(key).await
    }

    /// Values of up to 128 keys, in the order asked (`None` for a missing key).
    pub async fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Bytes>>> {
        self.room()?.get_many(keys).await
    }

    /// Stores `value` under `key`; returns once it is durable.
    pub async fn put(&self, key: impl AsRef<[u8]>, value: impl Into<Bytes>) -> Result<()> {
        self.room()?.put(key, value).await
    }

    /// Stores up to 128 entries atomically; returns once they are durable.
    pub async fn put_many<K: AsRef<[u8]>, V: Into<Bytes>>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        self.room()?.put_many(entries).await
    }

    /// Deletes `key`; whether it existed.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.room()?.delete(key).await
    }

    /// Deletes up to 128 keys atomically; how many existed.
    pub async fn delete_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<usize> {
        self.room()?.delete_many(keys).await
    }

    /// Deletes every key of the room (not its alarm); how many there were.
    pub async fn delete_all(&self) -> Result<usize> {
        self.room()?.delete_all().await
    }

    /// Entries in key byte order (or reverse), as `options` select; at most 1,000 unless
    /// `options.limit` says otherwise.
    pub async fn list(&self, options: ListOptions) -> Result<Vec<(Bytes, Bytes)>> {
        self.room()?.list(options).await
    }

    /// Starts a transaction: reads see its own writes, `commit` writes everything as one
    /// atomic, durable batch, and the room's other writes wait while it is open. Dropping
    /// it uncommitted rolls it back. Inside one, write through the transaction only: a
    /// `put` on the storage itself would wait for the transaction to end, which waits for
    /// the hook, which waits for the `put`.
    pub async fn transaction(&self) -> Result<Transaction<'_>> {
        Ok(self.room()?.transaction().await)
    }

    /// Waits until every write made so far is durable.
    pub async fn sync(&self) -> Result<()> {
        self.room()?.sync().await
    }

    /// The value of `key` decoded from JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> crate::Result<Option<T>> {
        match self.get(key).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Stores `value` as JSON under `key`; returns once it is durable.
    pub async fn put_json<T: serde::Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
    ) -> crate::Result<()> {
        Ok(self.put(key, serde_json::to_vec(value)?).await?)
    }

    /// When the room's alarm is set to go off (milliseconds since the Unix epoch).
    ///
    /// Inside `on_alarm`, as in Durable Objects, the alarm that is firing no longer counts:
    /// this is `None` unless the handler has set a new one (then that one), so `if
    /// get_alarm().is_none() { set_alarm(..) }` in `on_alarm` schedules the next run.
    pub async fn get_alarm(&self) -> Result<Option<u64>> {
        if self.firing.get() == Some(self.alarm_changes.get()) {
            return Ok(None);
        }
        self.room()?.get_alarm().await
    }

    /// `on_alarm` starts (`true`) or ends (`false`): see [`Storage::get_alarm`].
    pub(crate) fn set_firing(&self, firing: bool) {
        self.firing.set(firing.then(|| self.alarm_changes.get()));
    }

    /// Sets the room's one alarm (replacing any other) to `time_ms`, milliseconds since
    /// the Unix epoch ([`crate::Room::now_ms`] is now); durable when this returns.
    /// `on_alarm` runs at that time, or at once if it is past, loading the room if it is
    /// not loaded, after a restart too. Alarms have millisecond precision and fire at most
    /// a few milliseconds late on an idle server.
    pub async fn set_alarm(&self, time_ms: u64) -> Result<()> {
        self.set_alarm_quietly(time_ms).await?;
        self.alarm_changes.set(self.alarm_changes.get() + 1);
        Ok(())
    }

    /// Deletes the room's alarm, if one is set.
    pub async fn delete_alarm(&self) -> Result<()> {
        self.room()?.delete_alarm().await?;
        self.alarm_changes.set(self.alarm_changes.get() + 1);
        Ok(())
    }

    // ---- For the runtime's alarm handling -------------------------------------------

    pub(crate) fn alarm_changes(&self) -> u64 {
        self.alarm_changes.get()
    }

    /// Sets the alarm and schedules it, without counting as a change by party code.
    pub(crate) async fn set_alarm_quietly(&self, time_ms: u64) -> Result<()> {
        self.room()?.set_alarm(time_ms).await?;
        // The room's home is this shard: a direct call that never waits.
        let schedule = ToHome::Alarm { room: self.key.clone(), time: time_ms };
        let waits = self.runtime.router.to_home(schedule).is_some();
        debug_assert!(!waits, "a room's alarm is scheduled on its own shard");
        Ok(())
    }

    /// Deletes the alarm without counting as a change by party code.
    pub(crate) async fn delete_alarm_quietly(&self) -> Result<()> {
        self.room()?.delete_alarm().await
    }

    // ---- For hibernation --------------------------------------------------------------

    pub(crate) async fn get_archive(&self, kind: u8) -> Result<Option<Bytes>> {
        self.room()?.get_archive(kind).await
    }

    pub(crate) async fn put_archive(&self, kind: u8, bytes: Bytes) -> Result<()> {
        self.room()?.put_archive(kind, bytes).await
    }

    pub(crate) async fn delete_archive(&self, kind: u8) -> Result<()> {
        self.room()?.delete_archive(kind).await
    }

    /// Empties the room's read cache (it sleeps).
    pub(crate) fn clear_cache(&self) {
        if let Ok(room) = &self.inner {
            room.clear_cache();
        }
    }
}
