//! The gateway: a mio driver ([`Gateway`]) around a core with no I/O
//! ([`Core`]).
//!
//! The driver owns the listeners and the sockets' registrations; it accepts
//! (pausing on resource errors and when its token range is full), turns poll
//! events into readiness for the core, and hands the core's closed sockets
//! back to the registry. Everything the protocol says happens in the core.
//!
//! Users own the `Poll`. The gateway borrows the `Registry` per call and
//! owns a range of tokens: token `start + k` for listener slot `k`
//! (`k < LISTENER_SLOTS`), and `start + LISTENER_SLOTS + key` for the
//! connection the core keeps under `key`.

mod admission;
pub mod core;
pub mod groups;
mod loglimit;
pub mod proxy;
mod stats;
mod vconn;

/// The in-memory transport, where the core's users first found it.
pub mod mem {
    pub use crate::transport::MemPipe;
}

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(any(feature = "tls", feature = "ws"))]
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};

pub use self::admission::{Refusal, Source, MAX_BUCKETS};
pub use self::core::{ConnInfo, Core};
pub use self::stats::{
    CloseReason, ProtocolError, StatField, StatKind, Stats, TurnHistogram, STAT_FIELDS,
    TURN_FRAME_BOUNDS,
};
pub use self::vconn::MAX_VCONNS;
use crate::config::{Config, ConfigError};
pub use crate::side::Side;
pub use crate::tokens::TokenRange;
use crate::transport::{Ready, Snet, Stream, Tcp};

/// Tokens reserved at the start of a gateway's range for listeners.
pub const LISTENER_SLOTS: usize = 16;
/// Most connections accepted from one listener per turn.
const ACCEPTS_PER_TURN: usize = 256;
/// How long accepting pauses after a resource error (e.g. out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Longest sleep of [`Gateway::run`], so its stop flag is seen promptly.
const RUN_MAX_WAIT: Duration = Duration::from_millis(50);

/// A listener's TLS configuration (none can exist without the feature).
#[cfg(feature = "tls")]
type TlsConfig = Arc<rustls::ServerConfig>;
#[cfg(not(feature = "tls"))]
type TlsConfig = std::convert::Infallible;
/// A listener's WebSocket settings (none can exist without the feature).
#[cfg(feature = "ws")]
type WsConfig = Arc<crate::transport::WsSettings>;
#[cfg(not(feature = "ws"))]
type WsConfig = std::convert::Infallible;

struct Listener {
    side: Side,
    socket: TcpListener,
    /// TLS for the connections it accepts.
    tls: Option<TlsConfig>,
    /// WebSocket for the connections it accepts (inside TLS if `tls`).
    ws: Option<WsConfig>,
    /// Readiness not yet drained to `WouldBlock`.
    pending: bool,
    /// Accepting paused after a resource error until then.
    paused_until: Option<Instant>,
    /// Accepting paused because the token range is full.
    full: bool,
}

/// A gateway driven by a mio `Poll` the caller owns.
///
/// In a loop of your own, route the events of the gateway's tokens to
/// [`handle_event`](Self::handle_event) and call
/// [`handle_timeout`](Self::handle_timeout) after each poll
/// (`examples/embed.rs` is a complete program); or let
/// [`run`](Self::run) be the loop, as here:
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// use mio::net::TcpListener;
/// use mio::Poll;
/// use uniway::endpoint::{Client, EndpointConfig, Server};
/// use uniway::{Config, Gateway, Side, TokenRange};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let poll = Poll::new()?;
/// let tokens = TokenRange { start: 0, len: 1 << 20 };
/// let config = Config { auth_key: b"secret".to_vec(), ..Config::default() };
/// let mut gw = Gateway::new(config, tokens)?;
/// gw.listen(poll.registry(), Side::Client, TcpListener::bind("127.0.0.1:0".parse()?)?)?;
/// gw.listen(poll.registry(), Side::Server, TcpListener::bind("127.0.0.1:0".parse()?)?)?;
/// let (client_addr, server_addr) = (gw.local_addrs(Side::Client)[0], gw.local_addrs(Side::Server)[0]);
///
/// let stop = Arc::new(AtomicBool::new(false));
/// let flag = stop.clone();
/// let running = std::thread::spawn(move || {
///     let mut poll = poll;
///     gw.run(&mut poll, &flag).map(|()| gw.stats())
/// });
///
/// // A server with ID 1 and a client that dials it.
/// let server_cfg = EndpointConfig {
///     server_id: 1,
///     auth_key: b"secret".to_vec(),
///     ..EndpointConfig::default()
/// };
/// let server = Server::connect(server_addr, server_cfg)?;
/// let client = Client::connect(client_addr, EndpointConfig::default())?;
/// let vconn = client.dial(1)?;
/// vconn.send(b"hello")?;
/// assert_eq!(server.accept()?.recv()?, b"hello");
///
/// stop.store(true, Ordering::Relaxed);
/// let stats = running.join().expect("gateway thread")?;
/// assert_eq!(stats.dials, 1);
/// # Ok(())
/// # }
/// ```
pub struct Gateway {
    core: Core<Stream>,
    range: TokenRange,
    listeners: Vec<Listener>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sides: Vec<Side> = self.listeners.iter().map(|l| l.side).collect();
        f.debug_struct("Gateway")
            .field("range", &self.range)
            .field("listeners", &sides)
            .field("core", &self.core)
            .finish()
    }
}

