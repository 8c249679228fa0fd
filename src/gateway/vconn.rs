//! The vconn table: every live virtual connection, its two ends, and for
//! each physical connection the list of its vconns.
//!
//! A conn ID encodes the vconn's slot (low 24 bits, plus one so it is never
//! zero) and a rolling 8-bit generation (high bits), so lookups are an index
//! and a compare, and a freed slot is unlikely to come back under the same
//! ID soon. Each physical connection's vconns form a doubly linked list
//! threaded through the table, so a connection needs no collection of its
//! own and adding or removing a vconn allocates nothing.

use slab::Slab;

use crate::config::Side;

/// End of a list.
pub(crate) const NIL: u32 = u32::MAX;
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// Most vconns that can be live at once.
pub const MAX_VCONNS: usize = INDEX_MASK as usize - 1;

#[derive(Debug, Clone, Copy)]
struct Link {
    conn: u32,
    prev: u32,
    next: u32,
}

#[derive(Debug)]
struct VConn {
    id: u32,
    /// Indexed by `Side::index()`: the client end, then the server end.
    ends: [Link; 2],
}

/// The head and length of one physical connection's vconn list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VList {
    head: u32,
    len: u32,
}

impl Default for VList {
    fn default() -> Self {
        VList { head: NIL, len: 0 }
    }
}

impl VList {
    /// Vconns in the list.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// The conn ID at the head, if any.
    pub fn first(&self, table: &VConnTable) -> Option<u32> {
        (self.head != NIL).then(|| table.slots[self.head as usize].id)
    }
}

/// The live vconns.
#[derive(Debug, Default)]
pub(crate) struct VConnTable {
    slots: Slab<VConn>,
    generation: u32,
}

impl VConnTable {
    /// Live vconns.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether another vconn fits.
    pub fn has_room(&self) -> bool {
        self.slots.len() < MAX_VCONNS
    }

    fn slot(&self, conn_id: u32) -> Option<usize> {
        let idx = (conn_id & INDEX_MASK).checked_sub(1)? as usize;
        match self.slots.get(idx) {
            Some(v) if v.id == conn_id => Some(idx),
            _ => None,
        }
    }

    /// The physical connections (client key, server key) of a vconn.
    pub fn ends(&self, conn_id: u32) -> Option<[usize; 2]> {
        let v = &self.slots[self.slot(conn_id)?];
        Some([v.ends[0].conn as usize, v.ends[1].conn as usize])
    }

    /// Opens a vconn between a client and a server; returns its conn ID.
    /// The caller checks [`has_room`](Self::has_room) first.
    pub fn insert(
        &mut self,
        client: usize,
        client_list: &mut VList,
        server: usize,
        server_list: &mut VList,
    ) -> u32 {
        let entry = self.slots.vacant_entry();
        let idx = entry.key() as u32;
        debug_assert!(idx < INDEX_MASK - 1);
        self.generation = self.generation.wrapping_add(1);
        let id = ((self.generation & 0xff) << INDEX_BITS) | (idx + 1);
        let link = |conn: usize, list: &VList| Link {
            conn: conn as u32,
            prev: NIL,
            next: list.head,
        };
        entry.insert(VConn {
            id,
            ends: [link(client, client_list), link(server, server_list)],
        });
        for (side, list) in [(0, client_list), (1, server_list)] {
            if list.head != NIL {
                self.slots[list.head as usize].ends[side].prev = idx;
            }
            list.head = idx;
            list.len += 1;
        }
        id
    }

    /// Closes a vconn, unlinking it from both ends' lists.
    pub fn remove(&mut self, conn_id: u32, client_list: &mut VList, server_list: &mut VList) {
        let Some(idx) = self.slot(conn_id) else {
            return;
        };
        let v = self.slots.remove(idx);
        for (side, list) in [(0, client_list), (1, server_list)] {
            let Link { prev, next, .. } = v.ends[side];
            if prev == NIL {
                list.head = next;
            } else {
                self.slots[prev as usize].ends[side].next = next;
            }
            if next != NIL {
                self.slots[next as usize].ends[side].prev = prev;
            }
            list.len -= 1;
        }
    }

    /// The conn IDs of a list, for inspection (tests, invariant checks).
    pub fn ids(&self, list: &VList, side: Side) -> Vec<u32> {
        let mut out = Vec::with_capacity(list.len as usize);
        let mut at = list.head;
        while at != NIL {
            let v = &self.slots[at as usize];
            out.push(v.id);
            at = v.ends[side.index()].next;
        }
        out
    }

    /// Every live conn ID with its ends (client key, server key).
    pub fn all(&self) -> impl Iterator<Item = (u32, [usize; 2])> + '_ {
        self.slots
            .iter()
            .map(|(_, v)| (v.id, [v.ends[0].conn as usize, v.ends[1].conn as usize]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_lookup_remove_keeps_lists_consistent() {
        let mut t = VConnTable::default();
        let (mut c1, mut c2, mut s) = (VList::default(), VList::default(), VList::default());
        let a = t.insert(1, &mut c1, 9, &mut s);
        let b = t.insert(2, &mut c2, 9, &mut s);
        let c = t.insert(1, &mut c1, 9, &mut s);
        assert!(a != 0 && b != 0 && c != 0);
        assert_eq!(t.ends(b), Some([2, 9]));
        assert_eq!(s.len(), 3);
        assert_eq!(t.ids(&s, Side::Server), vec![c, b, a]);
        assert_eq!(t.ids(&c1, Side::Client), vec![c, a]);
        t.remove(b, &mut c2, &mut s);
        assert_eq!(t.ends(b), None);
        assert_eq!(t.ids(&s, Side::Server), vec![c, a]);
        assert_eq!(c2, VList::default());
        t.remove(c, &mut c1, &mut s);
        t.remove(a, &mut c1, &mut s);
        assert_eq!(s, VList::default());
        assert_eq!(t.len(), 0);
        // Reused slot, new ID: the old ID no longer resolves.
        let d = t.insert(1, &mut c1, 9, &mut s);
        assert_ne!(d, a);
        assert_eq!(t.ends(a), None);
        assert_eq!(t.ends(0), None);
        assert_eq!(t.ends(u32::MAX), None);
    }
}
