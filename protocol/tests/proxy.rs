//! Property tests of the PROXY protocol header: any client and destination address, IPv4
//! or IPv6, written as HAProxy writes it (version 1 text or version 2 binary, with
//! extensions), reads back exactly, with the client's bytes left where they were; and no
//! input of any kind makes the parser panic or claim bytes it was not given.

use partyline_protocol::proxy::{self, ProxyHeader, V2_SIGNATURE};
use proptest::prelude::*;
use std::net::{IpAddr, SocketAddr};

/// Two addresses of one family (a header never mixes them).
fn pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<u16>(), any::<u16>()).prop_map(
            |(a, b, p, q)| {
                (SocketAddr::new(IpAddr::from(a), p), SocketAddr::new(IpAddr::from(b), q))
            }
        ),
        (any::<[u8; 16]>(), any::<[u8; 16]>(), any::<u16>(), any::<u16>()).prop_map(
            |(a, b, p, q)| (
                SocketAddr::new(IpAddr::from(a), p),
                SocketAddr::new(IpAddr::from(b), q)
            )
        ),
    ]
}

fn v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let proto = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {proto} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

fn v2(source: SocketAddr, destination: SocketAddr, extensions: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    let family = match (source.ip(), destination.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            block.extend_from_slice(&a.octets());
            block.extend_from_slice(&b.octets());
            0x11
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            block.extend_from_slice(&a.octets());
            block.extend_from_slice(&b.octets());
            0x21
        }
        _ => unreachable!("one family"),
    };
    block.extend_from_slice(&source.port().to_be_bytes());
    block.extend_from_slice(&destination.port().to_be_bytes());
    block.extend_from_slice(extensions);
    let mut out = V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[0x21, family]);
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&block);
    out
}

proptest! {
    #[test]
    fn headers_read_back_exactly(
        (source, destination) in pair(),
        binary in any::<bool>(),
        extensions in prop::collection::vec(any::<u8>(), 0..200),
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let header = if binary { v2(source, destination, &extensions) } else { v1(source, destination) };
        let input = [header.clone(), payload.clone()].concat();
        let (parsed, used) = proxy::parse(&input).unwrap().unwrap();
        prop_assert_eq!(parsed, ProxyHeader::Proxied { source, destination });
        prop_assert_eq!(used, header.len());
        prop_assert_eq!(&input[used..], &payload[..]);
    }

    #[test]
    fn no_input_panics_or_overreaches(input in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Some((_, used))) = proxy::parse(&input) {
            prop_assert!(used <= input.len());
        }
        // The same with a valid signature in front, so the parsers behind it see noise.
        for prefix in [&b"PROXY "[..], &V2_SIGNATURE[..]] {
            let input = [prefix, &input].concat();
            if let Ok(Some((_, used))) = proxy::parse(&input) {
                prop_assert!(used <= input.len());
            }
        }
    }
}
