//! The router: who is who, and where a frame goes. It owns the vconn table
//! (and so the conn ID counter), the client and server ID maps and the
//! client ID counter, and applies the routing rules of `docs/protocol.md`
//! §5 to typed inputs the connection part hands it: where a data frame on
//! a conn ID goes, what a Dial, a Close or a Ping is answered with, what a
//! closing connection's vconns become. It keeps the groups servers name
//! (`gateway/groups.rs`): a vconn that goes leaves every group, a server
//! that goes takes its groups with it.
//!
//! It reads and writes no bytes and touches no buffer: what it decides to
//! tell the peers it puts in an outbox of `(connection, command)` pairs,
//! in order, which the core queues. Of a connection it reads only its
//! side, ID and whether it is closing, and it changes only the list of its
//! vconns. Flow control (whether a destination can take a frame now) and
//! the connections' own stages are not its business.

use slab::Slab;

use super::conn::Conn;
use crate::config::{ClientIds, Config};
use crate::gateway::groups::Groups;
use crate::gateway::stats::Stats;
use crate::gateway::vconn::{IdMap, VConnTable};
use crate::side::Side;
use crate::wire::Command;

/// Commands for the core to queue, each to a connection, in order.
pub(super) type Outbox = Vec<(usize, Command)>;

/// Where a data frame on a conn ID goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// To this connection, the vconn's other end.
    To(usize),
    /// The vconn is gone: the sender is answered Close, the frame dropped.
    Dead,
    /// The other end is closing (it will send Close itself): dropped.
    Dropped,
    /// The vconn is live but the sender is not one of its ends.
    Spoofed,
}

/// The routing state of the gateway.
pub(super) struct Router {
    pub vconns: VConnTable,
    pub clients: IdMap<usize>,
    pub servers: IdMap<usize>,
    next_client_id: u32,
    client_ids: ClientIds,
    /// The groups servers keep here; a vconn leaves them when it goes.
    pub groups: Groups,
}

impl Router {
    pub(super) fn new(client_ids: ClientIds) -> Router {
        Router {
            vconns: VConnTable::default(),
            clients: IdMap::default(),
            servers: IdMap::default(),
            next_client_id: client_ids.first,
            client_ids,
            groups: Groups::default(),
        }
    }

    fn map(&self, side: Side) -> &IdMap<usize> {
        match side {
            Side::Client => &self.clients,
            Side::Server => &self.servers,
        }
    }

    fn map_mut(&mut self, side: Side) -> &mut IdMap<usize> {
        match side {
            Side::Client => &mut self.clients,
            Side::Server => &mut self.servers,
        }
    }

    /// The connection registered as client or server `id`.
    pub(super) fn lookup(&self, side: Side, id: u32) -> Option<usize> {
        self.map(side).get(&id).copied()
    }

    /// A client ID no live client has.
    pub(super) fn new_client_id(&mut self) -> u32 {
        loop {
            let id = self.next_client_id;
            self.next_client_id = self.client_ids.after(id);
            if !self.clients.contains_key(&id) {
                return id;
            }
        }
    }

    /// Registers connection `key` as client or server `id`; returns the
    /// connection that had the ID before, if any (a server replaced by a
    /// newer one with the same ID).
    pub(super) fn register(&mut self, side: Side, id: u32, key: usize) -> Option<usize> {
        self.map_mut(side).insert(id, key).filter(|&old| old != key)
    }

    /// Forgets ID `id` if connection `key` still holds it.
    pub(super) fn forget(&mut self, side: Side, id: u32, key: usize) {
        let map = self.map_mut(side);
        if map.get(&id) == Some(&key) {
            map.remove(&id);
        }
    }

    /// Where a data frame on `conn_id` from `key` goes.
    #[inline]
    pub(super) fn route<T>(&self, conns: &Slab<Conn<T>>, key: usize, conn_id: u32) -> Route {
        let side = conns[key].side;
        let Some(ends) = self.vconns.ends(conn_id) else {
            return Route::Dead;
        };
        if ends[side.index()] != key {
            return Route::Spoofed;
        }
        let dest = ends[side.other().index()];
        if conns[dest].doomed.is_some() {
            return Route::Dropped;
        }
        Route::To(dest)
    }

    /// Whether `key` is an end of the live vconn `conn_id`: `None` if the
    /// vconn is dead, `Some(false)` if it belongs to others.
    pub(super) fn is_end<T>(
        &self,
        conns: &Slab<Conn<T>>,
        key: usize,
        conn_id: u32,
    ) -> Option<bool> {
        let side = conns[key].side;
        self.vconns
            .ends(conn_id)
            .map(|ends| ends[side.index()] == key)
    }

    /// A Dial from `key` for `remote_id`: Accept and Connect, or Refuse.
    pub(super) fn dial<T>(
        &mut self,
        conns: &mut Slab<Conn<T>>,
        cfg: &Config,
        stats: &mut Stats,
        key: usize,
        remote_id: u32,
        out: &mut Outbox,
    ) {
        stats.dials += 1;
        let c = &conns[key];
        let (side, my_id) = (c.side, c.id().unwrap_or(0));
        let target = self
            .lookup(side.other(), remote_id)
            .filter(|&t| conns[t].doomed.is_none());
        let Some(target) = target else {
            stats.refused_unknown += 1;
            out.push((key, Command::Refuse { remote_id }));
            return;
        };
        let (client, server) = match side {
            Side::Client => (key, target),
            Side::Server => (target, key),
        };
        let full = |k: usize, max: Option<u32>| max.is_some_and(|m| conns[k].vlist.len() >= m);
        if full(client, cfg.client.max_vconns)
            || full(server, cfg.server.max_vconns)
            || !self.vconns.has_room()
        {
            stats.refused_limit += 1;
            out.push((key, Command::Refuse { remote_id }));
            return;
        }
        let Some((c, s)) = conns.get2_mut(client, server) else {
            return;
        };
        let conn_id = self
            .vconns
            .insert(client, &mut c.vlist, server, &mut s.vlist);
        out.push((key, Command::Accept { conn_id, remote_id }));
        out.push((
            target,
            Command::Connect {
                conn_id,
                remote_id: my_id,
            },
        ));
    }

