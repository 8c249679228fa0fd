//! The core's input side: reading from a connection, taking its bytes apart
//! (handshake response, frames, large-frame bodies) and applying the rules
//! of `docs/protocol.md` §4–6 to each frame.
//!
//! Frames are stored, then forwarded. A frame that fits the sender's read
//! buffer is routed from there once whole; a longer one is gathered in the
//! sender's own chunks (at most `MaxPacket` bytes) and its chunks handed to
//! the destination's queue once whole, without copying again. So a
//! destination only ever receives whole frames its source sent, and a
//! sender that trickles or dies mid-frame holds up no one but itself.

use std::time::Instant;

use super::conn::{Rx, State};
use super::Core;
use crate::gateway::proxy;
use crate::gateway::stats::{CloseReason, ProtocolError, ProxyError};
use crate::side::Side;
use crate::transport::{IoStatus, Ready, Transport};
use crate::wire::{
    self, Command, CommandError, CommandType, Header, Origin, Response, Status, HEADER_LEN,
    MAX_COMMAND_FRAME, RESPONSE_LEN,
};

/// Most reads from one connection per turn.
const READS_PER_TURN: usize = 4;
/// Reads take up to this many times a connection's buffer size.
const READ_SIZE_FACTOR: usize = 16;

/// What to do after taking bytes from the read buffer.
pub(super) enum Flow {
    /// Something was taken; look again.
    Progress,
    /// Nothing more can be taken until more bytes arrive.
    NeedMore,
    /// Stop: the connection stalled or is closing.
    Stop,
}

/// Where a data frame goes.
enum Route {
    To(usize),
    /// The vconn is gone: answer Close and drop the frame.
    Dead,
    /// The other end is closing; it will send Close itself. Drop the frame.
    Dropped,
    /// The sender is not an end of the vconn: it has been closed for it.
    Offence,
    /// The destination cannot take it now; the sender stalled.
    Stall,
}

impl<T: Transport> Core<T> {
    /// Reads from and processes connection `key`, a bounded amount; then
    /// shrinks what is left in its read buffer back to its buffer size.
    pub(super) fn process_input(&mut self, key: usize, now: Instant) {
        if self.draining {
            self.discard_input(key);
            return;
        }
        self.read_and_route(key, now);
        if let Some(c) = self.conns.get_mut(key) {
            let keep = self.cfg.side(c.side).buffer_size;
            c.rbuf.shrink(&mut self.rpool, keep);
        }
    }

    /// Bytes taken per read: reads go into a transient chunk larger than the
    /// connection's buffer, so a burst of frames costs one syscall, not one
    /// per buffer-full; only a partial frame stays behind, in a chunk of the
    /// configured buffer size (see `ReadBuf::shrink`).
    fn read_size(&self, side: Side) -> usize {
        let b = self.cfg.side(side).buffer_size;
        (b * READ_SIZE_FACTOR).min(self.cfg.pool.max_chunk).max(b)
    }

    fn read_and_route(&mut self, key: usize, now: Instant) {
        let mut reads = 0;
        loop {
            if let Flow::Stop = self.take_input(key, now) {
                return;
            }
            let c = &self.conns[key];
            if !c.ready.is_readable() || c.rbuf.is_full(&self.rpool) {
                return;
            }
            if reads == READS_PER_TURN {
                self.mark_ready(key);
                return;
            }
            reads += 1;
            let size = self.read_size(c.side);
            match self.read_once(key, size) {
                IoStatus::Continue | IoStatus::WouldBlock => {}
                // What came before the end was taken above; a partial frame
                // left in the buffer dies with the connection.
                IoStatus::Closed => {
                    self.doom(key, CloseReason::PeerClosed);
                    return;
                }
                IoStatus::Error(kind) => {
                    self.doom(key, CloseReason::Io(kind));
                    return;
                }
            }
        }
    }

    /// One read into `key`'s buffer; counts the bytes and clears the
    /// readable bit when the transport says the source is drained.
    fn read_once(&mut self, key: usize, size: usize) -> IoStatus {
        let c = &mut self.conns[key];
        let ready = c.ready;
        let io = &mut c.io;
        let (n, status) = c
            .rbuf
            .fill_with(&mut self.rpool, size, |buf| io.read(buf, ready));
        if !matches!(status, IoStatus::Continue) {
            c.ready.remove(Ready::READABLE);
        }
        match c.side {
            Side::Client => self.stats.bytes_from_clients += n as u64,
            Side::Server => self.stats.bytes_from_servers += n as u64,
        }
        if status == IoStatus::WouldBlock {
            self.check_detached(key);
        }
        status
    }

