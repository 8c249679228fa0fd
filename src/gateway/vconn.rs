//! The vconn table: every live virtual connection, its two ends, and for
//! each physical connection the list of its vconns.
//!
//! Conn IDs come from a counter that runs up through the whole `u32` space
//! (skipping zero and IDs whose place in the table is taken) before it
//! wraps, as the Go gateway's do: once a vconn closes, its ID is not handed
//! out again until about four billion other vconns have been opened. An
//! endpoint that keeps sending on a conn ID it has not yet seen closed is
//! answered `Close` (the ID is dead) instead of reaching whoever holds the
//! ID next.
//!
//! The table is a power-of-two array indexed by the low bits of the conn
//! ID. The counter only hands out an ID whose place is free, so finding a
//! vconn from a frame's conn ID is one index and one compare, with no
//! hashing or probing; the table doubles when half full (every live ID
//! still has a place of its own at the next size). Each physical
//! connection's vconns form a doubly linked list threaded through the
//! table by conn ID, so a connection needs no collection of its own and
//! adding or removing a vconn allocates nothing once the table has grown.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::side::Side;

/// End of a list (zero is never a conn ID).
const NONE: u32 = 0;
/// Most vconns that can be live at once.
pub const MAX_VCONNS: usize = (1 << 24) - 2;
/// Places in a new table.
const FIRST_SIZE: usize = 16;

/// A multiplicative hasher for `u32` IDs chosen by the gateway (client IDs)
/// or by authenticated servers (server IDs): a fast non-cryptographic hash
/// is safe for them.
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

/// One end of a vconn: its physical connection and its neighbours (conn
/// IDs) in that connection's list.
#[derive(Debug, Clone, Copy, Default)]
struct Link {
    conn: u32,
    prev: u32,
    next: u32,
}

/// A place in the table; `id == 0` when free.
#[derive(Debug, Clone, Copy, Default)]
struct VConn {
    id: u32,
    /// Indexed by `Side::index()`: the client end, then the server end.
    ends: [Link; 2],
}

/// The head and length of one physical connection's vconn list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct VList {
    head: u32,
    len: u32,
}

impl VList {
    /// Vconns in the list.
    pub(super) fn len(&self) -> u32 {
        self.len
    }

    /// The conn ID at the head, if any.
    pub(super) fn first(&self) -> Option<u32> {
        (self.head != NONE).then_some(self.head)
    }
}

/// The live vconns.
#[derive(Debug)]
pub(crate) struct VConnTable {
    places: Vec<VConn>,
    mask: u32,
    live: usize,
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
    pub(super) fn starting_at(first: u32) -> VConnTable {
        VConnTable {
            places: vec![VConn::default(); FIRST_SIZE],
            mask: FIRST_SIZE as u32 - 1,
            live: 0,
            next_id: first.max(1),
        }
    }

    /// Live vconns.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Whether another vconn fits.
    pub(super) fn has_room(&self) -> bool {
        self.live < MAX_VCONNS
    }

    #[inline]
    fn place(&self, id: u32) -> usize {
        (id & self.mask) as usize
    }

    #[inline]
    fn get(&self, conn_id: u32) -> Option<&VConn> {
        let v = &self.places[self.place(conn_id)];
        (v.id == conn_id && conn_id != NONE).then_some(v)
    }

    fn link_mut(&mut self, conn_id: u32, side: usize) -> &mut Link {
        let at = self.place(conn_id);
        &mut self.places[at].ends[side]
    }

    /// The physical connections (client key, server key) of a vconn.
    #[inline]
    pub(super) fn ends(&self, conn_id: u32) -> Option<[usize; 2]> {
        let v = self.get(conn_id)?;
        Some([v.ends[0].conn as usize, v.ends[1].conn as usize])
    }

