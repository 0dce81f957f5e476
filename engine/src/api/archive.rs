//! What a room keeps in its store's `archives` keyspace, in rkyv: the archive of a
//! sleeping room's connections (id, uri, tags, state, and where its socket lives, for each
//! open connection while its instance and registry are dropped), and a party's own
//! snapshot ([`crate::Snapshot`]).
//!
//! A woken room does not deserialize its archive: [`ArchivedConns`] keeps the validated
//! bytes and finds one connection by socket (binary search), by id or by tag (sorted
//! indexes written with the archive), so a message from one connection rebuilds that
//! connection only, and a tag lookup reads only the connections that have the tag.
//!
//! Layout of both: a 24-byte header (a magic naming the kind, `PLRA` or `PLSN`, the format
//! version as u32 LE, the payload length as u64 LE, the xxh3-64 checksum of the payload as
//! u64 LE), then the rkyv payload. Reading checks the header and the checksum, copies the
//! payload into an aligned buffer (fjall's values are not aligned) and validates it with
//! bytecheck before anything is read from it; any failure is an [`ArchiveError`] that
//! names what was wrong.

use super::Connection;
use super::runtime::Runtime;
use crate::route::{ConnId, NodeId, ShardAddr};
use bytes::Bytes;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use std::rc::Rc;

/// The kind of archive under which a room's connections are stored (cleared when the
/// server starts: they describe sockets of an earlier process).
pub(crate) const REGISTRY: u8 = 0;

/// The kind of archive under which a party's snapshot is stored (kept across restarts).
pub(crate) const SNAPSHOT: u8 = 1;

const REGISTRY_MAGIC: [u8; 4] = *b"PLRA";
const SNAPSHOT_MAGIC: [u8; 4] = *b"PLSN";
const VERSION: u32 = 2;
const HEADER: usize = 4 + 4 + 8 + 8;

/// One connection of a sleeping room.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct ConnRecord {
    pub node: u16,
    pub shard: u16,
    pub seq: u64,
    pub id: String,
    /// The uri: `uri_prefixes[uri_prefix] + id + uri_rest` when `uri_prefix` names one of
    /// the archive's shared prefixes (most uris are one room's URL with the id at the end,
    /// so a room stores that once), else `uri_rest` alone ([`NO_PREFIX`]).
    pub uri_prefix: u32,
    pub uri_rest: String,
    /// Tags beyond the id.
    pub tags: Vec<String>,
    pub state: Option<Vec<u8>>,
}

/// `ConnRecord::uri_prefix` of a uri kept whole.
pub(crate) const NO_PREFIX: u32 = u32::MAX;

impl ConnRecord {
    /// The connection's uri, given the archive's shared prefixes.
    fn uri(prefix: Option<&str>, id: &str, rest: &str) -> String {
        match prefix {
            Some(prefix) => [prefix, id, rest].concat(),
            None => rest.to_owned(),
        }
    }
}

/// The record of a connection, for the archive (its uri whole until the archive shares
/// the prefixes).
pub(crate) fn record_of(conn: &Connection) -> ConnRecord {
    let cid = conn.cid();
    ConnRecord {
        node: cid.edge.node.0,
        shard: cid.edge.shard,
        seq: cid.seq,
        id: conn.id().to_owned(),
        uri_prefix: NO_PREFIX,
        uri_rest: conn.uri().to_owned(),
        tags: conn.extra_tags(),
        state: conn.state().map(|s| s.to_vec()),
    }
}

/// The connection an archived record describes, as it was when the room went to sleep
/// (only this record is read).
fn connection_of(
    runtime: &Rc<Runtime>,
    archive: &ArchivedRegistryArchive,
    record: &ArchivedConnRecord,
) -> Connection {
    let cid = ConnId {
        edge: ShardAddr { node: NodeId(record.node.to_native()), shard: record.shard.to_native() },
        seq: record.seq.to_native(),
    };
    let uri = ConnRecord::uri(
        prefix_of(archive, record.uri_prefix.to_native()),
        &record.id,
        &record.uri_rest,
    );
    let conn = Connection::new(runtime.clone(), cid, record.id.as_str().into(), uri);
    // The tags passed the rules when the connection was accepted.
    let _ = conn.set_tags(record.tags.iter().map(|t| t.as_str().to_owned()).collect());
    conn.restore_state(record.state.as_ref().map(|s| Bytes::copy_from_slice(s)));
    conn
}

