//! The gateway core: every rule of `docs/protocol.md` §4–6 as a state machine.
//!
//! The core never opens, registers or polls a socket, never reads a clock
//! and never draws randomness of its own: a connection's transport is any
//! [`Transport`] handed in by the driver, readiness is reported to it, time
//! is passed in, and challenges and snet keys come from the
//! [`RandomSource`] it was built with. Tests drive it with in-memory
//! transports on a virtual clock and a seeded source, so a run replays
//! exactly; the mio driver drives it with sockets.
//!
//! It is a connection part, a router, and the turn that drives both:
//!
//! - `conn.rs` and `input.rs`, the connection part: a peer's read buffer,
//!   partial frame, stage (PROXY, snet, handshake, active, drain) and
//!   readiness; reading and parsing into typed inputs, one connection at a
//!   time;
//! - `router.rs`: the vconn table, conn ID counter and ID maps, the
//!   servers' groups (`gateway/groups.rs`), and the routing rules; it
//!   decides, and touches no buffer;
//! - `dispatch.rs`: hands each input to the router and carries out what it
//!   decided (the only place one connection's input reaches another's
//!   output);
//! - `fanout.rs`: a server's Multicast, Join, Leave and GroupSend, once
//!   gathered: one shared payload queued to many clients (`docs/protocol.md`
//!   §10);
//! - `output.rs`: queues, flow control and flushing; `snet.rs`: snet
//!   streams opened, resumed and waiting; `timers.rs`: each connection's
//!   next deadline and what firing it does; `invariants.rs`: the checks
//!   tests and the fuzzer run after every turn;
//! - this file: the turn, accepting, closing, and what the core reports.
//!
//! The rules at the edges, which the docs of the crate repeat:
//!
//! - **Frames are stored, then forwarded.** A frame reaches its destination
//!   only once its last byte has arrived, so a source that stalls or dies
//!   mid-frame never holds a destination nor leaves it half a frame: a
//!   partial frame pins its source's own buffers and nothing else, and it
//!   is dropped if the source goes. A source that sends no complete frame
//!   for its idle timeout is closed.
//! - **The gateway's own pauses are not idleness, and they end.** A
//!   connection the gateway stopped reading (its frame waits for a
//!   congested server) does not time out while paused; its idle clock
//!   restarts when it resumes, at the latest after the pause bound
//!   ([`Config::max_pause`], at most half the client idle timeout), when
//!   its vconns to that server are closed and both ends told.
//! - **A peer that reads nothing is dead.** One whose socket takes no byte
//!   of its queue for its idle timeout is closed, however much it sends.
//! - **Drain delivers.** After [`Core::begin_shutdown`] every connection
//!   keeps being flushed; what peers send meanwhile is read and discarded
//!   (never left unread, which would make closing the socket reset it and
//!   destroy what the peer had not read yet). A flushed connection gets the
//!   end of the stream and is closed once its peer closes too.
//!
//! Work happens in turns ([`Core::turn`]): connections reported readable are
//! read and their frames routed (a bounded amount per connection per turn),
//! then every connection with queued bytes is flushed once, then deadlines
//! fire, then connections marked for closing are closed.

mod conn;
mod dispatch;
mod fanout;
mod input;
mod invariants;
mod output;
mod router;
mod snet;
#[cfg(test)]
mod tests;
mod timers;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, warn};
use slab::Slab;

use self::conn::{Conn, State};
use self::router::{Outbox, Router};
use super::admission::{Admission, Refusal};
use super::loglimit::LogLimit;
use super::stats::{CloseReason, Stats, TurnHistogram};
use crate::buf::Pool;
use crate::config::Config;
use crate::random::{OsRandom, RandomSource};
use crate::side::Side;
use crate::transport::{Ready, Transport};
use crate::wire::Challenge;

/// How often empty buffer pages may be given back (a page goes after two
/// trims in a row found it empty).
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// A snapshot of one physical connection, for `lookup conns` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// The connection's key in the core (its token offset).
    pub key: usize,
    /// Which listener it came in on.
    pub side: Side,
    /// Client or server ID; `None` for a server still in its handshake.
    pub id: Option<u32>,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Live vconns.
    pub vconns: u32,
    /// Bytes queued for writing.
    pub queued_bytes: usize,
    /// Messages queued for writing.
    pub queued_msgs: usize,
    /// Time since its last complete frame.
    pub idle: Duration,
    /// For an snet stream whose link is down: how long it still waits for
    /// a reconnect.
    pub snet_waiting: Option<Duration>,
}

