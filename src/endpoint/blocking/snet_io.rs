//! The I/O thread of a blocking snet endpoint: one thread polls the link
//! (and a waker for queued output) with mio, feeds what arrives to the
//! shared endpoint, commits queued output to the stream, and when the link
//! breaks redials every `redial_every` until the stream resumes, fails, or
//! `give_up_after` passes. Users of the blocking API see a pause.

use std::io::{self, ErrorKind, IoSlice};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use log::debug;
use mio::{Events, Interest, Poll, Token, Waker};

use super::Shared;
use crate::endpoint::config::EndpointSnet;
use crate::endpoint::core::EndpointError;
use crate::transport::{Ready, Snet, Tcp, Transport};

const LINK: Token = Token(0);
const WAKE: Token = Token(1);

/// An snet endpoint's link, its poll and its redial state.
pub(super) struct SnetIo {
    poll: Poll,
    waker: Arc<Waker>,
    io: Snet<Tcp>,
    addr: SocketAddr,
    snet: EndpointSnet,
    buf: Vec<u8>,
    ready: Ready,
    /// While the link is down: the next attempt, and when to give up.
    next: Instant,
    until: Option<Instant>,
}

impl SnetIo {
    /// Starts the snet handshake over `stream`.
    pub(super) fn new(stream: TcpStream, snet: EndpointSnet, buffer: usize) -> io::Result<SnetIo> {
        let addr = stream.peer_addr()?;
        stream.set_nonblocking(true)?;
        let mut socket = mio::net::TcpStream::from_std(stream);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut socket, LINK, Interest::READABLE | Interest::WRITABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let io = Snet::connect(Tcp::new(socket, addr), snet.settings)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(SnetIo {
            poll,
            waker,
            io,
            addr,
            snet,
            buf: vec![0; buffer],
            ready: Ready::EMPTY,
            next: Instant::now(),
            until: None,
        })
    }

    pub(super) fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// Runs until the endpoint ends.
    pub(super) fn run<F>(mut self, shared: Arc<Shared<F>>, rx: Receiver<(Vec<u8>, usize)>) {
        let mut events = Events::with_capacity(8);
        let mut pending: Vec<u8> = Vec::new();
        let mut pending_msgs = 0usize;
        loop {
            let now = Instant::now();
            let timeout = {
                let s = shared.lock();
                if s.failure().is_some() {
                    return;
                }
                let mut at = s.ep.deadline();
                if let Some(until) = self.until {
                    let redial = if self.io.is_detached() {
                        self.next.min(until)
                    } else {
                        until
                    };
                    at = Some(at.map_or(redial, |a| a.min(redial)));
                }
                at.map(|at| at.saturating_duration_since(now))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    return shared.fail(Some(e));
                }
            }
            for ev in events.iter() {
                if ev.token() == LINK {
                    self.ready |= Ready::from_event(ev);
                }
            }
            loop {
                match rx.try_recv() {
                    Ok((batch, msgs)) => {
                        pending.extend_from_slice(&batch);
                        pending_msgs += msgs;
                    }
                    Err(TryRecvError::Empty) => break,
                    // Closed locally.
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if let Err(e) = self.turn(&shared, &mut pending, Instant::now()) {
                return shared.end(|ep| {
                    ep.failed(e);
                });
            }
            if pending.is_empty() && pending_msgs > 0 {
                let mut q = shared.queued.lock().unwrap_or_else(|e| e.into_inner());
                *q -= pending_msgs;
                pending_msgs = 0;
                shared.room.notify_all();
            }
        }
    }

    /// Reads, runs the timers, writes, and redials as due.
    fn turn<F>(
        &mut self,
        shared: &Shared<F>,
        pending: &mut Vec<u8>,
        now: Instant,
    ) -> Result<(), EndpointError> {
        let handshaking = self.io.is_handshaking();
        while self.ready.is_readable() {
            let (n, status) = self.io.read(&mut self.buf, self.ready);
            if n > 0 {
                let mut s = shared.lock();
                let r = s.ep.receive(&self.buf[..n]);
                shared.absorb(&mut s);
                r?;
            }
            if status.settle(&mut self.ready, Ready::READABLE).is_err() {
                return Err(self.link_failure());
            }
        }
        if handshaking && !self.io.is_handshaking() && !self.io.is_detached() {
            self.ready |= Ready::WRITABLE;
            if self.until.take().is_some() {
                debug!("snet link to {} restored", self.addr);
                shared.lock().ep.link_up(now);
            }
        }
        {
            let mut s = shared.lock();
            let r = s.ep.handle_timeout(now);
            shared.absorb(&mut s);
            r?;
        }
        while self.ready.is_writable() && (!pending.is_empty() || self.io.wants_write()) {
            let (n, status) = self.io.write(&[IoSlice::new(pending)]);
            pending.drain(..n);
            if status.settle(&mut self.ready, Ready::WRITABLE).is_err() {
                return Err(self.link_failure());
            }
        }
        if self.io.is_detached() {
            self.redial(shared, now)?;
        }
        Ok(())
    }

    fn link_failure(&self) -> EndpointError {
        match self.io.failure() {
            Some(e) => EndpointError::Snet(e),
            None => EndpointError::Disconnected,
        }
    }

    fn redial<F>(&mut self, shared: &Shared<F>, now: Instant) -> Result<(), EndpointError> {
        let until = match self.until {
            Some(until) => until,
            None => {
                debug!("snet link to {} lost; redialling", self.addr);
                shared.lock().ep.link_down();
                self.ready = Ready::EMPTY;
                self.next = now;
                *self.until.insert(now + self.snet.give_up_after)
            }
        };
        if now >= until {
            return Err(EndpointError::SnetGaveUp);
        }
        if now < self.next {
            return Ok(());
        }
        self.next = now + self.snet.redial_every;
        let mut socket = match mio::net::TcpStream::connect(self.addr) {
            Ok(s) => s,
            Err(e) => {
                debug!("snet redial to {}: {e}", self.addr);
                return Ok(());
            }
        };
        let registered = self.poll.registry().register(
            &mut socket,
            LINK,
            Interest::READABLE | Interest::WRITABLE,
        );
        if let Err(e) = registered {
            debug!("snet redial to {}: {e}", self.addr);
            return Ok(());
        }
        let _ = socket.set_nodelay(true);
        self.io.reattach(Tcp::new(socket, self.addr));
        self.ready = Ready::EMPTY;
        Ok(())
    }
}
