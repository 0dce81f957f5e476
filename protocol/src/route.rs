//! PartyKit's URL routes: `/<prefix>/:party/:room[/rest]` (prefix `parties` by default)
//! and the legacy `/party/:room[/rest]` of partysocket <= 1.0.1, which means party `main`.
//!
//! Party and room come back exactly as sent, percent-encoding untouched, so the same bytes
//! always reach the same room; [`normalize_percent_case`] then makes escapes that differ
//! only in the case of their hex digits (`%c3%a9`, `%C3%A9`) one spelling, as RFC 3986
//! §6.2.2.1 says they are equivalent. Query values (`_pk` among them) are percent-decoded
//! on request, as `URLSearchParams.get` does in the JavaScript runtime.

use crate::http::hex_digit;
use std::borrow::Cow;
use std::fmt;

/// The party that the legacy `/party/:room` path addresses.
pub const DEFAULT_PARTY: &str = "main";

/// Which paths are party paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// First path segment(s) of party paths, without surrounding slashes (`parties`).
    prefix: String,
    /// Whether `/party/:room` routes to party `main`.
    pub legacy: bool,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig { prefix: "parties".to_owned(), legacy: true }
    }
}

impl RouteConfig {
    /// Party paths start with `/<prefix>/`; surrounding slashes in `prefix` are ignored and
    /// it may hold several segments (`api/parties`). An empty prefix is refused.
    pub fn with_prefix(prefix: &str) -> Option<RouteConfig> {
        let prefix = prefix.trim_matches('/');
        (!prefix.is_empty() && !prefix.contains(['?', '#']))
            .then(|| RouteConfig { prefix: prefix.to_owned(), legacy: true })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// A request to a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    /// Party name, as sent.
    pub party: &'a str,
    /// Room id, as sent.
    pub room: &'a str,
    /// What follows the room segment: empty, or starting with `/`.
    pub rest: &'a str,
    /// The query string without `?`, if any.
    pub query: Option<&'a str>,
    /// Whether the legacy `/party/:room` form was used.
    pub legacy: bool,
}

impl<'a> Route<'a> {
    /// The connection id the client chose (`_pk`), decoded; `None` if absent or empty, in
    /// which case the server generates one.
    pub fn connection_id(&self) -> Option<Cow<'a, str>> {
        self.query_param("_pk").filter(|id| !id.is_empty())
    }

    /// The first value of query parameter `name`, percent-decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// All query parameters in order, percent-decoded.
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> + 'a {
        self.query.unwrap_or("").split('&').filter(|p| !p.is_empty()).map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
    }
}

/// A party path that names no party or no room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    MissingParty {
        prefix: String,
    },
    MissingRoom {
        party: String,
        prefix: String,
    },
    /// `/party` or `/party/` without a room.
    MissingLegacyRoom,
}

impl RouteError {
    /// Always 404: nothing lives at such a path.
    pub fn status(&self) -> u16 {
        404
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::MissingParty { prefix } => {
                write!(f, "missing party and room: use /{prefix}/<party>/<room>")
            }
            RouteError::MissingRoom { party, prefix } => {
                write!(f, "missing room: use /{prefix}/{party}/<room>")
            }
            RouteError::MissingLegacyRoom => f.write_str("missing room: use /party/<room>"),
        }
    }
}

impl std::error::Error for RouteError {}

/// Routes an origin-form target (`/path?query`). `Ok(None)`: not a party path (the
/// server-wide `on_fetch` handles it).
pub fn parse<'a>(target: &'a str, config: &RouteConfig) -> Result<Option<Route<'a>>, RouteError> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let (party, after_party, legacy) = if let Some(rest) = strip_segments(path, &config.prefix) {
        if rest.is_empty() {
            return Err(RouteError::MissingParty { prefix: config.prefix.clone() });
        }
        let (party, after) = split_segment(rest);
        if party.is_empty() {
            return Err(RouteError::MissingParty { prefix: config.prefix.clone() });
        }
        (party, after.strip_prefix('/').unwrap_or(after), false)
    } else if let Some(rest) = strip_segments(path, "party").filter(|_| config.legacy) {
        (DEFAULT_PARTY, rest, true)
    } else {
        return Ok(None);
    };
    let (room, rest) = split_segment(after_party);
    if room.is_empty() {
        return Err(if legacy {
            RouteError::MissingLegacyRoom
        } else {
            RouteError::MissingRoom { party: party.to_owned(), prefix: config.prefix.clone() }
        });
    }
    Ok(Some(Route { party, room, rest, query, legacy }))
}

/// If `path` is `/<segments>` or `/<segments>/...`, what follows `/<segments>/` (or "").
fn strip_segments<'a>(path: &'a str, segments: &str) -> Option<&'a str> {
    let rest = path.strip_prefix('/')?.strip_prefix(segments)?;
    if rest.is_empty() { Some("") } else { rest.strip_prefix('/') }
}

/// Splits `a/b/c` into `a` and `/b/c`.
fn split_segment(s: &str) -> (&str, &str) {
    match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// Upper-cases the hex digits of every `%XX` escape (RFC 3986 §6.2.2.1: `%c3%a9` and
/// `%C3%A9` are the same), leaving everything else, a `%` not followed by two hex digits
/// included, as it is. Borrows when there is nothing to change.
pub fn normalize_percent_case(s: &str) -> Cow<'_, str> {
    let bytes = s.as_bytes();
    let lower_escape = |i: usize| {
        bytes[i] == b'%'
            && bytes.get(i + 1).is_some_and(|b| b.is_ascii_hexdigit())
            && bytes.get(i + 2).is_some_and(|b| b.is_ascii_hexdigit())
            && (bytes[i + 1].is_ascii_lowercase() || bytes[i + 2].is_ascii_lowercase())
    };
    if !(0..bytes.len()).any(lower_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i < out.len() {
        if out[i] == b'%'
            && out.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && out.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            out[i + 1].make_ascii_uppercase();
            out[i + 2].make_ascii_uppercase();
            i += 3;
        } else {
            i += 1;
        }
    }
    // Only ASCII hex letters changed case: still the same valid UTF-8.
    Cow::Owned(String::from_utf8(out).expect("ASCII case changes keep UTF-8 valid"))
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; a `%` not
/// followed by two hex digits stays as it is; invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1)
            .and_then(|&b| hex_digit(b))
            .zip(bytes.get(i + 2).and_then(|&b| hex_digit(b)));
        match (bytes[i], escaped) {
            (b'+', _) => out.push(b' '),
            (b'%', Some((hi, lo))) => {
                out.push(hi * 16 + lo);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}
