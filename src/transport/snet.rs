//! snet over a link (TCP, or anything else that is a [`Transport`]): a
//! stream that outlives its link (`docs/protocol.md` §7).
//!
//! The gateway's side ([`Snet::accept`]) reads the 40-byte request and
//! waits for its owner to decide ([`Snet::request`]): a new stream is
//! opened with [`Snet::open`]; a reconnect names an existing stream, whose
//! owner moves this link into it with [`Snet::resume_from`]. The endpoint's
//! side ([`Snet::connect`]) sends the request and finishes on the reply; when
//! its link breaks, its owner dials again and hands the new link over with
//! [`Snet::reattach`], which resumes the stream.
//!
//! A broken link is not the end of the stream: reads and writes report
//! `WouldBlock` and [`Snet::is_detached`] says the stream waits for a link.
//! Only once [`Transport::shutdown_write`] was called is the link's end the
//! stream's end. The framing above sees plaintext and never notices a
//! reconnect, except as a pause.
//!
//! Bytes written to an encrypted stream are committed to it by copying them
//! into the resend ring, where they are encrypted in place and from where
//! the link sends them. Unencrypted bytes go to the link straight from the
//! caller's buffers (one vectored write, as over plain TCP) and the ring
//! keeps a copy of what the link took; after a resume, what the ring must
//! resend goes first. Reads are decrypted in place in the caller's buffer.

use std::io::{ErrorKind, IoSlice};
use std::net::SocketAddr;

use super::{total_len, IoStatus, Ready, Transport};
use crate::snet::{
    dh64, Request, Resume, Session, SnetError, SnetSettings, REPLY_LEN, REQUEST_LEN,
};

/// Where an snet transport is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Gateway: reading the request.
    Request,
    /// Gateway: the request is read; the owner decides.
    Requested,
    /// Endpoint: request sent (or being sent), reading the reply.
    Hello,
    /// Endpoint: reconnect request sent, reading the reply.
    Resuming,
    /// The stream runs over the link.
    Open,
    /// The link is gone; the stream waits for another.
    Detached,
    /// The stream cannot go on.
    Failed(SnetError),
}

/// A stream that survives reconnects, over links of type `L`.
pub struct Snet<L> {
    link: Option<L>,
    peer: SocketAddr,
    settings: SnetSettings,
    session: Option<Box<Session>>,
    phase: Phase,
    /// The endpoint's private key, until the reply to its request.
    private: u64,
    hs_in: [u8; REQUEST_LEN],
    in_have: usize,
    in_want: usize,
    hs_out: [u8; REQUEST_LEN],
    out_pos: usize,
    out_len: usize,
    /// The owner ended the stream: the link's end is the stream's.
    ending: bool,
    /// A FIN is to follow what is unsent.
    fin_pending: bool,
}

impl<L> std::fmt::Debug for Snet<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snet")
            .field("peer", &self.peer)
            .field("phase", &self.phase)
            .field("session", &self.session)
            .finish()
    }
}

impl<L: Transport> Snet<L> {
    fn new(link: L, settings: SnetSettings, phase: Phase) -> Snet<L> {
        Snet {
            peer: link.peer_addr(),
            link: Some(link),
            settings,
            session: None,
            phase,
            private: 0,
            hs_in: [0; REQUEST_LEN],
            in_have: 0,
            in_want: 0,
            hs_out: [0; REQUEST_LEN],
            out_pos: 0,
            out_len: 0,
            ending: false,
            fin_pending: false,
        }
    }

    /// The gateway's side of a link just accepted: it reads the request.
    pub fn accept(link: L, settings: SnetSettings) -> Snet<L> {
        let mut s = Snet::new(link, settings, Phase::Request);
        s.in_want = REQUEST_LEN;
        s
    }

