//! [`Room`]: a room as party code sees it, and [`RoomCore`], the state behind it (address,
//! uid, registry of connections, storage handle). The home shard's host owns the core and
//! runs hooks against it; party code holds `Room` handles to the same core.

use super::connection::frame_of;
use super::registry::Registry;
use super::runtime::Runtime;
use super::{Connection, Storage};
use crate::error::{Error, Result};
use crate::limits::AUTO_RESPONSE_BYTES_MAX;
use crate::payload::{Message, Request};
use crate::route::{AutoResponse, RoomKey, RoomUid, ToEdge};
use partyline_protocol::http::Response;
use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

/// The state of one loaded room.
pub(crate) struct RoomCore {
    pub key: RoomKey,
    pub uid: RoomUid,
    pub runtime: Rc<Runtime>,
    pub registry: RefCell<Registry>,
    /// Made on first use: rooms that never touch storage cost nothing for it.
    storage: OnceCell<Storage>,
    /// The auto-response the room's edges answer for it ([`Room::set_auto_response`]).
    pub auto_response: RefCell<Option<Arc<AutoResponse>>>,
}

impl RoomCore {
    pub fn new(key: RoomKey, uid: RoomUid, runtime: Rc<Runtime>) -> RoomCore {
        RoomCore {
            key,
            uid,
            runtime,
            registry: RefCell::new(Registry::default()),
            storage: OnceCell::new(),
            auto_response: RefCell::new(None),
        }
    }

    pub fn storage(&self) -> &Storage {
        self.storage.get_or_init(|| Storage::new(self.runtime.clone(), self.key.clone()))
    }
}

/// A room as party code sees it. Cheap to clone; valid only on the room's home shard.
#[derive(Clone)]
pub struct Room(pub(crate) Rc<RoomCore>);

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room").field("party", &self.name()).field("id", &self.id()).finish()
    }
}

impl Room {
    /// The room id, exactly as the client sent it (percent-encoding untouched).
    pub fn id(&self) -> &str {
        &self.0.key.room
    }

    /// The party name.
    pub fn name(&self) -> &str {
        &self.0.key.party
    }

    /// What follows `/<party>/<room>` in `request`'s path: empty, or starting with `/`
    /// (`/parties/items/shop/item/42` gives `/item/42` in room `shop` of party `items`).
    pub fn sub_path<'r>(&self, request: &'r Request) -> &'r str {
        let path = request.path();
        let room_segment = format!("/{}", self.id());
        // The room segment follows the party's (or the legacy `/party/`) segment.
        [format!("/{}{room_segment}", self.name()), format!("/party{room_segment}")]
            .iter()
            .find_map(|prefix| {
                let at = path.find(prefix.as_str())?;
                let rest = &path[at + prefix.len()..];
                (rest.is_empty() || rest.starts_with('/')).then_some(rest)
            })
            .unwrap_or("")
    }

    /// The room's durable key-value storage and its alarm.
    pub fn storage(&self) -> &Storage {
        self.0.storage()
    }

    /// Milliseconds since the Unix epoch on the server's clock (the clock alarms use).
    pub fn now_ms(&self) -> u64 {
        self.0.runtime.clock.now_ms()
    }

    /// A variable from the server configuration's `[env]` table.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.0.runtime.env(key)
    }

    /// Sends `message` to every open connection except those whose id is in `without`.
    /// The frame is encoded once; each edge shard holding connections of the room gets one
    /// delivery and writes the same bytes to each of its sockets. Fails with an overload
    /// error if an edge shard has too many deliveries waiting: that shard's connections
    /// miss the message (the others get it).
    pub fn broadcast(&self, message: impl Into<Message>, without: &[&str]) -> Result<()> {
        let frame = frame_of(message.into());
        let registry = self.0.registry.borrow();
        let without = registry.resolve(without);
        let refused = self.0.runtime.router.to_edges(registry.edges(), || ToEdge::Broadcast {
            room: self.0.uid,
            frame: frame.clone(),
            without: without.clone(),
        });
        if refused > 0 {
            return Err(Error::overloaded(format!(
                "broadcast in {}/{}: {refused} shard(s) have too many deliveries waiting",
                self.name(),
                self.id()
            )));
        }
        Ok(())
    }

    /// Sets (or with `None` clears) the room's auto-response, as Durable Objects'
    /// `setWebSocketAutoResponse`: a text message exactly equal to `request` is answered
    /// with `response` by the shard holding the socket, without reaching the room, so a
    /// sleeping room is not woken by keep-alives. Each text is at most 2,048 bytes. It
    /// lasts while the room is loaded (asleep included); set it again in `on_start`.
    pub fn set_auto_response(&self, pair: Option<(&str, &str)>) -> Result<()> {
        let pair = match pair {
            None => None,
            Some((request, response)) => {
                for (what, text) in [("request", request), ("response", response)] {
                    if text.len() > AUTO_RESPONSE_BYTES_MAX {
                        return Err(format!(
                            "auto-response {what} of {} bytes; at most {AUTO_RESPONSE_BYTES_MAX}",
                            text.len()
                        )
                        .into());
                    }
                }
                Some(Arc::new(AutoResponse {
                    request: bytes::Bytes::copy_from_slice(request.as_bytes()),
                    response: bytes::Bytes::copy_from_slice(response.as_bytes()),
                    frame: partyline_protocol::ws::encode::text(response),
                }))
            }
        };
        if *self.0.auto_response.borrow() == pair {
            return Ok(()); // Set again by a new instance's on_start: nothing to tell.
        }
        *self.0.auto_response.borrow_mut() = pair.clone();
        let registry = self.0.registry.borrow();
        // Control deliveries are never refused.
        self.0.runtime.router.to_edges(registry.edges(), || ToEdge::AutoResponse {
            room: self.0.uid,
            pair: pair.clone(),
        });
        Ok(())
    }

    /// The room's auto-response (request, response), if set.
    pub fn auto_response(&self) -> Option<(String, String)> {
        self.0.auto_response.borrow().as_ref().map(|pair| {
            let text = |b: &bytes::Bytes| String::from_utf8_lossy(b).into_owned();
            (text(&pair.request), text(&pair.response))
        })
    }

    /// The open connection with this id; an error if several share it (clients choose
    /// their ids, so duplicates happen and a random pick would be wrong).
    pub fn connection(&self, id: &str) -> Result<Option<Connection>> {
        self.0
            .registry
            .borrow_mut()
            .by_id(id)
            .map_err(|n| format!("{n} open connections have the id {id:?}").into())
    }

    /// Open connections, all or those with `tag`.
    pub fn connections(&self, tag: Option<&str>) -> Vec<Connection> {
        self.0.registry.borrow_mut().connections(tag)
    }

    /// Sends an HTTP request straight to another room's `on_request` (on any shard),
    /// bypassing `on_before_request`, and waits for its response, at most
    /// `room_answer_timeout_ms`. Rooms handle one event at a time, so two rooms fetching
    /// each other wait on each other until that deadline.
    pub async fn fetch(&self, party: &str, room: &str, request: Request) -> Result<Response> {
        if party == self.name() && room == self.id() {
            return Err("a room cannot fetch itself: it handles one event at a time".into());
        }
        self.0.runtime.fetch(party, room, request).await
    }
}
