//! Payload masking (RFC 6455 §5.3): XOR with a 4-byte key, eight bytes at a time.
//!
//! The byte-at-a-time version is kept as the reference the fast one is tested and
//! benchmarked against (docs/benchmarks.md).

/// XORs `buf` in place with the repeating `mask`, starting at mask byte 0.
///
/// Works on 8-byte words (which LLVM turns into vector instructions on x86-64), then the
/// tail byte by byte. Masking is its own inverse.
#[inline]
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let mask_word = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let masked = u64::from_ne_bytes(bytes) ^ mask_word;
        word.copy_from_slice(&masked.to_ne_bytes());
    }
    // Each word covers two whole mask periods, so the tail starts at mask byte 0 again.
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// Reference implementation: one byte at a time.
pub fn apply_mask_bytewise(buf: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}
