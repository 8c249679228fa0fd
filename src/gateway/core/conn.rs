//! One physical connection as the core sees it: its role and ID, buffers,
//! readiness, deadlines, and its part in flow control.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::buf::{Chunk, ReadBuf, WriteQueue};
use crate::gateway::stats::CloseReason;
use crate::gateway::vconn::VList;
use crate::side::Side;
use crate::transport::Ready;
use crate::wire::{Challenge, GroupType, Header};

/// Reconnects one snet stream may make at once, after a quiet spell.
const RESUME_BURST: f32 = 32.0;
/// Reconnects one snet stream may make per second, sustained.
const RESUMES_PER_SEC: f32 = 8.0;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// A connection behind a load balancer whose PROXY header has not
    /// arrived yet: who it really is is not known, so it has no ID, and
    /// its source has not been counted against the per-source limits.
    Proxy { deadline: Instant },
    /// A new snet link whose request has not arrived yet: it may open a
    /// new stream or resume a waiting one.
    Snet { deadline: Instant },
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
    /// The body of a frame too large for the read buffer, gathered in
    /// `stage` and routed once complete (store-and-forward: nothing of it
    /// reaches the destination before its last byte has arrived).
    Stage { header: Header, remaining: u32 },
    /// The body of a frame too large for the read buffer on a vconn that
    /// no longer exists: read and dropped as it arrives (nothing is kept),
    /// then answered with Close.
    Skip { conn_id: u32, remaining: u32 },
    /// The message of a server's fan-out command, gathered in `gather`
    /// (one chunk, so the command can be read in place and its payload
    /// shared by every destination), taken once complete.
    Gather { kind: GroupType, len: u32, got: u32 },
}

/// A pause the gateway imposed on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pause {
    /// When it began.
    pub since: Instant,
    /// The congested connection its next frame waits for.
    pub on: usize,
}

/// What a connection's next deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// Its snet link is down and the wait for a reconnect ends.
    SnetWait,
    /// A handshake stage (PROXY header, snet request, server challenge)
    /// ends unfinished.
    Stage,
    /// It sent no complete frame for its idle timeout.
    Idle,
    /// A pause the gateway imposed reaches its bound.
    Pause,
    /// Its socket took none of its queue for its idle timeout.
    WriteStall,
}

/// Where a connection is in a graceful shutdown of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Drain {
    /// Not shutting down, or still flushing its queue.
    Flushing,
    /// Its queue is written and the end of the stream sent; waiting for the
    /// peer to close its end, reading and discarding whatever it sends.
    FinSent,
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
    /// A large frame being gathered (see `Rx::Stage`).
    pub stage: WriteQueue,
    /// A fan-out command being gathered (see `Rx::Gather`).
    pub gather: Option<Chunk>,
    pub vlist: VList,
    /// When the idle clock last restarted: the last complete frame, or the
    /// end of a pause the gateway imposed.
    pub last_active: Instant,
    /// What the poller reported and no read or write has used up since.
    pub ready: Ready,
    pub in_ready: bool,
    pub in_dirty: bool,
    /// Paused by the gateway: its next frame goes to a congested server.
    /// Its bytes wait unread, so its idle clock does not run; the pause
    /// itself is bounded (see `Core::pause_limit`).
    pub pause: Option<Pause>,
    /// Bytes are queued to it and its socket has taken none since this
    /// time (`None`: nothing queued, or the last write took some). A peer
    /// that takes nothing for its idle timeout is cut as dead.
    pub write_stalled: Option<Instant>,
    /// The time of this connection's live entry in the core's deadline
    /// heap (other entries for it are stale and skipped).
    pub timer: Option<Instant>,
    /// Connections stalled on this one, woken when it drains.
    pub waiters: Vec<usize>,
    /// Progress through a graceful shutdown.
    pub drain: Drain,
    /// The peer's end of the stream was seen (only kept while draining;
    /// otherwise it closes the connection at once).
    pub peer_closed: bool,
    /// Set when the connection is to be closed at the end of the turn.
    pub doomed: Option<CloseReason>,
    /// Its snet stream, if it has one (boxed: most connections have none).
    pub snet: Option<Box<SnetStream>>,
}

/// What the core keeps about a connection's snet stream.
pub(super) struct SnetStream {
    /// The stream's ID.
    pub id: u64,
    /// Its link is down: when the stream gives up waiting for another.
    pub detached: Option<Instant>,
    /// Reconnects allowed now, refilled over time (a flood of reconnects
    /// for one stream is refused).
    resume_tokens: f32,
    /// When `resume_tokens` was last refilled.
    resume_refill: Instant,
}

impl SnetStream {
    pub(super) fn new(id: u64, now: Instant) -> SnetStream {
        SnetStream {
            id,
            detached: None,
            resume_tokens: RESUME_BURST,
            resume_refill: now,
        }
    }

    /// Takes one reconnect from the stream's allowance, if any is left.
    pub(super) fn allow_resume(&mut self, now: Instant) -> bool {
        let refill = now
            .saturating_duration_since(self.resume_refill)
            .as_secs_f32()
            * RESUMES_PER_SEC;
        self.resume_tokens = (self.resume_tokens + refill).min(RESUME_BURST);
        self.resume_refill = now;
        if self.resume_tokens >= 1.0 {
            self.resume_tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl<T> Conn<T> {
    pub(super) fn new(
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
            gather: None,
            vlist: VList::default(),
            last_active: now,
            ready: Ready::READABLE | Ready::WRITABLE,
            in_ready: false,
            in_dirty: false,
            pause: None,
            write_stalled: None,
            timer: None,
            waiters: Vec::new(),
            drain: Drain::Flushing,
            peer_closed: false,
            doomed: None,
            snet: None,
        }
    }

    /// When its snet stream, waiting for a link, gives up; `None` if it is
    /// not waiting.
    #[inline]
    pub(super) fn detached(&self) -> Option<Instant> {
        self.snet.as_ref().and_then(|s| s.detached)
    }

    pub(super) fn id(&self) -> Option<u32> {
        match self.state {
            State::Active { id } => Some(id),
            State::Handshake { .. } | State::Proxy { .. } | State::Snet { .. } => None,
        }
    }

    /// When this connection needs attention if nothing more happens, and
    /// why: `idle_timeout` is its side's, `pause_limit` the bound on a
    /// pause.
    pub(super) fn deadline(&self, idle_timeout: Duration, pause_limit: Duration) -> (Instant, Due) {
        if let Some(at) = self.detached() {
            return (at, Due::SnetWait);
        }
        let due = match self.state {
            State::Handshake { deadline, .. }
            | State::Proxy { deadline }
            | State::Snet { deadline } => return (deadline, Due::Stage),
            // A paused connection's unread bytes are not silence: its idle
            // clock stands still, and the pause is what ends.
            State::Active { .. } => match self.pause {
                Some(p) => (p.since + pause_limit, Due::Pause),
                None => (self.last_active + idle_timeout, Due::Idle),
            },
        };
        match self.write_stalled {
            Some(since) if since + idle_timeout < due.0 => (since + idle_timeout, Due::WriteStall),
            _ => due,
        }
    }

    /// "client 7 (127.0.0.1:5000)", for log lines.
    pub(super) fn describe(&self) -> String {
        match self.id() {
            Some(id) => format!("{} {} ({})", self.side, id, self.peer),
            None => format!("{} (handshaking, {})", self.side, self.peer),
        }
    }
}