    /// The endpoint's side: sends a new-stream request over `link` (as soon
    /// as it takes bytes) and finishes on the gateway's reply.
    pub fn connect(link: L, settings: SnetSettings) -> Result<Snet<L>, SnetError> {
        let private = dh64::private_key().map_err(|_| SnetError::NoRandomness)?;
        Ok(Snet::connect_with_key(link, settings, private))
    }

    /// [`connect`](Self::connect) with a given private key (tests).
    pub fn connect_with_key(link: L, settings: SnetSettings, private: u64) -> Snet<L> {
        let mut s = Snet::new(link, settings, Phase::Hello);
        s.private = private;
        s.send_handshake(&Session::request(private));
        s.in_want = REPLY_LEN;
        s
    }

    fn send_handshake(&mut self, bytes: &[u8]) {
        self.hs_out[..bytes.len()].copy_from_slice(bytes);
        self.out_pos = 0;
        self.out_len = bytes.len();
        self.in_have = 0;
    }

    /// The request a gateway-side link has read, once whole.
    pub fn request(&self) -> Option<Result<Request, SnetError>> {
        (self.phase == Phase::Requested).then(|| Request::parse(&self.hs_in))
    }

    /// Opens a new stream `id` for the request read (gateway), with the
    /// gateway's `private` key: the reply goes out first, then the stream.
    pub fn open(&mut self, id: u64, private: u64) -> Result<(), SnetError> {
        let public = match self.request() {
            Some(Ok(Request::New { public })) => public,
            Some(Ok(Request::Resume(_))) => return Err(SnetError::UnknownStream),
            Some(Err(e)) => return Err(e),
            None => return Err(SnetError::Truncated),
        };
        let (session, reply) = Session::accept(id, public, private, self.settings)?;
        self.session = Some(Box::new(session));
        self.send_handshake(&reply);
        self.phase = Phase::Open;
        Ok(())
    }

    /// Checks that `r` proves this stream's key, without touching anything.
    pub fn check(&self, r: &Resume) -> Result<(), SnetError> {
        match &self.session {
            Some(s) if s.id() == r.id => s.check(r),
            _ => Err(SnetError::UnknownStream),
        }
    }

    /// Gateway: goes on over the link of `from`, a link that asked to
    /// resume this stream with `r` (checked with [`check`](Self::check)).
    /// The reply and what the peer missed go out first; a link this stream
    /// still had is dropped. An error means the stream cannot go on.
    pub fn resume_from(&mut self, from: &mut Snet<L>, r: &Resume) -> Result<(), SnetError> {
        self.check(r)?;
        let session = self.session.as_mut().ok_or(SnetError::UnknownStream)?;
        if let Err(e) = session.resume(r.write_count, r.read_count) {
            self.phase = Phase::Failed(e);
            return Err(e);
        }
        let reply = session.resume_reply();
        self.link = from.link.take();
        self.peer = from.peer;
        from.phase = Phase::Failed(SnetError::Truncated);
        self.send_handshake(&reply);
        self.fin_pending = false;
        self.phase = Phase::Open;
        Ok(())
    }

    /// Endpoint: goes on over a new `link` after the last one broke: sends
    /// the reconnect request, and resumes on the reply.
    pub fn reattach(&mut self, link: L) {
        let Some(session) = &self.session else {
            return;
        };
        let req = session.resume_request();
        self.peer = link.peer_addr();
        self.link = Some(link);
        self.send_handshake(&req);
        self.in_want = REPLY_LEN;
        self.phase = Phase::Resuming;
    }

    /// Whether the stream waits for a new link.
    pub fn is_detached(&self) -> bool {
        self.phase == Phase::Detached
    }

