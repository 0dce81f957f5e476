//! The y-websocket wire protocol (y-protocols' sync and awareness messages, lib0 encoding),
//! checked before `yrs` decodes it. `yrs`'s decoders trust the counts a message carries and
//! reserve memory for them (`with_capacity(count)`): a 10-byte message announcing four
//! billion entries would make the process ask for tens of gigabytes, and a failed
//! allocation aborts the whole server, every room with it. [`check`] walks a message's
//! whole structure first (sync step 1 and its state vector, step 2 and updates in the v1
//! update format, awareness, awareness queries) and refuses any count larger than the
//! bytes left to hold it, any length past the end, any nesting deeper than
//! [`ANY_DEPTH_MAX`], and any bytes left over; only a message that passes is given to
//! `yrs`. Several messages in one WebSocket message are allowed, as y-protocols' readers
//! allow them. (The engine's `yjs` party uses it; the `yjs_messages` fuzz target drives it
//! with `yrs` behind it.)

/// `messageSync`, `messageAwareness`, `messageAuth`, `messageQueryAwareness`.
pub const MSG_SYNC: u64 = 0;
pub const MSG_AWARENESS: u64 = 1;
pub const MSG_AUTH: u64 = 2;
pub const MSG_QUERY_AWARENESS: u64 = 3;

/// `messageYjsSyncStep1`, `messageYjsSyncStep2`, `messageYjsUpdate`.
pub const SYNC_STEP1: u64 = 0;
pub const SYNC_STEP2: u64 = 1;
pub const SYNC_UPDATE: u64 = 2;

/// Deepest nesting of `Any` values (objects in arrays in objects...) accepted.
pub const ANY_DEPTH_MAX: usize = 64;

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed y-protocols message: {}", self.0)
    }
}

type Checked<T> = Result<T, Malformed>;

/// A reader over one message's bytes that never reads past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn u8(&mut self) -> Checked<u8> {
        let b = *self.bytes.get(self.at).ok_or(Malformed("ends early"))?;
        self.at += 1;
        Ok(b)
    }

    /// lib0 `readVarUint` (7 bits a byte, at most 64 bits).
    fn var_uint(&mut self) -> Checked<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Malformed("a number longer than 64 bits"))
    }

    /// lib0 `readVarInt` (sign in the first byte); only skipped.
    fn var_int(&mut self) -> Checked<()> {
        for _ in 0..10 {
            if self.u8()? & 0x80 == 0 {
                return Ok(());
            }
        }
        Err(Malformed("a number longer than 64 bits"))
    }

    /// A count of things that each take at least `min_bytes`: never more than what is left.
    fn count(&mut self, min_bytes: usize) -> Checked<usize> {
        let n = self.var_uint()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_bytes) <= self.left() => Ok(n),
            _ => Err(Malformed("a count larger than the message")),
        }
    }

    fn take(&mut self, n: usize) -> Checked<&'a [u8]> {
        if n > self.left() {
            return Err(Malformed("a length past the end"));
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    /// lib0 `readVarUint8Array`.
    fn buf(&mut self) -> Checked<&'a [u8]> {
        let n = self.count(1)?;
        self.take(n)
    }

    /// lib0 `readVarString` (UTF-8).
    fn string(&mut self) -> Checked<&'a str> {
        let bytes = self.buf()?;
        std::str::from_utf8(bytes).map_err(|_| Malformed("a string that is not UTF-8"))
    }

    /// A clock or a length: `yrs` reads them as 32-bit numbers and wraps larger ones
    /// silently, so a larger one is refused.
    fn clock(&mut self) -> Checked<u64> {
        let n = self.var_uint()?;
        if n > u64::from(u32::MAX) {
            return Err(Malformed("a clock or length past 32 bits"));
        }
        Ok(n)
    }
}

/// `clock + len` as the end of a range of clocks, refused past 32 bits (`yrs` adds them in
/// 32 bits, and an overflow panics or wraps).
fn range_end(clock: u64, len: u64) -> Checked<u64> {
    match clock.checked_add(len) {
        Some(end) if end <= u64::from(u32::MAX) => Ok(end),
        _ => Err(Malformed("a range of clocks past 32 bits")),
    }
}

