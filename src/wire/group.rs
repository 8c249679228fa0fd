//! The fan-out extension's server commands (`docs/protocol.md` §10):
//! Multicast, Join, Leave and GroupSend, sent by servers on conn ID 0.
//!
//! Unlike the base commands these have a variable length: lists of conn
//! IDs (each a `u32`) and, for the two sends, the message that follows.
//! Decoding borrows from the frame; a list is read on demand
//! ([`ConnIds`]), so nothing is allocated per command.

use std::fmt;

use super::frame::{header_for, read_u32, COMMAND_CONN_ID};

/// The extension bit a gateway sets in [`Command::Features`](super::Command::Features)
/// when it takes the commands of this module.
pub const FEATURE_GROUPS: u32 = 1;

/// The Type byte of a fan-out command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum GroupType {
    /// One message to a list of the server's vconns.
    Multicast = 8,
    /// Vconns join a group.
    Join = 9,
    /// Vconns leave a group (none listed: the group is emptied).
    Leave = 10,
    /// One message to every member of a group, except those listed.
    GroupSend = 11,
}

impl GroupType {
    /// The type for a Type byte, if it is a fan-out command.
    pub fn from_byte(b: u8) -> Option<GroupType> {
        match b {
            8 => Some(GroupType::Multicast),
            9 => Some(GroupType::Join),
            10 => Some(GroupType::Leave),
            11 => Some(GroupType::GroupSend),
            _ => None,
        }
    }

    /// The command's name as `docs/protocol.md` spells it.
    pub fn name(self) -> &'static str {
        match self {
            GroupType::Multicast => "Multicast",
            GroupType::Join => "Join",
            GroupType::Leave => "Leave",
            GroupType::GroupSend => "GroupSend",
        }
    }
}

impl fmt::Display for GroupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A list of conn IDs inside a command, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnIds<'a>(&'a [u8]);

impl<'a> ConnIds<'a> {
    /// How many conn IDs.
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The conn IDs, in order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + 'a {
        self.0.chunks_exact(4).map(read_u32)
    }

    /// Whether `conn_id` is in the list.
    pub fn contains(&self, conn_id: u32) -> bool {
        self.iter().any(|c| c == conn_id)
    }
}

/// A decoded fan-out command, borrowing from its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupCommand<'a> {
    /// Deliver `message` on each listed vconn.
    Multicast {
        /// The destinations.
        conn_ids: ConnIds<'a>,
        /// The message each receives.
        message: &'a [u8],
    },
    /// The listed vconns join `group`.
    Join {
        /// The group, named by the server.
        group: u32,
        /// Its new members.
        conn_ids: ConnIds<'a>,
    },
    /// The listed vconns leave `group`; an empty list empties it.
    Leave {
        /// The group.
        group: u32,
        /// The members that leave.
        conn_ids: ConnIds<'a>,
    },
    /// Deliver `message` to every member of `group` except those listed.
    GroupSend {
        /// The group.
        group: u32,
        /// Members that do not receive it.
        except: ConnIds<'a>,
        /// The message each receives.
        message: &'a [u8],
    },
}

/// A fan-out command whose bytes do not add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommandError {
    /// The command.
    pub kind: GroupType,
    /// Bytes of its message (Type and arguments).
    pub length: usize,
}

impl fmt::Display for GroupCommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = match self.kind {
            GroupType::Multicast => "Count u32, then Count conn IDs, then the message",
            GroupType::Join => "a group u32, then at least one conn ID",
            GroupType::Leave => "a group u32, then conn IDs",
            GroupType::GroupSend => "a group u32, Count u32, Count conn IDs, then the message",
        };
        write!(
            f,
            "{} command of {} bytes does not hold {shape}",
            self.kind, self.length
        )
    }
}

impl std::error::Error for GroupCommandError {}

impl<'a> GroupCommand<'a> {
    /// The command's type.
    pub fn kind(&self) -> GroupType {
        match self {
            GroupCommand::Multicast { .. } => GroupType::Multicast,
            GroupCommand::Join { .. } => GroupType::Join,
            GroupCommand::Leave { .. } => GroupType::Leave,
            GroupCommand::GroupSend { .. } => GroupType::GroupSend,
        }
    }

