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

/// Builds [`Stats`] and [`STAT_FIELDS`] from one table, so the struct, the
/// `stats` command's lines and the metrics' names, kinds and help texts
/// cannot disagree. A row is `Kind name: type = "help";` (a field), `Kind
/// name = |s| expr, "help";` (a figure read from a field holding several),
/// or `struct name: type;` (such a field, which is no row of its own).
macro_rules! stats_table {
    (@munch [$($fields:tt)*] [$($rows:tt)*]) => {
        /// Gateway counters. Totals count since start; gauges are current
        /// values. Each is listed, with its help text, in [`STAT_FIELDS`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Stats {
            $($fields)*
        }

        /// Every counter and gauge of [`Stats`], in order: the one list the
        /// `stats` command and the metrics are made from.
        pub const STAT_FIELDS: &[StatField] = &[$($rows)*];
    };
    (@munch [$($fields:tt)*] [$($rows:tt)*]
        $kind:ident $name:ident: $ty:ty = $help:literal; $($rest:tt)*) => {
        stats_table!(@munch
            [$($fields)* #[doc = concat!(stat_kind_doc!($kind), $help, ".")] pub $name: $ty,]
            [$($rows)* StatField {
                name: stringify!($name),
                kind: StatKind::$kind,
                help: $help,
                get: |s| s.$name as u64,
            },]
            $($rest)*);
    };
    (@munch [$($fields:tt)*] [$($rows:tt)*]
        $kind:ident $name:ident = |$s:ident| $get:expr, $help:literal; $($rest:tt)*) => {
        stats_table!(@munch
            [$($fields)*]
            [$($rows)* StatField {
                name: stringify!($name),
                kind: StatKind::$kind,
                help: $help,
                get: |$s| $get as u64,
            },]
            $($rest)*);
    };
    (@munch [$($fields:tt)*] [$($rows:tt)*]
        $(#[doc = $doc:literal])* struct $name:ident: $ty:ty; $($rest:tt)*) => {
        stats_table!(@munch [$($fields)* $(#[doc = $doc])* pub $name: $ty,] [$($rows)*] $($rest)*);
    };
    ($($table:tt)*) => {
        stats_table!(@munch [] [] $($table)*);
    };
}

/// The prefix of a field's rustdoc for its kind.
macro_rules! stat_kind_doc {
    (Gauge) => {
        "Gauge: "
    };
    (Counter) => {
        "Total: "
    };
}

/// Whether a figure of [`Stats`] is a current value or a running total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// A current value (may go down).
    Gauge,
    /// A total since start (only goes up).
    Counter,
}

/// One figure of [`Stats`]: its name, kind and help text, and how to read it.
#[derive(Debug, Clone, Copy)]
pub struct StatField {
    /// Its name: the `stats` command's and, prefixed `uniway_`, the metric's.
    pub name: &'static str,
    /// Gauge or counter.
    pub kind: StatKind,
    /// What it counts, as the metrics' help text says it.
    pub help: &'static str,
    /// Reads it from a [`Stats`].
    pub get: fn(&Stats) -> u64,
}

stats_table! {
    Gauge clients: usize = "live client connections";
    Gauge servers: usize = "live server connections (handshaking ones included)";
    Gauge vconns: usize = "live vconns";
    Gauge queued_bytes: usize = "bytes queued for writing over all connections";
    /// Gauge: buffer pool figures (read and write pools together).
    struct pool: PoolStats;
    Gauge pool_pages = |s| s.pool.pages, "buffer pool pages mapped";
    Gauge pool_page_bytes = |s| s.pool.page_bytes, "bytes of buffer pool pages mapped";
    Gauge pool_chunks_in_use = |s| s.pool.chunks_in_use, "buffer chunks in use";
    Gauge pool_bytes_in_use = |s| s.pool.bytes_in_use, "bytes of buffer chunks in use";
    Counter clients_accepted: u64 = "client connections accepted";
    Counter servers_accepted: u64 = "server connections accepted";
    Counter servers_authenticated: u64 = "servers that passed the handshake";
    Counter refused_full: u64 = "connections closed at once because their side was full \
        (`MaxClients`, `MaxServers`)";
    Counter refused_per_ip: u64 = "client connections closed at once because their source had \
        `MaxClientsPerIP` clients already";
    Counter refused_rate: u64 = "connections closed at once because their source connected \
        faster than `AcceptRatePerIP`";
    Counter accept_errors: u64 = "accept errors (e.g. out of descriptors); accepting paused";
    Counter accept_full: u64 = "times accepting paused because the token range was full";
    Counter frames_from_clients: u64 = "data frames received from clients";
    Counter frames_from_servers: u64 = "data frames received from servers";
    Counter bytes_from_clients: u64 = "bytes read from clients";
    Counter bytes_from_servers: u64 = "bytes read from servers";
    Counter bytes_to_clients: u64 = "bytes written to clients";
    Counter bytes_to_servers: u64 = "bytes written to servers";
    Counter dials: u64 = "Dial commands received";
    Counter refused_unknown: u64 = "dials refused because the peer was unknown";
    Counter refused_limit: u64 = "dials refused because a vconn limit was reached";
    Counter closes: u64 = "Close commands received";
    Counter closes_ignored: u64 = "Close commands for vconns the sender does not own, ignored";
    Counter pings: u64 = "Ping commands answered";
    Counter frames_on_dead_vconns: u64 = "data frames on vconns that no longer exist, answered \
        with Close";
    Counter bad_frames: u64 = "connections closed for a bad frame Length";
    Counter bad_commands: u64 = "connections closed for a malformed or forbidden command";
    Counter spoofs: u64 = "connections closed for writing into another's vconn";
    Counter auth_failures: u64 = "servers that failed the handshake digest";
    Counter handshake_timeouts: u64 = "servers that did not answer the challenge in time";
    Counter proxy_headers: u64 = "PROXY headers taken (the connection's real address learned)";
    Counter bad_proxy_headers: u64 = "connections closed for a bad or missing PROXY header";
    Counter idle_timeouts: u64 = "connections closed for idleness";
    Counter slow_consumers: u64 = "connections closed as slow consumers";
    Counter servers_replaced: u64 = "servers replaced by a newer one with the same ID";
    Counter paused: u64 = "times a source stopped reading because its destination was congested \
        (a server over its high-water mark)";
    Counter pause_timeouts: u64 = "pauses that reached their bound (`Config::max_pause`, at most \
        half the client idle timeout) with the server still congested";
    Counter pause_closes: u64 = "vconns closed because a pause reached its bound (the paused \
        client's vconns to the congested server; both ends told)";
    Counter frames_dropped_paused: u64 = "frames dropped because a pause reached its bound (each \
        was the frame that waited; its vconn was closed and both ends told)";
    Counter write_timeouts: u64 = "connections closed because their socket took no byte of their \
        queue for their idle timeout";
    Counter partial_frames_dropped: u64 = "connections that closed with part of a frame \
        received; the part was dropped (nothing of it had been forwarded)";
    Counter partial_budget_cuts: u64 = "connections cut because partial frames held more than \
        `MaxPartialBytes` and theirs was the furthest from finishing";
    Counter peer_closes: u64 = "connections closed by socket errors or EOF";
    Counter kicked: u64 = "connections the operator closed (`kick`)";
    Gauge snet_waiting: usize = "snet streams whose link is down, waiting for a reconnect";
    Counter snet_handshakes: u64 = "snet streams opened (handshakes done)";
    Counter snet_links_lost: u64 = "snet links lost (the stream then waits)";
    Counter snet_resumes: u64 = "snet streams resumed over a new link";
    Counter snet_resume_unknown: u64 = "reconnects for an snet stream that does not exist (or \
        expired); the new link was closed";
    Counter snet_resume_bad_digest: u64 = "reconnects with a wrong digest; the new link was closed";
    Counter snet_resume_failed: u64 = "reconnects whose counters could not be resumed from \
        (impossible counts, or bytes no longer in the resend buffer); the stream was closed for \
        good";
    Counter snet_resume_flood: u64 = "reconnects refused because the stream reconnected too often";
    Counter snet_bad_requests: u64 = "bad snet requests (a zero public key)";
    Counter snet_expired: u64 = "snet streams closed because their link stayed down for the wait \
        timeout";
    Counter multicasts: u64 = "Multicast commands taken from servers";
    Counter group_sends: u64 = "GroupSend commands taken from servers";
    Counter frames_fanned_out: u64 = "data frames queued to clients by Multicast and GroupSend \
        (each sharing its command's payload)";
    Counter group_joins: u64 = "vconns added to a group";
    Counter group_leaves: u64 = "vconns taken out of a group by Leave (closing vconns leave \
        without being counted here)";
    Counter group_joins_refused: u64 = "joins refused by a group limit (`ServerMaxGroups`, \
        `GroupMaxMembers`, `VConnMaxGroups`), each answered with JoinRefused";
    Gauge groups: usize = "groups servers keep at the gateway";
    Gauge group_members: usize = "memberships of those groups (a vconn in two groups counts \
        twice)";
}

impl Stats {
    /// Every counter and gauge by name, in [`STAT_FIELDS`]' order.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        STAT_FIELDS
            .iter()
            .map(|f| (f.name, (f.get)(self)))
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each figure once, named as its field, read from its own field.
    #[test]
    fn the_table_names_each_figure_once_and_reads_its_own_field() {
        let mut names: Vec<&str> = STAT_FIELDS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a figure listed twice");
        let s = Stats {
            dials: 7,
            clients: 3,
            pool: PoolStats {
                page_bytes: 4096,
                ..PoolStats::default()
            },
            ..Stats::default()
        };
        let f = s.fields();
        let get = |n: &str| f.iter().find(|(name, _)| *name == n).map(|(_, v)| *v);
        assert_eq!(get("dials"), Some(7));
        assert_eq!(get("clients"), Some(3));
        assert_eq!(get("pool_page_bytes"), Some(4096));
        assert_eq!(f.iter().map(|(_, v)| v).sum::<u64>(), 7 + 3 + 4096);
        let kind = |n: &str| STAT_FIELDS.iter().find(|f| f.name == n).map(|f| f.kind);
        assert_eq!(kind("clients"), Some(StatKind::Gauge));
        assert_eq!(kind("snet_waiting"), Some(StatKind::Gauge));
        assert_eq!(kind("pool_pages"), Some(StatKind::Gauge));
        assert_eq!(kind("dials"), Some(StatKind::Counter));
        assert!(STAT_FIELDS.iter().all(|f| !f.help.is_empty()));
    }
}
