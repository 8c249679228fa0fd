//! The vconn table: every live virtual connection, its two ends, and for
//! each physical connection the list of its vconns.
//!
//! Conn IDs come from a counter that runs up through the whole `u32` space
//! (skipping zero and IDs still live) before it wraps, as the Go gateway's
//! do: once a vconn closes, its ID is not handed out again until about four
//! billion other vconns have been opened. An endpoint that keeps sending on
//! a conn ID it has not yet seen closed is answered `Close` (the ID is dead)
//! instead of reaching whoever holds the ID next. IDs map to table slots
//! through a hash map; each physical connection's vconns form a doubly
//! linked list threaded through the slots, so a connection needs no
//! collection of its own and adding or removing a vconn allocates nothing
//! once the table has grown.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use slab::Slab;

use crate::side::Side;

/// End of a list.
pub(crate) const NIL: u32 = u32::MAX;
/// Most vconns that can be live at once.
pub const MAX_VCONNS: usize = (1 << 24) - 2;

/// A multiplicative hasher for `u32` IDs chosen by the gateway (conn IDs,
/// client IDs) or by authenticated servers (server IDs): a fast
/// non-cryptographic hash is safe for them.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by `u32` IDs.
pub(crate) type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

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
#[derive(Debug)]
pub(crate) struct VConnTable {
    slots: Slab<VConn>,
    by_id: IdMap<u32>,
    next_id: u32,
}

impl Default for VConnTable {
    fn default() -> Self {
        VConnTable::starting_at(1)
    }
}

impl VConnTable {
    /// A table whose first conn ID is `first` (or 1 for 0); lets tests
    /// reach the wrap-around.
    pub fn starting_at(first: u32) -> VConnTable {
        VConnTable {
            slots: Slab::new(),
            by_id: IdMap::default(),
            next_id: first.max(1),
        }
    }

    /// Live vconns.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether another vconn fits.
    pub fn has_room(&self) -> bool {
        self.slots.len() < MAX_VCONNS
    }

    /// The physical connections (client key, server key) of a vconn.
    pub fn ends(&self, conn_id: u32) -> Option<[usize; 2]> {
        let v = &self.slots[*self.by_id.get(&conn_id)? as usize];
        Some([v.ends[0].conn as usize, v.ends[1].conn as usize])
    }

    fn allocate_id(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
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
        let id = self.allocate_id();
        let entry = self.slots.vacant_entry();
        let idx = entry.key() as u32;
        let link = |conn: usize, list: &VList| Link {
            conn: conn as u32,
            prev: NIL,
            next: list.head,
        };
        entry.insert(VConn {
            id,
            ends: [link(client, client_list), link(server, server_list)],
        });
        self.by_id.insert(id, idx);
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
        let Some(idx) = self.by_id.remove(&conn_id) else {
            return;
        };
        let v = self.slots.remove(idx as usize);
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

    #[test]
    fn a_closed_id_does_not_come_back_within_a_million_dials() {
        let mut t = VConnTable::default();
        let (mut c, mut s) = (VList::default(), VList::default());
        let first = t.insert(1, &mut c, 2, &mut s);
        t.remove(first, &mut c, &mut s);
        for _ in 0..1_000_000 {
            let id = t.insert(1, &mut c, 2, &mut s);
            assert_ne!(id, first);
            t.remove(id, &mut c, &mut s);
        }
        assert_eq!(t.ends(first), None);
    }

    #[test]
    fn the_counter_wraps_past_zero_and_skips_live_ids() {
        let mut t = VConnTable::starting_at(u32::MAX - 1);
        let (mut c, mut s) = (VList::default(), VList::default());
        let a = t.insert(1, &mut c, 2, &mut s);
        let b = t.insert(1, &mut c, 2, &mut s);
        assert_eq!((a, b), (u32::MAX - 1, u32::MAX));
        let wrapped = t.insert(1, &mut c, 2, &mut s);
        assert_eq!(wrapped, 1, "zero is never a conn ID");
        // Run the counter all the way round (fast-forwarded): the live IDs
        // are skipped, not reused.
        t.next_id = u32::MAX - 1;
        let next = t.insert(1, &mut c, 2, &mut s);
        assert_eq!(next, 2);
        assert_eq!(t.len(), 4);
        assert_eq!(t.ends(a), Some([1, 2]));
    }
}