/// Shared prefix `at` of an archive's uris (validated to exist when the archive opened).
fn prefix_of(archive: &ArchivedRegistryArchive, at: u32) -> Option<&str> {
    (at != NO_PREFIX).then(|| archive.uri_prefixes[at as usize].as_str())
}

/// The connections with one tag: positions in [`RegistryArchive::conns`], ascending.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct TagIndex {
    pub tag: String,
    pub conns: Vec<u32>,
}

/// A sleeping room's connections, with the indexes a woken room reads them by.
#[derive(
    Debug, Default, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub(crate) struct RegistryArchive {
    /// Sorted by socket (node, shard, seq).
    pub conns: Vec<ConnRecord>,
    /// Positions in `conns`, sorted by id.
    pub by_id: Vec<u32>,
    /// Every tag beyond the ids, sorted by tag.
    pub tags: Vec<TagIndex>,
    /// The uri prefixes the records share (see [`ConnRecord::uri_prefix`]).
    pub uri_prefixes: Vec<String>,
}

impl RegistryArchive {
    /// The archive of these connections, sorted and indexed.
    pub fn new(mut conns: Vec<ConnRecord>) -> RegistryArchive {
        conns.sort_unstable_by_key(|c| (c.node, c.shard, c.seq));
        // Share what comes before the id in the uris (one room's URL, as a rule).
        let mut uri_prefixes: Vec<String> = Vec::new();
        let mut interned: std::collections::HashMap<String, u32> = Default::default();
        for c in &mut conns {
            if c.uri_prefix != NO_PREFIX || c.id.is_empty() {
                continue;
            }
            let Some(at) = c.uri_rest.rfind(c.id.as_str()) else { continue };
            let prefix = &c.uri_rest[..at];
            let index = match interned.get(prefix) {
                Some(index) => *index,
                None => {
                    let Ok(index) = u32::try_from(uri_prefixes.len()) else { continue };
                    interned.insert(prefix.to_owned(), index);
                    uri_prefixes.push(prefix.to_owned());
                    index
                }
            };
            c.uri_rest = c.uri_rest[at + c.id.len()..].to_owned();
            c.uri_prefix = index;
        }
        let position = |i: usize| u32::try_from(i).expect("a room has under 4 billion connections");
        let mut by_id: Vec<u32> = (0..conns.len()).map(position).collect();
        by_id.sort_by(|a, b| conns[*a as usize].id.cmp(&conns[*b as usize].id));
        let mut tags: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
        for (i, c) in conns.iter().enumerate() {
            for tag in &c.tags {
                tags.entry(tag.as_str()).or_default().push(position(i));
            }
        }
        let tags =
            tags.into_iter().map(|(tag, conns)| TagIndex { tag: tag.to_owned(), conns }).collect();
        RegistryArchive { conns, by_id, tags, uri_prefixes }
    }
}

/// A woken room's archive, read in place: each connection is rebuilt when it is first
/// needed and then leaves the archive (`taken`), as does one that closes.
pub(crate) struct ArchivedConns {
    /// The validated payload (never changed after [`ArchivedConns::open`]).
    bytes: AlignedVec<16>,
    /// Per record: rebuilt into the registry or closed since the wake.
    taken: Vec<bool>,
    left: usize,
    runtime: Rc<Runtime>,
}

impl ArchivedConns {
    /// Checks an archive written by [`encode`] (frame, checksum, bytecheck) and keeps it.
    pub fn open(runtime: Rc<Runtime>, bytes: &[u8]) -> Result<ArchivedConns, ArchiveError> {
        let bytes = unframe(REGISTRY_MAGIC, bytes)?;
        let archive = rkyv::access::<ArchivedRegistryArchive, rancor::Error>(&bytes)
            .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        let len = archive.conns.len();
        let in_range = |p: &rkyv::rend::u32_le| (p.to_native() as usize) < len;
        let prefixes = archive.uri_prefixes.len();
        // The id index must list every record once (lookups take what it lists).
        let mut listed = vec![false; len];
        let by_id_is_a_permutation = archive.by_id.iter().all(|p| {
            let at = p.to_native() as usize;
            at < len && !std::mem::replace(&mut listed[at], true)
        });
        if !by_id_is_a_permutation
            || archive.by_id.len() != len
            || !archive.by_id.iter().all(in_range)
            || !archive.tags.iter().all(|t| t.conns.iter().all(in_range))
            || !archive.conns.iter().all(|c| {
                let p = c.uri_prefix.to_native();
                p == NO_PREFIX || (p as usize) < prefixes
            })
        {
            return Err(ArchiveError::Invalid("an index points past the connections".into()));
        }
        Ok(ArchivedConns { bytes, taken: vec![false; len], left: len, runtime })
    }

