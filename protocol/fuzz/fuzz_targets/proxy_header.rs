//! Fuzz target: the PROXY protocol header. Checks that nothing panics, that a complete
//! header never claims more bytes than it was given or more than the spec's bounds, and
//! that every shorter prefix of a complete header asks for more instead of failing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use partyline_protocol::proxy::{self, V1_LINE_MAX, V2_HEADER_MAX};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, used))) = proxy::parse(data) {
        assert!(used <= data.len());
        assert!(used <= V1_LINE_MAX.max(V2_HEADER_MAX));
        for cut in 0..used {
            assert_eq!(proxy::parse(&data[..cut]), Ok(None), "prefix of {cut} bytes");
        }
        assert_eq!(proxy::parse(&data[..used]).map(|h| h.map(|(_, n)| n)), Ok(Some(used)));
    }
});
