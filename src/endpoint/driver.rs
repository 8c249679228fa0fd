//! Many endpoints in one thread, in a mio loop the caller owns: the
//! endpoint counterpart of the gateway's driver, with the same token-range
//! convention (token `start + key` for the endpoint kept under `key`).
//!
//! Work is done in turns: [`handle_event`](EndpointDriver::handle_event)
//! records readiness, [`handle_timeout`](EndpointDriver::handle_timeout)
//! reads, runs timers and writes what the endpoints queued. Events come out
//! of [`poll_event`](EndpointDriver::poll_event) tagged with the endpoint's
//! key; calls on [`endpoint`](EndpointDriver::endpoint) queue output that
//! the next turn writes.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::event::Event as MioEvent;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use slab::Slab;

pub use super::links::GatewayLinks;

use super::config::{EndpointConfig, EndpointConfigError};
use super::core::{Endpoint, EndpointError, Event, Role};
use crate::tokens::TokenRange;
use crate::transport::{Ready, Snet, Stream, Tcp, Transport};
use log::debug;

/// What a WSS client checks the gateway's certificate with.
#[cfg(all(feature = "ws", feature = "tls"))]
pub type WssClient = (
    std::sync::Arc<rustls::ClientConfig>,
    rustls::pki_types::ServerName<'static>,
);
/// What a WSS client checks the gateway's certificate with (none can
/// exist without the `tls` feature).
#[cfg(all(feature = "ws", not(feature = "tls")))]
pub type WssClient = std::convert::Infallible;

/// Reads per endpoint per turn.
const READS_PER_TURN: usize = 4;

/// What the driver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverEvent {
    /// Endpoint `key` produced an event.
    Endpoint(usize, Event),
    /// Endpoint `key` stopped and was removed.
    Closed(usize, EndpointError),
}

struct Slot {
    ep: Endpoint,
    io: Stream,
    ready: Ready,
    /// For an snet endpoint: where and when to redial.
    redial: Option<Redial>,
}

/// Where an snet endpoint redials a broken link, and when.
struct Redial {
    addr: SocketAddr,
    every: Duration,
    give_up_after: Duration,
    /// While the link is down: the next attempt.
    next: Instant,
    /// While the link is down: when to give up; `None` while it is up.
    until: Option<Instant>,
}

/// Whether `io` is an snet stream waiting for a new link.
fn is_detached(io: &Stream) -> bool {
    io.as_snet().is_some_and(Snet::is_detached)
}

impl Slot {
    /// Why the link's end is the endpoint's end.
    fn link_failure(&mut self) -> EndpointError {
        match self.io.as_snet().and_then(Snet::failure) {
            Some(e) => self.ep.failed(EndpointError::Snet(e)),
            None => self.ep.disconnected(),
        }
    }

    /// When the driver must next act for this slot's link.
    fn redial_due(&self) -> Option<Instant> {
        let r = self.redial.as_ref()?;
        let until = r.until?;
        Some(if is_detached(&self.io) {
            r.next.min(until)
        } else {
            until
        })
    }
}

/// Endpoints driven by a caller-owned mio `Poll`.
pub struct EndpointDriver {
    range: TokenRange,
    slots: Slab<Slot>,
    events: VecDeque<DriverEvent>,
    /// Endpoints with possible work this turn.
    active: Vec<usize>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for EndpointDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointDriver")
            .field("range", &self.range)
            .field("endpoints", &self.slots.len())
            .field("events_pending", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl EndpointDriver {
    /// A driver using the tokens of `range`.
    pub fn new(range: TokenRange) -> EndpointDriver {
        EndpointDriver {
            range,
            slots: Slab::new(),
            events: VecDeque::new(),
            active: Vec::new(),
            scratch: vec![0; 64 * 1024],
        }
    }

    /// Connects a new endpoint to `addr` (the connection completes in the
    /// background; a server endpoint then does its handshake and reports
    /// `Event::Ready`). Returns its key.
    pub fn connect(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        role: Role,
        cfg: EndpointConfig,
        now: Instant,
    ) -> io::Result<usize> {
        let stream = TcpStream::connect(addr)?;
        match cfg.snet {
            Some(snet) => {
                let key = self.add_with(registry, stream, role, cfg, now, |s| {
                    Snet::connect(Tcp::new(s, addr), snet.settings)
                        .map(|t| Stream::Snet(Box::new(t)))
                        .map_err(|e| io::Error::other(e.to_string()))
                })?;
                self.slots[key].redial = Some(Redial {
                    addr,
                    every: snet.redial_every,
                    give_up_after: snet.give_up_after,
                    next: now,
                    until: None,
                });
                Ok(key)
            }
            None => self.add(registry, stream, role, cfg, now),
        }
    }

    /// Adds an endpoint over a stream that is connected or connecting
    /// (plain TCP; an snet endpoint, which must know where to redial, is
    /// made with [`connect`](Self::connect)).
    pub fn add(
        &mut self,
        registry: &Registry,
        stream: TcpStream,
        role: Role,
        cfg: EndpointConfig,
        now: Instant,
    ) -> io::Result<usize> {
        if cfg.snet.is_some() {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "an snet endpoint redials its gateway: make it with connect, which knows the address",
            ));
        }
        self.add_with(registry, stream, role, cfg, now, |s| {
            Ok(Stream::Tcp(Tcp::from_socket(s)))
        })
    }