impl Gateway {
    /// A gateway with `config`, using the tokens of `range`.
    pub fn new(config: Config, range: TokenRange) -> Result<Gateway, ConfigError> {
        config.validate()?;
        if range.len <= LISTENER_SLOTS || range.start.checked_add(range.len).is_none() {
            return Err(ConfigError {
                field: "token range",
                problem: format!("needs more than {LISTENER_SLOTS} tokens within usize"),
                other: None,
            });
        }
        Ok(Gateway {
            core: Core::new(config, range.len - LISTENER_SLOTS),
            range,
            listeners: Vec::new(),
        })
    }

    /// Starts accepting `side` connections on `listener`; returns its address.
    pub fn listen(
        &mut self,
        registry: &Registry,
        side: Side,
        listener: TcpListener,
    ) -> io::Result<SocketAddr> {
        self.add_listener(registry, side, listener, None, None)
    }

    /// Starts accepting clients over WebSocket on `listener` (over TLS too
    /// if `tls` is given): binary messages carry the byte stream, each
    /// frame to the client is one binary message (see
    /// [`transport::Ws`](crate::transport::Ws)). Returns its address.
    #[cfg(feature = "ws")]
    pub fn listen_ws(
        &mut self,
        registry: &Registry,
        listener: TcpListener,
        settings: crate::transport::WsSettings,
        tls: Option<TlsConfig>,
    ) -> io::Result<SocketAddr> {
        self.add_listener(
            registry,
            Side::Client,
            listener,
            tls,
            Some(Arc::new(settings)),
        )
    }