    fn archive(&self) -> &ArchivedRegistryArchive {
        // SAFETY: `bytes` was validated as an `ArchivedRegistryArchive` in `open` and is
        // never written afterwards.
        unsafe { rkyv::access_unchecked::<ArchivedRegistryArchive>(&self.bytes) }
    }

    /// Connections still only in the archive.
    pub fn len(&self) -> usize {
        self.left
    }

    /// The position of the connection on socket `cid`, if it is still in the archive.
    pub fn find(&self, cid: ConnId) -> Option<usize> {
        let key = (cid.edge.node.0, cid.edge.shard, cid.seq);
        let conns = &self.archive().conns;
        let at = conns
            .binary_search_by(|c| {
                (c.node.to_native(), c.shard.to_native(), c.seq.to_native()).cmp(&key)
            })
            .ok()?;
        (!self.taken[at]).then_some(at)
    }

    /// Positions of the connections with this id still in the archive.
    pub fn with_id(&self, id: &str) -> Vec<usize> {
        let archive = self.archive();
        let id_at = |p: &rkyv::rend::u32_le| archive.conns[p.to_native() as usize].id.as_str();
        let start = archive.by_id.partition_point(|p| id_at(p) < id);
        archive.by_id[start..]
            .iter()
            .take_while(|p| id_at(p) == id)
            .map(|p| p.to_native() as usize)
            .filter(|at| !self.taken[*at])
            .collect()
    }

    /// Positions of the connections with `tag` (their id or another tag) still in the
    /// archive, ascending.
    pub fn with_tag(&self, tag: &str) -> Vec<usize> {
        let archive = self.archive();
        let mut found = self.with_id(tag);
        if let Ok(at) = archive.tags.binary_search_by(|t| t.tag.as_str().cmp(tag)) {
            let listed = archive.tags[at].conns.iter().map(|p| p.to_native() as usize);
            found.extend(listed.filter(|at| !self.taken[*at]));
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Positions of every connection still in the archive.
    pub fn all(&self) -> Vec<usize> {
        (0..self.taken.len()).filter(|at| !self.taken[*at]).collect()
    }

    /// The socket of the connection at `at`.
    pub fn cid(&self, at: usize) -> ConnId {
        let c = &self.archive().conns[at];
        ConnId {
            edge: ShardAddr { node: NodeId(c.node.to_native()), shard: c.shard.to_native() },
            seq: c.seq.to_native(),
        }
    }

    /// Rebuilds the connection at `at` and takes it out of the archive.
    pub fn take(&mut self, at: usize) -> Connection {
        debug_assert!(!self.taken[at]);
        self.taken[at] = true;
        self.left -= 1;
        let archive = self.archive();
        connection_of(&self.runtime, archive, &archive.conns[at])
    }

    /// The records still in the archive, for the next one (an error if one does not
    /// deserialize: dropping it would lose a socket the room still counts).
    pub fn remaining_records(&self) -> Result<Vec<ConnRecord>, String> {
        self.all().into_iter().map(|at| self.record(at)).collect()
    }

    /// The record at `at`, its uri whole (the next archive shares its own prefixes).
    pub fn record(&self, at: usize) -> Result<ConnRecord, String> {
        let archive = self.archive();
        let mut c = rkyv::deserialize::<ConnRecord, rancor::Error>(&archive.conns[at])
            .map_err(|e| e.to_string())?;
        c.uri_rest = ConnRecord::uri(prefix_of(archive, c.uri_prefix), &c.id, &c.uri_rest);
        c.uri_prefix = NO_PREFIX;
        Ok(c)
    }
}

/// Why an archive could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArchiveError {
    /// Shorter than its header, or its length field disagrees with its size.
    Truncated { size: usize },
    /// Not an archive of this format or version.
    Format,
    /// The payload's checksum does not match: the bytes changed.
    Checksum,
    /// The payload is not a valid archive (bytecheck said why).
    Invalid(String),
}

impl std::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchiveError::Truncated { size } => write!(f, "archive truncated ({size} bytes)"),
            ArchiveError::Format => f.write_str("not a partyline archive of this kind and version"),
            ArchiveError::Checksum => f.write_str("archive checksum mismatch"),
            ArchiveError::Invalid(e) => write!(f, "archive does not validate: {e}"),
        }
    }
}