/// The gateway state machine, generic over the transport `T`.
pub struct Core<T> {
    cfg: Config,
    capacity: usize,
    conns: Slab<Conn<T>>,
    /// The vconn table and the ID maps, and the routing rules.
    router: Router,
    /// What the router decided to tell the peers, not yet queued.
    outbox: Outbox,
    /// The conn IDs of the fan-out command being carried out.
    fan_ids: Vec<u32>,
    /// The members a GroupSend goes to.
    fan_members: Vec<u32>,
    next_serial: u64,
    rpool: Pool,
    wpool: Pool,
    deadlines: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    ready: Vec<usize>,
    dirty: Vec<usize>,
    doomed: Vec<usize>,
    closed: Vec<(T, CloseReason)>,
    stats: Stats,
    /// Shutting down: input is discarded, queues are being flushed.
    draining: bool,
    /// The time of the current turn (none before the first).
    now: Option<Instant>,
    /// The rate limit for log lines peers can cause.
    logs: LogLimit,
    /// Connection limits and the counts they need.
    admission: Admission,
    /// When the pools may next give empty pages back.
    next_trim: Option<Instant>,
    /// Bytes of partial frames being gathered, over all connections.
    staged: usize,
    /// Most connections have closed since the tables were last compacted.
    crowd_left: bool,
    /// snet streams by ID.
    snet_streams: std::collections::HashMap<u64, usize>,
    /// The ID the next snet stream gets.
    next_snet_id: u64,
    /// Connections whose snet stream moved onto a new link this turn.
    relinked: Vec<usize>,
    /// Data frames routed per turn (turns that routed some).
    turn_frames: TurnHistogram,
    /// Where challenges and snet keys come from.
    random: Box<dyn RandomSource>,
}

impl<T> Drop for Core<T> {
    /// Every buffer goes back to its pool before the pools go, so the only
    /// chunk ever dropped is one a bug lost.
    fn drop(&mut self) {
        for (_, c) in self.conns.iter_mut() {
            c.rbuf.release(&mut self.rpool);
            c.out.release(&mut self.wpool);
            c.stage.release(&mut self.wpool);
            if let Some(chunk) = c.gather.take() {
                self.wpool.put(chunk);
            }
        }
    }
}

