//! Groups of vconns, kept at the gateway for the servers that name them
//! (`docs/protocol.md` §10): which vconns are in which group of which
//! server, within limits, and the bookkeeping that takes a closing vconn
//! out of every group it was in.
//!
//! A server's groups are its own: two servers may use the same group
//! number for different groups. Servers are named here by their
//! connection's key, so a server that reconnects starts with no groups
//! (its vconns were closed with its old connection). Empty groups are
//! removed, so what is held is bounded by the live memberships. This
//! module knows nothing of connections or bytes.

use std::collections::{HashMap, HashSet};

/// Bounds on the groups of each server (`ServerMaxGroups`,
/// `GroupMaxMembers`, `VConnMaxGroups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// Most groups one server may have at once.
    pub max_groups: usize,
    /// Most members one group may have.
    pub max_members: usize,
    /// Most groups one vconn may be in at once.
    pub max_per_vconn: usize,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            max_groups: 4096,
            max_members: 65_536,
            max_per_vconn: 64,
        }
    }
}

/// Why a vconn was not added to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefusal {
    /// The server has `max_groups` groups already.
    TooManyGroups,
    /// The group has `max_members` members already.
    GroupFull,
    /// The vconn is in `max_per_vconn` groups already.
    TooManyForVConn,
}

/// The groups of every server.
#[derive(Debug, Default)]
pub struct Groups {
    /// Per server (connection key): group number → members' conn IDs.
    by_server: HashMap<usize, HashMap<u32, HashSet<u32>>>,
    /// Per member conn ID: the groups it is in (of its one server).
    of_vconn: HashMap<u32, Vec<u32>>,
    members: usize,
}

