//! `items`: a collection too large for one value, sharded across keys, like PartyKit's
//! "items" example. Each item is its own key (`item:<id>`, a JSON value up to the storage
//! value limit), so a room holds as many items as the disk allows, reads one without
//! loading the rest, and pages through them in id order. A count under `meta:count`
//! changes in the same transaction as the item, so it is never off.
//!
//! HTTP (ids are path segments, up to 256 bytes):
//! - `GET /parties/items/<room>?after=<id>&limit=<n>`: `{"count", "items": [{"id", "value"}],
//!   "next"}`, at most `limit` (default 100, at most 1,000) items after `after`; `next` is
//!   the `after` of the next page, or `null`.
//! - `GET .../<room>/<id>`: the item's value, or 404.
//! - `PUT .../<room>/<id>` with a JSON body: stores it (`{"created": bool}`).
//! - `DELETE .../<room>/<id>`: `{"deleted": bool}`.
//!
//! WebSocket: a connection first gets `{"type":"count","count":n}`; it may send
//! `{"type":"put","id","value"}` or `{"type":"delete","id"}`; every change goes to every
//! connection as the same JSON.

use crate::{
    ConnectContext, Connection, Error, ListOptions, Message, Party, Request, Response, Result,
    Room, StorageError,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// Longest item id, in bytes.
pub const ID_SIZE_MAX: usize = 256;

/// Items per page when the request names no limit.
pub const PAGE_DEFAULT: usize = 100;

const ITEM: &str = "item:";
const COUNT: &str = "meta:count";

/// A change, from a socket or broadcast to every socket.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Change {
    Put { id: String, value: Value },
    Delete { id: String },
}

/// The items party.
#[derive(Debug)]
pub struct Items {
    room: Room,
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > ID_SIZE_MAX {
        return Err(format!("an item id must be 1 to {ID_SIZE_MAX} bytes").into());
    }
    Ok(())
}

impl Items {
    /// The item count outside any transaction.
    async fn count(&self) -> Result<u64> {
        Ok(self.room.storage().get_json(COUNT).await?.unwrap_or(0))
    }

    /// Stores the item and the new count as one transaction; whether it is new.
    async fn put(&self, id: &str, value: &Value) -> Result<bool> {
        check_id(id)?;
        let storage = self.room.storage();
        let mut txn = storage.transaction().await?;
        let key = format!("{ITEM}{id}");
        let created = txn.get(&key).await?.is_none();
        txn.put(&key, serde_json::to_vec(value)?)?;
        if created {
            let count = count_in(&txn).await?;
            txn.put(COUNT, serde_json::to_vec(&(count + 1))?)?;
        }
        txn.commit().await?;
        Ok(created)
    }

    /// Deletes the item and updates the count as one transaction; whether it existed.
    async fn delete(&self, id: &str) -> Result<bool> {
        check_id(id)?;
        let storage = self.room.storage();
        let mut txn = storage.transaction().await?;
        let existed = txn.delete(format!("{ITEM}{id}")).await?;
        if existed {
            let count = count_in(&txn).await?;
            txn.put(COUNT, serde_json::to_vec(&count.saturating_sub(1))?)?;
        }
        txn.commit().await?;
        Ok(existed)
    }

    async fn page(&self, request: &Request) -> Result<Response> {
        let limit = match request.query_param("limit") {
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=partyline_storage::limits::LIST_LIMIT_DEFAULT).contains(&n) => n,
                _ => return Ok(Response::text(400, "limit must be 1 to 1000\n")),
            },
            None => PAGE_DEFAULT,
        };
        let options = ListOptions {
            prefix: Some(ITEM.into()),
            start_after: request.query_param("after").map(|a| format!("{ITEM}{a}").into()),
            // One more than asked: whether there is a next page.
            limit: Some(limit + 1),
            ..ListOptions::default()
        };
        let mut entries = self.room.storage().list(options).await?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        let mut items = Vec::with_capacity(entries.len());
        for (key, value) in &entries {
            let id = String::from_utf8_lossy(&key[ITEM.len()..]).into_owned();
            items.push(json!({ "id": id, "value": serde_json::from_slice::<Value>(value)? }));
        }
        let next = if more { items.last().map(|i| i["id"].clone()) } else { None };
        let body = json!({ "count": self.count().await?, "items": items, "next": next });
        Ok(Response::json(200, body.to_string()))
    }
}

