//! The storage limits, PartyKit's by default: what each bounds and the error beyond it.
//! A [`Profile`] picks the set; every check happens before a request reaches the storage
//! thread, so a refused call costs nothing there and changes nothing on disk.

/// Longest key, in bytes, in the PartyKit profile (Durable Objects: 2 KiB).
pub const KEY_SIZE_MAX: usize = 2_048;

/// Largest value, in bytes, in the PartyKit profile (Durable Objects: 128 KiB).
pub const VALUE_SIZE_MAX: usize = 131_072;

/// Most keys or entries in one `get_many`, `put_many` or `delete_many` call.
pub const BATCH_KEYS_MAX: usize = 128;

/// Largest key plus value in the large profile (2 MB, Durable Objects' SQLite-backed limit).
pub const LARGE_ENTRY_SIZE_MAX: usize = 2 * 1024 * 1024;

/// Largest archive of one room (the engine's record of a sleeping room: its connections
/// with their state, and a party's own snapshot). A room whose archive would be larger
/// does not sleep.
pub const ARCHIVE_SIZE_MAX: usize = 256 * 1024 * 1024;

/// An archive at least this large is written to disk at once as its own table (fjall's
/// ingestion, on the storage thread) instead of through the journal and the memtable,
/// where it would wait in memory for the memtable to fill: a sleeping room of a few
/// hundred connections and up keeps nothing of them in memory.
pub const ARCHIVE_INGEST_BYTES: usize = 64 * 1024;

/// Archives are stored in chunks of this size (one key each, replaced in one atomic step),
/// so writing a large one never builds a block the size of the whole archive.
pub const ARCHIVE_CHUNK_BYTES: usize = 8 * 1024;

/// Largest memtable of the archives keyspace: small archives wait in memory up to this
/// much in all, then go to disk together.
pub const ARCHIVES_MEMTABLE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Most writes one transaction may buffer before its commit (it is one atomic batch).
pub const TRANSACTION_WRITES_MAX: usize = 4_096;

/// Most entries one `list` call returns when it names no limit; a caller wanting more pages
/// with `start_after`.
pub const LIST_LIMIT_DEFAULT: usize = 1_000;

/// Longest key fjall stores (it panics beyond: a key's length is a u16).
pub const STORED_KEY_SIZE_MAX: usize = u16::MAX as usize;

/// Bytes an alarm's queue key puts before the room's namespace (its time).
pub const ALARM_QUEUE_PREFIX_SIZE: usize = 8;

/// Longest room namespace (two length prefixes, the party name and the room id): every
/// stored key is a namespace plus a key of at most [`KEY_SIZE_MAX`] bytes, or an alarm
/// prefix plus a namespace, and each must stay within [`STORED_KEY_SIZE_MAX`]. A room
/// whose name is longer gets `Error::NameTooLong` from every storage call.
pub const NAMESPACE_SIZE_MAX: usize = STORED_KEY_SIZE_MAX - KEY_SIZE_MAX;

/// Requests waiting for the storage thread. Beyond it a call fails at once with
/// `Error::Busy` (callers may be reactor threads, which must not block).
pub const QUEUE_MAX: usize = 65_536;

/// Requests one group commit takes at most, so one fsync covers many writes without
/// making the first writer of a burst wait for the whole burst.
pub const GROUP_MAX: usize = 1_024;

/// Default size of each room's cache of recently written and read values, in bytes.
pub const ROOM_CACHE_BYTES_DEFAULT: usize = 64 * 1024;

/// Default bytes all room caches of a store hold together.
pub const ROOM_CACHE_TOTAL_BYTES_DEFAULT: usize = 256 * 1024 * 1024;

/// Which size limits apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// PartyKit / Durable Objects KV: keys <= 2,048 bytes, values <= 131,072 bytes.
    #[default]
    Partykit,
    /// Keys <= 2,048 bytes and key plus value <= 2 MB.
    Large,
}

impl Profile {
    /// Checks one key.
    pub fn check_key(self, key: &[u8]) -> Result<(), crate::Error> {
        if key.len() > KEY_SIZE_MAX {
            return Err(crate::Error::KeyTooLarge { size: key.len(), max: KEY_SIZE_MAX });
        }
        Ok(())
    }

    /// Checks one key and its value.
    pub fn check_entry(self, key: &[u8], value: &[u8]) -> Result<(), crate::Error> {
        self.check_key(key)?;
        match self {
            Profile::Partykit if value.len() > VALUE_SIZE_MAX => {
                Err(crate::Error::ValueTooLarge { size: value.len(), max: VALUE_SIZE_MAX })
            }
            Profile::Large if key.len() + value.len() > LARGE_ENTRY_SIZE_MAX => {
                Err(crate::Error::ValueTooLarge {
                    size: value.len(),
                    max: LARGE_ENTRY_SIZE_MAX - key.len(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks the number of keys in one call.
    pub fn check_batch(self, count: usize) -> Result<(), crate::Error> {
        if count > BATCH_KEYS_MAX {
            return Err(crate::Error::BatchTooLarge { count, max: BATCH_KEYS_MAX });
        }
        Ok(())
    }
}

const _: () = assert!(KEY_SIZE_MAX < LARGE_ENTRY_SIZE_MAX);
const _: () = assert!(NAMESPACE_SIZE_MAX + KEY_SIZE_MAX <= STORED_KEY_SIZE_MAX);
const _: () = assert!(ALARM_QUEUE_PREFIX_SIZE + NAMESPACE_SIZE_MAX <= STORED_KEY_SIZE_MAX);
const _: () = assert!(GROUP_MAX <= QUEUE_MAX);

/// Keys [`crate::Store::usage`] counts at most in one room (a scan on the storage thread,
/// which other rooms' requests wait behind): about 10 ms.
pub const USAGE_SCAN_MAX: u64 = 100_000;
