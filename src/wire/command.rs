//! Command frames (Conn ID 0) of `docs/protocol.md` §3: their types, exact sizes,
//! who may send each, decoding with typed errors, and encoding.
//!
//! A command message is `Type u8` followed by fixed arguments; every command
//! has exactly one legal length. This module knows nothing of connections or
//! state; the gateway and endpoint cores decide what a command means.

use std::fmt;

use super::frame::{read_u32, COMMAND_CONN_ID, HEADER_LEN, MIN_LENGTH};
use super::group::{GroupCommandError, GroupType};

/// Who sent a command: the rules of which commands are legal depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A client or server endpoint talking to the gateway.
    Endpoint,
    /// The gateway talking to an endpoint.
    Gateway,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Endpoint => "an endpoint",
            Origin::Gateway => "the gateway",
        })
    }
}

/// The Type byte of a command frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CommandType {
    /// Open a vconn to a peer on the other side.
    Dial = 0,
    /// To a dialer: the vconn is open.
    Accept = 1,
    /// To the dialed peer: a new vconn is open.
    Connect = 2,
    /// To a dialer: the dial failed.
    Refuse = 3,
    /// Close a vconn.
    Close = 4,
    /// Keep-alive.
    Ping = 5,
    /// To a server that asked (Dial(0)): what the gateway supports beyond
    /// the base protocol (`docs/protocol.md` §10).
    Features = 6,
    /// To a server: a Join was refused for one vconn (a group limit).
    JoinRefused = 7,
}

impl CommandType {
    /// All command types, in Type order.
    pub const ALL: [CommandType; 8] = [
        CommandType::Dial,
        CommandType::Accept,
        CommandType::Connect,
        CommandType::Refuse,
        CommandType::Close,
        CommandType::Ping,
        CommandType::Features,
        CommandType::JoinRefused,
    ];

    /// The type for a Type byte, if it is known.
    pub fn from_byte(b: u8) -> Option<CommandType> {
        CommandType::ALL.get(usize::from(b)).copied()
    }

    /// Bytes of the command message (Type and arguments).
    pub fn message_len(self) -> usize {
        match self {
            CommandType::Dial
            | CommandType::Refuse
            | CommandType::Close
            | CommandType::Features => 5,
            CommandType::Accept | CommandType::Connect | CommandType::JoinRefused => 9,
            CommandType::Ping => 1,
        }
    }

    /// The frame Length field a command of this type must carry.
    pub fn frame_length(self) -> u32 {
        // message_len is at most 9, so the cast cannot truncate.
        self.message_len() as u32 + MIN_LENGTH
    }

    /// Whether `origin` may send this command.
    pub fn may_be_sent_by(self, origin: Origin) -> bool {
        match self {
            CommandType::Dial => origin == Origin::Endpoint,
            CommandType::Accept
            | CommandType::Connect
            | CommandType::Refuse
            | CommandType::Features
            | CommandType::JoinRefused => origin == Origin::Gateway,
            CommandType::Close | CommandType::Ping => true,
        }
    }

    /// The command's name as `docs/protocol.md` spells it.
    pub fn name(self) -> &'static str {
        match self {
            CommandType::Dial => "Dial",
            CommandType::Accept => "Accept",
            CommandType::Connect => "Connect",
            CommandType::Refuse => "Refuse",
            CommandType::Close => "Close",
            CommandType::Ping => "Ping",
            CommandType::Features => "Features",
            CommandType::JoinRefused => "JoinRefused",
        }
    }
}

impl fmt::Display for CommandType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Open a vconn to `remote_id` on the other side.
    Dial {
        /// The server ID (from a client) or client ID (from a server).
        remote_id: u32,
    },
    /// To the dialer: vconn `conn_id` to `remote_id` is open.
    Accept {
        /// The new vconn.
        conn_id: u32,
        /// The peer that was dialed.
        remote_id: u32,
    },
    /// To the dialed peer: vconn `conn_id` from `remote_id` is open.
    Connect {
        /// The new vconn.
        conn_id: u32,
        /// The dialer's ID.
        remote_id: u32,
    },
    /// To the dialer: the dial to `remote_id` failed.
    Refuse {
        /// The peer that was dialed.
        remote_id: u32,
    },
    /// Vconn `conn_id` is closed (or is to be closed).
    Close {
        /// The vconn.
        conn_id: u32,
    },
    /// Keep-alive; the gateway echoes it.
    Ping,
    /// The gateway's answer to a server's Dial(0): the extensions it
    /// supports, one bit each ([`FEATURE_GROUPS`](crate::wire::FEATURE_GROUPS)).
    Features {
        /// Supported extensions.
        bits: u32,
    },
    /// A Join of vconn `conn_id` to group `group` was refused: a group
    /// limit was reached.
    JoinRefused {
        /// The group.
        group: u32,
        /// The vconn that was not added.
        conn_id: u32,
    },
}

/// The longest command frame on the wire (Accept and Connect).
pub const MAX_COMMAND_FRAME: usize = HEADER_LEN + 9;

/// An encoded command frame held on the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandBytes {
    buf: [u8; MAX_COMMAND_FRAME],
    len: u8,
}

impl AsRef<[u8]> for CommandBytes {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl std::ops::Deref for CommandBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_ref()
    }
}

