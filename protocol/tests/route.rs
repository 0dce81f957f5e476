//! PartyKit routes: the `/parties/:party/:room[/rest]` form, the legacy `/party/:room`,
//! configurable prefixes, query decoding and the errors for incomplete party paths.

use partyline_protocol::route::{self, Route, RouteConfig, RouteError, percent_decode};

fn parse(target: &str) -> Result<Option<Route<'_>>, RouteError> {
    route::parse(target, &RouteConfig::default())
}

/// (target, party, room, rest, query, legacy)
type Case<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a str>, bool);

#[test]
fn party_paths() {
    let cases: &[Case<'_>] = &[
        ("/parties/main/lobby", "main", "lobby", "", None, false),
        ("/parties/chat/r1?_pk=abc", "chat", "r1", "", Some("_pk=abc"), false),
        ("/parties/chat/r1/", "chat", "r1", "/", None, false),
        ("/parties/chat/r1/sub/path?x=1", "chat", "r1", "/sub/path", Some("x=1"), false),
        ("/parties/main/a%20b%20%C3%BC", "main", "a%20b%20%C3%BC", "", None, false),
        ("/party/lobby", "main", "lobby", "", None, true),
        ("/party/lobby/x?_pk=1", "main", "lobby", "/x", Some("_pk=1"), true),
        ("/parties/main/r?", "main", "r", "", Some(""), false),
    ];
    for &(target, party, room, rest, query, legacy) in cases {
        let r = parse(target).unwrap().unwrap_or_else(|| panic!("{target} is a party path"));
        assert_eq!(r, Route { party, room, rest, query, legacy }, "{target}");
    }
}

#[test]
fn legacy_and_new_paths_reach_the_same_room() {
    let a = parse("/party/lobby").unwrap().unwrap();
    let b = parse("/parties/main/lobby").unwrap().unwrap();
    assert_eq!((a.party, a.room), (b.party, b.room));
}

#[test]
fn other_paths_are_not_party_paths() {
    for target in [
        "/",
        "/health",
        "/partiesx/a/b",
        "/partyx/a",
        "/index.html?parties/a/b",
        "/api/parties/a/b",
    ] {
        assert_eq!(parse(target), Ok(None), "{target}");
    }
}

#[test]
fn incomplete_party_paths_are_404_with_help() {
    let cases = [
        ("/parties", "missing party and room: use /parties/<party>/<room>"),
        ("/parties/", "missing party and room: use /parties/<party>/<room>"),
        ("/parties//room", "missing party and room: use /parties/<party>/<room>"),
        ("/parties/chat", "missing room: use /parties/chat/<room>"),
        ("/parties/chat/", "missing room: use /parties/chat/<room>"),
        ("/parties/chat//x", "missing room: use /parties/chat/<room>"),
        ("/party", "missing room: use /party/<room>"),
        ("/party/?_pk=1", "missing room: use /party/<room>"),
    ];
    for (target, message) in cases {
        let err = parse(target).unwrap_err();
        assert_eq!(err.status(), 404);
        assert_eq!(err.to_string(), message, "{target}");
    }
}

#[test]
fn configurable_prefix() {
    let config = RouteConfig::with_prefix("/api/rooms/").unwrap();
    assert_eq!(config.prefix(), "api/rooms");
    let r = route::parse("/api/rooms/p/r/x", &config).unwrap().unwrap();
    assert_eq!((r.party, r.room, r.rest), ("p", "r", "/x"));
    assert_eq!(route::parse("/parties/p/r", &config), Ok(None));
    assert!(RouteConfig::with_prefix("/").is_none());
    let mut no_legacy = RouteConfig::default();
    no_legacy.legacy = false;
    assert_eq!(route::parse("/party/r", &no_legacy), Ok(None));
}

#[test]
fn connection_id_and_query() {
    let r = parse("/parties/main/r?a=1&_pk=ab%2Fc+d&b&_pk=second").unwrap().unwrap();
    assert_eq!(r.connection_id().as_deref(), Some("ab/c d"));
    assert_eq!(r.query_param("a").as_deref(), Some("1"));
    assert_eq!(r.query_param("b").as_deref(), Some(""));
    assert_eq!(r.query_param("c"), None);
    assert_eq!(r.query_pairs().count(), 4);
    assert_eq!(parse("/parties/main/r?_pk=").unwrap().unwrap().connection_id(), None);
    assert_eq!(parse("/parties/main/r").unwrap().unwrap().connection_id(), None);
}

#[test]
fn percent_decoding() {
    let cases = [
        ("plain", "plain"),
        ("a+b", "a b"),
        ("%41%62", "Ab"),
        ("%C3%BC", "ü"),
        ("100%", "100%"),
        ("%zz%4", "%zz%4"),
        ("%FF", "\u{FFFD}"),
    ];
    for (input, output) in cases {
        assert_eq!(percent_decode(input), output, "{input}");
    }
}

#[test]
fn percent_escapes_differing_only_in_case_are_one_spelling() {
    use partyline_protocol::route::normalize_percent_case as n;
    assert_eq!(n("caf%c3%a9"), "caf%C3%A9");
    assert_eq!(n("caf%C3%a9"), "caf%C3%A9");
    assert!(matches!(n("caf%C3%A9"), std::borrow::Cow::Borrowed(_)), "nothing to change");
    assert!(matches!(n("plain-room"), std::borrow::Cow::Borrowed(_)));
    // Only the escapes: other letters, and a % without two hex digits, stay as they are.
    assert_eq!(n("abc%2fdef"), "abc%2Fdef");
    assert_eq!(n("100%"), "100%");
    assert_eq!(n("%zz%a"), "%zz%a");
    assert_eq!(n("%%ab"), "%%AB");
    assert_eq!(n("é%e9"), "é%E9");
}
