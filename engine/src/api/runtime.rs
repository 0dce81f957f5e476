//! [`Runtime`]: what the party API's handles reach on their shard (the router, the
//! configuration, the clock, the store). One per shard, shared by every room, connection,
//! storage handle and lobby there; the test harness builds its own.

use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::payload::Request;
use crate::route::{RoomKey, Router};
use partyline_protocol::http::Response;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A shard's services for party code.
pub(crate) struct Runtime {
    pub router: Rc<Router>,
    pub config: Arc<Config>,
    pub clock: Clock,
    pub store: partyline_storage::Store,
}

impl Runtime {
    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    pub fn env(&self, key: &str) -> Option<&str> {
        self.config.env.get(key).map(String::as_str)
    }

    /// When a wait for a room's answer started now must end.
    pub fn answer_deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.limits().room_answer_timeout_ms)
    }

    /// Sends `request` straight to another room's `on_request` and waits for its answer,
    /// at most `room_answer_timeout_ms` (then a timed-out error).
    pub async fn fetch(&self, party: &str, room: &str, request: Request) -> Result<Response> {
        let key = RoomKey::new(party, room);
        self.router.request(key, request, self.answer_deadline()).await.ok_or_else(|| {
            Error::timed_out(format!(
                "fetch to {party}/{room}: no answer within {} ms",
                self.limits().room_answer_timeout_ms
            ))
        })
    }
}
