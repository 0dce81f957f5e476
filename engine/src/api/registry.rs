//! [`Registry`]: the open connections of one room, indexed three ways: by connection
//! (the room's own events), by id (`room.connection(id)`, `broadcast(.., without)`), and
//! by edge shard (a broadcast goes only to edges holding some, one delivery each).

use super::Connection;
use crate::route::{ConnId, ShardAddr};
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
}

impl Registry {
    pub fn len(&self) -> usize {
        self.by_ref.len()
    }

    /// Open connections, indexed or (while the room sleeps) archived.
    pub fn count(&self) -> usize {
        self.per_edge.iter().map(|(_, n)| *n as usize).sum()
    }

    /// Whether the room has open connections, indexed or (while it sleeps) archived.
    pub fn has_connections(&self) -> bool {
        !self.per_edge.is_empty()
    }

    /// Every connection, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &Connection> + '_ {
        self.by_ref.values()
    }

    pub fn get(&self, cid: ConnId) -> Option<Connection> {
        self.by_ref.get(&cid).cloned()
    }

    pub fn register(&mut self, conn: &Connection) {
        let cid = conn.cid();
        match self.per_edge.iter_mut().find(|(edge, _)| *edge == cid.edge) {
            Some((_, count)) => *count += 1,
            None => self.per_edge.push((cid.edge, 1)),
        }
        self.restore(conn);
    }

    /// Indexes a connection whose edge is already counted (one woken from the archive).
    pub fn restore(&mut self, conn: &Connection) {
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
        std::mem::take(&mut self.by_ref).into_values().collect()
    }

    /// Forgets every connection and edge (the archive was lost): the edges to tell.
    pub fn forget_all(&mut self) -> Vec<ShardAddr> {
        let edges = self.edges().collect();
        *self = Registry::default();
        edges
    }

    pub fn unregister(&mut self, cid: ConnId) -> Option<Connection> {
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

    /// The edge shards holding connections of the room.
    pub fn edges(&self) -> impl Iterator<Item = ShardAddr> + '_ {
        self.per_edge.iter().map(|(edge, _)| *edge)
    }

    /// Every connection with one of these ids.
    pub fn resolve(&self, ids: &[&str]) -> Arc<[ConnId]> {
        ids.iter()
            .flat_map(|id| {
                let first = self.by_id.get(*id).into_iter();
                first.chain(self.id_dups.get(*id).into_iter().flatten())
            })
            .copied()
            .collect()
    }

    /// The connection with this id; `Err(n)` if `n` connections share it.
    pub fn by_id(&self, id: &str) -> Result<Option<Connection>, usize> {
        if let Some(dups) = self.id_dups.get(id) {
            return Err(dups.len() + 1);
        }
        Ok(self.by_id.get(id).and_then(|one| self.by_ref.get(one)).cloned())
    }

    /// Open connections, all or those with `tag`.
    pub fn connections(&self, tag: Option<&str>) -> Vec<Connection> {
        self.by_ref
            .values()
            .filter(|c| c.is_open() && tag.is_none_or(|t| c.has_tag(t)))
            .cloned()
            .collect()
    }
}
