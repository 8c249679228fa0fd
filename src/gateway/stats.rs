//! Counters an operator asks about, and why connections close.

use std::fmt;
use std::io;

use crate::buf::PoolStats;
use crate::snet::SnetError;
use crate::transport::StreamEnd;
use crate::wire::{CommandError, FrameError};

/// Why a physical connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its end (EOF).
    PeerClosed,
    /// A socket error.
    Io(io::ErrorKind),
    /// The peer broke the protocol.
    Protocol(ProtocolError),
    /// A server answered the challenge with a wrong digest.
    AuthFailed,
    /// A server did not answer the challenge in time.
    HandshakeTimeout,
    /// A connection expected to start with a PROXY header sent none in time.
    ProxyTimeout,
    /// The peer sent no complete frame for its side's idle timeout.
    IdleTimeout,
    /// The peer did not read its traffic fast enough: its queue passed its cap.
    SlowConsumer,
    /// Bytes were queued to the peer and its socket took none of them for
    /// its side's idle timeout: it is not reading at all.
    WriteTimeout,
    /// A newer server authenticated with the same server ID.
    Replaced,
    /// Partial frames held more than `MaxPartialBytes`, and this peer's was
    /// the furthest from finishing.
    PartialBudget,
    /// A connection limit refused it (once its real source was known).
    Refused,
    /// The gateway is shutting down.
    Shutdown,
    /// The operator closed it (`kick`).
    Kicked,
    /// An snet stream's link broke and no reconnect came within the wait
    /// timeout.
    SnetExpired,
    /// A new link that resumed an snet stream: the link now serves that
    /// stream's connection, and this one (which never had an ID) is gone.
    SnetResumed,
}

impl From<StreamEnd> for CloseReason {
    fn from(end: StreamEnd) -> CloseReason {
        match end {
            StreamEnd::Closed => CloseReason::PeerClosed,
            StreamEnd::Error(kind) => CloseReason::Io(kind),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed the connection"),
            CloseReason::Io(kind) => write!(f, "socket error: {kind}"),
            CloseReason::Protocol(e) => write!(f, "protocol error: {e}"),
            CloseReason::AuthFailed => f.write_str("handshake digest does not match the key"),
            CloseReason::HandshakeTimeout => f.write_str("no handshake response in time"),
            CloseReason::ProxyTimeout => f.write_str("no PROXY header in time"),
            CloseReason::IdleTimeout => f.write_str("idle for longer than the idle timeout"),
            CloseReason::SlowConsumer => f.write_str("slow consumer: send queue passed its cap"),
            CloseReason::WriteTimeout => {
                f.write_str("took no byte of its queue for longer than the idle timeout")
            }
            CloseReason::Replaced => {
                f.write_str("replaced by a newer server with the same server ID")
            }
            CloseReason::PartialBudget => f.write_str(
                "partial frames over MaxPartialBytes; this one was the furthest from finishing",
            ),
            CloseReason::Refused => f.write_str("refused by a connection limit"),
            CloseReason::Shutdown => f.write_str("gateway shutting down"),
            CloseReason::Kicked => f.write_str("kicked by the operator"),
            CloseReason::SnetExpired => {
                f.write_str("snet link lost and not back within the wait timeout")
            }
            CloseReason::SnetResumed => f.write_str("link moved into the snet stream it resumed"),
        }
    }
}

/// A protocol offence by a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A frame whose Length is out of range.
    Frame(FrameError),
    /// A malformed or forbidden command.
    Command(CommandError),
    /// A data frame on a live vconn the sender is not an end of.
    Spoofed {
        /// The vconn it tried to write into.
        conn_id: u32,
    },
    /// A connection that should start with a PROXY header did not.
    Proxy(ProxyError),
    /// A bad snet request or reconnect.
    Snet(SnetError),
}