    /// While draining: reads what the peer sends and drops it, so nothing
    /// lies unread when the socket closes (closing it then would reset the
    /// connection and destroy what the peer had not read yet), and notes the
    /// peer's end of the stream.
    fn discard_input(&mut self, key: usize) {
        let size = self.cfg.side(self.conns[key].side).buffer_size;
        for _ in 0..READS_PER_TURN {
            let c = &self.conns[key];
            if c.doomed.is_some() || !c.ready.is_readable() {
                return;
            }
            let status = self.read_once(key, size);
            self.conns[key].rbuf.release(&mut self.rpool);
            match status {
                IoStatus::Continue => {}
                IoStatus::WouldBlock => return,
                IoStatus::Closed => {
                    self.conns[key].peer_closed = true;
                    self.drain_progress(key);
                    return;
                }
                IoStatus::Error(kind) => {
                    self.doom(key, CloseReason::Io(kind));
                    return;
                }
            }
        }
        self.mark_ready(key);
    }

    /// Takes everything complete out of the read buffer.
    fn take_input(&mut self, key: usize, now: Instant) -> Flow {
        loop {
            let c = &self.conns[key];
            if c.doomed.is_some() || c.pause.is_some() {
                return Flow::Stop;
            }
            let step = match (c.rx, c.state) {
                (Rx::Stage { header, remaining }, _) => {
                    self.take_stage(key, header, remaining, now)
                }
                (Rx::Skip { conn_id, remaining }, _) => {
                    self.take_skip(key, conn_id, remaining, now)
                }
                (Rx::Frames, State::Proxy { .. }) => self.take_proxy(key, now),
                (Rx::Frames, State::Snet { .. }) => self.take_snet(key, now),
                (Rx::Frames, State::Handshake { .. }) => self.take_handshake(key, now),
                (Rx::Frames, State::Active { .. }) => self.take_frame(key, now),
            };
            match step {
                Flow::Progress => {}
                other => return other,
            }
        }
    }

    /// The PROXY header of a connection behind a load balancer: once whole,
    /// the peer is the address in it (kept as is for a v2 LOCAL header or
    /// an UNKNOWN/unspecified address: a balancer's own health check), the
    /// per-source limits apply to it, and the connection starts as any
    /// other would. What follows the header stays in the buffer.
    fn take_proxy(&mut self, key: usize, now: Instant) -> Flow {
        let c = &self.conns[key];
        let data = c.rbuf.data(&self.rpool);
        let (len, source) = match proxy::parse(data) {
            proxy::Parsed::Incomplete => {
                let limit = self.cfg.side(c.side).buffer_size;
                if data.len() >= limit {
                    self.stats.bad_proxy_headers += 1;
                    return self
                        .protocol_error(key, ProtocolError::Proxy(ProxyError::TooLong { limit }));
                }
                return Flow::NeedMore;
            }
            proxy::Parsed::Invalid(why) => {
                log::debug!("{}: bad PROXY header: {why}", c.describe());
                self.stats.bad_proxy_headers += 1;
                return self.protocol_error(key, ProtocolError::Proxy(ProxyError::Malformed));
            }
            proxy::Parsed::Header { len, source } => (len, source),
        };
        self.stats.proxy_headers += 1;
        let (side, via) = (c.side, c.peer);
        let c = &mut self.conns[key];
        c.rbuf.consume(&mut self.rpool, len);
        if let Some(source) = source {
            c.peer = source;
        }
        let peer = c.peer;
        log::debug!("{side} {peer}: PROXY header from {via}");
        if let Err(refusal) = self.admission.admit_source(&self.cfg, side, peer.ip(), now) {
            self.refused(side, peer, refusal);
            // Counted on its side only, as a connection still in the PROXY
            // stage is when it closes.
            self.doom(key, CloseReason::Refused);
            return Flow::Stop;
        }
        let Some(state) = self.first_state(side, peer, now) else {
            // Still in the PROXY stage when it closes: counted on its side
            // only, so its source is given back here.
            self.admission.forget_source(side, peer.ip());
            self.doom(key, CloseReason::Refused);
            return Flow::Stop;
        };
        self.enter(key, state);
        self.conns[key].last_active = now;
        self.schedule(key);
        Flow::Progress
    }