/// Serializes `archive` with its header and checksum.
pub(crate) fn encode(archive: &RegistryArchive) -> Result<Bytes, String> {
    let payload = rkyv::to_bytes::<rancor::Error>(archive).map_err(|e| e.to_string())?;
    release_scratch(payload.len());
    frame(REGISTRY_MAGIC, &payload)
}

/// Payloads from which serializing drops rkyv's scratch arena afterwards.
const SCRATCH_KEEP_BYTES: usize = 16 * 1024;

/// rkyv keeps a per-thread scratch arena as large as the largest value it serialized: one
/// room of 15,000 connections put to sleep would leave about 400 KB on the shard for good.
/// After a large payload (`len` bytes) the arena is dropped; small ones keep reusing it.
pub(crate) fn release_scratch(len: usize) {
    if len >= SCRATCH_KEEP_BYTES {
        rkyv::util::clear_arena();
    }
}

/// A page of a sleeping room's connections, read from its archive (checked whole, only
/// the page deserialized): the records after socket `after` in socket order, at most
/// `limit`, their uris whole; and how many the archive holds. For the admin API.
pub(crate) fn page(
    bytes: &[u8],
    after: Option<ConnId>,
    limit: usize,
) -> Result<(usize, Vec<ConnRecord>), ArchiveError> {
    let aligned = unframe(REGISTRY_MAGIC, bytes)?;
    let archive = rkyv::access::<ArchivedRegistryArchive, rancor::Error>(&aligned)
        .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    let conns = &archive.conns;
    let start = after.map_or(0, |a| {
        let key = (a.edge.node.0, a.edge.shard, a.seq);
        conns.partition_point(|c| {
            (c.node.to_native(), c.shard.to_native(), c.seq.to_native()) <= key
        })
    });
    let records = conns[start..]
        .iter()
        .take(limit)
        .map(|c| {
            let mut r = rkyv::deserialize::<ConnRecord, rancor::Error>(c)
                .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
            let prefix = archive.uri_prefixes.get(r.uri_prefix as usize).map(|p| p.as_str());
            r.uri_rest = ConnRecord::uri(prefix, &r.id, &r.uri_rest);
            r.uri_prefix = NO_PREFIX;
            Ok(r)
        })
        .collect::<Result<Vec<_>, ArchiveError>>()?;
    Ok((conns.len(), records))
}

/// Reads a whole archive written by [`encode`], checking everything first.
#[cfg(test)]
pub(crate) fn decode(bytes: &[u8]) -> Result<RegistryArchive, ArchiveError> {
    let aligned = unframe(REGISTRY_MAGIC, bytes)?;
    let archived = rkyv::access::<ArchivedRegistryArchive, rancor::Error>(&aligned)
        .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    rkyv::deserialize::<RegistryArchive, rancor::Error>(archived)
        .map_err(|e| ArchiveError::Invalid(e.to_string()))
}

/// Frames a party snapshot's payload (from [`crate::api::snapshot::save`]).
pub(crate) fn encode_snapshot(payload: &[u8]) -> Result<Bytes, String> {
    frame(SNAPSHOT_MAGIC, payload)
}

/// Checks a snapshot's frame; its payload, aligned, for [`crate::api::snapshot::restore`]
/// (which validates it).
pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<AlignedVec<16>, ArchiveError> {
    unframe(SNAPSHOT_MAGIC, bytes)
}

/// The header and checksum around a payload.
fn frame(magic: [u8; 4], payload: &[u8]) -> Result<Bytes, String> {
    let len = u32::try_from(payload.len()).map_err(|_| "archive over 4 GiB".to_owned())?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&magic);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&u64::from(len).to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out.into())
}