/// Checks a whole WebSocket message: one or more y-protocols messages.
pub fn check(message: &[u8]) -> Checked<()> {
    let mut r = Reader { bytes: message, at: 0 };
    if message.is_empty() {
        return Err(Malformed("empty"));
    }
    while r.left() > 0 {
        match r.var_uint()? {
            MSG_SYNC => match r.var_uint()? {
                SYNC_STEP1 => state_vector(r.buf()?)?,
                SYNC_STEP2 | SYNC_UPDATE => update_v1(r.buf()?)?,
                _ => return Err(Malformed("an unknown sync message")),
            },
            MSG_AWARENESS => awareness(r.buf()?)?,
            MSG_QUERY_AWARENESS => {}
            MSG_AUTH => return Err(Malformed("auth messages are the server's to send")),
            _ => return Err(Malformed("an unknown message type")),
        }
    }
    Ok(())
}

/// A state vector: (client, clock) pairs.
pub fn state_vector(bytes: &[u8]) -> Checked<()> {
    let mut r = Reader { bytes, at: 0 };
    for _ in 0..r.count(2)? {
        r.var_uint()?; // client
        r.clock()?;
    }
    end(&r)
}

/// An awareness update: (client, clock, JSON state) entries.
pub fn awareness(bytes: &[u8]) -> Checked<()> {
    let mut r = Reader { bytes, at: 0 };
    for _ in 0..r.count(3)? {
        r.var_uint()?;
        r.var_uint()?;
        let json = r.buf()?;
        serde_json::from_slice::<serde::de::IgnoredAny>(json)
            .map_err(|_| Malformed("an awareness state that is not JSON"))?;
    }
    end(&r)
}

/// An update in Yjs's v1 format: structs per client, then the delete set.
pub fn update_v1(bytes: &[u8]) -> Checked<()> {
    let mut r = Reader { bytes, at: 0 };
    // The smallest struct is an info byte and a length.
    for _ in 0..r.count(3)? {
        let structs = r.count(2)?;
        r.var_uint()?; // client
        let mut clock = r.clock()?;
        for _ in 0..structs {
            // Yjs never writes an empty struct, and `yrs` computes `len - 1` of one.
            let len = block(&mut r)?;
            if len == 0 {
                return Err(Malformed("a struct of no length"));
            }
            clock = range_end(clock, len)?;
        }
    }
    for _ in 0..r.count(2)? {
        r.var_uint()?; // client
        for _ in 0..r.count(2)? {
            let clock = r.clock()?;
            range_end(clock, r.clock()?)?;
        }
    }
    end(&r)
}

/// One struct: a GC or Skip range, or an item with its origins, parent and content; its
/// length in clocks.
fn block(r: &mut Reader<'_>) -> Checked<u64> {
    let info = r.u8()?;
    match info & 0b1_1111 {
        0 | 10 => return r.clock(), // GC or Skip: a length
        1..=9 => {}
        _ => return Err(Malformed("an unknown struct")),
    }
    if info & 0x80 != 0 {
        r.var_uint()?; // origin
        r.clock()?;
    }
    if info & 0x40 != 0 {
        r.var_uint()?; // right origin
        r.clock()?;
    }
    if info & 0xc0 == 0 {
        // No origins: the parent is named, by a root type's key or an item's id.
        // `yrs` reads the flag as 32 bits (wrapping) and tests for 1: anything but 0 or 1
        // would make the two readers part ways.
        match r.var_uint()? {
            1 => {
                r.string()?;
            }
            0 => {
                r.var_uint()?;
                r.clock()?;
            }
            _ => return Err(Malformed("a parent that is neither a key nor an id")),
        }
        if info & 0x20 != 0 {
            r.string()?; // parent sub (a map key)
        }
    }
    Ok(match info & 0b1_1111 {
        1 => r.clock()?, // deleted: a length
        // Legacy JSON content: Yjs no longer writes it, and `yrs` reads one string more
        // than the count says (so the two readers would part ways).
        2 => return Err(Malformed("legacy JSON content")),
        3 => {
            r.buf()?; // binary
            1
        }
        // A string counts its UTF-16 units, as Yjs does.
        4 => r.string()?.encode_utf16().count() as u64,
        5 => {
            r.string()?; // embed (JSON as a string)
            1
        }
        6 => {
            r.string()?; // format: key, then JSON
            r.string()?;
            1
        }
        7 => {
            // A type, as `yrs` reads it: one byte; XmlElement (3) carries a name. XmlHook
            // (5) is refused (Yjs writes a name, `yrs` reads none), so is a weak link (7).
            match r.u8()? {
                0 | 1 | 2 | 4 | 6 | 9 | 15 => {}
                3 => {
                    r.string()?;
                }
                _ => return Err(Malformed("a type this server does not read")),
            }
            1
        }
        8 => {
            let n = r.count(1)?;
            for _ in 0..n {
                any(r, 0)?;
            }
            n as u64
        }
        _ => {
            r.string()?; // a subdocument: its guid, then its options
            any(r, 0)?;
            1
        }
    })
}

