//! [`YDoc`]: a Yjs document kept in a room's storage, usable by any party. Every update is
//! applied, then written before it is sent on or answered from (a `put` returns once
//! durable, with group commit), so an update the room has passed on survives `kill -9`,
//! and one `yrs` cannot apply is never stored. Storage holds a
//! snapshot (the whole document as one update) and a log of the updates since:
//!
//! ```text
//! y:s:<part, 4 hex>                 the snapshot, in parts of at most 128 KiB
//! y:u:<seq, 16 hex>:<part, 4 hex>   each update since, in parts of at most 128 KiB
//! ```
//!
//! Loading reads the snapshot, then the log in order. When the log passes
//! [`LOG_UPDATES_MAX`] updates or [`LOG_BYTES_MAX`] bytes, the document is written as a new
//! snapshot and the log deleted, in one transaction. Updates are checked
//! ([`super::wire::update_v1`]) before `yrs` decodes them.

use super::wire;
use crate::{Error, ListOptions, Result, Room, Storage};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Transact, Update};

/// Updates in the log past which the document is compacted into a snapshot.
pub const LOG_UPDATES_MAX: usize = 500;

/// Bytes of updates in the log past which the document is compacted into a snapshot.
pub const LOG_BYTES_MAX: usize = 1024 * 1024;

/// Memory a loaded document is charged per byte of its encoding: measured about 4x for
/// text documents (`yjs-bench`, docs/benchmarks.md).
pub const MEMORY_PER_ENCODED_BYTE: usize = 4;

/// Bytes of one stored part (the storage's value limit).
const PART_BYTES: usize = partyline_storage::limits::VALUE_SIZE_MAX;

/// Parts one snapshot may have: a document of at most 255 MiB.
const SNAPSHOT_PARTS_MAX: usize = 2_040;

const SNAPSHOT: &str = "y:s:";
const LOG: &str = "y:u:";

/// A Yjs document and where it is kept.
pub struct YDoc {
    doc: Doc,
    /// The room whose storage keeps the document.
    room: Room,
    /// The next update's sequence number, and the first still in the log.
    next_seq: u64,
    first_seq: u64,
    log_bytes: usize,
    snapshot_parts: usize,
    /// Bytes of the snapshot as last written or read.
    snapshot_bytes: usize,
    /// The document in memory may hold what storage does not (see [`YDoc::commit`]).
    stale: bool,
}

impl std::fmt::Debug for YDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YDoc")
            .field("log", &(self.next_seq - self.first_seq))
            .field("log_bytes", &self.log_bytes)
            .finish_non_exhaustive()
    }
}

impl YDoc {
    /// Loads the document kept in `room`'s storage (empty if none).
    pub async fn load(room: &Room) -> Result<YDoc> {
        let doc = Doc::new();
        let snapshot = read_parts(room.storage(), SNAPSHOT).await?;
        let snapshot_parts = snapshot.len();
        let snapshot: Vec<u8> = snapshot.into_iter().flat_map(|(_, v)| v).collect();
        let snapshot_bytes = snapshot.len();
        if !snapshot.is_empty() {
            apply_stored(&doc, &snapshot, "snapshot");
        }
        let mut this = YDoc {
            doc,
            room: room.clone(),
            next_seq: 0,
            first_seq: 0,
            log_bytes: 0,
            snapshot_parts,
            snapshot_bytes,
            stale: false,
        };
        let log = read_parts(room.storage(), LOG).await?;
        let mut current: Option<(u64, Vec<u8>)> = None;
        for (key, value) in log {
            let Some(seq) = seq_of(&key) else { continue };
            match &mut current {
                Some((s, bytes)) if *s == seq => bytes.extend_from_slice(&value),
                _ => {
                    if let Some((s, bytes)) = current.take() {
                        this.replay(s, &bytes);
                    }
                    current = Some((seq, value.to_vec()));
                }
            }
        }
        if let Some((s, bytes)) = current {
            this.replay(s, &bytes);
        }
        Ok(this)
    }

    fn replay(&mut self, seq: u64, bytes: &[u8]) {
        if self.next_seq == self.first_seq && self.log_bytes == 0 {
            self.first_seq = seq;
        }
        apply_stored(&self.doc, bytes, "logged update");
        self.next_seq = seq + 1;
        self.log_bytes += bytes.len();
    }

    /// The `yrs` document (read it; change it only through [`YDoc::apply`]).
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// The document's state vector (a sync step 1's payload).
    pub fn state_vector(&self) -> StateVector {
        self.doc.transact().state_vector()
    }

    /// What a peer at state vector `sv` lacks, as an update.
    pub fn diff_from(&self, sv: &StateVector) -> Vec<u8> {
        self.doc.transact().encode_state_as_update_v1(sv)
    }

    /// The whole document as one update.
    pub fn encode(&self) -> Vec<u8> {
        self.doc.transact().encode_state_as_update_v1(&StateVector::default())
    }

    /// The text of the root `Y.Text` named `name` (empty if there is none).
    pub fn text(&self, name: &str) -> String {
        let txn = self.doc.transact();
        txn.get_text(name).map(|t| t.get_string(&txn)).unwrap_or_default()
    }

    /// Checks, applies and stores (durably) an update; `Ok(false)` if it was empty. A
    /// malformed update is a client error (400) and changes nothing.
    pub async fn apply(&mut self, update: &[u8]) -> Result<bool> {
        let Some(decoded) = YDoc::check(update)? else { return Ok(false) };
        self.commit(update, decoded).await?;
        Ok(true)
    }