impl<T> std::fmt::Debug for Core<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("conns", &self.conns.len())
            .field("capacity", &self.capacity)
            .field("clients", &self.router.clients.len())
            .field("servers", &self.router.servers.len())
            .field("vconns", &self.router.vconns.len())
            .field("draining", &self.draining)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Core<T> {
    /// A core holding at most `capacity` physical connections.
    ///
    /// # Panics
    ///
    /// If `cfg` does not pass [`Config::validate`]; check it first.
    pub fn new(cfg: Config, capacity: usize) -> Core<T> {
        Core::with_random(cfg, capacity, Box::new(OsRandom))
    }

    /// [`new`](Self::new) drawing its challenges and snet keys from
    /// `random` (a [`SeededRandom`](crate::random::SeededRandom) replays a
    /// run exactly, as a test harness or a fuzzer needs).
    ///
    /// # Panics
    ///
    /// If `cfg` does not pass [`Config::validate`]; check it first.
    pub fn with_random(cfg: Config, capacity: usize, random: Box<dyn RandomSource>) -> Core<T> {
        if let Err(e) = cfg.validate() {
            panic!("invalid gateway configuration: {e}");
        }
        Core {
            router: Router::new(cfg.client_ids),
            outbox: Outbox::new(),
            fan_ids: Vec::new(),
            fan_members: Vec::new(),
            rpool: Pool::new(&cfg.pool),
            wpool: Pool::new(&cfg.pool),
            cfg,
            capacity,
            conns: Slab::new(),
            next_serial: 0,
            deadlines: BinaryHeap::new(),
            ready: Vec::new(),
            dirty: Vec::new(),
            doomed: Vec::new(),
            closed: Vec::new(),
            stats: Stats::default(),
            draining: false,
            now: None,
            logs: LogLimit::default(),
            admission: Admission::default(),
            next_trim: None,
            staged: 0,
            crowd_left: false,
            snet_streams: std::collections::HashMap::new(),
            next_snet_id: 1,
            relinked: Vec::new(),
            turn_frames: TurnHistogram::default(),
            random,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Whether another connection fits.
    pub fn has_room(&self) -> bool {
        self.conns.len() < self.capacity
    }

    /// Live physical connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no physical connection is live.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The slab key the next accepted connection will get.
    pub fn next_key(&self) -> usize {
        self.conns.vacant_key()
    }

    /// Takes a new physical connection. Returns its key, or gives the
    /// transport back when the core is full or shutting down.
    pub fn accept(&mut self, side: Side, io: T, now: Instant) -> Result<usize, T> {
        if !self.has_room() || self.draining {
            return Err(io);
        }
        let peer = io.peer_addr();
        let behind_proxy = self.cfg.side(side).proxy_protocol;
        let admitted = if behind_proxy {
            // Its source is the one in the PROXY header, not the balancer.
            self.admission.admit_side(&self.cfg, side)
        } else {
            self.admission.admit(&self.cfg, side, peer.ip(), now)
        };
        if let Err(refusal) = admitted {
            self.refused(side, peer, refusal);
            return Err(io);
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let snet = self.cfg.side(side).snet.filter(|_| io.as_snet().is_some());
        let state = if behind_proxy {
            State::Proxy {
                deadline: now + self.cfg.handshake_timeout,
            }
        } else if let Some(snet) = snet {
            // Its ID (or its stream) comes with its request.
            State::Snet {
                deadline: now + snet.init_timeout,
            }
        } else {
            match self.first_state(side, peer, now) {
                Some(state) => state,
                None => {
                    self.admission.released(side, peer.ip(), true);
                    return Err(io);
                }
            }
        };
        let key = self
            .conns
            .insert(Conn::new(side, io, peer, serial, state, now));
        self.enter(key, state);
        self.schedule(key);
        self.mark_ready(key);
        debug!("{} connected", self.conns[key].describe());
        Ok(key)
    }

    /// Counts and logs a connection refused by a limit.
    fn refused(&mut self, side: Side, peer: SocketAddr, refusal: Refusal) {
        match refusal {
            Refusal::Full { .. } => self.stats.refused_full += 1,
            Refusal::PerSource { .. } => self.stats.refused_per_ip += 1,
            Refusal::Rate { .. } => self.stats.refused_rate += 1,
        }
        if self.may_log() {
            warn!("{side} {peer}: refused: {refusal}");
        } else {
            debug!("{side} {peer}: refused: {refusal}");
        }
    }

    /// The state a connection starts in once its peer is known: a client
    /// gets its ID, a server its challenge. `None` if no challenge can be
    /// made (no randomness available).
    fn first_state(&mut self, side: Side, peer: SocketAddr, now: Instant) -> Option<State> {
        match side {
            Side::Client => Some(State::Active {
                id: self.router.new_client_id(),
            }),
            Side::Server => match Challenge::from_source(&mut *self.random) {
                Ok(challenge) => Some(State::Handshake {
                    challenge,
                    deadline: now + self.cfg.handshake_timeout,
                }),
                Err(e) => {
                    if self.may_log() {
                        warn!("server {peer}: no random challenge available ({e}); connection dropped");
                    }
                    None
                }
            },
        }
    }

    /// Puts connection `key` in `state`: a client is registered under its
    /// ID, a server is sent its challenge.
    fn enter(&mut self, key: usize, state: State) {
        self.conns[key].state = state;
        match state {
            State::Active { id } if self.conns[key].side == Side::Client => {
                self.router.register(Side::Client, id, key);
                self.stats.clients_accepted += 1;
            }
            State::Handshake { challenge, .. } => {
                self.stats.servers_accepted += 1;
                self.queue_raw(key, &challenge.0);
            }
            _ => {}
        }
    }

    /// Records readiness reported by the poller for connection `key`.
    pub fn set_readiness(&mut self, key: usize, ready: Ready) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.ready |= ready;
        let flush = ready.is_writable() && (!c.out.is_empty() || c.io.wants_write());
        if ready.is_readable() {
            self.mark_ready(key);
        }
        if flush {
            self.mark_dirty(key);
        }
    }

    fn mark_ready(&mut self, key: usize) {
        let c = &mut self.conns[key];
        if !c.in_ready {
            c.in_ready = true;
            self.ready.push(key);
        }
    }

    /// Does one turn of work: reads and routes for connections with work
    /// pending (bounded per connection), flushes every connection with
    /// queued bytes once, fires due deadlines and closes what must close.
    /// Safe to call at any time, as often as wanted.
    pub fn turn(&mut self, now: Instant) {
        self.now = Some(now);
        let frames_before = self.stats.frames_from_clients + self.stats.frames_from_servers;
        // Connections that still have input after their budget are marked
        // again, for the next turn.
        let ready = std::mem::take(&mut self.ready);
        for &key in &ready {
            if let Some(c) = self.conns.get_mut(key) {
                c.in_ready = false;
                self.process_input(key, now);
            }
        }
        if self.ready.is_empty() {
            let mut ready = ready;
            ready.clear();
            self.ready = ready;
        }
        let frames = self.stats.frames_from_clients + self.stats.frames_from_servers;
        if frames > frames_before {
            self.turn_frames.record(frames - frames_before);
        }
        self.flush_all();
        self.fire_deadlines(now);
        self.reap();
        self.logs.roll(now);
        self.trim_memory(now);
    }

    /// About once a second while the pools hold more empty pages than
    /// their spares: gives those that stayed empty since the last trim back
    /// to the operating system, and shrinks the ID maps after a crowd left.
    fn trim_memory(&mut self, now: Instant) {
        if !self.wants_trim() {
            self.next_trim = None;
            return;
        }
        match self.next_trim {
            Some(at) if now < at => {}
            _ => {
                let released = self.rpool.trim() + self.wpool.trim();
                if std::mem::take(&mut self.crowd_left) {
                    self.compact();
                }
                if released > 0 {
                    debug!("gave {released} empty buffer pages back to the system");
                }
                self.next_trim = Some(now + TRIM_EVERY);
            }
        }
    }

    fn wants_trim(&self) -> bool {
        self.crowd_left || self.rpool.wants_trim() || self.wpool.wants_trim()
    }

    /// After a crowd left: gives back what the tables grew to hold it.
    /// Keys stay valid (they are tokens registered with the poller).
    fn compact(&mut self) {
        self.conns.shrink_to_fit();
        self.router.shrink();
        let conns = &self.conns;
        self.deadlines.retain(|Reverse((at, key, serial))| {
            conns
                .get(*key)
                .is_some_and(|c| c.serial == *serial && c.timer == Some(*at))
        });
        self.deadlines.shrink_to(2 * self.deadlines.len());
        for list in [&mut self.ready, &mut self.dirty, &mut self.doomed] {
            list.shrink_to(2 * list.len());
        }
    }

    /// How long until the core needs [`turn`](Self::turn) again: zero when
    /// work was left over, else the time to the next deadline.
    #[must_use]
    pub fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.ready.is_empty() || !self.dirty.is_empty() || !self.doomed.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = self.deadlines.peek().map(|Reverse((at, _, _))| *at);
        let next = match (next, self.wants_trim()) {
            (Some(a), true) => Some(a.min(self.next_trim.unwrap_or(now))),
            (None, true) => Some(self.next_trim.unwrap_or(now)),
            (a, false) => a,
        };
        // Lines left out of the log are reported when their window ends.
        let next = match (next, self.logs.report_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map(|at| at.saturating_duration_since(now))
    }

    /// Hands the driver, one by one, every connection whose snet stream
    /// moved onto a new link this turn, with the link's mio source: the
    /// driver registers it under that connection's token (it came in under
    /// the link's own). Together with the turn this is the whole resume.
    pub fn relink(&mut self, mut register: impl FnMut(usize, &mut dyn mio::event::Source)) {
        for key in std::mem::take(&mut self.relinked) {
            if let Some(source) = self.conns.get_mut(key).and_then(|c| c.io.source()) {
                register(key, source);
            }
        }
    }

    /// The mio source of connection `key`'s transport, if it has one.
    pub fn source(&mut self, key: usize) -> Option<&mut dyn mio::event::Source> {
        self.conns.get_mut(key).and_then(|c| c.io.source())
    }

    /// Transports of connections closed since the last call, with the
    /// reason, for the driver to deregister before dropping them.
    #[must_use = "closed transports should be deregistered by the driver"]
    pub fn take_closed(&mut self) -> std::vec::Drain<'_, (T, CloseReason)> {
        self.closed.drain(..)
    }

    pub(crate) fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Starts shutting down: frames no longer routed, partial frames are
    /// dropped, every vconn is closed and both its ends are told. Queued
    /// bytes keep flushing on later turns, whatever the peers send
    /// meanwhile (it is read and discarded); a connection whose queue is
    /// written gets the end of the stream and closes when its peer closes.
    /// See [`is_drained`](Self::is_drained) and [`close_all`](Self::close_all).
    pub fn begin_shutdown(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        self.router
            .close_everything(&mut self.conns, &mut self.outbox);
        self.send_outbox();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.release_gather(key);
            let c = &mut self.conns[key];
            c.rx = conn::Rx::Frames;
            self.staged -= c.stage.bytes();
            c.stage.release(&mut self.wpool);
            c.pause = None;
            self.mark_ready(key);
            self.mark_dirty(key);
        }
    }

    /// Whether every connection has been flushed and closed since
    /// [`begin_shutdown`](Self::begin_shutdown).
    pub fn is_drained(&self) -> bool {
        self.conns.is_empty()
    }

    /// Closes every connection now (reason [`CloseReason::Shutdown`]).
    pub fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.doom(key, CloseReason::Shutdown);
        }
        self.reap();
    }

    /// Closes client or server `id` (at the end of the next turn): its
    /// vconns close and their other ends are told. `false` if there is no
    /// such peer.
    pub fn kick(&mut self, side: Side, id: u32) -> bool {
        let Some(key) = self.router.lookup(side, id) else {
            return false;
        };
        if self.conns[key].doomed.is_none() {
            self.stats.kicked += 1;
        }
        self.doom(key, CloseReason::Kicked);
        true
    }

    /// Data frames routed per turn, over the turns that routed any.
    pub fn turn_histogram(&self) -> TurnHistogram {
        self.turn_frames
    }

    /// Counters, with gauges filled in.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.servers = self.admission.live(Side::Server);
        s.clients = self.admission.live(Side::Client);
        s.vconns = self.router.vconns.len();
        s.groups = self.router.groups.count();
        s.group_members = self.router.groups.members();
        s.queued_bytes = self.conns.iter().map(|(_, c)| c.out.bytes()).sum();
        s.snet_waiting = self
            .conns
            .iter()
            .filter(|(_, c)| c.detached().is_some())
            .count();
        let (r, w) = (self.rpool.stats(), self.wpool.stats());
        s.pool.pages = r.pages + w.pages;
        s.pool.page_bytes = r.page_bytes + w.page_bytes;
        s.pool.chunks_in_use = r.chunks_in_use + w.chunks_in_use;
        s.pool.bytes_in_use = r.bytes_in_use + w.bytes_in_use;
        s
    }

    /// One line of facts per live connection.
    pub fn conn_infos(&self, now: Instant) -> Vec<ConnInfo> {
        self.conns
            .iter()
            .map(|(key, c)| ConnInfo {
                key,
                side: c.side,
                id: c.id(),
                peer: c.peer,
                vconns: c.vlist.len(),
                queued_bytes: c.out.bytes(),
                queued_msgs: c.out.msgs(),
                idle: now.saturating_duration_since(c.last_active),
                snet_waiting: c.detached().map(|at| at.saturating_duration_since(now)),
            })
            .collect()
    }

    /// Marks `key` for closing. Its input is no longer processed and nothing
    /// more is queued to it; the close itself happens in [`reap`].
    fn doom(&mut self, key: usize, reason: CloseReason) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.doomed.is_none() {
            c.doomed = Some(reason);
            self.doomed.push(key);
        }
    }

    /// Closes every doomed connection: its vconns are closed and their other
    /// ends told, its ID is freed, its buffers go back to the pools.
    fn reap(&mut self) {
        while let Some(key) = self.doomed.pop() {
            self.close_now(key);
        }
        // Closing may have queued Close commands; send them this turn.
        self.flush_all();
    }

    /// Whether a log line a peer caused may be written now: at most
    /// [`loglimit::LINES_PER_WINDOW`](super::loglimit::LINES_PER_WINDOW)
    /// a second, the rest counted and reported in one line.
    pub(crate) fn may_log(&mut self) -> bool {
        match self.now {
            Some(now) => self.logs.allow(now),
            None => true,
        }
    }

    /// Gives back the bytes of a fan-out command `key` was gathering.
    fn release_gather(&mut self, key: usize) {
        let c = &mut self.conns[key];
        if let (conn::Rx::Gather { len, .. }, Some(chunk)) = (c.rx, c.gather.take()) {
            self.staged -= len as usize;
            self.wpool.put(chunk);
        }
    }

    fn close_now(&mut self, key: usize) {
        let Some(reason) = self.conns.get(key).and_then(|c| c.doomed) else {
            return;
        };
        let side = self.conns[key].side;
        match close_level(side, reason) {
            Some(level) => {
                if self.may_log() {
                    log::log!(level, "{} closed: {reason}", self.conns[key].describe());
                }
            }
            None => debug!("{} closed: {reason}", self.conns[key].describe()),
        }
        if matches!(reason, CloseReason::PeerClosed | CloseReason::Io(_)) {
            self.stats.peer_closes += 1;
        }
        // Close every vconn and tell the other ends.
        self.router
            .close_all_of(&mut self.conns, key, &mut self.outbox);
        let mut c = self.conns.remove(key);
        self.forget_stream(key, c.snet.as_ref().map(|s| s.id));
        let source_counted = !matches!(c.state, State::Proxy { .. });
        self.admission.released(side, c.peer.ip(), source_counted);
        if self.conns.capacity() > 256 && self.conns.len() * 4 < self.conns.capacity() {
            self.crowd_left = true;
        }
        if matches!(
            c.rx,
            conn::Rx::Stage { .. } | conn::Rx::Skip { .. } | conn::Rx::Gather { .. }
        ) || !c.rbuf.is_empty()
        {
            self.stats.partial_frames_dropped += 1;
        }
        if let (conn::Rx::Gather { len, .. }, Some(chunk)) = (c.rx, c.gather.take()) {
            self.staged -= len as usize;
            self.wpool.put(chunk);
        }
        if let Some(id) = c.id() {
            self.router.forget(side, id, key);
        }
        c.rbuf.release(&mut self.rpool);
        c.out.release(&mut self.wpool);
        self.staged -= c.stage.bytes();
        c.stage.release(&mut self.wpool);
        for w in c.waiters.drain(..) {
            self.wake(w);
        }
        self.closed.push((c.io, reason));
        self.send_outbox();
    }

    fn wake(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            if c.pause.take().is_some() {
                // The pause was the gateway's doing: the idle clock starts
                // again from here.
                if let Some(now) = self.now {
                    c.last_active = c.last_active.max(now);
                }
            }
            self.mark_ready(key);
        }
    }
}

/// The level at which a connection's close is logged, `None` for debug.
/// Operators see, at the default level: every protocol offence, failed or
/// timed-out server handshake and slow client (warn), and every server
/// that goes away (info). Ordinary client comings and goings and the
/// closes of a shutdown stay at debug.
fn close_level(side: Side, reason: CloseReason) -> Option<log::Level> {
    match (side, reason) {
        (_, CloseReason::Shutdown) => None,
        (
            _,
            CloseReason::Protocol(_)
            | CloseReason::AuthFailed
            | CloseReason::HandshakeTimeout
            | CloseReason::ProxyTimeout
            | CloseReason::SlowConsumer
            | CloseReason::WriteTimeout
            | CloseReason::PartialBudget,
        ) => Some(log::Level::Warn),
        (_, CloseReason::SnetResumed) => None,
        (_, CloseReason::Kicked) => Some(log::Level::Info),
        (Side::Server, CloseReason::SnetExpired) => Some(log::Level::Warn),
        // Said when the newer server registered.
        (Side::Server, CloseReason::Replaced) => None,
        (Side::Server, _) => Some(log::Level::Info),
        (Side::Client, _) => None,
    }
}
