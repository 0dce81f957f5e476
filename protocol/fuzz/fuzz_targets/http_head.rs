//! Fuzz target: the HTTP request path. The first input byte picks where the bytes are split
//! (as two socket reads); the rest is parsed as a head, then its body, then routed, the
//! way the server handles a request. Checks that nothing panics and that the answer for a
//! complete head does not depend on the split.

#![no_main]

use libfuzzer_sys::fuzz_target;
use partyline_protocol::http::{BodyDecoder, HeadParser, HttpLimits};
use partyline_protocol::route::{self, RouteConfig};
use partyline_protocol::ws::handshake::{self, HandshakeConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else { return };
    let limits = HttpLimits { head_size_max: 4096, header_count_max: 32, body_size_max: 4096 };
    let whole = HeadParser::new(limits).parse(input);
    let mut parser = HeadParser::new(limits);
    let cut = usize::from(split).min(input.len());
    if let Ok(None) = parser.parse(&input[..cut]) {
        let again = parser.parse(input);
        assert_eq!(again.as_ref().map(|h| h.as_ref().map(|h| h.len())), whole.as_ref().map(|h| h.as_ref().map(|h| h.len())));
    }
    let Ok(Some(head)) = whole else { return };
    assert!(head.len() <= input.len());
    let _ = head.keep_alive();
    if head.is_websocket_upgrade() {
        let config = HandshakeConfig { subprotocols: vec!["chat".into()] };
        let _ = handshake::accept(&head, &config).map(|a| a.response());
    }
    if let Ok(Some(r)) = route::parse(head.origin_target(), &RouteConfig::default()) {
        let _ = r.connection_id();
        assert!(r.rest.is_empty() || r.rest.starts_with('/'));
    }
    let mut body = Vec::new();
    let mut decoder = BodyDecoder::new(head.body(), limits.body_size_max);
    if let Ok(progress) = decoder.decode(&input[head.len()..], &mut body) {
        assert!(progress.consumed <= input.len() - head.len());
        assert!(body.len() <= limits.body_size_max);
    }
});