    /// Starts accepting `side` connections over TLS on `listener`, with
    /// `config` (see [`crate::tls`]); returns its address.
    #[cfg(feature = "tls")]
    pub fn listen_tls(
        &mut self,
        registry: &Registry,
        side: Side,
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> io::Result<SocketAddr> {
        self.add_listener(registry, side, listener, Some(config), None)
    }

    /// Gives the TLS listeners of `side` (not the WebSocket ones, see
    /// `set_ws_tls_config`) a new configuration (a renewed
    /// certificate, say): connections accepted from now on use it, those
    /// already open carry on as they are. Returns how many listeners took it.
    #[cfg(feature = "tls")]
    pub fn set_tls_config(&mut self, side: Side, config: Arc<rustls::ServerConfig>) -> usize {
        self.swap_tls(|l| l.side == side && l.ws.is_none(), config)
    }

    /// The same for the WebSocket listeners that speak TLS (WSS).
    #[cfg(all(feature = "tls", feature = "ws"))]
    pub fn set_ws_tls_config(&mut self, config: Arc<rustls::ServerConfig>) -> usize {
        self.swap_tls(|l| l.ws.is_some(), config)
    }

    #[cfg(feature = "tls")]
    fn swap_tls(
        &mut self,
        which: impl Fn(&Listener) -> bool,
        config: Arc<rustls::ServerConfig>,
    ) -> usize {
        let mut n = 0;
        for l in self.listeners.iter_mut().filter(|l| which(l)) {
            if let Some(tls) = &mut l.tls {
                *tls = config.clone();
                n += 1;
            }
        }
        n
    }

    fn add_listener(
        &mut self,
        registry: &Registry,
        side: Side,
        mut listener: TcpListener,
        tls: Option<TlsConfig>,
        ws: Option<WsConfig>,
    ) -> io::Result<SocketAddr> {
        if self.listeners.len() == LISTENER_SLOTS {
            return Err(io::Error::other(format!(
                "a gateway takes at most {LISTENER_SLOTS} listeners"
            )));
        }
        let addr = listener.local_addr()?;
        let token = Token(self.range.start + self.listeners.len());
        registry.register(&mut listener, token, Interest::READABLE)?;
        let kind = match (tls.is_some(), ws.is_some()) {
            (false, false) => "",
            (true, false) => " (TLS)",
            (false, true) => " (WebSocket)",
            (true, true) => " (WebSocket over TLS)",
        };
        info!("{side} listener at {addr}{kind}");
        self.listeners.push(Listener {
            side,
            socket: listener,
            tls,
            ws,
            pending: true,
            paused_until: None,
            full: false,
        });
        Ok(addr)
    }

    /// The addresses of the listeners of `side`.
    pub fn local_addrs(&self, side: Side) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| l.side == side)
            .filter_map(|l| l.socket.local_addr().ok())
            .collect()
    }

    /// Whether `token` belongs to this gateway.
    pub fn owns(&self, token: Token) -> bool {
        self.range.contains(token)
    }

    /// Takes one poll event for a token this gateway owns. The work it
    /// makes possible is done in [`handle_timeout`](Self::handle_timeout).
    pub fn handle_event(&mut self, registry: &Registry, event: &Event, now: Instant) {
        let Some(offset) = event.token().0.checked_sub(self.range.start) else {
            return;
        };
        if offset < LISTENER_SLOTS {
            if let Some(l) = self.listeners.get_mut(offset) {
                l.pending = true;
            }
            self.accept_pending(registry, now);
            return;
        }
        self.core
            .set_readiness(offset - LISTENER_SLOTS, Ready::from_event(event));
    }

    /// How long the caller's poll may sleep before calling
    /// [`handle_timeout`](Self::handle_timeout): zero when work is left over.
    #[must_use]
    pub fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        let mut t = self.core.poll_timeout(now);
        for l in self.listeners.iter().filter(|l| l.pending && !l.full) {
            let wait = l
                .paused_until
                .map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
            t = Some(t.map_or(wait, |t| t.min(wait)));
        }
        t
    }

    /// Does the turn's work: reads and routes what arrived, flushes queued
    /// writes once per connection, fires deadlines, closes what must close,
    /// resumes paused accepting. Safe to call spuriously.
    pub fn handle_timeout(&mut self, registry: &Registry, now: Instant) {
        self.core.turn(now);
        for (mut tcp, _) in self.core.take_closed() {
            // The socket is closed on drop either way; deregistering first
            // keeps the registry's view exact.
            tcp.deregister(registry);
        }
        self.relink(registry);
        if self.core.has_room() {
            for l in &mut self.listeners {
                l.full = false;
            }
        }
        self.accept_pending(registry, now);
    }

    /// Registers the sockets that moved into an snet stream's connection
    /// under that connection's token (they came in under their own).
    fn relink(&mut self, registry: &Registry) {
        let first = self.range.start + LISTENER_SLOTS;
        self.core.relink(|key, source| {
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = registry.reregister(source, Token(first + key), interest) {
                warn!("cannot register a resumed snet link: {e}");
            }
        });
    }

    fn accept_pending(&mut self, registry: &Registry, now: Instant) {
        for l in &mut self.listeners {
            if !l.pending || l.full || l.paused_until.is_some_and(|at| at > now) {
                continue;
            }
            l.paused_until = None;
            for _ in 0..ACCEPTS_PER_TURN {
                if !self.core.has_room() {
                    l.full = true;
                    self.core.stats_mut().accept_full += 1;
                    warn!(
                        "{} listener: {} connections, the token range is full; accepting paused",
                        l.side,
                        self.core.len()
                    );
                    break;
                }
                match l.socket.accept() {
                    Ok((stream, peer)) => accept_one(
                        &mut self.core,
                        self.range,
                        registry,
                        (l.side, l.tls.as_ref(), l.ws.as_ref()),
                        stream,
                        peer,
                        now,
                    ),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        l.pending = false;
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if is_resource_error(&e) => {
                        self.core.stats_mut().accept_errors += 1;
                        warn!(
                            "{} listener: accept failed ({e}); pausing accepts for {:?}",
                            l.side, ACCEPT_BACKOFF
                        );
                        l.paused_until = Some(now + ACCEPT_BACKOFF);
                        break;
                    }
                    Err(e) => {
                        // E.g. ECONNABORTED: that one connection is gone.
                        self.core.stats_mut().accept_errors += 1;
                        debug!("{} listener: accept failed: {e}", l.side);
                    }
                }
            }
        }
    }

    /// Starts a graceful shutdown: the listeners close, frames are no longer
    /// routed, every vconn is closed and both its ends told, and what was
    /// queued keeps being written to every peer still reading (what peers
    /// send meanwhile is read and discarded). A connection whose queue is
    /// written gets the end of the stream and closes when its peer closes
    /// its end. Keep calling [`handle_timeout`](Self::handle_timeout) until
    /// [`is_drained`](Self::is_drained) (or a deadline of the caller's), then
    /// call [`close_all`](Self::close_all).
    pub fn shutdown(&mut self, registry: &Registry) {
        for mut l in self.listeners.drain(..) {
            let _ = registry.deregister(&mut l.socket);
        }
        self.core.begin_shutdown();
    }

    /// Whether every connection has been flushed and closed since
    /// [`shutdown`](Self::shutdown).
    pub fn is_drained(&self) -> bool {
        self.core.is_drained()
    }

    /// Closes every connection at once.
    pub fn close_all(&mut self, registry: &Registry) {
        self.core.close_all();
        for (mut tcp, _) in self.core.take_closed() {
            tcp.deregister(registry);
        }
    }

    /// Closes client or server `id`; its vconns close and their other ends
    /// are told (done in the next [`handle_timeout`](Self::handle_timeout)).
    /// `false` if there is no such peer.
    pub fn kick(&mut self, side: Side, id: u32) -> bool {
        self.core.kick(side, id)
    }

    /// Data frames routed per turn, over the turns that routed any.
    pub fn turn_histogram(&self) -> TurnHistogram {
        self.core.turn_histogram()
    }

    /// Counters and gauges.
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// One record per live physical connection.
    pub fn conns(&self, now: Instant) -> Vec<ConnInfo> {
        self.core.conn_infos(now)
    }

    /// The core, for inspection.
    pub fn core(&self) -> &Core<Stream> {
        &self.core
    }

    /// Runs a poll loop of its own until `stop` is set.
    pub fn run(&mut self, poll: &mut Poll, stop: &AtomicBool) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !stop.load(Ordering::Relaxed) {
            let timeout = self
                .poll_timeout(Instant::now())
                .map_or(RUN_MAX_WAIT, |t| t.min(RUN_MAX_WAIT));
            if let Err(e) = poll.poll(&mut events, Some(timeout)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for ev in events.iter() {
                if self.owns(ev.token()) {
                    self.handle_event(poll.registry(), ev, now);
                }
            }
            self.handle_timeout(poll.registry(), Instant::now());
        }
        Ok(())
    }
}