    fn take_handshake(&mut self, key: usize, now: Instant) -> Flow {
        let c = &self.conns[key];
        let State::Handshake { challenge, .. } = c.state else {
            return Flow::NeedMore;
        };
        let Status::Complete(resp) = Response::decode(c.rbuf.data(&self.rpool)) else {
            return Flow::NeedMore;
        };
        self.conns[key].rbuf.consume(&mut self.rpool, RESPONSE_LEN);
        if !challenge.verify(&self.cfg.auth_key, &resp) {
            self.stats.auth_failures += 1;
            self.doom(key, CloseReason::AuthFailed);
            return Flow::Stop;
        }
        let id = resp.server_id;
        if let Some(&old) = self.servers.get(&id) {
            self.stats.servers_replaced += 1;
            self.doom(old, CloseReason::Replaced);
            if self.may_log() {
                log::warn!(
                    "server {id}: {} replaced by a newer connection from {} with the same server ID",
                    self.conns[old].peer,
                    self.conns[key].peer
                );
            }
        }
        self.servers.insert(id, key);
        let c = &mut self.conns[key];
        c.state = State::Active { id };
        c.last_active = now;
        // Its idle timeout may end before the handshake deadline would.
        self.schedule(key);
        self.stats.servers_authenticated += 1;
        if self.may_log() {
            log::info!("{} registered", self.conns[key].describe());
        }
        Flow::Progress
    }

    pub(super) fn protocol_error(&mut self, key: usize, e: ProtocolError) -> Flow {
        match e {
            ProtocolError::Frame(_) => self.stats.bad_frames += 1,
            ProtocolError::Command(_) => self.stats.bad_commands += 1,
            ProtocolError::Spoofed { .. } => self.stats.spoofs += 1,
            // Counted where the header or request was judged.
            ProtocolError::Proxy(_) | ProtocolError::Snet(_) => {}
        }
        self.doom(key, CloseReason::Protocol(e));
        Flow::Stop
    }

    fn frame_done(&mut self, key: usize, now: Instant, data: bool) {
        let c = &mut self.conns[key];
        c.last_active = now;
        if data {
            match c.side {
                Side::Client => self.stats.frames_from_clients += 1,
                Side::Server => self.stats.frames_from_servers += 1,
            }
        }
    }

    fn take_frame(&mut self, key: usize, now: Instant) -> Flow {
        let c = &self.conns[key];
        let data = c.rbuf.data(&self.rpool);
        let h = match wire::decode_header(data, self.cfg.max_packet) {
            Err(e) => return self.protocol_error(key, ProtocolError::Frame(e)),
            Ok(Status::Partial) => return Flow::NeedMore,
            Ok(Status::Complete(h)) => h,
        };
        if h.is_command() {
            return self.take_command(key, h, now);
        }
        if data.len() < h.frame_len() {
            // Incomplete: a frame that fits the connection's buffer waits
            // there; a longer one is streamed or gathered as it arrives.
            if h.frame_len() > self.cfg.side(c.side).buffer_size {
                return self.begin_stage(key, h);
            }
            return Flow::NeedMore;
        }
        match self.route(key, h.conn_id) {
            Route::Stall | Route::Offence => return Flow::Stop,
            Route::To(dest) => {
                let chunk = self.out_chunk_size(self.conns[dest].side);
                let frame = &self.conns[key].rbuf.data(&self.rpool)[..h.frame_len()];
                let d = &mut self.conns[dest];
                d.out.push(&mut self.wpool, frame, chunk);
                d.out.end_message();
                self.mark_dirty(dest);
            }
            Route::Dead => self.queue_command(key, Command::Close { conn_id: h.conn_id }),
            Route::Dropped => {}
        }
        self.conns[key].rbuf.consume(&mut self.rpool, h.frame_len());
        self.frame_done(key, now, true);
        Flow::Progress
    }

    /// Finds where a data frame on `conn_id` from `key` goes. A frame on a
    /// live vconn `key` is not an end of is a spoofing attempt: `key` is
    /// closed and `Route::Offence` returned.
    fn route(&mut self, key: usize, conn_id: u32) -> Route {
        let side = self.conns[key].side;
        let Some(ends) = self.vconns.ends(conn_id) else {
            self.stats.frames_on_dead_vconns += 1;
            return Route::Dead;
        };
        if ends[side.index()] != key {
            self.protocol_error(key, ProtocolError::Spoofed { conn_id });
            return Route::Offence;
        }
        let dest = ends[side.other().index()];
        if self.conns[dest].doomed.is_some() {
            return Route::Dropped;
        }
        if !self.may_send(key, dest) {
            return Route::Stall;
        }
        Route::To(dest)
    }