impl Command {
    /// The command's type.
    pub fn kind(&self) -> CommandType {
        match self {
            Command::Dial { .. } => CommandType::Dial,
            Command::Accept { .. } => CommandType::Accept,
            Command::Connect { .. } => CommandType::Connect,
            Command::Refuse { .. } => CommandType::Refuse,
            Command::Close { .. } => CommandType::Close,
            Command::Ping => CommandType::Ping,
            Command::Features { .. } => CommandType::Features,
            Command::JoinRefused { .. } => CommandType::JoinRefused,
        }
    }

    /// Decodes a command message (the bytes after Conn ID 0), whoever sent it.
    pub fn decode(message: &[u8]) -> Result<Command, CommandError> {
        let (&type_byte, args) = message.split_first().ok_or(CommandError::Empty)?;
        let Some(kind) = CommandType::from_byte(type_byte) else {
            return Err(match GroupType::from_byte(type_byte) {
                Some(group) => CommandError::ServerOnly(group),
                None => CommandError::UnknownType(type_byte),
            });
        };
        if message.len() != kind.message_len() {
            return Err(CommandError::WrongLength {
                kind,
                length: message.len(),
            });
        }
        let a = || read_u32(&args[0..4]);
        let b = || read_u32(&args[4..8]);
        Ok(match kind {
            CommandType::Dial => Command::Dial { remote_id: a() },
            CommandType::Accept => Command::Accept {
                conn_id: a(),
                remote_id: b(),
            },
            CommandType::Connect => Command::Connect {
                conn_id: a(),
                remote_id: b(),
            },
            CommandType::Refuse => Command::Refuse { remote_id: a() },
            CommandType::Close => Command::Close { conn_id: a() },
            CommandType::Ping => Command::Ping,
            CommandType::Features => Command::Features { bits: a() },
            CommandType::JoinRefused => Command::JoinRefused {
                group: a(),
                conn_id: b(),
            },
        })
    }

    /// Decodes a command message sent by `origin`, rejecting commands that
    /// `origin` may not send (e.g. Accept from an endpoint).
    pub fn decode_from(origin: Origin, message: &[u8]) -> Result<Command, CommandError> {
        let cmd = Command::decode(message)?;
        if cmd.kind().may_be_sent_by(origin) {
            Ok(cmd)
        } else {
            Err(CommandError::Forbidden {
                kind: cmd.kind(),
                origin,
            })
        }
    }

    /// The whole command frame (header included) as bytes on the stack.
    pub fn to_bytes(&self) -> CommandBytes {
        let kind = self.kind();
        let mut buf = [0u8; MAX_COMMAND_FRAME];
        buf[0..4].copy_from_slice(&kind.frame_length().to_le_bytes());
        buf[4..8].copy_from_slice(&COMMAND_CONN_ID.to_le_bytes());
        buf[8] = kind as u8;
        let (x, y) = match *self {
            Command::Dial { remote_id } | Command::Refuse { remote_id } => (Some(remote_id), None),
            Command::Close { conn_id } => (Some(conn_id), None),
            Command::Features { bits } => (Some(bits), None),
            Command::JoinRefused { group, conn_id } => (Some(group), Some(conn_id)),
            Command::Accept { conn_id, remote_id } | Command::Connect { conn_id, remote_id } => {
                (Some(conn_id), Some(remote_id))
            }
            Command::Ping => (None, None),
        };
        if let Some(x) = x {
            buf[9..13].copy_from_slice(&x.to_le_bytes());
        }
        if let Some(y) = y {
            buf[13..17].copy_from_slice(&y.to_le_bytes());
        }
        CommandBytes {
            buf,
            // At most 17, fits a u8.
            len: (HEADER_LEN + kind.message_len()) as u8,
        }
    }

    /// Appends the whole command frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }
}

/// A command frame that cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    /// A command frame with no Type byte (Length 4, Conn ID 0).
    Empty,
    /// A Type byte that names no command.
    UnknownType(u8),
    /// A known command with the wrong number of bytes.
    WrongLength {
        /// The command.
        kind: CommandType,
        /// Bytes of the message received (Type and arguments).
        length: usize,
    },
    /// A fan-out command (`docs/protocol.md` §10) from a client, or from
    /// the gateway: only servers may send one, to the gateway.
    ServerOnly(GroupType),
    /// A fan-out command whose bytes do not add up.
    Group(GroupCommandError),
    /// A command the sender's role may not send.
    Forbidden {
        /// The command.
        kind: CommandType,
        /// Who sent it.
        origin: Origin,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CommandError::Empty => f.write_str("empty command frame (Conn ID 0 with no Type byte)"),
            CommandError::UnknownType(t) => {
                write!(f, "unknown command Type {t} (known types are 0 to 11)")
            }
            CommandError::WrongLength { kind, length } => write!(
                f,
                "{kind} command with frame Length {} (it must be exactly {})",
                length + MIN_LENGTH as usize,
                kind.frame_length()
            ),
            CommandError::ServerOnly(kind) => {
                write!(
                    f,
                    "{kind} command, which only a server may send, and only to the gateway"
                )
            }
            CommandError::Group(e) => write!(f, "{e}"),
            CommandError::Forbidden { kind, origin } => {
                write!(f, "{kind} command sent by {origin}, which may not send it")
            }
        }
    }
}

impl std::error::Error for CommandError {}