fn accept_one(
    core: &mut Core<Stream>,
    range: TokenRange,
    registry: &Registry,
    (side, tls, ws): (Side, Option<&TlsConfig>, Option<&WsConfig>),
    mut stream: TcpStream,
    peer: SocketAddr,
    now: Instant,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!("{side} {peer}: TCP_NODELAY not set: {e}");
    }
    let token = Token(range.start + LISTENER_SLOTS + core.next_key());
    if let Err(e) = registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
        if core.may_log() {
            warn!("{side} {peer}: cannot register the connection: {e}");
        }
        return;
    }
    let io = match (tls, ws) {
        #[cfg(feature = "ws")]
        (tls, Some(settings)) => {
            use crate::transport::{Ws, WsSocket};
            let socket = match tls {
                None => WsSocket::Plain(stream),
                #[cfg(feature = "tls")]
                Some(config) => match rustls::ServerConnection::new(config.clone()) {
                    Ok(conn) => WsSocket::Tls(Box::new(rustls::StreamOwned::new(conn, stream))),
                    Err(e) => {
                        if core.may_log() {
                            warn!("{side} {peer}: cannot start TLS: {e}");
                        }
                        return;
                    }
                },
                #[cfg(not(feature = "tls"))]
                Some(never) => match *never {},
            };
            Stream::Ws(Box::new(Ws::accept(socket, peer, settings.clone())))
        }
        #[cfg(not(feature = "ws"))]
        (_, Some(never)) => match *never {},
        (None, None) => match core.config().side(side).snet {
            Some(snet) => Stream::Snet(Box::new(Snet::accept(
                Tcp::new(stream, peer),
                snet.settings,
            ))),
            None => Stream::Tcp(Tcp::new(stream, peer)),
        },
        #[cfg(feature = "tls")]
        (Some(config), None) => match crate::transport::Tls::accept(stream, peer, config.clone()) {
            Ok(t) => Stream::Tls(Box::new(t)),
            Err(e) => {
                // The stream was moved into the failed attempt and closed
                // with it; its registration goes with the socket.
                if core.may_log() {
                    warn!("{side} {peer}: cannot start TLS: {e}");
                }
                return;
            }
        },
        #[cfg(not(feature = "tls"))]
        (Some(never), None) => match *never {},
    };
    if let Err(mut io) = core.accept(side, io, now) {
        io.deregister(registry);
    }
}

/// Errors that say the process or system is out of something, not that one
/// incoming connection failed.
fn is_resource_error(e: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM))
        || e.kind() == ErrorKind::OutOfMemory
}
