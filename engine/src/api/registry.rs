//! [`Registry`]: the open connections of one room, indexed three ways: by connection
//! (the room's own events), by id (`room.connection(id)`, `broadcast(.., without)`), and
//! by edge shard (a broadcast goes only to edges holding some, one delivery each).
//!
//! After a room wakes, its connections stay in the archive it slept with
//! ([`ArchivedConns`]) until something needs one: then that one is rebuilt and indexed
//! here. Every lookup asks both; a connection is in exactly one of them.

use super::Connection;
use super::archive::{ArchivedConns, ConnRecord, record_of};
use crate::route::{ConnId, NodeId, ShardAddr};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::rc::Rc;
use std::sync::Arc;

#[derive(Default)]
pub(crate) struct Registry {
    by_ref: HashMap<ConnId, Connection>,
    /// Id to connection. The id string is the connection's own (`Rc<str>`), not a copy.
    by_id: HashMap<Rc<str>, ConnId>,
    /// The other connections with an id already in `by_id` (clients choose ids, so this
    /// happens; rare, hence kept apart to keep `by_id` small).
    id_dups: HashMap<Rc<str>, Vec<ConnId>>,
    /// Open connections per edge shard; a few entries (at most one per shard), so a list.
    per_edge: Vec<(ShardAddr, u32)>,
    /// The connections not rebuilt since the room woke.
    archived: Option<Box<ArchivedConns>>,
}

impl Registry {
    /// Connections rebuilt and indexed here (the rest, if the room woke, are archived).
    #[cfg(test)]
    pub fn rebuilt(&self) -> usize {
        self.by_ref.len()
    }

    /// Open connections (rebuilt or still archived; none while the room sleeps).
    pub fn len(&self) -> usize {
        self.by_ref.len() + self.archived.as_ref().map_or(0, |a| a.len())
    }

    /// Open connections, indexed or (while the room sleeps) archived.
    pub fn count(&self) -> usize {
        self.per_edge.iter().map(|(_, n)| *n as usize).sum()
    }

    /// Whether the room has open connections, indexed or (while it sleeps) archived.
    pub fn has_connections(&self) -> bool {
        !self.per_edge.is_empty()
    }

    /// The connection on socket `cid`, rebuilt from the archive if need be.
    pub fn get(&mut self, cid: ConnId) -> Option<Connection> {
        if let Some(conn) = self.by_ref.get(&cid) {
            return Some(conn.clone());
        }
        let archived = self.archived.as_mut()?;
        let at = archived.find(cid)?;
        let conn = archived.take(at);
        self.restore(&conn);
        Some(conn)
    }

    /// Rebuilds the archived connections at `positions` into the indexes.
    fn take_archived(&mut self, positions: Vec<usize>) -> Vec<Connection> {
        let Some(archived) = self.archived.as_mut() else { return Vec::new() };
        let conns: Vec<Connection> = positions.into_iter().map(|at| archived.take(at)).collect();
        for conn in &conns {
            self.restore(conn);
        }
        conns
    }

    /// The room woke: its connections are read from `archive` as they are needed.
    pub fn attach(&mut self, archive: ArchivedConns) {
        self.archived = Some(Box::new(archive));
    }

    /// The records of every open connection, for the room's archive (those still archived
    /// are copied through without being rebuilt).
    pub fn records(&self) -> Result<Vec<ConnRecord>, String> {
        let mut records: Vec<ConnRecord> = self.by_ref.values().map(record_of).collect();
        if let Some(archived) = &self.archived {
            records.extend(archived.remaining_records()?);
        }
        Ok(records)
    }

    /// A page of the open connections, ordered by socket (node, shard, sequence): those
    /// after `after`, at most `limit`, for the admin API. Scans every connection's socket
    /// once (no copies but the page's).
    pub fn page(&self, after: Option<ConnId>, limit: usize) -> Result<Vec<ConnRecord>, String> {
        let key = |c: &ConnId| (c.edge.node.0, c.edge.shard, c.seq);
        let after = after.as_ref().map(key);
        let mut found: Vec<(ConnId, Option<usize>)> =
            self.by_ref.keys().map(|c| (*c, None)).collect();
        if let Some(archived) = &self.archived {
            found.extend(archived.all().into_iter().map(|at| (archived.cid(at), Some(at))));
        }
        found.retain(|(c, _)| after.is_none_or(|a| key(c) > a));
        if found.len() > limit {
            found.select_nth_unstable_by_key(limit, |(c, _)| key(c));
            found.truncate(limit);
        }
        found.sort_unstable_by_key(|(c, _)| key(c));
        found
            .into_iter()
            .map(|(cid, at)| match (at, &self.archived) {
                (Some(at), Some(archived)) => archived.record(at),
                _ => self
                    .by_ref
                    .get(&cid)
                    .map(record_of)
                    .ok_or_else(|| "a connection left".to_owned()),
            })
            .collect()
    }

