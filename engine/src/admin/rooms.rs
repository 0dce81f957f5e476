//! The rooms API on the admin listener: `/rooms/<party>` (a page of a party's rooms,
//! loaded now or with storage), `/rooms/<party>/<id>` (one room: home, state, connections,
//! storage, alarm) and `/connections/<party>/<id>` (a page of a room's connections, in
//! socket order: from its home shard while it is awake, from its archive in storage while
//! it sleeps). Shards are asked through their bounded query queues and answer at their
//! next sweep; every wait has a deadline ([`SHARD_ANSWER_MS`]); storage is read on this
//! (the admin) thread, never a shard's.

use super::View;
use crate::api::archive::{self, ConnRecord};
use crate::home::Connections;
use crate::route::{ConnId, NodeId, RoomKey, ShardAddr};
use crate::shard::query::{LoadedRoom, Query};
use std::time::Duration;

/// Connections at most one page of `/connections/<party>/<id>` lists.
const CONNECTIONS_PAGE_MAX: usize = 1000;

/// Bytes of a connection's state shown in a listing (the rest is counted, not shown).
const STATE_SHOWN_MAX: usize = 1024;

/// Rooms at most one page of `/rooms/<party>` lists.
const ROOMS_PAGE_MAX: usize = 1000;

/// How long the rooms API waits for each shard's answer (shards answer at their next
/// sweep, 200 ms apart).
const SHARD_ANSWER_MS: u64 = 2_000;

/// `/rooms/<party>` (a page of the party's rooms: loaded now, or with storage) and
/// `/rooms/<party>/<id>` (one room). Answers (status, JSON).
pub(super) fn rooms_api(view: &View, rest: &str, query: &str) -> (u16, String) {
    let error =
        |status: u16, message: &str| (status, serde_json::json!({ "error": message }).to_string());
    let (party, room) = match rest.split_once('/') {
        Some((p, r)) if !r.is_empty() => (p, Some(r)),
        Some((p, _)) => (p, None),
        None => (rest, None),
    };
    if !view.parties.iter().any(|p| p == party) {
        return error(404, "no such party");
    }
    match room {
        None => {
            let after = param(query, "after").filter(|a| !a.is_empty());
            let limit = param(query, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100)
                .clamp(1, ROOMS_PAGE_MAX);
            rooms_page(view, party, after.as_deref(), limit).unwrap_or_else(|e| error(503, &e))
        }
        Some(room) => room_details(view, party, room).unwrap_or_else(|e| error(503, &e)),
    }
}

/// Asks every shard (or only `shard`) for its loaded rooms of `party`.
fn ask_shards(
    view: &View,
    party: &str,
    room: Option<&str>,
    shard: Option<usize>,
) -> Result<Vec<LoadedRoom>, String> {
    let deadline = std::time::Instant::now() + Duration::from_millis(SHARD_ANSWER_MS);
    let mut answers = Vec::new();
    for (i, tx) in view.queries.iter().enumerate().filter(|(i, _)| shard.is_none_or(|s| s == *i)) {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let q = Query::Rooms { party: party.to_owned(), room: room.map(str::to_owned), reply };
        tx.try_send(q).map_err(|_| format!("shard {i} is busy answering; try again"))?;
        answers.push((i, answer));
    }
    let mut rooms = Vec::new();
    for (i, answer) in answers {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        rooms.extend(answer.recv_timeout(left).map_err(|_| format!("shard {i} did not answer"))?);
    }
    Ok(rooms)
}