/// The item count as transaction `txn` sees it.
async fn count_in(txn: &crate::Transaction<'_>) -> Result<u64> {
    match txn.get(COUNT).await? {
        Some(c) => Ok(serde_json::from_slice(&c)?),
        None => Ok(0),
    }
}

/// A storage refusal is the client's fault (413/400); an overloaded store is 503; anything
/// else is ours (500).
fn client_error(e: &Error) -> Option<Response> {
    match e.storage_error()? {
        StorageError::ValueTooLarge { .. } => Some(Response::text(413, format!("{e}\n"))),
        StorageError::KeyTooLarge { .. } => Some(Response::text(400, format!("{e}\n"))),
        StorageError::Busy => Some(Response::text(503, format!("{e}\n"))),
        _ => None,
    }
}

impl Party for Items {
    async fn on_start(room: Room) -> Result<Self> {
        Ok(Items { room })
    }

    async fn on_connect(&mut self, conn: &Connection, _ctx: &ConnectContext) -> Result<()> {
        conn.send_json(&json!({ "type": "count", "count": self.count().await? }))
    }

    async fn on_message(&mut self, message: Message, _sender: &Connection) -> Result<()> {
        match serde_json::from_str::<Change>(message.text()?)? {
            Change::Put { id, value } => {
                self.put(&id, &value).await?;
                self.room.broadcast(
                    json!({ "type": "put", "id": id, "value": value }).to_string(),
                    &[],
                )?;
            }
            Change::Delete { id } => {
                if self.delete(&id).await? {
                    self.room.broadcast(json!({ "type": "delete", "id": id }).to_string(), &[])?;
                }
            }
        }
        Ok(())
    }

    async fn on_error(&mut self, conn: &Connection, error: &Error) -> Result<()> {
        if conn.is_open() {
            conn.send_json(&json!({ "type": "error", "error": error.to_string() }))?;
        }
        Ok(())
    }

    async fn on_request(&mut self, request: Request) -> Result<Response> {
        let sub = self.room.sub_path(&request).trim_start_matches('/');
        if sub.is_empty() {
            return match request.method.as_str() {
                "GET" | "HEAD" => self.page(&request).await.or_else(|e| client_error(&e).ok_or(e)),
                _ => Ok(Response::text(405, "use GET\n").with_header("allow", "GET, HEAD")),
            };
        }
        let id = partyline_protocol::route::percent_decode(sub).into_owned();
        if check_id(&id).is_err() || id.contains('/') {
            return Ok(Response::text(
                400,
                format!("an item id is one path segment of 1 to {ID_SIZE_MAX} bytes\n"),
            ));
        }
        let outcome = match request.method.as_str() {
            "GET" | "HEAD" => {
                return Ok(match self.room.storage().get(format!("{ITEM}{id}")).await? {
                    Some(value) => Response::json(200, String::from_utf8(value.to_vec())?),
                    None => Response::text(404, "no such item\n"),
                });
            }
            "PUT" => {
                let value: Value = match serde_json::from_slice(&request.body) {
                    Ok(v) => v,
                    Err(e) => {
                        return Ok(Response::text(400, format!("the body must be JSON: {e}\n")));
                    }
                };
                self.put(&id, &value).await.and_then(|created| {
                    self.room.broadcast(
                        json!({ "type": "put", "id": id, "value": value }).to_string(),
                        &[],
                    )?;
                    Ok(json!({ "created": created }))
                })
            }
            "DELETE" => self.delete(&id).await.and_then(|deleted| {
                if deleted {
                    self.room.broadcast(json!({ "type": "delete", "id": id }).to_string(), &[])?;
                }
                Ok(json!({ "deleted": deleted }))
            }),
            _ => {
                return Ok(Response::text(405, "use GET, PUT or DELETE\n")
                    .with_header("allow", "GET, HEAD, PUT, DELETE"));
            }
        };
        match outcome {
            Ok(body) => Ok(Response::json(200, body.to_string())),
            Err(e) => client_error(&e).ok_or(e),
        }
    }
}