    pub fn register(&mut self, conn: &Connection) {
        let cid = conn.cid();
        match self.per_edge.iter_mut().find(|(edge, _)| *edge == cid.edge) {
            Some((_, count)) => *count += 1,
            None => self.per_edge.push((cid.edge, 1)),
        }
        self.restore(conn);
    }

    /// Indexes a connection whose edge is already counted (one rebuilt from the archive).
    fn restore(&mut self, conn: &Connection) {
        let cid = conn.cid();
        match self.by_id.entry(conn.shared_id()) {
            Entry::Occupied(taken) => {
                let id = taken.key().clone();
                self.id_dups.entry(id).or_default().push(cid);
            }
            Entry::Vacant(free) => {
                free.insert(cid);
            }
        }
        self.by_ref.insert(cid, conn.clone());
    }

    /// Takes every connection out for the archive, keeping the per-edge counts (the room
    /// sleeps; its sockets stay open on their edges) and freeing the maps' memory.
    pub fn take_for_sleep(&mut self) -> Vec<Connection> {
        self.by_id = HashMap::new();
        self.id_dups = HashMap::new();
        self.archived = None;
        std::mem::take(&mut self.by_ref).into_values().collect()
    }

    /// Forgets every connection and edge (the archive was lost): the edges to tell.
    pub fn forget_all(&mut self) -> Vec<ShardAddr> {
        let edges = self.edges().collect();
        *self = Registry::default();
        edges
    }

    pub fn unregister(&mut self, cid: ConnId) -> Option<Connection> {
        // A connection still archived is rebuilt once, for its `on_close`.
        self.get(cid)?;
        let conn = self.by_ref.remove(&cid)?;
        if let Some(at) = self.per_edge.iter().position(|(edge, _)| *edge == cid.edge) {
            self.per_edge[at].1 -= 1;
            if self.per_edge[at].1 == 0 {
                self.per_edge.swap_remove(at);
            }
        }
        let id = conn.id();
        let Registry { by_id, id_dups, .. } = self;
        if by_id.get(id) == Some(&cid) {
            // Hand the id to a duplicate, if there is one.
            match id_dups.get_mut(id).and_then(Vec::pop) {
                Some(next) => {
                    by_id.insert(conn.shared_id(), next);
                }
                None => {
                    by_id.remove(id);
                }
            }
        } else if let Some(list) = id_dups.get_mut(id) {
            list.retain(|c| *c != cid);
        }
        if id_dups.get(id).is_some_and(Vec::is_empty) {
            id_dups.remove(id);
        }
        Some(conn)
    }

    /// Every connection on an edge of `node` (none is rebuilt).
    pub fn on_node(&self, node: NodeId) -> Vec<ConnId> {
        let mut out: Vec<ConnId> =
            self.by_ref.keys().filter(|c| c.edge.node == node).copied().collect();
        if let Some(a) = &self.archived {
            out.extend((0..a.len()).map(|at| a.cid(at)).filter(|c| c.edge.node == node));
        }
        out
    }

    /// The edge shards holding connections of the room.
    pub fn edges(&self) -> impl Iterator<Item = ShardAddr> + '_ {
        self.per_edge.iter().map(|(edge, _)| *edge)
    }

    /// Every connection with one of these ids (none is rebuilt).
    pub fn resolve(&self, ids: &[&str]) -> Arc<[ConnId]> {
        ids.iter()
            .flat_map(|id| {
                let first = self.by_id.get(*id).copied().into_iter();
                let indexed = first.chain(self.id_dups.get(*id).into_iter().flatten().copied());
                let archived = self
                    .archived
                    .as_ref()
                    .map(|a| a.with_id(id).into_iter().map(|at| a.cid(at)).collect::<Vec<_>>());
                indexed.chain(archived.into_iter().flatten())
            })
            .collect()
    }

    /// The connection with this id; `Err(n)` if `n` connections share it.
    pub fn by_id(&mut self, id: &str) -> Result<Option<Connection>, usize> {
        let archived = self.archived.as_ref().map(|a| a.with_id(id)).unwrap_or_default();
        let indexed =
            self.id_dups.get(id).map_or(0, |d| d.len()) + usize::from(self.by_id.contains_key(id));
        if indexed + archived.len() > 1 {
            return Err(indexed + archived.len());
        }
        if !archived.is_empty() {
            return Ok(self.take_archived(archived).pop());
        }
        Ok(self.by_id.get(id).and_then(|one| self.by_ref.get(one)).cloned())
    }

    /// Open connections, all or those with `tag` (archived ones are found through the
    /// archive's tag index and rebuilt).
    pub fn connections(&mut self, tag: Option<&str>) -> Vec<Connection> {
        let archived = match (&self.archived, tag) {
            (None, _) => Vec::new(),
            (Some(a), None) => a.all(),
            (Some(a), Some(tag)) => a.with_tag(tag),
        };
        self.take_archived(archived);
        self.by_ref
            .values()
            .filter(|c| c.is_open() && tag.is_none_or(|t| c.has_tag(t)))
            .cloned()
            .collect()
    }
}