/// What was wrong with a PROXY protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The bytes are not a PROXY header (v1 or v2), or a malformed one.
    Malformed,
    /// A header longer than the connection's read buffer.
    TooLong {
        /// The read buffer size.
        limit: usize,
    },
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Malformed => f.write_str("not a valid PROXY header (v1 or v2)"),
            ProxyError::TooLong { limit } => {
                write!(f, "PROXY header longer than the {limit}-byte read buffer")
            }
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Frame(e) => e.fmt(f),
            ProtocolError::Command(e) => e.fmt(f),
            ProtocolError::Spoofed { conn_id } => write!(
                f,
                "data frame on vconn {conn_id}, which belongs to other connections"
            ),
            ProtocolError::Proxy(e) => e.fmt(f),
            ProtocolError::Snet(e) => write!(f, "snet: {e}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Gateway counters. Totals count since start; gauges are current values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Gauge: live client connections.
    pub clients: usize,
    /// Gauge: live server connections (handshaking ones included).
    pub servers: usize,
    /// Gauge: live vconns.
    pub vconns: usize,
    /// Gauge: bytes queued for writing over all connections.
    pub queued_bytes: usize,
    /// Gauge: buffer pool figures (read and write pools together).
    pub pool: PoolStats,
    /// Total: client connections accepted.
    pub clients_accepted: u64,
    /// Total: server connections accepted.
    pub servers_accepted: u64,
    /// Total: servers that passed the handshake.
    pub servers_authenticated: u64,
    /// Total: connections closed at once because their side was full
    /// (`MaxClients`, `MaxServers`).
    pub refused_full: u64,
    /// Total: client connections closed at once because their source had
    /// `MaxClientsPerIP` clients already.
    pub refused_per_ip: u64,
    /// Total: connections closed at once because their source connected
    /// faster than `AcceptRatePerIP`.
    pub refused_rate: u64,
    /// Total: accept errors (e.g. out of descriptors); accepting paused.
    pub accept_errors: u64,
    /// Total: times accepting paused because the token range was full.
    pub accept_full: u64,
    /// Total: data frames received from clients.
    pub frames_from_clients: u64,
    /// Total: data frames received from servers.
    pub frames_from_servers: u64,
    /// Total: bytes read from clients.
    pub bytes_from_clients: u64,
    /// Total: bytes read from servers.
    pub bytes_from_servers: u64,
    /// Total: bytes written to clients.
    pub bytes_to_clients: u64,
    /// Total: bytes written to servers.
    pub bytes_to_servers: u64,
    /// Total: Dial commands received.
    pub dials: u64,
    /// Total: dials refused because the peer was unknown.
    pub refused_unknown: u64,
    /// Total: dials refused because a vconn limit was reached.
    pub refused_limit: u64,
    /// Total: Close commands received.
    pub closes: u64,
    /// Total: Close commands for vconns the sender does not own, ignored.
    pub closes_ignored: u64,
    /// Total: Ping commands answered.
    pub pings: u64,
    /// Total: data frames on vconns that no longer exist, answered with Close.
    pub frames_on_dead_vconns: u64,
    /// Total: connections closed for a bad frame Length.
    pub bad_frames: u64,
    /// Total: connections closed for a malformed or forbidden command.
    pub bad_commands: u64,
    /// Total: connections closed for writing into another's vconn.
    pub spoofs: u64,
    /// Total: servers that failed the handshake digest.
    pub auth_failures: u64,
    /// Total: servers that did not answer the challenge in time.
    pub handshake_timeouts: u64,
    /// Total: PROXY headers taken (the connection's real address learned).
    pub proxy_headers: u64,
    /// Total: connections closed for a bad or missing PROXY header.
    pub bad_proxy_headers: u64,
    /// Total: connections closed for idleness.
    pub idle_timeouts: u64,
    /// Total: connections closed as slow consumers.
    pub slow_consumers: u64,
    /// Total: servers replaced by a newer one with the same ID.
    pub servers_replaced: u64,
    /// Total: times a source stopped reading because its destination was
    /// congested (a server over its high-water mark).
    pub paused: u64,
    /// Total: pauses that reached their bound (`Config::max_pause`, at most
    /// half the client idle timeout) with the server still congested.
    pub pause_timeouts: u64,
    /// Total: vconns closed because a pause reached its bound (the paused
    /// client's vconns to the congested server; both ends told).
    pub pause_closes: u64,
    /// Total: frames dropped because a pause reached its bound (each was
    /// the frame that waited; its vconn was closed and both ends told).
    pub frames_dropped_paused: u64,
    /// Total: connections closed because their socket took no byte of
    /// their queue for their idle timeout.
    pub write_timeouts: u64,
    /// Total: connections that closed with part of a frame received; the
    /// part was dropped (nothing of it had been forwarded).
    pub partial_frames_dropped: u64,
    /// Total: connections cut because partial frames held more than
    /// `MaxPartialBytes` and theirs was the furthest from finishing.
    pub partial_budget_cuts: u64,
    /// Total: connections closed by socket errors or EOF.
    pub peer_closes: u64,
    /// Total: connections the operator closed (`kick`).
    pub kicked: u64,
    /// Gauge: snet streams whose link is down, waiting for a reconnect.
    pub snet_waiting: usize,
    /// Total: snet streams opened (handshakes done).
    pub snet_handshakes: u64,
    /// Total: snet links lost (the stream then waits).
    pub snet_links_lost: u64,
    /// Total: snet streams resumed over a new link.
    pub snet_resumes: u64,
    /// Total: reconnects for an snet stream that does not exist (or
    /// expired); the new link was closed.
    pub snet_resume_unknown: u64,
    /// Total: reconnects with a wrong digest; the new link was closed.
    pub snet_resume_bad_digest: u64,
    /// Total: reconnects whose counters could not be resumed from
    /// (impossible counts, or bytes no longer in the resend buffer); the
    /// stream was closed for good.
    pub snet_resume_failed: u64,
    /// Total: reconnects refused because the stream reconnected too often.
    pub snet_resume_flood: u64,
    /// Total: bad snet requests (a zero public key).
    pub snet_bad_requests: u64,
    /// Total: snet streams closed because their link stayed down for the
    /// wait timeout.
    pub snet_expired: u64,
}