fn rooms_page(
    view: &View,
    party: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<(u16, String), String> {
    use partyline_storage::room_order;
    let after_ok = |id: &str| after.is_none_or(|a| room_order(id, a).is_gt());
    let mut loaded: Vec<LoadedRoom> = ask_shards(view, party, None, None)?;
    loaded.retain(|r| after_ok(&r.id));
    let stored = futures_lite::future::block_on(view.store.rooms(party, after, limit))
        .map_err(|e| format!("storage: {e}"))?;
    let mut rows: Vec<(String, &str, usize)> = loaded
        .iter()
        .map(|r| (r.id.clone(), if r.asleep { "asleep" } else { "awake" }, r.connections))
        .collect();
    for id in stored {
        if !loaded.iter().any(|r| r.id == id) {
            rows.push((id, "stored", 0));
        }
    }
    rows.sort_by(|a, b| room_order(&a.0, &b.0));
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = (more || rows.len() == limit).then(|| rows.last().map(|r| r.0.clone())).flatten();
    let rooms: Vec<serde_json::Value> = rows
        .iter()
        .map(|(id, state, connections)| serde_json::json!({ "id": id, "state": state, "connections": connections }))
        .collect();
    Ok((200, serde_json::json!({ "party": party, "rooms": rooms, "next": next }).to_string()))
}

fn room_details(view: &View, party: &str, room: &str) -> Result<(u16, String), String> {
    let key = RoomKey::new(party, room);
    let home = view.placement.home(&key);
    let node = view.members.name(home.node);
    if home.node != view.placement.here() {
        let body = serde_json::json!({ "party": party, "id": &*key.room, "home": { "node": node }, "here": false });
        return Ok((200, body.to_string()));
    }
    let loaded = ask_shards(view, party, Some(&key.room), Some(home.index()))?.pop();
    let (usage, alarm) = futures_lite::future::block_on(async {
        let usage = view.store.usage(party, &key.room).await?;
        let alarm = view.store.room(party, &key.room)?.get_alarm().await?;
        Ok::<_, partyline_storage::Error>((usage, alarm))
    })
    .map_err(|e| format!("storage: {e}"))?;
    let state = match &loaded {
        Some(r) if r.asleep => "asleep",
        Some(_) => "awake",
        None => "unloaded",
    };
    let body = serde_json::json!({
        "party": party,
        "id": &*key.room,
        "home": { "node": node, "shard": home.shard },
        "here": true,
        "state": state,
        "connections": loaded.as_ref().map_or(0, |r| r.connections),
        "storage": { "keys": usage.keys, "bytes": usage.bytes, "complete": usage.complete },
        "alarm": alarm,
    });
    Ok((200, body.to_string()))
}

/// `/connections/<party>/<id>?limit&after`: a page of the room's connections after socket
/// `after` (`node.shard.seq`, the previous page's `next`).
pub(super) fn connections_api(view: &View, rest: &str, query: &str) -> (u16, String) {
    let error =
        |status: u16, message: &str| (status, serde_json::json!({ "error": message }).to_string());
    let Some((party, room)) = rest.split_once('/').filter(|(_, r)| !r.is_empty()) else {
        return error(404, "use /connections/<party>/<room id>");
    };
    if !view.parties.iter().any(|p| p == party) {
        return error(404, "no such party");
    }
    let limit = param(query, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100)
        .clamp(1, CONNECTIONS_PAGE_MAX);
    let after = match param(query, "after").filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => match socket_of(&a) {
            Some(cid) => Some(cid),
            None => return error(400, "after: expected node.shard.seq (a page's next)"),
        },
    };
    let key = RoomKey::new(party, room);
    let home = view.placement.home(&key);
    if home.node != view.placement.here() {
        let node = view.members.name(home.node);
        let body = serde_json::json!({ "party": party, "id": &*key.room, "home": { "node": node }, "here": false });
        return (200, body.to_string());
    }
    let answer = match ask_home(view, &key, home.index(), after, limit) {
        Ok(answer) => answer,
        Err(e) => return error(503, &e),
    };
    let (state, total, conns) = match answer {
        Connections::NotLoaded => ("unloaded", 0, Vec::new()),
        Connections::Page { total, conns } => ("awake", total, conns),
        Connections::Failed(e) => return error(500, &format!("connections: {e}")),
        Connections::Asleep => match archived(view, &key, after, limit) {
            Ok((total, conns)) => ("asleep", total, conns),
            Err(e) => return error(503, &e),
        },
    };
    let next = (conns.len() == limit).then(|| conns.last().map(socket_name)).flatten();
    let rows: Vec<serde_json::Value> = conns.iter().map(|c| connection_json(view, c)).collect();
    let body = serde_json::json!({
        "party": party,
        "id": &*key.room,
        "state": state,
        "total": total,
        "connections": rows,
        "next": next,
    });
    (200, body.to_string())
}