    /// A Close for `conn_id` from `key`: the vconn goes and both ends are
    /// told (the closer as an acknowledgement); one `key` is not an end of
    /// is ignored.
    pub(super) fn close<T>(
        &mut self,
        conns: &mut Slab<Conn<T>>,
        stats: &mut Stats,
        key: usize,
        conn_id: u32,
        out: &mut Outbox,
    ) {
        stats.closes += 1;
        let side = conns[key].side;
        match self.vconns.ends(conn_id) {
            Some(ends) if ends[side.index()] == key => {
                self.remove_telling(conns, conn_id, ends, out)
            }
            _ => stats.closes_ignored += 1,
        }
    }

    /// Removes vconn `conn_id` and tells both its ends.
    fn remove_telling<T>(
        &mut self,
        conns: &mut Slab<Conn<T>>,
        conn_id: u32,
        ends: [usize; 2],
        out: &mut Outbox,
    ) {
        self.remove(conns, conn_id, ends);
        for end in ends {
            out.push((end, Command::Close { conn_id }));
        }
    }

    fn remove<T>(&mut self, conns: &mut Slab<Conn<T>>, conn_id: u32, ends: [usize; 2]) {
        let [client, server] = ends;
        if !self.groups.is_empty() {
            self.groups.vconn_closed(server, conn_id);
        }
        if let Some((c, s)) = conns.get2_mut(client, server) {
            self.vconns.remove(conn_id, &mut c.vlist, &mut s.vlist);
        }
    }

    /// Connection `key` is closing: each of its vconns goes, and the other
    /// end of each is told.
    pub(super) fn close_all_of<T>(
        &mut self,
        conns: &mut Slab<Conn<T>>,
        key: usize,
        out: &mut Outbox,
    ) {
        let side = conns[key].side;
        if side == Side::Server && !self.groups.is_empty() {
            self.groups.server_closed(key);
        }
        while let Some(conn_id) = conns[key].vlist.first() {
            let Some(ends) = self.vconns.ends(conn_id) else {
                break;
            };
            self.remove(conns, conn_id, ends);
            out.push((ends[side.other().index()], Command::Close { conn_id }));
        }
    }

    /// Closes every vconn between `key` and `other`, telling both ends;
    /// returns how many.
    pub(super) fn close_between<T>(
        &mut self,
        conns: &mut Slab<Conn<T>>,
        key: usize,
        other: usize,
        out: &mut Outbox,
    ) -> u64 {
        let side = conns[key].side;
        let mut closed = 0;
        for conn_id in self.vconns.ids(&conns[key].vlist, side) {
            match self.vconns.ends(conn_id) {
                Some(ends) if ends[side.other().index()] == other => {
                    self.remove_telling(conns, conn_id, ends, out);
                    closed += 1;
                }
                _ => {}
            }
        }
        closed
    }

    /// Closes every vconn, telling both ends (a shutdown).
    pub(super) fn close_everything<T>(&mut self, conns: &mut Slab<Conn<T>>, out: &mut Outbox) {
        let vconns: Vec<(u32, [usize; 2])> = self.vconns.all().collect();
        for (conn_id, ends) in vconns {
            self.remove_telling(conns, conn_id, ends, out);
        }
    }

    /// Gives back what the tables grew to hold a crowd that left.
    pub(super) fn shrink(&mut self) {
        for map in [&mut self.clients, &mut self.servers] {
            if map.capacity() > 4 * map.len() + 64 {
                map.shrink_to(2 * map.len());
            }
        }
        self.vconns.shrink();
    }

    /// Checks the router's invariants against the connections.
    pub(super) fn check<T>(&self, conns: &Slab<Conn<T>>) -> Result<(), String> {
        let mut seen = 0usize;
        for (key, c) in conns.iter() {
            let ids = self.vconns.ids(&c.vlist, c.side);
            if ids.len() != c.vlist.len() as usize {
                return Err(format!(
                    "conn {key}: list length {} != {}",
                    ids.len(),
                    c.vlist.len()
                ));
            }
            for id in ids {
                let ends = self
                    .vconns
                    .ends(id)
                    .ok_or(format!("conn {key}: dead vconn {id}"))?;
                if ends[c.side.index()] != key {
                    return Err(format!("conn {key}: vconn {id} does not point back"));
                }
            }
            seen += c.vlist.len() as usize;
        }
        for (id, ends) in self.vconns.all() {
            for (i, side) in [Side::Client, Side::Server].into_iter().enumerate() {
                match conns.get(ends[i]) {
                    Some(c) if c.side == side => {}
                    _ => return Err(format!("vconn {id}: {side} end {} is not live", ends[i])),
                }
            }
        }
        if seen != 2 * self.vconns.len() {
            return Err(format!(
                "lists hold {seen} ends for {} vconns",
                self.vconns.len()
            ));
        }
        self.groups.check()?;
        for (id, &key) in self.clients.iter().chain(self.servers.iter()) {
            if conns.get(key).and_then(|c| c.id()) != Some(*id) {
                return Err(format!("ID {id} maps to conn {key}, which has another ID"));
            }
        }
        Ok(())
    }
}