    /// Connects a new endpoint to a gateway listener that speaks TLS,
    /// checking its certificate against `config` for `name`.
    #[cfg(feature = "tls")]
    pub fn connect_tls(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        role: Role,
        cfg: EndpointConfig,
        tls: (
            std::sync::Arc<rustls::ClientConfig>,
            rustls::pki_types::ServerName<'static>,
        ),
        now: Instant,
    ) -> io::Result<usize> {
        let stream = TcpStream::connect(addr)?;
        let (config, name) = tls;
        self.add_with(registry, stream, role, cfg, now, |s| {
            let t = crate::transport::Tls::connect(s, addr, config, name)
                .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
            Ok(Stream::Tls(Box::new(t)))
        })
    }

    /// Connects a new client endpoint to a gateway's WebSocket listener at
    /// `addr`, asking for `path`; over TLS (WSS) when `tls` gives the
    /// client configuration and the name to check.
    #[cfg(feature = "ws")]
    pub fn connect_ws(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        path: &str,
        cfg: EndpointConfig,
        tls: Option<WssClient>,
        now: Instant,
    ) -> io::Result<usize> {
        use crate::transport::{WsClient, WsSocket};
        let stream = TcpStream::connect(addr)?;
        self.add_with(registry, stream, Role::Client, cfg, now, |s| {
            let socket = match tls {
                None => WsSocket::Plain(s),
                #[cfg(feature = "tls")]
                Some((config, name)) => {
                    let conn = rustls::ClientConnection::new(config, name)
                        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
                    WsSocket::TlsClient(Box::new(rustls::StreamOwned::new(conn, s)))
                }
                #[cfg(not(feature = "tls"))]
                Some(never) => match never {},
            };
            Ok(Stream::WsClient(Box::new(WsClient::connect(
                socket, addr, path,
            )?)))
        })
    }

