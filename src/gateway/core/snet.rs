//! The core's part in snet (`docs/protocol.md` §7): new links that open a
//! stream or resume a waiting one, streams whose link broke, and the wait
//! for their return.
//!
//! A new link is a connection in the `Snet` stage, without an ID, until its
//! request is read. A new-stream request makes it a connection like any
//! other (a client gets its ID, a server its challenge, over the stream). A
//! reconnect names a stream: once its proof checks out, the link moves into
//! that stream's connection, which goes on where it was (the driver
//! registers the socket under that connection's token), and the link's own
//! connection goes away without a trace. A stream whose link breaks keeps
//! its ID, vconns and queue (within the usual caps) for the wait timeout.

use std::time::Instant;

use super::conn::SnetStream;
use super::input::Flow;
use super::Core;
use crate::gateway::stats::{CloseReason, ProtocolError};
use crate::snet::{dh64, Request, Resume, SnetError};
use crate::transport::{Ready, Snet, Transport};

impl<T: Transport> Core<T> {
    /// The request of a new snet link, once whole.
    pub(super) fn take_snet(&mut self, key: usize, now: Instant) -> Flow {
        let Some(request) = self.conns[key].io.as_snet().and_then(Snet::request) else {
            return Flow::NeedMore;
        };
        match request {
            Err(e) => {
                self.stats.snet_bad_requests += 1;
                self.protocol_error(key, ProtocolError::Snet(e))
            }
            Ok(Request::New { .. }) => self.open_stream(key, now),
            Ok(Request::Resume(r)) => {
                self.resume_stream(key, &r, now);
                Flow::Stop
            }
        }
    }

    fn open_stream(&mut self, key: usize, now: Instant) -> Flow {
        let (side, peer) = (self.conns[key].side, self.conns[key].peer);
        let Ok(private) = dh64::private_key_from(&mut *self.random) else {
            if self.may_log() {
                log::warn!("{side} {peer}: no randomness for an snet key; connection dropped");
            }
            self.doom(key, CloseReason::Refused);
            return Flow::Stop;
        };
        let id = self.next_snet_id;
        self.next_snet_id += 1;
        let opened = match self.conns[key].io.as_snet_mut() {
            Some(s) => s.open(id, private),
            None => Err(SnetError::UnknownStream),
        };
        if let Err(e) = opened {
            self.stats.snet_bad_requests += 1;
            return self.protocol_error(key, ProtocolError::Snet(e));
        }
        let Some(state) = self.first_state(side, peer, now) else {
            self.doom(key, CloseReason::Refused);
            return Flow::Stop;
        };
        self.stats.snet_handshakes += 1;
        self.snet_streams.insert(id, key);
        self.conns[key].snet = Some(Box::new(SnetStream::new(id, now)));
        self.enter(key, state);
        self.conns[key].last_active = now;
        self.schedule(key);
        // The reply goes out first, whatever else is queued.
        self.mark_dirty(key);
        Flow::Progress
    }

    /// A reconnect on link `key` for the stream `r` names: the link moves
    /// into the stream's connection, or is closed (the stream untouched)
    /// if the stream is unknown or the proof wrong. A proof that checks out
    /// with counters that cannot be resumed from ends the stream for good.
    fn resume_stream(&mut self, key: usize, r: &Resume, now: Instant) {
        let side = self.conns[key].side;
        let target = self.snet_streams.get(&r.id).copied().filter(|&s| {
            s != key
                && self
                    .conns
                    .get(s)
                    .is_some_and(|c| c.side == side && c.doomed.is_none())
        });
        let Some(target) = target else {
            self.stats.snet_resume_unknown += 1;
            self.protocol_error(key, ProtocolError::Snet(SnetError::UnknownStream));
            return;
        };
        let checked = match self.conns[target].io.as_snet() {
            Some(s) => s.check(r),
            None => Err(SnetError::UnknownStream),
        };
        if let Err(e) = checked {
            self.stats.snet_resume_bad_digest += 1;
            self.protocol_error(key, ProtocolError::Snet(e));
            return;
        }
        let allowed = self.conns[target]
            .snet
            .as_mut()
            .is_some_and(|s| s.allow_resume(now));
        if !allowed {
            self.stats.snet_resume_flood += 1;
            if self.may_log() {
                log::warn!(
                    "{}: too many snet reconnects; the one from {} was refused",
                    self.conns[target].describe(),
                    self.conns[key].peer
                );
            }
            self.doom(key, CloseReason::Refused);
            return;
        }
        let Some((stream, link)) = self.conns.get2_mut(target, key) else {
            return;
        };
        let via = link.peer;
        let resumed = match (stream.io.as_snet_mut(), link.io.as_snet_mut()) {
            (Some(stream), Some(link)) => stream.resume_from(link, r),
            _ => Err(SnetError::UnknownStream),
        };
        if let Err(e) = resumed {
            self.stats.snet_resume_failed += 1;
            if self.may_log() {
                log::warn!(
                    "{}: snet reconnect from {via} failed, stream closed: the peer {e}",
                    self.conns[target].describe()
                );
            }
            self.doom(target, CloseReason::Protocol(ProtocolError::Snet(e)));
            self.doom(key, CloseReason::SnetResumed);
            return;
        }
        self.stats.snet_resumes += 1;
        let c = &mut self.conns[target];
        let waited = c.snet.as_mut().and_then(|s| s.detached.take()).is_some();
        c.last_active = now;
        c.write_stalled = None;
        c.ready = Ready::READABLE | Ready::WRITABLE;
        log::debug!(
            "{}: snet stream resumed from {via}{}",
            c.describe(),
            if waited {
                ""
            } else {
                ", replacing a link still up"
            }
        );
        self.relinked.push(target);
        self.schedule(target);
        self.mark_ready(target);
        self.mark_dirty(target);
        self.doom(key, CloseReason::SnetResumed);
    }

    /// After I/O that reported `WouldBlock`: if `key`'s snet link broke,
    /// the stream starts waiting for a reconnect.
    #[inline]
    pub(super) fn check_detached(&mut self, key: usize) {
        let c = &self.conns[key];
        if c.detached().is_none() && c.io.as_snet().is_some_and(Snet::is_detached) {
            self.detach(key);
        }
    }

    #[cold]
    fn detach(&mut self, key: usize) {
        let now = self.now.unwrap_or_else(Instant::now);
        let c = &mut self.conns[key];
        let (Some(cfg), Some(stream)) = (self.cfg.side(c.side).snet, c.snet.as_mut()) else {
            return;
        };
        let wait = cfg.wait_timeout;
        stream.detached = Some(now + wait);
        self.stats.snet_links_lost += 1;
        c.ready = Ready::EMPTY;
        log::debug!(
            "{}: snet link lost; waiting up to {wait:?} for a reconnect",
            c.describe()
        );
        if self.draining {
            // Nothing queued can reach it any more.
            self.doom(key, CloseReason::Shutdown);
            return;
        }
        self.schedule(key);
    }

    /// Whether `key` is an snet stream waiting for its link.
    pub(super) fn is_waiting(&self, key: usize) -> bool {
        self.conns[key].detached().is_some()
    }

    /// A closing connection's stream is forgotten.
    pub(super) fn forget_stream(&mut self, key: usize, id: Option<u64>) {
        if let Some(id) = id {
            if self.snet_streams.get(&id) == Some(&key) {
                self.snet_streams.remove(&id);
            }
        }
    }
}