    /// Decodes a command message (the bytes after Conn ID 0) whose Type
    /// byte is `kind`.
    pub fn decode(
        kind: GroupType,
        message: &'a [u8],
    ) -> Result<GroupCommand<'a>, GroupCommandError> {
        let bad = GroupCommandError {
            kind,
            length: message.len(),
        };
        let args = message.get(1..).ok_or(bad)?;
        // A u32 at `at`, and what follows it.
        let word = |b: &'a [u8]| -> Result<(u32, &'a [u8]), GroupCommandError> {
            match (b.get(..4), b.get(4..)) {
                (Some(w), Some(rest)) => Ok((read_u32(w), rest)),
                _ => Err(bad),
            }
        };
        // `count` conn IDs, and what follows them.
        let list =
            |b: &'a [u8], count: u32| -> Result<(ConnIds<'a>, &'a [u8]), GroupCommandError> {
                let n = usize::try_from(count)
                    .ok()
                    .and_then(|c| c.checked_mul(4))
                    .ok_or(bad)?;
                if b.len() < n {
                    return Err(bad);
                }
                let (ids, rest) = b.split_at(n);
                Ok((ConnIds(ids), rest))
            };
        match kind {
            GroupType::Multicast => {
                let (count, rest) = word(args)?;
                let (conn_ids, message) = list(rest, count)?;
                Ok(GroupCommand::Multicast { conn_ids, message })
            }
            GroupType::Join | GroupType::Leave => {
                let (group, rest) = word(args)?;
                if rest.len() % 4 != 0 || (kind == GroupType::Join && rest.is_empty()) {
                    return Err(bad);
                }
                let conn_ids = ConnIds(rest);
                Ok(if kind == GroupType::Join {
                    GroupCommand::Join { group, conn_ids }
                } else {
                    GroupCommand::Leave { group, conn_ids }
                })
            }
            GroupType::GroupSend => {
                let (group, rest) = word(args)?;
                let (count, rest) = word(rest)?;
                let (except, message) = list(rest, count)?;
                Ok(GroupCommand::GroupSend {
                    group,
                    except,
                    message,
                })
            }
        }
    }
}

/// Appends a Multicast frame: `message` to each of `conn_ids`.
pub fn encode_multicast(out: &mut Vec<u8>, conn_ids: &[u32], message: &[u8]) {
    let count = conn_ids.len() as u32;
    encode(out, GroupType::Multicast, &[count], conn_ids, message);
}

/// Appends a Join frame: `conn_ids` join `group`.
pub fn encode_join(out: &mut Vec<u8>, group: u32, conn_ids: &[u32]) {
    encode(out, GroupType::Join, &[group], conn_ids, &[]);
}

/// Appends a Leave frame: `conn_ids` leave `group` (none: it is emptied).
pub fn encode_leave(out: &mut Vec<u8>, group: u32, conn_ids: &[u32]) {
    encode(out, GroupType::Leave, &[group], conn_ids, &[]);
}

/// Appends a GroupSend frame: `message` to the members of `group` but
/// `except`.
pub fn encode_group_send(out: &mut Vec<u8>, group: u32, except: &[u32], message: &[u8]) {
    let count = except.len() as u32;
    encode(out, GroupType::GroupSend, &[group, count], except, message);
}

/// The Length a fan-out frame with these parts carries, if it fits a u32.
pub fn group_frame_length(words: usize, conn_ids: usize, message: usize) -> Option<u32> {
    let body = 1usize
        .checked_add(words.checked_mul(4)?)?
        .checked_add(conn_ids.checked_mul(4)?)?
        .checked_add(message)?;
    header_for(COMMAND_CONN_ID, body).map(|h| h.length)
}

fn encode(out: &mut Vec<u8>, kind: GroupType, words: &[u32], ids: &[u32], message: &[u8]) {
    let length = group_frame_length(words.len(), ids.len(), message.len())
        .expect("fan-out command longer than u32::MAX");
    out.reserve(length as usize + 4);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&COMMAND_CONN_ID.to_le_bytes());
    out.push(kind as u8);
    for w in words.iter().chain(ids) {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(message);
}
