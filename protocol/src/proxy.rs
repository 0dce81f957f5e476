//! The PROXY protocol (HAProxy's `send-proxy` and `send-proxy-v2`): the header a TCP load
//! balancer puts before the client's bytes so the server learns the client's address, not
//! the balancer's. Version 1 is one text line (`PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\r\n`, at
//! most 107 bytes); version 2 is binary (a 12-byte signature, version and command, family,
//! length, addresses, then type-length-value extensions, which are skipped). The spec:
//! <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.
//!
//! [`parse`] answers like the crate's other parsers: the header and its length, *need
//! more*, or a typed error. A `LOCAL` command (the balancer's own health check) or an
//! `UNKNOWN` / unspecified family gives [`ProxyHeader::Local`]: the connection's own
//! addresses stand. A listener that expects the header must refuse a connection without
//! one ([`ProxyError::NotProxy`]): otherwise any client could claim any address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

pub use crate::limits::{PROXY_V1_LINE_MAX as V1_LINE_MAX, PROXY_V2_HEADER_MAX as V2_HEADER_MAX};

/// What the header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// Relayed for a client: its address, and the address it connected to.
    Proxied { source: SocketAddr, destination: SocketAddr },
    /// The balancer's own connection (`LOCAL`), or a family it does not describe
    /// (`UNKNOWN`, `AF_UNSPEC`, `AF_UNIX`): keep the connection's own addresses.
    Local,
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// The bytes start with neither signature.
    NotProxy,
    /// Longer than [`V1_LINE_MAX`] or [`V2_HEADER_MAX`].
    TooLong,
    /// A signature, then something the spec does not allow.
    Malformed(&'static str),
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::NotProxy => f.write_str("no PROXY protocol header"),
            ProxyError::TooLong => f.write_str("PROXY protocol header too long"),
            ProxyError::Malformed(what) => write!(f, "malformed PROXY protocol header: {what}"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Parses the PROXY header at the start of `input`: `Ok(Some((header, length)))` when it is
/// complete (the client's bytes start at `length`), `Ok(None)` when more bytes are needed
/// (nothing is consumed; call again with the same bytes and more).
pub fn parse(input: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    const V1_PREFIX: &[u8] = b"PROXY ";
    if starts_like(input, &V2_SIGNATURE) {
        if input.len() < V2_SIGNATURE.len() {
            return Ok(None);
        }
        return parse_v2(input);
    }
    if starts_like(input, V1_PREFIX) {
        if input.len() < V1_PREFIX.len() {
            return Ok(None);
        }
        return parse_v1(input);
    }
    Err(ProxyError::NotProxy)
}

/// Whether `input` and `prefix` agree on their common length.
fn starts_like(input: &[u8], prefix: &[u8]) -> bool {
    let n = input.len().min(prefix.len());
    input[..n] == prefix[..n]
}

fn parse_v1(input: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let window = &input[..input.len().min(V1_LINE_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if input.len() >= V1_LINE_MAX { Err(ProxyError::TooLong) } else { Ok(None) };
    };
    let line =
        std::str::from_utf8(&input[..end]).map_err(|_| ProxyError::Malformed("not ASCII"))?;
    let mut fields = line.split(' ');
    fields.next(); // "PROXY", checked by the caller
    let proto = fields.next().ok_or(ProxyError::Malformed("no protocol"))?;
    if proto == "UNKNOWN" {
        // The rest of the line, if any, is to be ignored.
        return Ok(Some((ProxyHeader::Local, end + 2)));
    }
    let v6 = match proto {
        "TCP4" => false,
        "TCP6" => true,
        _ => return Err(ProxyError::Malformed("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let mut next = || fields.next().ok_or(ProxyError::Malformed("missing field"));
    let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
    if fields.next().is_some() {
        return Err(ProxyError::Malformed("extra field"));
    }
    let ip = |text: &str| -> Result<IpAddr, ProxyError> {
        let ip: IpAddr = text.parse().map_err(|_| ProxyError::Malformed("bad address"))?;
        if ip.is_ipv6() == v6 { Ok(ip) } else { Err(ProxyError::Malformed("address family")) }
    };
    let port = |text: &str| -> Result<u16, ProxyError> {
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        let canonical = text == "0" || !text.starts_with('0');
        match text.parse() {
            Ok(port) if digits && canonical => Ok(port),
            _ => Err(ProxyError::Malformed("bad port")),
        }
    };
    let source = SocketAddr::new(ip(src)?, port(sport)?);
    let destination = SocketAddr::new(ip(dst)?, port(dport)?);
    Ok(Some((ProxyHeader::Proxied { source, destination }, end + 2)))
}

fn parse_v2(input: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    const FIXED: usize = 16;
    if input.len() < FIXED {
        return Ok(None);
    }
    let (version, command) = (input[12] >> 4, input[12] & 0x0F);
    if version != 2 {
        return Err(ProxyError::Malformed("version is not 2"));
    }
    let (family, transport) = (input[13] >> 4, input[13] & 0x0F);
    let length = FIXED + usize::from(u16::from_be_bytes([input[14], input[15]]));
    if length > V2_HEADER_MAX {
        return Err(ProxyError::TooLong);
    }
    if input.len() < length {
        return Ok(None);
    }
    let block = &input[FIXED..length];
    let header = match command {
        // LOCAL: the balancer speaking for itself; the address block is to be ignored.
        0x0 => ProxyHeader::Local,
        0x1 => {
            if transport > 2 {
                return Err(ProxyError::Malformed("unknown transport"));
            }
            match family {
                0x0 | 0x3 => ProxyHeader::Local,
                0x1 => {
                    let a = block.get(..12).ok_or(ProxyError::Malformed("short IPv4 block"))?;
                    let ip = |at: usize| Ipv4Addr::new(a[at], a[at + 1], a[at + 2], a[at + 3]);
                    let port = |at: usize| u16::from_be_bytes([a[at], a[at + 1]]);
                    ProxyHeader::Proxied {
                        source: SocketAddr::new(IpAddr::V4(ip(0)), port(8)),
                        destination: SocketAddr::new(IpAddr::V4(ip(4)), port(10)),
                    }
                }
                0x2 => {
                    let a = block.get(..36).ok_or(ProxyError::Malformed("short IPv6 block"))?;
                    let ip = |at: usize| {
                        let mut octets = [0u8; 16];
                        octets.copy_from_slice(&a[at..at + 16]);
                        Ipv6Addr::from(octets)
                    };
                    let port = |at: usize| u16::from_be_bytes([a[at], a[at + 1]]);
                    ProxyHeader::Proxied {
                        source: SocketAddr::new(IpAddr::V6(ip(0)), port(32)),
                        destination: SocketAddr::new(IpAddr::V6(ip(16)), port(34)),
                    }
                }
                _ => return Err(ProxyError::Malformed("unknown address family")),
            }
        }
        _ => return Err(ProxyError::Malformed("unknown command")),
    };
    Ok(Some((header, length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    #[test]
    fn version_1_gives_the_client_and_where_the_payload_starts() {
        let input = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
        let (header, used) = parse(input).unwrap().unwrap();
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: "192.0.2.7:56324".parse().unwrap(),
                destination: "198.51.100.1:443".parse().unwrap(),
            }
        );
        assert_eq!(&input[used..], b"GET / HTTP/1.1\r\n");
        let v6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n";
        let (header, used) = parse(v6).unwrap().unwrap();
        assert_eq!(used, v6.len());
        assert!(
            matches!(header, ProxyHeader::Proxied { source, .. } if source == "[2001:db8::1]:1".parse().unwrap())
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN ffff::1 whatever\r\nx").unwrap(),
            Some((ProxyHeader::Local, 32))
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap(), Some((ProxyHeader::Local, 15)));
    }

    #[test]
    fn every_prefix_of_a_header_asks_for_more() {
        let mut block = vec![10, 0, 0, 1, 10, 0, 0, 2, 0x1F, 0x90, 0x00, 0x50];
        block.extend_from_slice(&[0x04, 0x00, 0x02, b'h', b'2']); // an ALPN extension
        let inputs = [b"PROXY TCP4 10.0.0.1 10.0.0.2 8080 80\r\n".to_vec(), v2(1, 0x11, &block)];
        for input in inputs {
            for cut in 0..input.len() {
                assert_eq!(parse(&input[..cut]), Ok(None), "cut at {cut} of {input:?}");
            }
            let (header, used) = parse(&input).unwrap().unwrap();
            assert_eq!(used, input.len());
            assert!(
                matches!(header, ProxyHeader::Proxied { source, .. } if source == "10.0.0.1:8080".parse().unwrap())
            );
        }
    }

    #[test]
    fn version_2_reads_both_families_and_skips_extensions() {
        let mut block = Vec::new();
        block.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        block.extend_from_slice(&"2001:db8::9".parse::<Ipv6Addr>().unwrap().octets());
        block.extend_from_slice(&[0x30, 0x39, 0x01, 0xBB]);
        block.extend_from_slice(&[0x05, 0x00, 0x03, 1, 2, 3]); // a unique-id extension
        let input = [v2(1, 0x21, &block), b"rest".to_vec()].concat();
        let (header, used) = parse(&input).unwrap().unwrap();
        assert_eq!(&input[used..], b"rest");
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: "[::1]:12345".parse().unwrap(),
                destination: "[2001:db8::9]:443".parse().unwrap(),
            }
        );
        // LOCAL (a health check), AF_UNSPEC and AF_UNIX keep the connection's addresses.
        assert_eq!(parse(&v2(0, 0x00, &[])).unwrap(), Some((ProxyHeader::Local, 16)));
        assert_eq!(parse(&v2(0, 0x11, &[0; 12])).unwrap(), Some((ProxyHeader::Local, 28)));
        assert_eq!(parse(&v2(1, 0x31, &[0; 216])).unwrap(), Some((ProxyHeader::Local, 232)));
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PROXX"), Err(ProxyError::NotProxy));
        let refused = |input: &[u8]| matches!(parse(input), Err(ProxyError::Malformed(_)));
        assert!(refused(b"PROXY TCP4 10.0.0.1 10.0.0.2 8080\r\n"));
        assert!(refused(b"PROXY TCP4 10.0.0.1 10.0.0.2 8080 80 9\r\n"));
        assert!(refused(b"PROXY TCP4 ::1 10.0.0.2 8080 80\r\n"));
        assert!(refused(b"PROXY TCP6 10.0.0.1 ::1 8080 80\r\n"));
        assert!(refused(b"PROXY TCP4 10.0.0.1 10.0.0.2 080 80\r\n"));
        assert!(refused(b"PROXY TCP4 10.0.0.1 10.0.0.2 65536 80\r\n"));
        assert!(refused(b"PROXY TCP4 10.0.0.1 10.0.0.2 +80 80\r\n"));
        assert!(refused(b"PROXY UDP4 10.0.0.1 10.0.0.2 80 80\r\n"));
        assert!(refused(b"PROXY TCP4  10.0.0.1 10.0.0.2 80 80\r\n"));
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert_eq!(parse(&long), Err(ProxyError::TooLong));
        assert!(refused(&v2(2, 0x11, &[0; 12])));
        assert!(refused(&v2(1, 0x41, &[0; 12])));
        assert!(refused(&v2(1, 0x13, &[0; 12])));
        assert!(refused(&v2(1, 0x11, &[0; 11])));
        assert!(refused(&v2(1, 0x21, &[0; 35])));
        let mut v3 = v2(1, 0x11, &[0; 12]);
        v3[12] = 0x31;
        assert!(refused(&v3));
        let mut huge = v2(1, 0x11, &[0; 12]);
        huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(parse(&huge), Err(ProxyError::TooLong));
    }
}
