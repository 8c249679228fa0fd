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

use super::config::{EndpointConfig, EndpointConfigError};
use super::core::{Endpoint, EndpointError, Event, Role};
use crate::tokens::TokenRange;
use crate::transport::{IoStatus, Ready, Stream, Tcp, Transport};

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
        self.add(registry, stream, role, cfg, now)
    }

    /// Adds an endpoint over a stream that is connected or connecting.
    pub fn add(
        &mut self,
        registry: &Registry,
        stream: TcpStream,
        role: Role,
        cfg: EndpointConfig,
        now: Instant,
    ) -> io::Result<usize> {
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
    pub fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.active.is_empty() || !self.events.is_empty() {
            return Some(Duration::ZERO);
        }
        self.slots
            .iter()
            .filter_map(|(_, s)| s.ep.poll_timeout())
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
            .filter(|(_, s)| s.ep.poll_timeout().is_some_and(|at| at <= now))
            .map(|(k, _)| k)
            .collect();
        active.extend(timers);
        for &key in &active {
            if let Err(e) = self.work(key, now) {
                self.remove(registry, key, e);
            }
        }
        active.clear();
        if self.active.is_empty() {
            self.active = active;
        }
    }

    fn work(&mut self, key: usize, now: Instant) -> Result<(), EndpointError> {
        let Some(slot) = self.slots.get_mut(key) else {
            return Ok(());
        };
        let mut reads = 0;
        while slot.ready.is_readable() && reads < READS_PER_TURN {
            reads += 1;
            let (n, status) = slot.io.read(&mut self.scratch, slot.ready);
            slot.ep.receive(&self.scratch[..n])?;
            match status {
                IoStatus::Continue => {}
                IoStatus::WouldBlock => slot.ready.remove(Ready::READABLE),
                IoStatus::Closed | IoStatus::Error(_) => return Err(slot.ep.disconnected()),
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
            match status {
                IoStatus::Continue => {}
                IoStatus::WouldBlock => slot.ready.remove(Ready::WRITABLE),
                IoStatus::Closed | IoStatus::Error(_) => return Err(slot.ep.disconnected()),
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
