//! Between the connection part and the router: each typed [`Input`] a
//! connection yields is handed to the router, and what it decides is
//! carried out: a frame goes to its destination's queue (if flow control
//! lets it: a congested server pauses its sender), the router's replies
//! are queued, an authenticated server is registered under its ID.
//!
//! This is the only place where one connection's input reaches another
//! connection's output.

use std::time::Instant;

use super::conn::{Rx, State};
use super::input::{Flow, Input};
use super::router::Route;
use super::Core;
use crate::gateway::stats::{CloseReason, ProtocolError};
use crate::side::Side;
use crate::transport::Transport;
use crate::wire::Command;

/// Where a frame goes, once the router and flow control have spoken.
enum Dest {
    /// Queue it to this connection.
    To(usize),
    /// Drop it and answer the sender Close.
    Dead,
    /// Drop it (its other end is closing).
    Drop,
    /// Leave it: the sender paused, or was closed as an offender.
    Hold,
}

impl<T: Transport> Core<T> {
    /// Carries out what `input`, taken from connection `key`, means.
    pub(super) fn apply(&mut self, key: usize, input: Input, now: Instant) -> Flow {
        match input {
            Input::Frame(h) => {
                match self.destination(key, h.conn_id) {
                    Dest::Hold => return Flow::Stop,
                    Dest::To(dest) => {
                        let chunk = self.out_chunk_size(self.conns[dest].side);
                        let frame = &self.conns[key].rbuf.data(&self.rpool)[..h.frame_len()];
                        let d = &mut self.conns[dest];
                        match d.out.push(&mut self.wpool, frame, chunk) {
                            Ok(()) => {
                                d.out.end_message();
                                self.mark_dirty(dest);
                            }
                            // The destination goes; this frame with it.
                            Err(e) => self.out_of_memory(dest, e),
                        }
                    }
                    Dest::Dead => self.queue_command(key, Command::Close { conn_id: h.conn_id }),
                    Dest::Drop => {}
                }
                self.conns[key].rbuf.consume(&mut self.rpool, h.frame_len());
                self.frame_done(key, now, true);
            }
            Input::Staged(h) => {
                match self.destination(key, h.conn_id) {
                    Dest::Hold => return Flow::Stop,
                    Dest::To(dest) => {
                        let Some((s, d)) = self.conns.get2_mut(key, dest) else {
                            return Flow::Stop;
                        };
                        s.stage.end_message();
                        self.staged -= s.stage.bytes();
                        d.out.append(&mut s.stage);
                        self.mark_dirty(dest);
                    }
                    Dest::Dead => self.queue_command(key, Command::Close { conn_id: h.conn_id }),
                    Dest::Drop => {}
                }
                let c = &mut self.conns[key];
                self.staged -= c.stage.bytes();
                c.stage.release(&mut self.wpool);
                c.rx = Rx::Frames;
                self.frame_done(key, now, true);
            }
            Input::Command(cmd) => self.command(key, cmd),
            Input::Group { kind, len } => return self.fanout(key, kind, len as usize),
            Input::Authenticated { server_id } => self.authenticated(key, server_id, now),
        }
        Flow::Progress
    }

    /// Where a data frame on `conn_id` from `key` goes. A frame on a live
    /// vconn `key` is not an end of is a spoofing attempt: `key` is closed.
    fn destination(&mut self, key: usize, conn_id: u32) -> Dest {
        match self.router.route(&self.conns, key, conn_id) {
            Route::To(dest) if self.may_send(key, dest) => Dest::To(dest),
            Route::To(_) => Dest::Hold,
            Route::Dead => {
                self.stats.frames_on_dead_vconns += 1;
                Dest::Dead
            }
            Route::Dropped => Dest::Drop,
            Route::Spoofed => {
                self.protocol_error(key, ProtocolError::Spoofed { conn_id });
                Dest::Hold
            }
        }
    }

    fn command(&mut self, key: usize, cmd: Command) {
        match cmd {
            Command::Dial { remote_id: 0 } if self.conns[key].side == Side::Server => {
                self.features(key)
            }
            Command::Dial { remote_id } => self.router.dial(
                &mut self.conns,
                &self.cfg,
                &mut self.stats,
                key,
                remote_id,
                &mut self.outbox,
            ),
            Command::Close { conn_id } => self.router.close(
                &mut self.conns,
                &mut self.stats,
                key,
                conn_id,
                &mut self.outbox,
            ),
            Command::Ping => {
                self.stats.pings += 1;
                self.outbox.push((key, Command::Ping));
            }
            // Rejected by `decode_from(Origin::Endpoint, ..)`.
            Command::Accept { .. }
            | Command::Connect { .. }
            | Command::Refuse { .. }
            | Command::Features { .. }
            | Command::JoinRefused { .. } => {}
        }
        self.send_outbox();
    }

    /// Server `key` proved the key: it is registered as `id`, replacing an
    /// older connection with the same ID.
    fn authenticated(&mut self, key: usize, id: u32, now: Instant) {
        if let Some(old) = self.router.register(Side::Server, id, key) {
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
        let c = &mut self.conns[key];
        c.state = State::Active { id };
        c.last_active = now;
        // Its idle timeout may end before the handshake deadline would.
        self.schedule(key);
        self.stats.servers_authenticated += 1;
        if self.may_log() {
            log::info!("{} registered", self.conns[key].describe());
        }
    }

    /// Queues what the router decided to tell the peers, in order.
    pub(super) fn send_outbox(&mut self) {
        let mut outbox = std::mem::take(&mut self.outbox);
        for (key, cmd) in outbox.drain(..) {
            self.queue_command(key, cmd);
        }
        self.outbox = outbox;
    }
}
