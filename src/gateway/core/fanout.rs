//! A server's fan-out commands (`docs/protocol.md` §10), once gathered:
//! Multicast and GroupSend queue one payload to many clients, held once in
//! a shared chunk, each destination with a frame header of its own; Join
//! and Leave change the server's groups.
//!
//! A command with a conn ID of someone else's vconn has no effect and
//! closes the server, as a data frame on it would. Conn IDs of vconns that
//! are gone are answered (Multicast: Close, as for data) or skipped (Join:
//! the Close is on its way). A destination's queue cap is judged at flush
//! as for any frame, so a slow member is cut alone.

use super::input::Flow;
use super::Core;
use crate::buf::Shared;
use crate::gateway::stats::ProtocolError;
use crate::side::Side;
use crate::transport::Transport;
use crate::wire::{header_for, Command, CommandError, GroupCommand, GroupType, FEATURE_GROUPS};

/// What a decoded fan-out command asks, its conn IDs copied out (in
/// `Core::fan_ids`) so the shared chunk is free to be queued.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Multicast { off: usize },
    Join { group: u32 },
    Leave { group: u32 },
    GroupSend { group: u32, off: usize },
}

impl<T: Transport> Core<T> {
    /// The extensions a server learns of by dialing ID 0.
    pub(super) fn features(&mut self, key: usize) {
        self.outbox.push((
            key,
            Command::Features {
                bits: FEATURE_GROUPS,
            },
        ));
    }

    /// Carries out the fan-out command gathered from server `key`: `len`
    /// bytes of message in its `gather` chunk.
    pub(super) fn fanout(&mut self, key: usize, kind: GroupType, len: usize) -> Flow {
        let Some(chunk) = self.conns[key].gather.take() else {
            return Flow::Stop;
        };
        self.staged -= len;
        let shared = self.wpool.share(chunk, len);
        let plan = self.plan(kind, &shared);
        let flow = match plan {
            Err(e) => self.protocol_error(key, ProtocolError::Command(CommandError::Group(e))),
            Ok(plan) => match self.spoofed(key, plan) {
                Some(conn_id) => self.protocol_error(key, ProtocolError::Spoofed { conn_id }),
                None => {
                    self.carry_out(key, plan, &shared, len);
                    self.send_outbox();
                    Flow::Progress
                }
            },
        };
        self.wpool.put_shared(shared);
        flow
    }

    /// Decodes the command in `shared`, copying its conn IDs out.
    fn plan(
        &mut self,
        kind: GroupType,
        shared: &Shared,
    ) -> Result<Plan, crate::wire::GroupCommandError> {
        let bytes = self.wpool.shared_bytes(shared);
        let cmd = GroupCommand::decode(kind, bytes)?;
        let ids = &mut self.fan_ids;
        ids.clear();
        let off = |message: &[u8]| bytes.len() - message.len();
        Ok(match cmd {
            GroupCommand::Multicast { conn_ids, message } => {
                ids.extend(conn_ids.iter());
                Plan::Multicast { off: off(message) }
            }
            GroupCommand::Join { group, conn_ids } => {
                ids.extend(conn_ids.iter());
                Plan::Join { group }
            }
            GroupCommand::Leave { group, conn_ids } => {
                ids.extend(conn_ids.iter());
                Plan::Leave { group }
            }
            GroupCommand::GroupSend {
                group,
                except,
                message,
            } => {
                ids.extend(except.iter());
                Plan::GroupSend {
                    group,
                    off: off(message),
                }
            }
        })
    }

    /// The first conn ID the command names that is a live vconn server
    /// `key` is not an end of (Multicast and Join; Leave and GroupSend's
    /// lists only filter the server's own groups).
    fn spoofed(&self, key: usize, plan: Plan) -> Option<u32> {
        if !matches!(plan, Plan::Multicast { .. } | Plan::Join { .. }) {
            return None;
        }
        let me = Side::Server.index();
        self.fan_ids.iter().copied().find(|&c| {
            self.router
                .vconns
                .ends(c)
                .is_some_and(|ends| ends[me] != key)
        })
    }

    fn carry_out(&mut self, key: usize, plan: Plan, shared: &Shared, len: usize) {
        match plan {
            Plan::Multicast { off } => {
                self.stats.multicasts += 1;
                let ids = std::mem::take(&mut self.fan_ids);
                for &conn_id in &ids {
                    if !self.deliver(conn_id, shared, off, len - off) {
                        self.stats.frames_on_dead_vconns += 1;
                        self.outbox.push((key, Command::Close { conn_id }));
                    }
                }
                self.fan_ids = ids;
            }
            Plan::GroupSend { group, off } => {
                self.stats.group_sends += 1;
                let mut members = std::mem::take(&mut self.fan_members);
                members.clear();
                // Sorted, so a long except list costs a search per member,
                // not a scan.
                self.fan_ids.sort_unstable();
                let except = &self.fan_ids;
                members.extend(
                    self.router
                        .groups
                        .members_of(key, group)
                        .filter(|c| except.binary_search(c).is_err()),
                );
                for &conn_id in &members {
                    self.deliver(conn_id, shared, off, len - off);
                }
                self.fan_members = members;
            }
            Plan::Join { group } => {
                for i in 0..self.fan_ids.len() {
                    let conn_id = self.fan_ids[i];
                    if self.router.vconns.ends(conn_id).is_none() {
                        continue;
                    }
                    let joined = self
                        .router
                        .groups
                        .join(&self.cfg.groups, key, group, conn_id);
                    if joined.is_ok() {
                        self.stats.group_joins += 1;
                    } else {
                        self.stats.group_joins_refused += 1;
                        self.outbox
                            .push((key, Command::JoinRefused { group, conn_id }));
                    }
                }
            }
            Plan::Leave { group } => {
                if self.fan_ids.is_empty() {
                    let left = self.router.groups.dissolve(key, group);
                    self.stats.group_leaves += left as u64;
                }
                for &conn_id in &self.fan_ids {
                    if self.router.groups.leave(key, group, conn_id) {
                        self.stats.group_leaves += 1;
                    }
                }
            }
        }
    }

    /// Queues `len` bytes at `off` of `shared` as a data frame on
    /// `conn_id` to its client end (unless that is closing); false if the
    /// vconn is gone.
    fn deliver(&mut self, conn_id: u32, shared: &Shared, off: usize, len: usize) -> bool {
        let Some(ends) = self.router.vconns.ends(conn_id) else {
            return false;
        };
        let dest = ends[Side::Client.index()];
        // `len` is under MaxPacket, so the Length fits.
        let Some(header) = header_for(conn_id, len) else {
            return true;
        };
        let d = &mut self.conns[dest];
        if d.doomed.is_some() {
            return true;
        }
        d.out
            .push_shared(&mut self.wpool, header.to_bytes(), shared, off, len);
        d.out.end_message();
        self.stats.frames_fanned_out += 1;
        self.mark_dirty(dest);
        true
    }
}