    /// Why the stream cannot go on, if it cannot.
    pub fn failure(&self) -> Option<SnetError> {
        match self.phase {
            Phase::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// The stream's ID, once it has one.
    pub fn id(&self) -> Option<u64> {
        self.session.as_ref().map(|s| s.id())
    }

    /// The stream's session (counters, ring), once it has one.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_deref()
    }

    /// The current link, if any.
    pub fn link_mut(&mut self) -> Option<&mut L> {
        self.link.as_mut()
    }

    /// The link is gone: the stream waits, unless it was ending.
    fn lose_link(&mut self, status: IoStatus) -> IoStatus {
        self.link = None;
        if self.ending {
            return status;
        }
        match self.phase {
            Phase::Open | Phase::Resuming => {
                self.phase = Phase::Detached;
                IoStatus::WouldBlock
            }
            // No stream yet: the link's end is all there is.
            Phase::Request | Phase::Requested | Phase::Hello => status,
            Phase::Detached | Phase::Failed(_) => status,
        }
    }

    /// Writes the handshake bytes, then committed bytes, to the link.
    fn flush(&mut self) -> IoStatus {
        let Some(link) = self.link.as_mut() else {
            return IoStatus::WouldBlock;
        };
        while self.out_pos < self.out_len {
            let (n, status) = link.write(&[IoSlice::new(&self.hs_out[self.out_pos..self.out_len])]);
            self.out_pos += n;
            match status {
                IoStatus::Continue => {}
                IoStatus::WouldBlock => return IoStatus::WouldBlock,
                end => return self.lose_link(end),
            }
        }
        if self.phase != Phase::Open {
            return IoStatus::Continue;
        }
        if let Some(session) = self.session.as_mut() {
            while session.has_unsent() {
                let [a, b] = session.unsent();
                let (n, status) = link.write(&[IoSlice::new(a), IoSlice::new(b)]);
                session.sent(n);
                match status {
                    IoStatus::Continue => {}
                    IoStatus::WouldBlock => return IoStatus::WouldBlock,
                    end => return self.lose_link(end),
                }
            }
        }
        if self.fin_pending {
            self.fin_pending = false;
            let status = link.shutdown_write();
            if status.is_end() {
                return self.lose_link(status);
            }
        }
        IoStatus::Continue
    }

    /// Reads handshake bytes; `true` once all wanted are in.
    fn read_handshake(&mut self, ready: Ready) -> Result<bool, IoStatus> {
        let Some(link) = self.link.as_mut() else {
            return Err(IoStatus::WouldBlock);
        };
        while self.in_have < self.in_want {
            let (n, status) = link.read(&mut self.hs_in[self.in_have..self.in_want], ready);
            self.in_have += n;
            match status {
                IoStatus::Continue => {}
                IoStatus::WouldBlock if self.in_have < self.in_want => {
                    return Err(IoStatus::WouldBlock)
                }
                IoStatus::WouldBlock => {}
                end => return Err(end),
            }
        }
        Ok(true)
    }

    /// Finishes an endpoint's handshake on the reply in `hs_in`.
    fn take_reply(&mut self) -> Result<(), SnetError> {
        let mut reply = [0u8; REPLY_LEN];
        reply.copy_from_slice(&self.hs_in[..REPLY_LEN]);
        match self.phase {
            Phase::Hello => {
                let s = Session::connect(self.private, &reply, self.settings)?;
                self.private = 0;
                self.session = Some(Box::new(s));
            }
            Phase::Resuming => {
                let word = |i: usize| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&reply[i..i + 8]);
                    u64::from_le_bytes(w)
                };
                if let Some(s) = self.session.as_mut() {
                    s.resume(word(0), word(8))?;
                }
            }
            _ => {}
        }
        self.phase = Phase::Open;
        Ok(())
    }
}