    fn allocate_id(&mut self) -> u32 {
        if (self.live + 1) * 2 > self.places.len() {
            self.grow();
        }
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if self.places[self.place(id)].id == NONE {
                return id;
            }
        }
    }

    /// Doubles the table. IDs with distinct low bits at one size keep
    /// distinct low bits at the next, so every vconn finds its place free.
    fn grow(&mut self) {
        let size = self.places.len() * 2;
        let old = std::mem::replace(&mut self.places, vec![VConn::default(); size]);
        self.mask = size as u32 - 1;
        for v in old.into_iter().filter(|v| v.id != NONE) {
            let at = self.place(v.id);
            self.places[at] = v;
        }
    }

    /// After a crowd left: halves the table while every live ID keeps a
    /// place of its own and it stays at most half full.
    pub(super) fn shrink(&mut self) {
        loop {
            let size = self.places.len() / 2;
            if size < FIRST_SIZE || self.live * 2 > size {
                return;
            }
            let mask = size as u32 - 1;
            let mut taken = vec![false; size];
            for v in self.places.iter().filter(|v| v.id != NONE) {
                let at = (v.id & mask) as usize;
                if std::mem::replace(&mut taken[at], true) {
                    return;
                }
            }
            let old = std::mem::replace(&mut self.places, vec![VConn::default(); size]);
            self.mask = mask;
            for v in old.into_iter().filter(|v| v.id != NONE) {
                let at = self.place(v.id);
                self.places[at] = v;
            }
        }
    }

    /// Opens a vconn between a client and a server; returns its conn ID.
    /// The caller checks [`has_room`](Self::has_room) first.
    pub(super) fn insert(
        &mut self,
        client: usize,
        client_list: &mut VList,
        server: usize,
        server_list: &mut VList,
    ) -> u32 {
        let id = self.allocate_id();
        let link = |conn: usize, list: &VList| Link {
            conn: conn as u32,
            prev: NONE,
            next: list.head,
        };
        let at = self.place(id);
        self.places[at] = VConn {
            id,
            ends: [link(client, client_list), link(server, server_list)],
        };
        self.live += 1;
        for (side, list) in [(0, client_list), (1, server_list)] {
            if list.head != NONE {
                self.link_mut(list.head, side).prev = id;
            }
            list.head = id;
            list.len += 1;
        }
        id
    }

    /// Closes a vconn, unlinking it from both ends' lists.
    pub(super) fn remove(
        &mut self,
        conn_id: u32,
        client_list: &mut VList,
        server_list: &mut VList,
    ) {
        let Some(&v) = self.get(conn_id) else {
            return;
        };
        let at = self.place(conn_id);
        self.places[at] = VConn::default();
        self.live -= 1;
        for (side, list) in [(0, client_list), (1, server_list)] {
            let Link { prev, next, .. } = v.ends[side];
            if prev == NONE {
                list.head = next;
            } else {
                self.link_mut(prev, side).next = next;
            }
            if next != NONE {
                self.link_mut(next, side).prev = prev;
            }
            list.len -= 1;
        }
    }

    /// The conn IDs of a list, for inspection (tests, invariant checks).
    pub(super) fn ids(&self, list: &VList, side: Side) -> Vec<u32> {
        let mut out = Vec::with_capacity(list.len as usize);
        let mut at = list.head;
        while let Some(v) = self.get(at) {
            out.push(v.id);
            at = v.ends[side.index()].next;
        }
        out
    }

    /// Every live conn ID with its ends (client key, server key).
    pub(super) fn all(&self) -> impl Iterator<Item = (u32, [usize; 2])> + '_ {
        self.places
            .iter()
            .filter(|v| v.id != NONE)
            .map(|v| (v.id, [v.ends[0].conn as usize, v.ends[1].conn as usize]))
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
    fn growing_keeps_every_vconn_and_list() {
        let mut t = VConnTable::default();
        let mut clients = [VList::default(); 7];
        let mut servers = [VList::default(); 3];
        let mut live: Vec<(u32, usize, usize)> = Vec::new();
        for i in 0..5_000usize {
            let (c, s) = (i % 7, i % 3);
            let id = t.insert(c, &mut clients[c], 100 + s, &mut servers[s]);
            live.push((id, c, s));
            if i % 4 == 3 {
                // Close an older one, so the free places are scattered.
                let (id, c, s) = live.remove(i % live.len());
                t.remove(id, &mut clients[c], &mut servers[s]);
                assert_eq!(t.ends(id), None);
            }
        }
        assert_eq!(t.len(), live.len());
        assert!(t.places.len() >= 2 * t.len());
        for &(id, c, s) in &live {
            assert_eq!(t.ends(id), Some([c, 100 + s]));
        }
        let sorted = |mut v: Vec<u32>| {
            v.sort_unstable();
            v
        };
        for (c, list) in clients.iter().enumerate() {
            let want = live.iter().filter(|v| v.1 == c).map(|v| v.0).collect();
            assert_eq!(sorted(t.ids(list, Side::Client)), sorted(want));
            assert_eq!(list.len() as usize, t.ids(list, Side::Client).len());
        }
        for (s, list) in servers.iter().enumerate() {
            let want = live.iter().filter(|v| v.2 == s).map(|v| v.0).collect();
            assert_eq!(sorted(t.ids(list, Side::Server)), sorted(want));
            assert_eq!(list.len() as usize, t.ids(list, Side::Server).len());
        }
        let all = t.all().map(|(id, _)| id).collect();
        assert_eq!(sorted(all), sorted(live.iter().map(|v| v.0).collect()));
        // Most leave; the table shrinks as far as the rest allow, and every
        // lookup and list still holds.
        let big = t.places.len();
        while live.len() > 10 {
            let (id, c, s) = live.pop().unwrap();
            t.remove(id, &mut clients[c], &mut servers[s]);
        }
        t.shrink();
        assert!(
            t.places.len() < big,
            "{} places kept of {big}",
            t.places.len()
        );
        assert!(t.places.len() >= 2 * t.len());
        for &(id, c, s) in &live {
            assert_eq!(t.ends(id), Some([c, 100 + s]));
        }
        for (c, list) in clients.iter().enumerate() {
            let want = live.iter().filter(|v| v.1 == c).map(|v| v.0).collect();
            assert_eq!(sorted(t.ids(list, Side::Client)), sorted(want));
        }
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