    fn take_command(&mut self, key: usize, h: Header, now: Instant) -> Flow {
        let data = self.conns[key].rbuf.data(&self.rpool);
        if h.frame_len() > MAX_COMMAND_FRAME {
            // Too long for any command: say which rule it broke as soon as
            // the Type byte is here, without waiting for the rest.
            let Some(&t) = data.get(HEADER_LEN) else {
                return Flow::NeedMore;
            };
            let e = match CommandType::from_byte(t) {
                None => CommandError::UnknownType(t),
                Some(kind) => CommandError::WrongLength {
                    kind,
                    length: h.message_len(),
                },
            };
            return self.protocol_error(key, ProtocolError::Command(e));
        }
        if data.len() < h.frame_len() {
            return Flow::NeedMore;
        }
        let cmd = match Command::decode_from(Origin::Endpoint, &data[HEADER_LEN..h.frame_len()]) {
            Ok(cmd) => cmd,
            Err(e) => return self.protocol_error(key, ProtocolError::Command(e)),
        };
        self.conns[key].rbuf.consume(&mut self.rpool, h.frame_len());
        self.frame_done(key, now, false);
        self.handle_command(key, cmd);
        Flow::Progress
    }

    fn handle_command(&mut self, key: usize, cmd: Command) {
        match cmd {
            Command::Dial { remote_id } => self.dial(key, remote_id),
            Command::Close { conn_id } => {
                self.stats.closes += 1;
                let side = self.conns[key].side;
                match self.vconns.ends(conn_id) {
                    Some(ends) if ends[side.index()] == key => {
                        self.remove_vconn(conn_id, ends);
                        for end in ends {
                            self.queue_command(end, Command::Close { conn_id });
                        }
                    }
                    _ => self.stats.closes_ignored += 1,
                }
            }
            Command::Ping => {
                self.stats.pings += 1;
                self.queue_command(key, Command::Ping);
            }
            // Rejected by `decode_from(Origin::Endpoint, ..)`.
            Command::Accept { .. } | Command::Connect { .. } | Command::Refuse { .. } => {}
        }
    }

    fn dial(&mut self, key: usize, remote_id: u32) {
        self.stats.dials += 1;
        let c = &self.conns[key];
        let (side, my_id) = (c.side, c.id().unwrap_or(0));
        let peers = match side {
            Side::Client => &self.servers,
            Side::Server => &self.clients,
        };
        let target = peers
            .get(&remote_id)
            .copied()
            .filter(|&t| self.conns[t].doomed.is_none());
        let Some(target) = target else {
            self.stats.refused_unknown += 1;
            self.queue_command(key, Command::Refuse { remote_id });
            return;
        };
        let (client, server) = match side {
            Side::Client => (key, target),
            Side::Server => (target, key),
        };
        let full = |k: usize, max: Option<u32>| max.is_some_and(|m| self.conns[k].vlist.len() >= m);
        if full(client, self.cfg.client.max_vconns)
            || full(server, self.cfg.server.max_vconns)
            || !self.vconns.has_room()
        {
            self.stats.refused_limit += 1;
            self.queue_command(key, Command::Refuse { remote_id });
            return;
        }
        let Some((c, s)) = self.conns.get2_mut(client, server) else {
            return;
        };
        let conn_id = self
            .vconns
            .insert(client, &mut c.vlist, server, &mut s.vlist);
        self.queue_command(key, Command::Accept { conn_id, remote_id });
        self.queue_command(
            target,
            Command::Connect {
                conn_id,
                remote_id: my_id,
            },
        );
    }

    /// Starts gathering a frame longer than the read buffer.
    fn begin_stage(&mut self, key: usize, h: Header) -> Flow {
        // Only a frame on one of the sender's own vconns is worth keeping:
        // one on a dead vconn is dropped as it arrives, one on somebody
        // else's is an offence now rather than after half a megabyte.
        let side = self.conns[key].side;
        match self.vconns.ends(h.conn_id) {
            None => {
                self.stats.frames_on_dead_vconns += 1;
                let c = &mut self.conns[key];
                c.rbuf.consume(&mut self.rpool, HEADER_LEN);
                c.rx = Rx::Skip {
                    conn_id: h.conn_id,
                    remaining: h.message_len() as u32,
                };
                return Flow::Progress;
            }
            Some(ends) if ends[side.index()] != key => {
                return self.protocol_error(key, ProtocolError::Spoofed { conn_id: h.conn_id });
            }
            Some(_) => {}
        }
        if !self.partial_budget_allows(key, h.message_len(), HEADER_LEN) {
            return Flow::Stop;
        }
        let chunk = self.cfg.pool.max_chunk;
        let c = &mut self.conns[key];
        c.stage.push(&mut self.wpool, &h.to_bytes(), chunk);
        self.staged += HEADER_LEN;
        c.rbuf.consume(&mut self.rpool, HEADER_LEN);
        c.rx = Rx::Stage {
            header: h,
            remaining: h.message_len() as u32,
        };
        Flow::Progress
    }