impl Groups {
    /// Whether no vconn is in any group (the common case: nothing to do
    /// when a vconn closes).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.members == 0
    }

    /// Groups in all.
    pub fn count(&self) -> usize {
        self.by_server.values().map(HashMap::len).sum()
    }

    /// Memberships in all (a vconn in two groups counts twice).
    pub fn members(&self) -> usize {
        self.members
    }

    /// Adds vconn `conn_id` of server `server` to `group`. Already a
    /// member: nothing changes.
    pub fn join(
        &mut self,
        limits: &GroupLimits,
        server: usize,
        group: u32,
        conn_id: u32,
    ) -> Result<(), JoinRefusal> {
        let groups = self.by_server.entry(server).or_default();
        let in_groups = self.of_vconn.get(&conn_id).map_or(0, Vec::len);
        match groups.get(&group) {
            Some(m) if m.contains(&conn_id) => return Ok(()),
            Some(m) if m.len() >= limits.max_members => return Err(JoinRefusal::GroupFull),
            None if groups.len() >= limits.max_groups => {
                if groups.is_empty() {
                    self.by_server.remove(&server);
                }
                return Err(JoinRefusal::TooManyGroups);
            }
            _ if in_groups >= limits.max_per_vconn => return Err(JoinRefusal::TooManyForVConn),
            _ => {}
        }
        groups.entry(group).or_default().insert(conn_id);
        self.of_vconn.entry(conn_id).or_default().push(group);
        self.members += 1;
        Ok(())
    }

    /// Takes `conn_id` out of `group` of `server`; returns whether it was
    /// a member.
    pub fn leave(&mut self, server: usize, group: u32, conn_id: u32) -> bool {
        let Some(groups) = self.by_server.get_mut(&server) else {
            return false;
        };
        let Some(members) = groups.get_mut(&group) else {
            return false;
        };
        if !members.remove(&conn_id) {
            return false;
        }
        if members.is_empty() {
            groups.remove(&group);
            if groups.is_empty() {
                self.by_server.remove(&server);
            }
        }
        if let Some(list) = self.of_vconn.get_mut(&conn_id) {
            list.retain(|&g| g != group);
            if list.is_empty() {
                self.of_vconn.remove(&conn_id);
            }
        }
        self.members -= 1;
        true
    }

    /// Empties `group` of `server`; returns how many left it.
    pub fn dissolve(&mut self, server: usize, group: u32) -> usize {
        let members: Vec<u32> = match self.by_server.get(&server).and_then(|g| g.get(&group)) {
            Some(m) => m.iter().copied().collect(),
            None => return 0,
        };
        for &c in &members {
            self.leave(server, group, c);
        }
        members.len()
    }

    /// Vconn `conn_id` of `server` closed: it leaves every group.
    pub fn vconn_closed(&mut self, server: usize, conn_id: u32) {
        let Some(list) = self.of_vconn.get(&conn_id) else {
            return;
        };
        for group in list.clone() {
            self.leave(server, group, conn_id);
        }
    }

    /// Server `server` closed: its groups go (its vconns have closed, or
    /// are closing).
    pub fn server_closed(&mut self, server: usize) {
        let Some(groups) = self.by_server.remove(&server) else {
            return;
        };
        for (group, members) in groups {
            for c in members {
                if let Some(list) = self.of_vconn.get_mut(&c) {
                    list.retain(|&g| g != group);
                    if list.is_empty() {
                        self.of_vconn.remove(&c);
                    }
                }
                self.members -= 1;
            }
        }
    }

    /// The members of `group` of `server`, in no particular order.
    pub fn members_of(&self, server: usize, group: u32) -> impl Iterator<Item = u32> + '_ {
        self.by_server
            .get(&server)
            .and_then(|g| g.get(&group))
            .into_iter()
            .flat_map(|m| m.iter().copied())
    }

    /// Checks that the two indexes agree.
    pub fn check(&self) -> Result<(), String> {
        let mut n = 0;
        for groups in self.by_server.values() {
            for (group, members) in groups {
                if members.is_empty() {
                    return Err(format!("group {group} is empty but kept"));
                }
                for c in members {
                    if !self.of_vconn.get(c).is_some_and(|l| l.contains(group)) {
                        return Err(format!("vconn {c} in group {group} is not indexed"));
                    }
                }
                n += members.len();
            }
        }
        let indexed: usize = self.of_vconn.values().map(Vec::len).sum();
        if n != self.members || indexed != n {
            return Err(format!(
                "{n} memberships in groups, {indexed} indexed, {} counted",
                self.members
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: GroupLimits = GroupLimits {
        max_groups: 2,
        max_members: 3,
        max_per_vconn: 2,
    };

    #[test]
    fn limits_refuse_and_leaving_frees_room() {
        let mut g = Groups::default();
        for c in 1..=3 {
            assert_eq!(g.join(&LIMITS, 0, 7, c), Ok(()));
        }
        assert_eq!(g.join(&LIMITS, 0, 7, 1), Ok(()), "a member joins again");
        assert_eq!(g.join(&LIMITS, 0, 7, 4), Err(JoinRefusal::GroupFull));
        assert_eq!(g.join(&LIMITS, 0, 8, 1), Ok(()));
        assert_eq!(g.join(&LIMITS, 0, 9, 2), Err(JoinRefusal::TooManyGroups));
        // Another server's groups are its own.
        assert_eq!(g.join(&LIMITS, 1, 7, 50), Ok(()));
        assert_eq!(g.join(&LIMITS, 0, 8, 2), Ok(()));
        assert_eq!(g.join(&LIMITS, 0, 8, 3), Ok(()));
        assert_eq!(g.members(), 7);
        g.check().unwrap();
        assert!(g.leave(0, 7, 1));
        assert!(!g.leave(0, 7, 1));
        assert_eq!(g.join(&LIMITS, 0, 7, 4), Ok(()));
        g.vconn_closed(0, 2);
        let mut seven: Vec<u32> = g.members_of(0, 7).collect();
        seven.sort_unstable();
        assert_eq!(seven, [3, 4]);
        assert_eq!(g.dissolve(0, 8), 2);
        assert_eq!(g.count(), 2);
        g.check().unwrap();
        g.server_closed(0);
        assert_eq!((g.count(), g.members()), (1, 1));
        g.server_closed(1);
        assert!(g.is_empty());
        g.check().unwrap();
    }

    #[test]
    fn a_vconn_is_in_a_bounded_number_of_groups() {
        let mut g = Groups::default();
        let limits = GroupLimits {
            max_groups: 100,
            ..LIMITS
        };
        assert_eq!(g.join(&limits, 0, 1, 5), Ok(()));
        assert_eq!(g.join(&limits, 0, 2, 5), Ok(()));
        assert_eq!(g.join(&limits, 0, 3, 5), Err(JoinRefusal::TooManyForVConn));
        assert_eq!(g.count(), 2, "the refused join made no group");
        g.check().unwrap();
    }
}
