//! One physical connection as the core sees it: its role and ID, buffers,
//! readiness, deadlines, and its part in flow control.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::buf::{ReadBuf, WriteQueue};
use crate::config::Side;
use crate::gateway::stats::CloseReason;
use crate::gateway::vconn::VList;
use crate::wire::{Challenge, CommandBytes, Header};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// A server that has not yet answered its challenge.
    Handshake {
        challenge: Challenge,
        deadline: Instant,
    },
    /// A client, or an authenticated server, with its ID.
    Active { id: u32 },
}

/// How the bytes at the front of the read buffer are to be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rx {
    /// Whole frames, each parsed and routed once complete.
    Frames,
    /// The body of a frame too large for the read buffer, forwarded as it
    /// arrives (cut-through) to `dest`, or dropped when `dest` is `None`.
    Stream {
        dest: Option<(usize, u64)>,
        remaining: u32,
    },
    /// The body of a frame too large for the read buffer, from a client:
    /// gathered in `stage` and routed once complete.
    Stage { header: Header, remaining: u32 },
}

pub(super) struct Conn<T> {
    pub side: Side,
    pub io: T,
    pub peer: SocketAddr,
    /// Distinguishes this connection from a later one at the same key.
    pub serial: u64,
    pub state: State,
    pub rbuf: ReadBuf,
    pub rx: Rx,
    pub out: WriteQueue,
    /// A large frame from a client being gathered (see `Rx::Stage`).
    pub stage: WriteQueue,
    pub vlist: VList,
    pub last_active: Instant,
    /// The poller said readable and no read has hit `WouldBlock` since.
    pub readable: bool,
    /// The poller said writable and no write has hit `WouldBlock` since.
    pub writable: bool,
    pub in_ready: bool,
    pub in_dirty: bool,
    /// Waiting on another connection (a congested server, or one receiving
    /// someone else's large frame); listed in that connection's `waiters`.
    pub stalled: bool,
    /// The connection streaming a large frame into this one; until it ends,
    /// nothing else may be queued here (it would land inside that frame).
    pub locked_by: Option<usize>,
    /// Gateway commands held back while `locked_by` is set.
    pub deferred: Vec<CommandBytes>,
    /// Connections stalled on this one, woken when it drains or unlocks.
    pub waiters: Vec<usize>,
    /// Set when the connection is to be closed at the end of the turn.
    pub doomed: Option<CloseReason>,
}

impl<T> Conn<T> {
    pub fn new(
        side: Side,
        io: T,
        peer: SocketAddr,
        serial: u64,
        state: State,
        now: Instant,
    ) -> Conn<T> {
        Conn {
            side,
            io,
            peer,
            serial,
            state,
            rbuf: ReadBuf::new(),
            rx: Rx::Frames,
            out: WriteQueue::new(),
            stage: WriteQueue::new(),
            vlist: VList::default(),
            last_active: now,
            readable: true,
            writable: true,
            in_ready: false,
            in_dirty: false,
            stalled: false,
            locked_by: None,
            deferred: Vec::new(),
            waiters: Vec::new(),
            doomed: None,
        }
    }

    pub fn id(&self) -> Option<u32> {
        match self.state {
            State::Active { id } => Some(id),
            State::Handshake { .. } => None,
        }
    }

    /// When this connection times out if nothing more happens.
    pub fn deadline(&self, idle_timeout: Duration) -> Instant {
        match self.state {
            State::Handshake { deadline, .. } => deadline,
            State::Active { .. } => self.last_active + idle_timeout,
        }
    }

    /// "client 7 (127.0.0.1:5000)", for log lines.
    pub fn describe(&self) -> String {
        match self.id() {
            Some(id) => format!("{} {} ({})", self.side, id, self.peer),
            None => format!("{} (handshaking, {})", self.side, self.peer),
        }
    }

    /// The destination of this connection's stream closed: drop the rest.
    pub fn stream_dest_gone(&mut self, dest: usize) {
        if let Rx::Stream { dest: d, remaining } = self.rx {
            if d.is_some_and(|(k, _)| k == dest) {
                self.rx = Rx::Stream {
                    dest: None,
                    remaining,
                };
            }
        }
    }
}