impl Stats {
    /// Every counter and gauge by name, in declaration order.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("clients", self.clients as u64),
            ("servers", self.servers as u64),
            ("vconns", self.vconns as u64),
            ("queued_bytes", self.queued_bytes as u64),
            ("pool_pages", self.pool.pages as u64),
            ("pool_page_bytes", self.pool.page_bytes as u64),
            ("pool_chunks_in_use", self.pool.chunks_in_use as u64),
            ("pool_bytes_in_use", self.pool.bytes_in_use as u64),
            ("clients_accepted", self.clients_accepted),
            ("servers_accepted", self.servers_accepted),
            ("servers_authenticated", self.servers_authenticated),
            ("refused_full", self.refused_full),
            ("refused_per_ip", self.refused_per_ip),
            ("refused_rate", self.refused_rate),
            ("accept_errors", self.accept_errors),
            ("accept_full", self.accept_full),
            ("frames_from_clients", self.frames_from_clients),
            ("frames_from_servers", self.frames_from_servers),
            ("bytes_from_clients", self.bytes_from_clients),
            ("bytes_from_servers", self.bytes_from_servers),
            ("bytes_to_clients", self.bytes_to_clients),
            ("bytes_to_servers", self.bytes_to_servers),
            ("dials", self.dials),
            ("refused_unknown", self.refused_unknown),
            ("refused_limit", self.refused_limit),
            ("closes", self.closes),
            ("closes_ignored", self.closes_ignored),
            ("pings", self.pings),
            ("frames_on_dead_vconns", self.frames_on_dead_vconns),
            ("bad_frames", self.bad_frames),
            ("bad_commands", self.bad_commands),
            ("spoofs", self.spoofs),
            ("auth_failures", self.auth_failures),
            ("handshake_timeouts", self.handshake_timeouts),
            ("proxy_headers", self.proxy_headers),
            ("bad_proxy_headers", self.bad_proxy_headers),
            ("idle_timeouts", self.idle_timeouts),
            ("slow_consumers", self.slow_consumers),
            ("servers_replaced", self.servers_replaced),
            ("paused", self.paused),
            ("pause_timeouts", self.pause_timeouts),
            ("pause_closes", self.pause_closes),
            ("frames_dropped_paused", self.frames_dropped_paused),
            ("write_timeouts", self.write_timeouts),
            ("partial_frames_dropped", self.partial_frames_dropped),
            ("partial_budget_cuts", self.partial_budget_cuts),
            ("peer_closes", self.peer_closes),
            ("kicked", self.kicked),
            ("snet_waiting", self.snet_waiting as u64),
            ("snet_handshakes", self.snet_handshakes),
            ("snet_links_lost", self.snet_links_lost),
            ("snet_resumes", self.snet_resumes),
            ("snet_resume_unknown", self.snet_resume_unknown),
            ("snet_resume_bad_digest", self.snet_resume_bad_digest),
            ("snet_resume_failed", self.snet_resume_failed),
            ("snet_resume_flood", self.snet_resume_flood),
            ("snet_bad_requests", self.snet_bad_requests),
            ("snet_expired", self.snet_expired),
        ]
    }
}

/// Upper bounds of the frames-per-turn histogram's buckets (the last bucket,
/// past these, is everything larger).
pub const TURN_FRAME_BOUNDS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// How many data frames each turn routed: a histogram over turns, for an
/// operator who wants to see how bursty the load is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnHistogram {
    /// Turns per bucket: `buckets[i]` counts turns with at most
    /// `TURN_FRAME_BOUNDS[i]` frames (and more than the bound before);
    /// the last counts the rest.
    pub buckets: [u64; TURN_FRAME_BOUNDS.len() + 1],
    /// Frames over all turns counted.
    pub sum: u64,
}

impl TurnHistogram {
    /// Counts one turn that routed `frames` data frames.
    #[inline]
    pub fn record(&mut self, frames: u64) {
        let i = TURN_FRAME_BOUNDS
            .iter()
            .position(|&b| frames <= b)
            .unwrap_or(TURN_FRAME_BOUNDS.len());
        self.buckets[i] += 1;
        self.sum += frames;
    }

    /// Turns counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Adds another histogram's counts (workers into a total).
    pub fn add(&mut self, other: &TurnHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum += other.sum;
    }
}