/// Checks the header and checksum; the payload, copied into an aligned buffer.
fn unframe(magic: [u8; 4], bytes: &[u8]) -> Result<AlignedVec<16>, ArchiveError> {
    let truncated = ArchiveError::Truncated { size: bytes.len() };
    let (header, payload) = bytes.split_at_checked(HEADER).ok_or(truncated.clone())?;
    if header[..4] != magic || header[4..8] != VERSION.to_le_bytes() {
        return Err(ArchiveError::Format);
    }
    let len = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if u64::try_from(payload.len()).ok() != Some(len) {
        return Err(truncated);
    }
    let checksum = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
    if xxhash_rust::xxh3::xxh3_64(payload) != checksum {
        return Err(ArchiveError::Checksum);
    }
    // fjall's values are not aligned; rkyv's archives must be.
    let mut aligned = AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    Ok(aligned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RegistryArchive {
        RegistryArchive::new(vec![
            ConnRecord {
                node: 0,
                shard: 1,
                seq: 7,
                id: "alice".into(),
                uri_prefix: NO_PREFIX,
                uri_rest: "ws://h/parties/main/r?_pk=alice".into(),
                tags: vec!["red".into()],
                state: Some(b"{\"x\":1}".to_vec()),
            },
            ConnRecord { seq: 8, id: "bob".into(), state: None, tags: vec![], ..sample_one() },
        ])
    }

    fn sample_one() -> ConnRecord {
        ConnRecord {
            node: 0,
            shard: 0,
            seq: 1,
            id: "x".into(),
            uri_prefix: NO_PREFIX,
            uri_rest: "ws://h/".into(),
            tags: vec![],
            state: None,
        }
    }

    #[test]
    fn a_page_of_an_archive_is_in_socket_order_with_whole_uris() {
        let mut conns: Vec<ConnRecord> = (0..10u64)
            .map(|i| ConnRecord {
                shard: u16::try_from(i % 3).unwrap(),
                seq: 100 - i,
                id: format!("c{i}"),
                uri_rest: format!("ws://h/parties/main/r?_pk=c{i}"),
                ..sample_one()
            })
            .collect();
        conns.push(ConnRecord { node: 1, ..sample_one() });
        let bytes = encode(&RegistryArchive::new(conns)).unwrap();
        let (total, first) = page(&bytes, None, 4).unwrap();
        assert_eq!(total, 11);
        let order =
            |p: &[ConnRecord]| p.iter().map(|c| (c.node, c.shard, c.seq)).collect::<Vec<_>>();
        assert_eq!(order(&first), [(0, 0, 91), (0, 0, 94), (0, 0, 97), (0, 0, 100)]);
        assert_eq!(first[0].uri_rest, "ws://h/parties/main/r?_pk=c9", "the uri whole again");
        let last = first.last().unwrap();
        let after = ConnId {
            edge: ShardAddr { node: NodeId(last.node), shard: last.shard },
            seq: last.seq,
        };
        let (_, rest) = page(&bytes, Some(after), 100).unwrap();
        assert_eq!(rest.len(), 7);
        assert_eq!(order(&rest)[0], (0, 1, 93));
        assert_eq!(order(&rest)[6], (1, 0, 1));
        assert!(page(&bytes[..bytes.len() - 1], None, 1).is_err(), "a damaged archive says so");
    }

    #[test]
    fn archives_round_trip_and_every_damage_is_caught() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(decode(&bytes).unwrap(), sample());
        // A uri ending with the id shares its prefix; another stays whole.
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.uri_prefixes, ["ws://h/parties/main/r?_pk="]);
        assert_eq!(
            (decoded.conns[0].uri_prefix, decoded.conns[0].uri_rest.as_str()),
            (NO_PREFIX, "ws://h/")
        );
        assert_eq!((decoded.conns[1].uri_prefix, decoded.conns[1].uri_rest.as_str()), (0, ""));
        // Unaligned input (as fjall returns it) reads the same.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(decode(&shifted[1..]).unwrap(), sample());
        // Any flipped byte in the payload fails the checksum.
        for at in [HEADER, HEADER + 5, bytes.len() - 1] {
            let mut bad = bytes.to_vec();
            bad[at] ^= 0x40;
            assert_eq!(decode(&bad), Err(ArchiveError::Checksum), "byte {at}");
        }
        let mut bad = bytes.to_vec();
        bad[0] = b'X';
        assert_eq!(decode(&bad), Err(ArchiveError::Format));
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(ArchiveError::Truncated { .. })));
        assert!(matches!(decode(&bytes[..3]), Err(ArchiveError::Truncated { .. })));
        // A payload with a valid checksum that is not an archive fails validation.
        let junk = [0xFFu8; 64];
        let mut forged = bytes[..HEADER].to_vec();
        forged[8..16].copy_from_slice(&64u64.to_le_bytes());
        forged[16..24].copy_from_slice(&xxhash_rust::xxh3::xxh3_64(&junk).to_le_bytes());
        forged.extend_from_slice(&junk);
        assert!(matches!(decode(&forged), Err(ArchiveError::Invalid(_))));
        // A snapshot is not a registry archive, and the other way round.
        assert_eq!(decode(&encode_snapshot(b"payload").unwrap()), Err(ArchiveError::Format));
        assert_eq!(decode_snapshot(&bytes).err(), Some(ArchiveError::Format));
        assert_eq!(&*decode_snapshot(&encode_snapshot(b"payload").unwrap()).unwrap(), b"payload");
    }
}