    /// Checks an update without changing anything: its decoding (`None` if it is empty),
    /// or a client error (400) if it is malformed.
    pub fn check(update: &[u8]) -> Result<Option<Update>> {
        wire::update_v1(update).map_err(|e| Error::client(400, e.to_string()))?;
        let decoded = Update::decode_v1(update).map_err(|e| Error::client(400, e.to_string()))?;
        Ok((!decoded.is_empty()).then_some(decoded))
    }

    /// Applies `update` and stores it durably (its encoding, `bytes`, in the log); from
    /// [`YDoc::check`], or a merge of such. Applied first, so an update `yrs` cannot apply
    /// (an error, or a panic that drops the room's instance) is never stored, and the
    /// room can always load what it stored. Until both steps succeed the document in
    /// memory may hold what storage does not: [`YDoc::is_stale`] says so, and
    /// [`YDoc::refresh`] reads it back before anything is answered from it.
    pub async fn commit(&mut self, bytes: &[u8], update: Update) -> Result<()> {
        let seq = self.next_seq;
        let parts: Vec<(String, &[u8])> = bytes
            .chunks(PART_BYTES)
            .enumerate()
            .map(|(i, part)| (format!("{LOG}{seq:016x}:{i:04x}"), part))
            .collect();
        if parts.len() > partyline_storage::limits::BATCH_KEYS_MAX {
            return Err(Error::client(413, "an update larger than 16 MiB"));
        }
        self.stale = true;
        self.doc
            .transact_mut()
            .apply_update(update)
            .map_err(|e| Error::client(400, format!("the update does not apply: {e}")))?;
        self.room
            .storage()
            .put_many(parts.iter().map(|(k, v)| (k.as_str(), bytes::Bytes::copy_from_slice(v))))
            .await?;
        self.stale = false;
        self.next_seq += 1;
        self.log_bytes += bytes.len();
        if self.next_seq - self.first_seq > LOG_UPDATES_MAX as u64 || self.log_bytes > LOG_BYTES_MAX
        {
            // The update is stored either way: a compaction that fails is tried again at
            // the next update, and `commit`'s `Err` keeps meaning "not stored".
            if let Err(e) = self.compact().await {
                tracing::warn!(error = %e, "yjs: compaction failed; the log stays");
            }
        }
        Ok(())
    }

    /// Whether the document in memory may differ from what is stored (a commit failed
    /// half-way).
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Reads the document back from storage if it is stale; nothing otherwise.
    pub async fn refresh(&mut self) -> Result<()> {
        if self.stale {
            *self = YDoc::load(&self.room).await?;
        }
        Ok(())
    }

    /// Writes the document as the snapshot and deletes the log, in one transaction.
    pub async fn compact(&mut self) -> Result<()> {
        let snapshot = self.encode();
        let parts: Vec<&[u8]> = snapshot.chunks(PART_BYTES).collect();
        if parts.len() > SNAPSHOT_PARTS_MAX {
            return Err(Error::client(507, "the document is too large to keep"));
        }
        let storage = self.room.storage();
        let logged = read_keys(storage, LOG).await?;
        let mut txn = storage.transaction().await?;
        for (i, part) in parts.iter().enumerate() {
            txn.put(format!("{SNAPSHOT}{i:04x}"), bytes::Bytes::copy_from_slice(part))?;
        }
        for i in parts.len()..self.snapshot_parts {
            txn.delete(format!("{SNAPSHOT}{i:04x}")).await?;
        }
        for key in &logged {
            txn.delete(key).await?;
        }
        txn.commit().await?;
        self.snapshot_parts = parts.len();
        self.snapshot_bytes = snapshot.len();
        self.first_seq = self.next_seq;
        self.log_bytes = 0;
        Ok(())
    }

    /// An estimate of the memory the loaded document holds, for the room's memory charge:
    /// [`MEMORY_PER_ENCODED_BYTE`] times its encoded size (snapshot and log), kept as it
    /// changes, so asking costs nothing.
    pub fn memory_bytes(&self) -> usize {
        (self.snapshot_bytes + self.log_bytes).saturating_mul(MEMORY_PER_ENCODED_BYTE)
    }

    /// Updates in the log now (compaction empties it).
    pub fn logged_updates(&self) -> u64 {
        self.next_seq - self.first_seq
    }
}

/// Applies a stored update; one that does not decode or apply is logged and skipped (it
/// passed the checks when it was written, so only a changed store produces one).
fn apply_stored(doc: &Doc, bytes: &[u8], what: &str) {
    let applied = wire::update_v1(bytes)
        .map_err(|e| e.to_string())
        .and_then(|()| Update::decode_v1(bytes).map_err(|e| e.to_string()))
        .and_then(|u| doc.transact_mut().apply_update(u).map_err(|e| e.to_string()));
    if let Err(e) = applied {
        tracing::error!(error = %e, "yjs: a stored {what} does not apply; skipped");
    }
}

/// Every entry under `prefix`, in key order, a page at a time.
async fn read_parts(storage: &Storage, prefix: &str) -> Result<Vec<(bytes::Bytes, bytes::Bytes)>> {
    let mut all = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = storage
            .list(ListOptions {
                prefix: Some(prefix.as_bytes().to_vec()),
                start_after: after.clone(),
                limit: Some(1_000),
                ..ListOptions::default()
            })
            .await?;
        let done = page.len() < 1_000;
        after = page.last().map(|(k, _)| k.to_vec());
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

async fn read_keys(storage: &Storage, prefix: &str) -> Result<Vec<String>> {
    Ok(read_parts(storage, prefix)
        .await?
        .into_iter()
        .filter_map(|(k, _)| String::from_utf8(k.to_vec()).ok())
        .collect())
}

/// The sequence number in a log key (`y:u:<seq>:<part>`).
fn seq_of(key: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(key).ok()?.strip_prefix(LOG)?;
    u64::from_str_radix(text.split(':').next()?, 16).ok()
}
