//! The core's output side: queueing frames and commands to connections,
//! flow control (slow consumers, congested servers), flushing queues to
//! transports once per turn, and the end of each connection's drain.

use std::io::ErrorKind;

use super::conn::{Drain, Pause, Rx};
use super::Core;
use crate::buf::PoolError;
use crate::gateway::stats::CloseReason;
use crate::side::Side;
use crate::transport::{IoStatus, Ready, Snet, Transport};
use crate::wire::{self, Command, Status};

/// Most writes to one connection per turn.
const WRITES_PER_TURN: usize = 4;

impl<T: Transport> Core<T> {
    /// Size of the chunks a connection's write queue takes from the pool.
    pub(super) fn out_chunk_size(&self, side: Side) -> usize {
        self.cfg.side(side).buffer_size.min(self.cfg.pool.max_chunk)
    }

    /// Bytes queued to a server above which the clients feeding it pause.
    pub(super) fn high_water(&self) -> usize {
        (self.cfg.server.buffer_size * 16)
            .max(1 << 20)
            .min(self.cfg.server.send_queue_bytes / 2)
    }

    /// Whether `dest` is a server with so much queued that its feeders wait.
    pub(super) fn congested(&self, dest: usize) -> bool {
        let d = &self.conns[dest];
        d.side == Side::Server
            && (d.out.bytes() >= self.high_water()
                || d.out.msgs() >= self.cfg.server.send_queue_msgs / 2)
    }

    /// Whether `dest` has drained far enough below its high-water mark for
    /// the senders waiting on it to go on (hysteresis avoids waking them for
    /// every few bytes written).
    fn drained(&self, dest: usize) -> bool {
        let d = &self.conns[dest];
        d.side == Side::Client
            || (d.out.bytes() <= self.high_water() / 4
                && d.out.msgs() <= self.cfg.server.send_queue_msgs / 8)
    }

    /// Whether `src` may queue a frame to `dest` now. If not, `src` stalls
    /// until `dest` drains (or closes).
    pub(super) fn may_send(&mut self, src: usize, dest: usize) -> bool {
        if !self.congested(dest) {
            return true;
        }
        let Some(now) = self.now else {
            return true;
        };
        self.conns[dest].waiters.push(src);
        self.conns[src].pause = Some(Pause {
            since: now,
            on: dest,
        });
        self.stats.paused += 1;
        // The pause is bounded: its end may come before the idle deadline.
        self.schedule(src);
        false
    }

    /// A pause that reached its bound ([`pause_limit`](Self::pause_limit)):
    /// the server `key` waits for has not drained, so `key`'s vconns to it
    /// are closed and both ends told, the frame that waited is dropped
    /// (its vconn is one of them), and `key` is read again: its pings are
    /// answered and its frames to other servers flow.
    pub(super) fn end_pause(&mut self, key: usize) {
        let Some(pause) = self.conns[key].pause else {
            return;
        };
        self.stats.pause_timeouts += 1;
        self.drop_waiting_frame(key);
        let closed = self
            .router
            .close_between(&mut self.conns, key, pause.on, &mut self.outbox);
        self.send_outbox();
        self.stats.pause_closes += closed;
        if let Some(d) = self.conns.get_mut(pause.on) {
            d.waiters.retain(|&w| w != key);
        }
        if self.may_log() {
            if let Some(d) = self.conns.get(pause.on) {
                log::warn!(
                    "{}: paused {:?} for {} (queue {} bytes, {} messages), which did not drain; \
                     its {closed} vconns to it closed",
                    self.conns[key].describe(),
                    self.pause_limit(),
                    d.describe(),
                    d.out.bytes(),
                    d.out.msgs(),
                );
            }
        }
        self.wake(key);
    }

    /// Drops the whole frame at the front of `key`'s input, which waited
    /// for a congested destination (its vconn is being closed).
    fn drop_waiting_frame(&mut self, key: usize) {
        let c = &mut self.conns[key];
        match c.rx {
            Rx::Stage { remaining: 0, .. } => {
                self.staged -= c.stage.bytes();
                c.stage.release(&mut self.wpool);
                c.rx = Rx::Frames;
            }
            Rx::Frames => {
                let data = c.rbuf.data(&self.rpool);
                if let Ok(Status::Complete(h)) = wire::decode_header(data, self.cfg.max_packet) {
                    if !h.is_command() && data.len() >= h.frame_len() {
                        c.rbuf.consume(&mut self.rpool, h.frame_len());
                    }
                }
            }
            // Not a frame waiting whole: nothing to drop.
            Rx::Stage { .. } | Rx::Skip { .. } | Rx::Gather { .. } => return,
        }
        self.stats.frames_dropped_paused += 1;
    }

    pub(super) fn mark_dirty(&mut self, key: usize) {
        let c = &mut self.conns[key];
        if !c.in_dirty {
            c.in_dirty = true;
            self.dirty.push(key);
        }
    }

    /// Queues bytes that are a message of their own (a command, the
    /// challenge).
    pub(super) fn queue_raw(&mut self, key: usize, bytes: &[u8]) {
        let chunk = self.out_chunk_size(self.conns[key].side);
        let c = &mut self.conns[key];
        if let Err(e) = c.out.push(&mut self.wpool, bytes, chunk) {
            return self.out_of_memory(key, e);
        }
        c.out.end_message();
        self.mark_dirty(key);
    }