    /// Drops the body of a large frame on a dead vconn as it arrives;
    /// answers Close once it is all there.
    fn take_skip(&mut self, key: usize, conn_id: u32, remaining: u32, now: Instant) -> Flow {
        let c = &mut self.conns[key];
        let n = c.rbuf.len().min(remaining as usize);
        if n == 0 && remaining > 0 {
            return Flow::NeedMore;
        }
        c.rbuf.consume(&mut self.rpool, n);
        let remaining = remaining - n as u32;
        if remaining > 0 {
            c.rx = Rx::Skip { conn_id, remaining };
            return Flow::Progress;
        }
        c.rx = Rx::Frames;
        self.queue_command(key, Command::Close { conn_id });
        self.frame_done(key, now, true);
        Flow::Progress
    }

    /// Whether `key` may keep `more` bytes of its partial frame (with
    /// `remaining` bytes still to come) within `MaxPartialBytes`. Over the
    /// budget, the partial frames furthest from finishing are cut first,
    /// `key`'s own included: the peers that would pin the most memory for
    /// the longest go, the ones about to finish stay.
    fn partial_budget_allows(&mut self, key: usize, remaining: usize, more: usize) -> bool {
        let Some(budget) = self.cfg.max_partial_bytes else {
            return true;
        };
        if self.staged + more <= budget {
            return true;
        }
        let mut held = self.staged;
        // Frames already cut still count until their connections close
        // this turn; only what they hold is subtracted.
        for (_, c) in self.conns.iter() {
            if c.doomed.is_some() && matches!(c.rx, Rx::Stage { .. }) {
                held -= c.stage.bytes();
            }
        }
        while held + more > budget {
            let victim = self
                .conns
                .iter()
                .filter(|(k, c)| *k != key && c.doomed.is_none())
                .filter_map(|(k, c)| match c.rx {
                    Rx::Stage { remaining, .. } => Some((remaining as usize, k, c.stage.bytes())),
                    _ => None,
                })
                .max();
            match victim {
                Some((theirs, k, bytes)) if theirs > remaining => {
                    self.stats.partial_budget_cuts += 1;
                    self.doom(k, CloseReason::PartialBudget);
                    held -= bytes;
                }
                _ => {
                    self.stats.partial_budget_cuts += 1;
                    self.doom(key, CloseReason::PartialBudget);
                    return false;
                }
            }
        }
        true
    }

    /// Gathers a large frame; routes it once complete.
    fn take_stage(&mut self, key: usize, h: Header, remaining: u32, now: Instant) -> Flow {
        let chunk = self.cfg.pool.max_chunk;
        let n = self.conns[key].rbuf.len().min(remaining as usize);
        if n == 0 && remaining > 0 {
            return Flow::NeedMore;
        }
        if n > 0 && !self.partial_budget_allows(key, remaining as usize - n, n) {
            return Flow::Stop;
        }
        let c = &mut self.conns[key];
        if n > 0 {
            c.stage
                .push(&mut self.wpool, &c.rbuf.data(&self.rpool)[..n], chunk);
            c.rbuf.consume(&mut self.rpool, n);
            self.staged += n;
        }
        let remaining = remaining - n as u32;
        c.rx = Rx::Stage {
            header: h,
            remaining,
        };
        if remaining > 0 {
            return Flow::Progress;
        }
        match self.route(key, h.conn_id) {
            Route::Stall | Route::Offence => return Flow::Stop,
            Route::To(dest) => {
                let (s, d) = match self.conns.get2_mut(key, dest) {
                    Some(pair) => pair,
                    None => return Flow::Stop,
                };
                s.stage.end_message();
                self.staged -= s.stage.bytes();
                d.out.append(&mut s.stage);
                self.mark_dirty(dest);
            }
            Route::Dead => {
                self.queue_command(key, Command::Close { conn_id: h.conn_id });
            }
            Route::Dropped => {}
        }
        let c = &mut self.conns[key];
        self.staged -= c.stage.bytes();
        c.stage.release(&mut self.wpool);
        c.rx = Rx::Frames;
        self.frame_done(key, now, true);
        Flow::Progress
    }
}
