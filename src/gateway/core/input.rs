//! The connection part of the core: reading from one connection and taking
//! its bytes apart (PROXY header, handshake response, frames, commands,
//! large-frame bodies) into typed inputs ([`Input`]), which `dispatch`
//! hands to the router. It works on one connection at a time and never
//! touches another: its buffers, its stage and its readiness are its own.
//!
//! Frames are stored, then forwarded. A frame that fits the sender's read
//! buffer is routed from there once whole; a longer one is gathered in the
//! sender's own chunks (at most `MaxPacket` bytes) and its chunks handed to
//! the destination's queue once whole, without copying again. So a
//! destination only ever receives whole frames its source sent, and a
//! sender that trickles or dies mid-frame holds up no one but itself.

use std::io::ErrorKind;
use std::time::Instant;

use super::conn::{Rx, State};
use super::Core;
use crate::gateway::proxy;
use crate::gateway::stats::{CloseReason, ProtocolError, ProxyError};
use crate::side::Side;
use crate::transport::{IoStatus, Ready, StreamEnd, Transport};
use crate::wire::{
    self, Command, CommandError, CommandType, GroupType, Header, Origin, Response, Status,
    HEADER_LEN, MAX_COMMAND_FRAME, RESPONSE_LEN,
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

/// What the connection part took out of a connection's bytes, for the
/// router.
#[derive(Debug, Clone, Copy)]
pub(super) enum Input {
    /// A whole data frame at the front of the read buffer (left there
    /// until it is delivered).
    Frame(Header),
    /// A frame too long for the read buffer, gathered whole in the stage.
    Staged(Header),
    /// A command, taken out of the buffer.
    Command(Command),
    /// A server's fan-out command, gathered whole in the connection's
    /// `gather` chunk.
    Group {
        /// Its Type.
        kind: GroupType,
        /// Bytes of its message (Type and arguments).
        len: u32,
    },
    /// A server proved the key in its answer to the challenge.
    Authenticated {
        /// The ID it claims.
        server_id: u32,
    },
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
            // What came before an end was taken above; a partial frame
            // left in the buffer dies with the connection.
            if let Err(end) = self.read_once(key, size) {
                self.doom(key, end.into());
                return;
            }
        }
    }

    /// One read into `key`'s buffer; counts the bytes and clears the
    /// readable bit when the transport says the source is drained.
    fn read_once(&mut self, key: usize, size: usize) -> Result<(), StreamEnd> {
        let c = &mut self.conns[key];
        let ready = c.ready;
        let io = &mut c.io;
        let filled = c
            .rbuf
            .fill_with(&mut self.rpool, size, |buf| io.read(buf, ready));
        let (n, status) = match filled {
            Ok(read) => read,
            Err(e) => {
                self.out_of_memory(key, e);
                return Err(StreamEnd::Error(ErrorKind::OutOfMemory));
            }
        };
        match c.side {
            Side::Client => self.stats.bytes_from_clients += n as u64,
            Side::Server => self.stats.bytes_from_servers += n as u64,
        }
        let settled = status.settle(&mut c.ready, Ready::READABLE);
        if status == IoStatus::WouldBlock {
            self.check_detached(key);
        }
        settled
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
            let read = self.read_once(key, size);
            self.conns[key].rbuf.release(&mut self.rpool);
            match read {
                Ok(()) => {}
                Err(StreamEnd::Closed) => {
                    self.conns[key].peer_closed = true;
                    self.drain_progress(key);
                    return;
                }
                Err(end) => {
                    self.doom(key, end.into());
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
                (Rx::Gather { kind, len, got }, _) => self.take_gather(key, kind, len, got, now),
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
        self.apply(
            key,
            Input::Authenticated {
                server_id: resp.server_id,
            },
            now,
        )
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

    pub(super) fn frame_done(&mut self, key: usize, now: Instant, data: bool) {
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
        self.apply(key, Input::Frame(h), now)
    }

    fn take_command(&mut self, key: usize, h: Header, now: Instant) -> Flow {
        let data = self.conns[key].rbuf.data(&self.rpool);
        if h.frame_len() > HEADER_LEN {
            let Some(&t) = data.get(HEADER_LEN) else {
                return Flow::NeedMore;
            };
            if let Some(kind) = GroupType::from_byte(t) {
                return self.begin_gather(key, kind, h);
            }
        }
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
        self.apply(key, Input::Command(cmd), now)
    }

    /// Starts gathering a frame longer than the read buffer.
    fn begin_stage(&mut self, key: usize, h: Header) -> Flow {
        // Only a frame on one of the sender's own vconns is worth keeping:
        // one on a dead vconn is dropped as it arrives, one on somebody
        // else's is an offence now rather than after half a megabyte.
        match self.router.is_end(&self.conns, key, h.conn_id) {
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
            Some(false) => {
                return self.protocol_error(key, ProtocolError::Spoofed { conn_id: h.conn_id });
            }
            Some(true) => {}
        }
        if !self.partial_budget_allows(key, h.message_len(), HEADER_LEN) {
            return Flow::Stop;
        }
        let chunk = self.cfg.pool.max_chunk;
        let c = &mut self.conns[key];
        if let Err(e) = c.stage.push(&mut self.wpool, &h.to_bytes(), chunk) {
            self.out_of_memory(key, e);
            return Flow::Stop;
        }
        self.staged += HEADER_LEN;
        c.rbuf.consume(&mut self.rpool, HEADER_LEN);
        c.rx = Rx::Stage {
            header: h,
            remaining: h.message_len() as u32,
        };
        Flow::Progress
    }

    /// A fan-out command begins: only servers may send one; its message is
    /// gathered in one chunk of its own (counted in the partial-frame
    /// budget until it is taken).
    fn begin_gather(&mut self, key: usize, kind: GroupType, h: Header) -> Flow {
        if self.conns[key].side == Side::Client {
            return self
                .protocol_error(key, ProtocolError::Command(CommandError::ServerOnly(kind)));
        }
        let len = h.message_len();
        if !self.partial_budget_allows(key, len, len) {
            return Flow::Stop;
        }
        let chunk = match self.wpool.get(len) {
            Ok(chunk) => chunk,
            Err(e) => {
                self.out_of_memory(key, e);
                return Flow::Stop;
            }
        };
        self.staged += len;
        let c = &mut self.conns[key];
        c.gather = Some(chunk);
        c.rbuf.consume(&mut self.rpool, HEADER_LEN);
        c.rx = Rx::Gather {
            kind,
            len: len as u32,
            got: 0,
        };
        Flow::Progress
    }

    fn take_gather(
        &mut self,
        key: usize,
        kind: GroupType,
        len: u32,
        got: u32,
        now: Instant,
    ) -> Flow {
        let c = &mut self.conns[key];
        let n = c.rbuf.len().min((len - got) as usize);
        if n == 0 && got < len {
            return Flow::NeedMore;
        }
        let Some(chunk) = &c.gather else {
            return Flow::Stop;
        };
        let at = got as usize;
        self.wpool.bytes_mut(chunk)[at..at + n].copy_from_slice(&c.rbuf.data(&self.rpool)[..n]);
        c.rbuf.consume(&mut self.rpool, n);
        let got = got + n as u32;
        if got < len {
            c.rx = Rx::Gather { kind, len, got };
            return Flow::Progress;
        }
        c.rx = Rx::Frames;
        self.frame_done(key, now, false);
        self.apply(key, Input::Group { kind, len }, now)
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
            let staged = c
                .stage
                .push(&mut self.wpool, &c.rbuf.data(&self.rpool)[..n], chunk);
            if let Err(e) = staged {
                self.out_of_memory(key, e);
                return Flow::Stop;
            }
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
        self.apply(key, Input::Staged(h), now)
    }
}
