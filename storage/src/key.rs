//! How a room's keys are laid out in the shared database: every key starts with the room's
//! namespace, `len(party) as u16 BE ++ party ++ len(room) as u16 BE ++ room`. Length
//! prefixes make namespaces prefix-free (no room's keys can fall inside another room's
//! range, whatever bytes names hold), so one room's `list` or `delete_all` is a range scan
//! and its keys sort in the user's byte order within it.

use crate::limits::NAMESPACE_SIZE_MAX;

/// The encoded namespace of one room.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(Box<[u8]>);

impl Namespace {
    /// The namespace of room `room` of party `party`; `Err` with its size if it would be
    /// over [`NAMESPACE_SIZE_MAX`] bytes (then a key under it could not be stored).
    pub fn new(party: &str, room: &str) -> Result<Namespace, usize> {
        let size = 4 + party.len() + room.len();
        if size > NAMESPACE_SIZE_MAX {
            return Err(size);
        }
        let mut bytes = Vec::with_capacity(4 + party.len() + room.len());
        for name in [party, room] {
            let len = u16::try_from(name.len()).map_err(|_| size)?;
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(name.as_bytes());
        }
        Ok(Namespace(bytes.into_boxed_slice()))
    }

    /// Decodes a namespace at the start of `bytes`: (party, room, bytes used).
    pub fn decode(bytes: &[u8]) -> Option<(String, String, usize)> {
        let mut at = 0;
        let mut names = [String::new(), String::new()];
        for name in &mut names {
            let len = usize::from(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
            at += 2;
            *name = std::str::from_utf8(bytes.get(at..at + len)?).ok()?.to_owned();
            at += len;
        }
        let [party, room] = names;
        Some((party, room, at))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The stored key of the room's `key`.
    pub fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.0.len() + key.len());
        k.extend_from_slice(&self.0);
        k.extend_from_slice(key);
        k
    }

    /// The smallest stored key after every key of this room (for exclusive range ends).
    /// Namespaces are prefix-free, so "the namespace plus 0xFF bytes" is not needed: the
    /// namespace with its last byte incremented (carrying) bounds it.
    pub fn end(&self) -> Vec<u8> {
        successor_of_prefix(&self.0).unwrap_or_default()
    }
}

/// The smallest byte string greater than every string starting with `prefix`; `None` when
/// there is none (the prefix is all 0xFF, or empty).
pub fn successor_of_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_round_trip_and_are_prefix_free() {
        let a = Namespace::new("main", "room").unwrap();
        assert_eq!(Namespace::decode(&a.key(b"k")), Some(("main".into(), "room".into(), 12)));
        // "ab"/"c" and "a"/"bc" must not share a prefix relation.
        let x = Namespace::new("ab", "c").unwrap();
        let y = Namespace::new("a", "bc").unwrap();
        assert!(!x.as_bytes().starts_with(y.as_bytes()) && !y.as_bytes().starts_with(x.as_bytes()));
        // A room whose id extends another's is outside the other's range.
        let r1 = Namespace::new("p", "r").unwrap();
        let r2 = Namespace::new("p", "r\u{0}x").unwrap();
        let k2 = r2.key(b"");
        assert!(!(r1.as_bytes() <= k2.as_slice() && k2.as_slice() < r1.end().as_slice()));
        assert!(Namespace::new("p", &"x".repeat(70_000)).is_err());
        // The longest namespace leaves room for the longest key and the alarm prefix.
        let longest = "x".repeat(NAMESPACE_SIZE_MAX - 5);
        let ns = Namespace::new("p", &longest).unwrap();
        assert!(ns.key(&[0; crate::limits::KEY_SIZE_MAX]).len() <= u16::MAX as usize);
        assert_eq!(
            Namespace::new("p", &format!("{longest}x")).unwrap_err(),
            NAMESPACE_SIZE_MAX + 1
        );
    }

    #[test]
    fn successor_carries() {
        assert_eq!(successor_of_prefix(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor_of_prefix(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(successor_of_prefix(&[0xFF, 0xFF]), None);
    }
}