impl<L: Transport> Transport for Snet<L> {
    fn read(&mut self, buf: &mut [u8], ready: Ready) -> (usize, IoStatus) {
        match self.phase {
            Phase::Open => {}
            Phase::Requested | Phase::Detached => return (0, IoStatus::WouldBlock),
            Phase::Failed(_) => return (0, IoStatus::Error(ErrorKind::InvalidData)),
            Phase::Request | Phase::Hello | Phase::Resuming => {
                if let IoStatus::Error(kind) = self.flush() {
                    return (0, IoStatus::Error(kind));
                }
                match self.read_handshake(ready) {
                    Ok(_) => {}
                    Err(IoStatus::Closed) if self.phase == Phase::Resuming => {
                        // Closed before the reply: the gateway does not
                        // know the stream (or refused the proof).
                        self.link = None;
                        self.phase = Phase::Failed(SnetError::UnknownStream);
                        return (0, IoStatus::Error(ErrorKind::InvalidData));
                    }
                    Err(IoStatus::Closed) if self.phase == Phase::Hello => {
                        self.phase = Phase::Failed(SnetError::Truncated);
                        return (0, IoStatus::Error(ErrorKind::UnexpectedEof));
                    }
                    Err(status) if status.is_end() => return (0, self.lose_link(status)),
                    Err(status) => return (0, status),
                }
                if self.phase == Phase::Request {
                    self.phase = Phase::Requested;
                    return (0, IoStatus::WouldBlock);
                }
                if let Err(e) = self.take_reply() {
                    self.link = None;
                    self.phase = Phase::Failed(e);
                    return (0, IoStatus::Error(ErrorKind::InvalidData));
                }
                // What the peer resends follows at once; the unsent part of
                // this side goes with the next flush.
                if let IoStatus::Error(kind) = self.flush() {
                    return (0, IoStatus::Error(kind));
                }
            }
        }
        let Some(link) = self.link.as_mut() else {
            return (0, IoStatus::WouldBlock);
        };
        let (n, status) = link.read(buf, ready);
        if let Some(s) = self.session.as_mut() {
            s.received(&mut buf[..n]);
        }
        if status.is_end() {
            return (n, self.lose_link(status));
        }
        (n, status)
    }

    fn write(&mut self, bufs: &[IoSlice<'_>]) -> (usize, IoStatus) {
        if self.link.is_none() {
            return match self.phase {
                Phase::Failed(_) => (0, IoStatus::Error(ErrorKind::InvalidData)),
                _ => (0, IoStatus::WouldBlock),
            };
        }
        let mut taken = 0;
        if self.phase == Phase::Open {
            if let Some(s) = self.session.as_mut() {
                if s.is_plain()
                    && !s.has_unsent()
                    && self.out_pos == self.out_len
                    && !self.fin_pending
                {
                    // Unencrypted and nothing before them: the bytes go
                    // straight from the caller's buffers, as over plain
                    // TCP, and the ring keeps a copy of what the link took.
                    if let Some(link) = self.link.as_mut() {
                        let (n, status) = link.write(bufs);
                        s.record(bufs, n);
                        if status.is_end() {
                            return (n, self.lose_link(status));
                        }
                        return (n, status);
                    }
                }
                taken = s.commit(bufs);
            }
        }
        let status = self.flush();
        match status {
            // More was offered than the ring had room for, and the link
            // took everything: the caller writes again.
            IoStatus::Continue if taken < total_len(bufs) && self.phase != Phase::Open => {
                (taken, IoStatus::WouldBlock)
            }
            status => (taken, status),
        }
    }

    fn shutdown_write(&mut self) -> IoStatus {
        self.ending = true;
        if self.link.is_none() {
            return IoStatus::Closed;
        }
        self.fin_pending = true;
        match self.flush() {
            IoStatus::WouldBlock => IoStatus::Continue,
            status => status,
        }
    }

    fn wants_write(&self) -> bool {
        self.link.is_some()
            && (self.out_pos < self.out_len
                || self.fin_pending
                || (self.phase == Phase::Open
                    && self.session.as_ref().is_some_and(|s| s.has_unsent())))
    }

    fn is_handshaking(&self) -> bool {
        !matches!(self.phase, Phase::Open | Phase::Detached)
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        self.link.as_mut().and_then(|l| l.source())
    }
}

#[cfg(test)]
mod tests;