/// lib0 `readAny`.
fn any(r: &mut Reader<'_>, depth: usize) -> Checked<()> {
    if depth >= ANY_DEPTH_MAX {
        return Err(Malformed("values nested too deep"));
    }
    match r.u8()? {
        127 | 126 | 121 | 120 => {} // undefined, null, false, true
        125 => r.var_int()?,
        124 => {
            r.take(4)?;
        }
        123 | 122 => {
            r.take(8)?;
        }
        119 => {
            r.string()?;
        }
        118 => {
            for _ in 0..r.count(2)? {
                r.string()?;
                any(r, depth + 1)?;
            }
        }
        117 => {
            for _ in 0..r.count(1)? {
                any(r, depth + 1)?;
            }
        }
        116 => {
            r.buf()?;
        }
        _ => return Err(Malformed("an unknown value type")),
    }
    Ok(())
}

fn end(r: &Reader<'_>) -> Checked<()> {
    if r.left() == 0 { Ok(()) } else { Err(Malformed("bytes after the end")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::encoder::Encode;
    use yrs::{Array, Doc, Map, ReadTxn, Text, Transact, WriteTxn};

    /// Real updates from yrs: every content type the party will meet.
    fn real_update() -> Vec<u8> {
        let doc = Doc::new();
        let text = doc.get_or_insert_text("text");
        let map = doc.get_or_insert_map("map");
        let array = doc.get_or_insert_array("array");
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "héllo wörld");
        text.remove_range(&mut txn, 1, 3);
        map.insert(&mut txn, "n", 1.5);
        map.insert(&mut txn, "s", "x");
        map.insert(
            &mut txn,
            "nested",
            yrs::any!({"a": [1, 2, {"b": null}], "bin": yrs::Any::Buffer(vec![1u8, 2].into())}),
        );
        array.push_back(&mut txn, true);
        array.push_back(&mut txn, -7i64);
        let xml = txn.get_or_insert_xml_fragment("xml");
        let _ = xml;
        txn.encode_update_v1()
    }

    #[test]
    fn real_messages_pass() {
        let update = real_update();
        update_v1(&update).unwrap();
        let doc = Doc::new();
        let sv = doc.transact().state_vector().encode_v1();
        state_vector(&sv).unwrap();
        for msg in [
            yrs::sync::Message::Sync(
                yrs::sync::SyncMessage::SyncStep1(yrs::StateVector::default()),
            ),
            yrs::sync::Message::Sync(yrs::sync::SyncMessage::SyncStep2(update.clone())),
            yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(update.clone())),
            yrs::sync::Message::AwarenessQuery,
        ] {
            check(&msg.encode_v1()).unwrap_or_else(|e| panic!("{msg:?}: {e}"));
        }
        // Two messages in one.
        let mut two = yrs::sync::Message::AwarenessQuery.encode_v1();
        two.extend(yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(update)).encode_v1());
        check(&two).unwrap();
        // An awareness update as y-protocols encodes it: 1 entry, client 7, clock 2, JSON.
        let json = br#"{"user":{"name":"ann"}}"#;
        let mut aw = vec![1, 7, 2, u8::try_from(json.len()).unwrap()];
        aw.extend_from_slice(json);
        let mut msg = vec![1, u8::try_from(aw.len()).unwrap()];
        msg.extend(aw);
        check(&msg).unwrap();
    }

    #[test]
    fn counts_larger_than_the_message_are_refused_before_yrs_sees_them() {
        // Sync step 1 whose state vector announces 2^32-1 entries in 6 bytes.
        let huge = [0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(check(&huge), Err(Malformed("a count larger than the message")));
        // An awareness update announcing a billion clients.
        assert!(check(&[1, 5, 0x80, 0x94, 0xeb, 0xdc, 0x03]).is_err());
        // An update announcing many structs, and a delete set with many ranges.
        assert!(update_v1(&[1, 0xff, 0xff, 0xff, 0x7f, 1, 0]).is_err());
        assert!(update_v1(&[0, 1, 1, 0xff, 0xff, 0x7f]).is_err());
        // An Any array nested past the limit.
        let mut deep = vec![1, 1, 1, 0, 8, 1, 0x01];
        deep.extend(std::iter::repeat_n([117u8, 1], 100).flatten());
        assert!(update_v1(&deep).is_err());
    }

    /// `yrs` reads clocks and lengths as 32-bit numbers, wrapping larger ones, and adds a
    /// range's clock and length in 32 bits (an overflow panics in debug builds: found by
    /// the `yjs_messages` fuzz target, in a delete-set range).
    #[test]
    fn clocks_and_ranges_past_32_bits_are_refused() {
        // The fuzz target's crash: a sync step 2 whose delete set ends past 2^32.
        let crash = [
            0, 1, 50, 0, 1, 37, 12, 3, 10, 0, 0, 0, 0, 0, 0, 0, 12, 3, 255, 255, 255, 12, 3, 255,
            255, 255, 255, 255, 86, 212, 19, 151, 0, 68, 0, 0, 0, 0, 255, 255, 255, 255, 255, 0,
            255, 255, 255, 255, 131, 255, 255, 12, 3,
        ];
        assert!(check(&crash).is_err());
        // A delete-set range: clock 2^32 - 2, length 5.
        let range = [0, 1, 1, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f, 5];
        assert_eq!(update_v1(&range), Err(Malformed("a range of clocks past 32 bits")));
        assert!(update_v1(&[0, 1, 1, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f, 1]).is_ok(), "it fits");
        // A clock of 2^32 in a state vector.
        assert!(state_vector(&[1, 1, 0x80, 0x80, 0x80, 0x80, 0x10]).is_err());
        // Structs whose lengths run past 2^32: a skip of 2^32 - 1 clocks from clock 5.
        let skip = [1, 1, 1, 5, 10, 0xff, 0xff, 0xff, 0xff, 0x0f, 0];
        assert_eq!(update_v1(&skip), Err(Malformed("a range of clocks past 32 bits")));
    }

    /// Where `yrs` reads differently from Yjs, the checker refuses rather than guess: the
    /// review's input (legacy JSON content, which `yrs` reads one string past its count,
    /// then a delete set announcing 2^32 - 1 ranges), a parent flag past 1, an XmlHook.
    #[test]
    fn where_yrs_and_yjs_read_differently_the_checker_refuses() {
        let json =
            [1, 1, 0, 0, 2, 1, 1, b't', 1, 1, b'1', 1, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(update_v1(&json), Err(Malformed("legacy JSON content")));
        // Parent flag 2^32 + 1: yrs would see 1 (a root name), the checker an id.
        let flag = [1, 1, 0, 0, 4, 0x81, 0x80, 0x80, 0x80, 0x10, 1, 1, b'x', 0];
        assert!(update_v1(&flag).is_err());
        // A type item: an XmlHook under root "t", then a Y.Map (accepted).
        let hook = [1, 1, 0, 0, 7, 1, 1, b't', 5, 1, b'h', 0];
        assert!(update_v1(&hook).is_err());
        let map = [1, 1, 0, 0, 7, 1, 1, b't', 1, 0];
        assert!(update_v1(&map).is_ok());
    }

    /// A struct of no length (`yrs` computes its last clock as `len - 1`: the fuzz target's
    /// second crash, a GC of length 0); an empty string or array is one too.
    #[test]
    fn structs_of_no_length_are_refused() {
        let crash = [0, 1, 7, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0];
        assert!(check(&crash).is_err());
        assert_eq!(update_v1(&[1, 1, 0, 0, 0, 0, 0]), Err(Malformed("a struct of no length")));
        // An empty string item under root type "t".
        let empty = [1, 1, 0, 0, 4, 1, 1, b't', 0, 0];
        assert_eq!(update_v1(&empty), Err(Malformed("a struct of no length")));
        let one = [1, 1, 0, 0, 4, 1, 1, b't', 1, b'x', 0];
        assert!(update_v1(&one).is_ok());
    }

    #[test]
    fn truncations_garbage_and_leftovers_are_refused() {
        let update = real_update();
        for cut in 0..update.len() {
            assert!(update_v1(&update[..cut]).is_err(), "cut at {cut} passed");
        }
        let mut longer = update.clone();
        longer.push(0);
        assert!(update_v1(&longer).is_err());
        for bad in [&[][..], &[9][..], &[0, 7, 0][..], &[2, 0][..], &[1, 3, 1, 1][..]] {
            assert!(check(bad).is_err(), "{bad:?} passed");
        }
        // Not UTF-8, not JSON.
        assert!(awareness(&[1, 1, 1, 2, 0xff, 0xfe]).is_err());
        assert!(awareness(&[1, 1, 1, 2, b'{', b'{']).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let update = real_update();
        for round in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bytes = update.clone();
            let at = usize::try_from(seed % bytes.len() as u64).unwrap_or(0);
            bytes[at] = bytes[at].wrapping_add(u8::try_from(round % 251).unwrap_or(1) + 1);
            let _ = update_v1(&bytes);
            let _ = check(&bytes);
        }
    }
}