    fn add_with(
        &mut self,
        registry: &Registry,
        mut stream: TcpStream,
        role: Role,
        cfg: EndpointConfig,
        now: Instant,
        wrap: impl FnOnce(TcpStream) -> io::Result<Stream>,
    ) -> io::Result<usize> {
        cfg.validate()
            .map_err(|EndpointConfigError(e)| io::Error::new(ErrorKind::InvalidInput, e))?;
        if self.slots.len() >= self.range.len {
            return Err(io::Error::other("the driver's token range is full"));
        }
        let key = self.slots.vacant_key();
        registry.register(
            &mut stream,
            Token(self.range.start + key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let _ = stream.set_nodelay(true);
        let io = wrap(stream)?;
        self.slots.insert(Slot {
            ep: Endpoint::new(role, cfg, now),
            io,
            ready: Ready::EMPTY,
            redial: None,
        });
        self.active.push(key);
        Ok(key)
    }

    /// Whether `token` belongs to this driver.
    pub fn owns(&self, token: Token) -> bool {
        self.range.contains(token)
    }

    /// Live endpoints.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no endpoint is live.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The endpoint under `key`, to dial, send or close vconns on; what it
    /// queues is written in the next turn.
    pub fn endpoint(&mut self, key: usize) -> Option<&mut Endpoint> {
        let slot = self.slots.get_mut(key)?;
        self.active.push(key);
        Some(&mut slot.ep)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<DriverEvent> {
        self.events.pop_front()
    }

    /// Takes one poll event for a token this driver owns.
    pub fn handle_event(&mut self, event: &MioEvent) {
        let Some(key) = event.token().0.checked_sub(self.range.start) else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(key) {
            slot.ready |= Ready::from_event(event);
            self.active.push(key);
        }
    }

    /// How long the caller's poll may sleep.
    #[must_use]
    pub fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.active.is_empty() || !self.events.is_empty() {
            return Some(Duration::ZERO);
        }
        self.slots
            .iter()
            .flat_map(|(_, s)| [s.ep.deadline(), s.redial_due()])
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Does the turn's work: reads, timers, writes.
    pub fn handle_timeout(&mut self, registry: &Registry, now: Instant) {
        let mut active = std::mem::take(&mut self.active);
        active.sort_unstable();
        active.dedup();
        let timers: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                [s.ep.deadline(), s.redial_due()]
                    .into_iter()
                    .flatten()
                    .any(|at| at <= now)
            })
            .map(|(k, _)| k)
            .collect();
        active.extend(timers);
        for &key in &active {
            let result = self
                .redial(registry, key, now)
                .and_then(|()| self.work(key, now));
            if let Err(e) = result {
                self.remove(registry, key, e);
            }
        }
        active.clear();
        if self.active.is_empty() {
            self.active = active;
        }
    }

    /// For an snet endpoint whose link is down: dials again when due, or
    /// gives up once the time is over.
    fn redial(
        &mut self,
        registry: &Registry,
        key: usize,
        now: Instant,
    ) -> Result<(), EndpointError> {
        let token = Token(self.range.start + key);
        let Some(slot) = self.slots.get_mut(key) else {
            return Ok(());
        };
        let Some(r) = slot.redial.as_mut() else {
            return Ok(());
        };
        let Some(until) = r.until else {
            return Ok(());
        };
        if now >= until {
            return Err(slot.ep.failed(EndpointError::SnetGaveUp));
        }
        if !is_detached(&slot.io) || now < r.next {
            return Ok(());
        }
        r.next = now + r.every;
        let addr = r.addr;
        let mut stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                debug!("snet redial to {addr}: {e}");
                return Ok(());
            }
        };
        if let Err(e) =
            registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        {
            debug!("snet redial to {addr}: {e}");
            return Ok(());
        }
        let _ = stream.set_nodelay(true);
        if let Stream::Snet(t) = &mut slot.io {
            t.reattach(Tcp::new(stream, addr));
        }
        slot.ready = Ready::EMPTY;
        Ok(())
    }

    fn work(&mut self, key: usize, now: Instant) -> Result<(), EndpointError> {
        let Some(slot) = self.slots.get_mut(key) else {
            return Ok(());
        };
        let handshaking = slot.io.is_handshaking();
        let mut reads = 0;
        while slot.ready.is_readable() && reads < READS_PER_TURN {
            reads += 1;
            let (n, status) = slot.io.read(&mut self.scratch, slot.ready);
            slot.ep.receive(&self.scratch[..n])?;
            if status.settle(&mut slot.ready, Ready::READABLE).is_err() {
                return Err(slot.link_failure());
            }
        }
        if handshaking && !slot.io.is_handshaking() && !is_detached(&slot.io) {
            // The transport's own handshake is done: what waited behind it
            // can be written (a full socket will say so itself).
            slot.ready |= Ready::WRITABLE;
            if let Some(r) = slot.redial.as_mut() {
                if r.until.take().is_some() {
                    debug!("snet link to {} restored", r.addr);
                    slot.ep.link_up(now);
                }
            }
        }
        if slot.ready.is_readable() {
            // Budget used up; come back next turn.
            self.active.push(key);
        }
        slot.ep.handle_timeout(now)?;
        while let Some(ev) = slot.ep.poll_event() {
            self.events.push_back(DriverEvent::Endpoint(key, ev));
        }
        while slot.ready.is_writable() && (!slot.ep.output().is_empty() || slot.io.wants_write()) {
            let (n, status) = slot.io.write(&[IoSlice::new(slot.ep.output())]);
            slot.ep.consume_output(n);
            if status.settle(&mut slot.ready, Ready::WRITABLE).is_err() {
                return Err(slot.link_failure());
            }
        }
        if is_detached(&slot.io) {
            if let Some(r) = slot.redial.as_mut() {
                if r.until.is_none() {
                    debug!("snet link to {} lost; redialling", r.addr);
                    r.until = Some(now + r.give_up_after);
                    r.next = now;
                    slot.ep.link_down();
                    slot.ready = Ready::EMPTY;
                    // The first attempt goes at once.
                    self.active.push(key);
                }
            }
        }
        Ok(())
    }

    /// Closes endpoint `key` at once.
    pub fn close(&mut self, registry: &Registry, key: usize) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.ep.close();
            self.remove(registry, key, EndpointError::Closed);
        }
    }

    fn remove(&mut self, registry: &Registry, key: usize, e: EndpointError) {
        if let Some(mut slot) = self.slots.try_remove(key) {
            while let Some(ev) = slot.ep.poll_event() {
                self.events.push_back(DriverEvent::Endpoint(key, ev));
            }
            slot.io.deregister(registry);
            self.events.push_back(DriverEvent::Closed(key, e));
        }
    }
}
