//! The core's output side: queueing frames and commands to connections,
//! flow control (slow consumers, congested servers, large-frame locks), and
//! flushing queues to transports once per turn.

use std::io::{ErrorKind, Read, Write};

use super::conn::Rx;
use super::Core;
use crate::buf::MAX_IOV;
use crate::config::Side;
use crate::gateway::stats::CloseReason;
use crate::wire::Command;

/// Most writes to one connection per turn.
const WRITES_PER_TURN: usize = 4;
/// Zeros used to complete a large frame whose sender vanished mid-frame.
const ZEROS: [u8; 1024] = [0; 1024];

impl<T: Read + Write> Core<T> {
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
    /// until `dest` drains or unlocks.
    pub(super) fn may_send(&mut self, src: usize, dest: usize) -> bool {
        let locked = self.conns[dest].locked_by.is_some_and(|l| l != src);
        if !locked && !self.congested(dest) {
            return true;
        }
        self.conns[dest].waiters.push(src);
        self.conns[src].stalled = true;
        self.stats.paused += 1;
        false
    }

    pub(super) fn mark_dirty(&mut self, key: usize) {
        let c = &mut self.conns[key];
        if !c.in_dirty {
            c.in_dirty = true;
            self.dirty.push(key);
        }
    }

    /// Queues bytes that are a message of their own (the challenge).
    pub(super) fn queue_raw(&mut self, key: usize, bytes: &[u8]) {
        let chunk = self.out_chunk_size(self.conns[key].side);
        let c = &mut self.conns[key];
        c.out.push(&mut self.wpool, bytes, chunk);
        c.out.end_message();
        self.mark_dirty(key);
    }

    /// Queues a gateway command, held back while a large frame streams in.
    pub(super) fn queue_command(&mut self, key: usize, cmd: Command) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.doomed.is_some() {
            return;
        }
        let bytes = cmd.to_bytes();
        if c.locked_by.is_some() {
            c.deferred.push(bytes);
            return;
        }
        self.queue_raw(key, &bytes);
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

    /// Ends the large-frame lock on `dest`: queue the commands held back and
    /// let the stalled senders go on.
    pub(super) fn unlock(&mut self, dest: usize) {
        let chunk = self.out_chunk_size(self.conns[dest].side);
        let c = &mut self.conns[dest];
        c.locked_by = None;
        if !c.deferred.is_empty() {
            for cmd in c.deferred.drain(..) {
                c.out.push(&mut self.wpool, &cmd, chunk);
                c.out.end_message();
            }
            self.mark_dirty(dest);
        }
        self.wake_waiters(dest);
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

    /// If `key` is streaming a large frame, completes it with zeros so the
    /// receiver's byte stream stays framed, and unlocks the receiver. Its
    /// vconn is closed right after, so the receiver is told.
    pub(super) fn finish_stream(&mut self, key: usize) {
        let Rx::Stream { dest, remaining } = self.conns[key].rx else {
            return;
        };
        self.conns[key].rx = Rx::Frames;
        let Some((d, serial)) = dest else {
            return;
        };
        if self.conns.get(d).is_none_or(|c| c.serial != serial) {
            return;
        }
        let chunk = self.out_chunk_size(self.conns[d].side);
        let mut left = remaining as usize;
        let c = &mut self.conns[d];
        while left > 0 {
            let n = left.min(ZEROS.len());
            c.out.push(&mut self.wpool, &ZEROS[..n], chunk);
            left -= n;
        }
        c.out.end_message();
        self.stats.truncated_frames += 1;
        self.mark_dirty(d);
        self.unlock(d);
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
        }
    }

    fn write_some(&mut self, key: usize) {
        let c = &mut self.conns[key];
        if c.doomed.is_some() || !c.writable {
            return;
        }
        let side = c.side;
        let mut outcome = Ok(());
        for _ in 0..WRITES_PER_TURN {
            let offered_all = c.out.chunks() <= MAX_IOV;
            match c.out.write_to(&mut self.wpool, &mut c.io) {
                Ok(0) if !c.out.is_empty() => {
                    outcome = Err(CloseReason::Io(ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => {
                    match side {
                        Side::Client => self.stats.bytes_to_clients += n as u64,
                        Side::Server => self.stats.bytes_to_servers += n as u64,
                    }
                    if c.out.is_empty() {
                        break;
                    }
                    if offered_all {
                        // Everything offered did not fit: the socket buffer
                        // is full, and freed space will raise a new edge.
                        c.writable = false;
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    c.writable = false;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    outcome = Err(CloseReason::Io(e.kind()));
                    break;
                }
            }
        }
        let leftover = c.writable && !c.out.is_empty();
        let waiting = !c.waiters.is_empty() && c.locked_by.is_none();
        if let Err(reason) = outcome {
            self.doom(key, reason);
            return;
        }
        if leftover {
            self.mark_dirty(key);
        }
        if waiting && self.drained(key) {
            self.wake_waiters(key);
        }
    }
}