    /// No memory for `key`'s buffers: that connection is closed (its
    /// vconns' other ends told), the others go on.
    #[cold]
    pub(super) fn out_of_memory(&mut self, key: usize, e: PoolError) {
        if self.may_log() {
            log::warn!("{}: {e}; connection closed", self.conns[key].describe());
        }
        self.doom(key, CloseReason::Io(ErrorKind::OutOfMemory));
    }

    /// Queues a gateway command to `key`, unless it is gone or closing.
    pub(super) fn queue_command(&mut self, key: usize, cmd: Command) {
        match self.conns.get(key) {
            Some(c) if c.doomed.is_none() => self.queue_raw(key, &cmd.to_bytes()),
            _ => {}
        }
    }

    /// Closes `key` as a slow consumer if its queue is past its cap after a
    /// write attempt: what the peer did not take. (Judged at flush time, so
    /// a burst routed within one turn is not mistaken for a slow reader;
    /// one turn's burst is bounded by the per-turn read budget.)
    fn check_cap(&mut self, key: usize) {
        let c = &self.conns[key];
        let cap = self.cfg.side(c.side);
        if c.doomed.is_none()
            && (c.out.msgs() > cap.send_queue_msgs || c.out.bytes() > cap.send_queue_bytes)
        {
            self.stats.slow_consumers += 1;
            self.doom(key, CloseReason::SlowConsumer);
        }
    }

    pub(super) fn wake_waiters(&mut self, key: usize) {
        let waiters = std::mem::take(&mut self.conns[key].waiters);
        for &w in &waiters {
            self.wake(w);
        }
        // Keep the list's allocation for next time.
        let mut waiters = waiters;
        waiters.clear();
        if waiters.capacity() <= 64 {
            self.conns[key].waiters = waiters;
        }
    }

    /// Flushes every connection with queued bytes, once.
    pub(super) fn flush_all(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            if let Some(c) = self.conns.get_mut(key) {
                c.in_dirty = false;
                self.flush(key);
            }
        }
        // Reuse the list's allocation unless flushing queued more.
        if self.dirty.is_empty() {
            let mut dirty = dirty;
            dirty.clear();
            self.dirty = dirty;
        }
    }

    fn flush(&mut self, key: usize) {
        self.write_some(key);
        if self.conns.contains(key) {
            self.check_cap(key);
            self.drain_progress(key);
        }
    }

    fn write_some(&mut self, key: usize) {
        let c = &mut self.conns[key];
        if c.doomed.is_some() || !c.ready.is_writable() {
            return;
        }
        let mut outcome = Ok(());
        let mut detached = false;
        let mut took = false;
        for _ in 0..WRITES_PER_TURN {
            if c.out.is_empty() && !c.io.wants_write() {
                break;
            }
            let io = &mut c.io;
            let (n, status) = if c.out.is_empty() {
                io.write(&[])
            } else {
                c.out.write_with(&mut self.wpool, |bufs| io.write(bufs))
            };
            took |= n > 0;
            match c.side {
                Side::Client => self.stats.bytes_to_clients += n as u64,
                Side::Server => self.stats.bytes_to_servers += n as u64,
            }
            if let Err(end) = status.settle(&mut c.ready, Ready::WRITABLE) {
                outcome = Err(end.into());
                break;
            }
            if status == IoStatus::WouldBlock {
                detached = c.io.as_snet().is_some_and(Snet::is_detached);
                break;
            }
        }
        let pending = !c.out.is_empty() || c.io.wants_write();
        let leftover = c.ready.is_writable() && pending;
        let waiting = !c.waiters.is_empty();
        // The clock of a peer that takes nothing of what is queued to it.
        let stall_began = match (pending, took, self.now) {
            (false, _, _) | (_, _, None) => {
                c.write_stalled = None;
                false
            }
            (true, true, Some(now)) => {
                c.write_stalled = Some(now);
                false
            }
            (true, false, Some(now)) => c.write_stalled.get_or_insert(now) == &now,
        };
        if let Err(reason) = outcome {
            self.doom(key, reason);
            return;
        }
        if detached {
            // Its link is down: the snet wait timeout governs, not this.
            self.conns[key].write_stalled = None;
            self.check_detached(key);
            return;
        }
        if stall_began {
            self.schedule(key);
        }
        if leftover {
            self.mark_dirty(key);
        }
        if waiting && self.drained(key) {
            self.wake_waiters(key);
        }
    }

    /// While draining: once everything queued to `key` is written, ends the
    /// stream (FIN); once the peer has ended its own, closes the connection.
    #[inline]
    pub(super) fn drain_progress(&mut self, key: usize) {
        if self.draining {
            self.drain_step(key);
        }
    }

    fn drain_step(&mut self, key: usize) {
        if self.is_waiting(key) {
            // Its link is down: what is queued can no longer reach it.
            self.doom(key, CloseReason::Shutdown);
            return;
        }
        let c = &mut self.conns[key];
        if c.doomed.is_some() || !c.out.is_empty() || c.io.wants_write() {
            return;
        }
        if c.drain == Drain::Flushing {
            c.drain = Drain::FinSent;
            if let IoStatus::Error(kind) = c.io.shutdown_write() {
                self.doom(key, CloseReason::Io(kind));
                return;
            }
        }
        if self.conns[key].peer_closed {
            self.doom(key, CloseReason::Shutdown);
        }
    }
}