/// Asks the room's home shard for a page of its connections.
fn ask_home(
    view: &View,
    key: &RoomKey,
    shard: usize,
    after: Option<ConnId>,
    limit: usize,
) -> Result<Connections, String> {
    let tx = view.queries.get(shard).ok_or("no such shard")?;
    let (reply, answer) = crossbeam_channel::bounded(1);
    let q = Query::Connections { key: key.clone(), after, limit, reply };
    tx.try_send(q).map_err(|_| format!("shard {shard} is busy answering; try again"))?;
    answer
        .recv_timeout(Duration::from_millis(SHARD_ANSWER_MS))
        .map_err(|_| format!("shard {shard} did not answer"))
}

/// A page of a sleeping room's connections, from its archive in storage.
fn archived(
    view: &View,
    key: &RoomKey,
    after: Option<ConnId>,
    limit: usize,
) -> Result<(usize, Vec<ConnRecord>), String> {
    let bytes = futures_lite::future::block_on(async {
        view.store.room(&key.party, &key.room)?.get_archive(archive::REGISTRY).await
    })
    .map_err(|e| format!("storage: {e}"))?;
    let Some(bytes) = bytes else { return Ok((0, Vec::new())) };
    archive::page(&bytes, after, limit).map_err(|e| format!("connections archive: {e}"))
}

fn connection_json(view: &View, c: &ConnRecord) -> serde_json::Value {
    let state = c.state.as_deref().map(|s| {
        let shown = &s[..s.len().min(STATE_SHOWN_MAX)];
        match std::str::from_utf8(shown) {
            Ok(text) => text.to_owned(),
            // Cut inside a character, or not text: what is valid, then a marker.
            Err(e) => format!("{}…", String::from_utf8_lossy(&shown[..e.valid_up_to()])),
        }
    });
    serde_json::json!({
        "id": c.id,
        "socket": socket_name(c),
        "node": view.members.name(NodeId(c.node)),
        "shard": c.shard,
        "uri": c.uri_rest,
        "tags": c.tags,
        "state": state,
        "state_bytes": c.state.as_ref().map_or(0, Vec::len),
    })
}

/// A connection's socket as the API names it (and pages by): `node.shard.seq`.
fn socket_name(c: &ConnRecord) -> String {
    format!("{}.{}.{}", c.node, c.shard, c.seq)
}

fn socket_of(text: &str) -> Option<ConnId> {
    let mut parts = text.split('.');
    let (node, shard, seq) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let edge = ShardAddr { node: NodeId(node.parse().ok()?), shard: shard.parse().ok()? };
    Some(ConnId { edge, seq: seq.parse().ok()? })
}

/// The percent-decoded value of `name` in a query string.
fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| partyline_protocol::route::percent_decode(v).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_name_reads_back() {
        let c = ConnRecord {
            node: 2,
            shard: 7,
            seq: 1 << 40,
            id: "x".into(),
            uri_prefix: archive::NO_PREFIX,
            uri_rest: String::new(),
            tags: Vec::new(),
            state: None,
        };
        let cid = socket_of(&socket_name(&c)).unwrap();
        assert_eq!((cid.edge.node.0, cid.edge.shard, cid.seq), (2, 7, 1 << 40));
        for bad in ["", "1.2", "1.2.3.4", "a.b.c", "70000.1.1"] {
            assert!(socket_of(bad).is_none(), "{bad}");
        }
    }
}
