//! [`Traffic`]: what a shard's edge has carried since start, counted in plain cells on the
//! shard and published by its sweeper: messages and bytes in, frames and bytes out,
//! WebSocket upgrades, refusals by HTTP status and closes the server sent by close code,
//! parks and resumes, TLS handshakes. Codes are counted in fixed slots ([`STATUSES`], [`CLOSE_SLOTS`]),
//! so the metrics' label sets are bounded whatever clients or party code do.

use std::cell::Cell;

/// The HTTP statuses a refusal is counted under; any other is counted as `other`.
pub const STATUSES: [u16; 19] =
    [400, 401, 403, 404, 405, 408, 409, 413, 414, 415, 426, 429, 431, 500, 501, 502, 503, 504, 505];

/// Close-code slots: 1000 to 1015, then the application ranges 3000-3999 and 4000-4999
/// counted together, then anything else.
pub const CLOSE_SLOTS: usize = 16 + 2 + 1;

/// The label of close-code slot `i`.
pub fn close_label(i: usize) -> String {
    match i {
        0..16 => (1000 + i).to_string(),
        16 => "3xxx".into(),
        17 => "4xxx".into(),
        _ => "other".into(),
    }
}

fn close_slot(code: u16) -> usize {
    match code {
        1000..=1015 => usize::from(code - 1000),
        3000..=3999 => 16,
        4000..=4999 => 17,
        _ => 18,
    }
}

fn status_slot(status: u16) -> usize {
    STATUSES.iter().position(|s| *s == status).unwrap_or(STATUSES.len())
}

/// One shard's edge counters.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    messages_in: Cell<u64>,
    bytes_in: Cell<u64>,
    frames_out: Cell<u64>,
    bytes_out: Cell<u64>,
    upgrades: Cell<u64>,
    parks: Cell<u64>,
    resumes: Cell<u64>,
    tls_handshakes: Cell<u64>,
    tls_failures: Cell<u64>,
    refusals: [Cell<u64>; STATUSES.len() + 1],
    closes: [Cell<u64>; CLOSE_SLOTS],
}

/// A copy of [`Traffic`], for the gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// WebSocket messages received from clients.
    pub messages_in: u64,
    /// Their payload bytes.
    pub bytes_in: u64,
    /// Frames queued to sockets (deliveries, pings and closes included).
    pub frames_out: u64,
    /// Bytes written to sockets (HTTP responses included).
    pub bytes_out: u64,
    /// WebSocket upgrades accepted (101 written).
    pub upgrades: u64,
    /// Times a socket parked, and was resumed.
    pub parks: u64,
    pub resumes: u64,
    /// TLS handshakes completed, and failed (bad client hello, wrong protocol, too slow).
    pub tls_handshakes: u64,
    pub tls_failures: u64,
    /// Connections refused, by status: [`STATUSES`], then any other.
    pub refusals: [u64; STATUSES.len() + 1],
    /// Closes the server sent, by close-code slot ([`close_label`]).
    pub closes: [u64; CLOSE_SLOTS],
}

fn bump(c: &Cell<u64>, by: u64) {
    c.set(c.get() + by);
}

impl Traffic {
    pub fn message_in(&self, bytes: usize) {
        bump(&self.messages_in, 1);
        bump(&self.bytes_in, bytes as u64);
    }

    pub fn frame_out(&self) {
        bump(&self.frames_out, 1);
    }

    pub fn written(&self, bytes: usize) {
        bump(&self.bytes_out, bytes as u64);
    }

    pub fn upgrade(&self) {
        bump(&self.upgrades, 1);
    }

    pub fn park(&self) {
        bump(&self.parks, 1);
    }

    pub fn resume(&self) {
        bump(&self.resumes, 1);
    }

    pub fn tls_done(&self) {
        bump(&self.tls_handshakes, 1);
    }

    pub fn tls_failed(&self) {
        bump(&self.tls_failures, 1);
    }

    pub fn refusal(&self, status: u16) {
        bump(&self.refusals[status_slot(status)], 1);
    }

    pub fn close(&self, code: u16) {
        bump(&self.closes[close_slot(code)], 1);
    }

    pub fn stats(&self) -> TrafficStats {
        TrafficStats {
            messages_in: self.messages_in.get(),
            bytes_in: self.bytes_in.get(),
            frames_out: self.frames_out.get(),
            bytes_out: self.bytes_out.get(),
            upgrades: self.upgrades.get(),
            parks: self.parks.get(),
            resumes: self.resumes.get(),
            tls_handshakes: self.tls_handshakes.get(),
            tls_failures: self.tls_failures.get(),
            refusals: std::array::from_fn(|i| self.refusals[i].get()),
            closes: std::array::from_fn(|i| self.closes[i].get()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_land_in_bounded_slots() {
        let t = Traffic::default();
        for code in [1000, 1013, 1013, 3001, 3999, 4000, 4999, 2000, 65535] {
            t.close(code);
        }
        for status in [503, 503, 400, 418] {
            t.refusal(status);
        }
        let s = t.stats();
        assert_eq!(
            (s.closes[0], s.closes[13], s.closes[16], s.closes[17], s.closes[18]),
            (1, 2, 2, 2, 2)
        );
        assert_eq!(close_label(13), "1013");
        assert_eq!((close_label(16).as_str(), close_label(18).as_str()), ("3xxx", "other"));
        assert_eq!(s.refusals[status_slot(503)], 2);
        assert_eq!(s.refusals[STATUSES.len()], 1, "418 counts as other");
    }
}
