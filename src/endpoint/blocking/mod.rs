//! The blocking endpoint API: `Client`, `Server`, `VirtualConn`, safe to
//! use from several threads.
//!
//! Each endpoint has a reader thread (socket → [`Endpoint`] → per-vconn
//! queues, dial results, accepted vconns) and a writer thread (one ordered
//! channel → socket, batching what waits). All protocol state sits behind
//! one mutex, held only briefly; `send` waits for room in the send queue
//! without holding it, so a blocked sender never stops the reader.
//!
//! An snet endpoint (`EndpointConfig::snet`) has one I/O thread instead,
//! polling its link with mio, which redials and resumes when the link
//! breaks (see `snet_io`).

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use log::{debug, warn};

use super::config::{EndpointConfig, MsgFormat, Raw};
use super::core::{DialId, Endpoint, EndpointError, Event, Role, SendError};
use super::error::{AcceptError, ConnectError, DialError, RecvError, HANDSHAKE_WAIT};
use crate::transport::{Ready, StreamEnd, Tcp, Transport};

mod snet_io;

#[derive(Default)]
struct Inbox {
    msgs: VecDeque<Vec<u8>>,
    closed: bool,
}

struct State {
    ep: Endpoint,
    tx: Option<Sender<(Vec<u8>, usize)>>,
    /// Wakes the I/O thread of an snet endpoint when output is queued.
    waker: Option<Arc<mio::Waker>>,
    inboxes: HashMap<u32, Inbox>,
    accepts: VecDeque<(u32, u32)>,
    dials: HashMap<DialId, Result<(u32, u32), DialError>>,
    /// Answers to feature probes.
    features: HashMap<DialId, u32>,
    /// Joins the gateway refused: (group, conn ID).
    join_refusals: VecDeque<(u32, u32)>,
}

impl State {
    /// Hands the endpoint's output to the writer; `msgs` of it are
    /// application messages that count against the send queue.
    fn flush(&mut self, msgs: usize) {
        let out = self.ep.take_output();
        if out.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send((out, msgs));
            if let Some(w) = &self.waker {
                let _ = w.wake();
            }
        }
    }

    fn failure(&self) -> Option<EndpointError> {
        self.ep.failure().cloned()
    }
}

enum Stop {
    Socket(TcpStream),
    Waker(Arc<mio::Waker>),
}

impl Stop {
    fn stop(&self) {
        match self {
            Stop::Socket(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
            Stop::Waker(w) => {
                let _ = w.wake();
            }
        }
    }
}

struct Shared<F> {
    state: Mutex<State>,
    changed: Condvar,
    queued: Mutex<usize>,
    room: Condvar,
    format: F,
    /// What stops the I/O threads: the socket (shut down) or, for snet,
    /// the waker of the I/O thread's poll.
    stop: Stop,
    recv_limit: usize,
    send_limit: usize,
    overflows: AtomicU64,
}

impl<F> Shared<F> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(
        &self,
        g: MutexGuard<'a, State>,
        until: Option<Instant>,
    ) -> (MutexGuard<'a, State>, bool) {
        match until {
            None => (
                self.changed.wait(g).unwrap_or_else(|e| e.into_inner()),
                false,
            ),
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return (g, true);
                }
                let (g, r) = self
                    .changed
                    .wait_timeout(g, left)
                    .unwrap_or_else(|e| e.into_inner());
                (g, r.timed_out() && Instant::now() >= at)
            }
        }
    }

    /// Applies the endpoint's events to the queues and wakes every waiter.
    fn absorb(&self, s: &mut State) {
        while let Some(ev) = s.ep.poll_event() {
            match ev {
                Event::Ready | Event::PingTimeout { kept: true } => {}
                Event::PingTimeout { kept: false } => {
                    warn!("gateway did not answer pings; closing")
                }
                Event::Dialed {
                    dial,
                    conn_id,
                    remote_id,
                } => {
                    s.inboxes.insert(conn_id, Inbox::default());
                    s.dials.insert(dial, Ok((conn_id, remote_id)));
                }
                Event::DialRefused { dial, remote_id } => {
                    s.dials.insert(dial, Err(DialError::Refused { remote_id }));
                }
                Event::DialFailed { dial } => {
                    let e = s.failure().unwrap_or(EndpointError::Disconnected);
                    s.dials.insert(dial, Err(DialError::Endpoint(e)));
                }
                Event::Features { dial, bits } => {
                    s.features.insert(dial, bits);
                }
                Event::JoinRefused { group, conn_id } => {
                    s.join_refusals.push_back((group, conn_id));
                }
                Event::Accepted { conn_id, remote_id } => {
                    s.inboxes.insert(conn_id, Inbox::default());
                    s.accepts.push_back((conn_id, remote_id));
                }
                Event::Message { conn_id, data } => {
                    let Some(inbox) = s.inboxes.get_mut(&conn_id) else {
                        continue;
                    };
                    if inbox.msgs.len() >= self.recv_limit {
                        // One stuck reader must not stall the shared link.
                        inbox.closed = true;
                        s.ep.close_vconn(conn_id);
                        self.overflows.fetch_add(1, Ordering::Relaxed);
                        warn!(
                            "vconn {conn_id}: receive queue over {} messages; vconn closed",
                            self.recv_limit
                        );
                    } else {
                        inbox.msgs.push_back(data);
                    }
                }
                Event::Closed { conn_id } => {
                    if let Some(inbox) = s.inboxes.get_mut(&conn_id) {
                        inbox.closed = true;
                    }
                }
            }
        }
        s.flush(0);
        self.changed.notify_all();
    }

    /// Waits for room in the send queue and takes one place in it.
    fn reserve_send(&self) -> Result<(), SendError> {
        let mut q = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        while *q >= self.send_limit {
            if let Some(e) = self.lock().failure() {
                return Err(SendError::Endpoint(e));
            }
            q = self
                .room
                .wait_timeout(q, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *q += 1;
        Ok(())
    }

    /// Queues one message with `queue` (a call on the endpoint), holding a
    /// place in the send queue until it is written.
    fn send_with(
        &self,
        queue: impl FnOnce(&mut Endpoint) -> Result<(), SendError>,
    ) -> Result<(), SendError> {
        self.reserve_send()?;
        let mut s = self.lock();
        match queue(&mut s.ep) {
            Ok(()) => {
                s.flush(1);
                Ok(())
            }
            Err(e) => {
                drop(s);
                *self.queued.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                Err(e)
            }
        }
    }

    fn fail(&self, e: Option<io::Error>) {
        match e {
            Some(e) => debug!("gateway connection: {e}"),
            None => debug!("gateway closed the connection"),
        }
        self.end(|ep| {
            ep.disconnected();
        });
    }

    /// Ends the endpoint (`why` records the failure) and stops the I/O.
    fn end(&self, why: impl FnOnce(&mut Endpoint)) {
        let mut s = self.lock();
        why(&mut s.ep);
        s.tx = None;
        self.absorb(&mut s);
        drop(s);
        self.stop.stop();
        self.room.notify_all();
    }
}

fn reader<F>(shared: Arc<Shared<F>>, stream: TcpStream, buffer_size: usize) {
    let mut io = Tcp::from_socket(stream);
    let mut buf = vec![0u8; buffer_size];
    loop {
        let wait = {
            let s = shared.lock();
            if s.failure().is_some() {
                return;
            }
            s.ep.poll_timeout(Instant::now())
                .map(|wait| wait.max(Duration::from_millis(1)))
        };
        if io.socket().set_read_timeout(wait).is_err() {
            return shared.fail(None);
        }
        // A blocking socket: "would block" only means the read timed out
        // (or was short), so the timers run and the loop reads again.
        let (n, status) = io.read(&mut buf, Ready::READABLE);
        if n > 0 {
            let mut s = shared.lock();
            let r = s.ep.receive(&buf[..n]);
            shared.absorb(&mut s);
            if let Err(e) = r {
                warn!("{e}");
                drop(s);
                return shared.fail(None);
            }
        }
        match status.end() {
            None | Some(StreamEnd::Error(io::ErrorKind::TimedOut)) => {}
            Some(StreamEnd::Closed) => return shared.fail(None),
            Some(StreamEnd::Error(kind)) => return shared.fail(Some(kind.into())),
        }
        let mut s = shared.lock();
        let r = s.ep.handle_timeout(Instant::now());
        shared.absorb(&mut s);
        if r.is_err() {
            drop(s);
            return shared.fail(None);
        }
    }
}

fn writer<F>(shared: Arc<Shared<F>>, stream: TcpStream, rx: Receiver<(Vec<u8>, usize)>) {
    let mut io = Tcp::from_socket(stream);
    while let Ok((mut batch, mut msgs)) = rx.recv() {
        while batch.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok((more, n)) => {
                    batch.extend_from_slice(&more);
                    msgs += n;
                }
                Err(_) => break,
            }
        }
        let mut at = 0;
        while at < batch.len() {
            let (n, status) = io.write(&[IoSlice::new(&batch[at..])]);
            at += n;
            match status.end() {
                None => {}
                Some(StreamEnd::Closed) => {
                    return shared.fail(Some(io::ErrorKind::BrokenPipe.into()))
                }
                Some(StreamEnd::Error(kind)) => return shared.fail(Some(kind.into())),
            }
        }
        if msgs > 0 {
            let mut q = shared.queued.lock().unwrap_or_else(|e| e.into_inner());
            *q -= msgs;
            shared.room.notify_all();
        }
    }
}

/// The part of an endpoint that `Client` and `Server` share.
struct Handle<F: MsgFormat> {
    shared: Arc<Shared<F>>,
}

impl<F: MsgFormat> Handle<F> {
    fn start(
        stream: TcpStream,
        role: Role,
        cfg: EndpointConfig,
        format: F,
    ) -> Result<Handle<F>, ConnectError> {
        cfg.validate().map_err(ConnectError::Config)?;
        stream.set_nodelay(true).map_err(ConnectError::Io)?;
        let (tx, rx) = mpsc::channel();
        let new_shared = |stop: Stop, waker: Option<Arc<mio::Waker>>| {
            Arc::new(Shared {
                state: Mutex::new(State {
                    ep: Endpoint::new(role, cfg.clone(), Instant::now()),
                    tx: Some(tx),
                    waker,
                    inboxes: HashMap::new(),
                    accepts: VecDeque::new(),
                    dials: HashMap::new(),
                    features: HashMap::new(),
                    join_refusals: VecDeque::new(),
                }),
                changed: Condvar::new(),
                queued: Mutex::new(0),
                room: Condvar::new(),
                format,
                stop,
                recv_limit: cfg.recv_queue_size,
                send_limit: cfg.send_queue_size,
                overflows: AtomicU64::new(0),
            })
        };
        if let Some(snet) = cfg.snet {
            let io =
                snet_io::SnetIo::new(stream, snet, cfg.buffer_size).map_err(ConnectError::Io)?;
            let shared = new_shared(Stop::Waker(io.waker()), Some(io.waker()));
            let s = shared.clone();
            std::thread::Builder::new()
                .name("uniway-endpoint-snet".into())
                .spawn(move || io.run(s, rx))
                .map_err(ConnectError::Io)?;
            return Ok(Handle { shared });
        }
        let shared = new_shared(
            Stop::Socket(stream.try_clone().map_err(ConnectError::Io)?),
            None,
        );
        let (r, w) = (stream.try_clone().map_err(ConnectError::Io)?, stream);
        let s1 = shared.clone();
        let buffer = cfg.buffer_size;
        std::thread::Builder::new()
            .name("uniway-endpoint-reader".into())
            .spawn(move || reader(s1, r, buffer))
            .map_err(ConnectError::Io)?;
        let s2 = shared.clone();
        std::thread::Builder::new()
            .name("uniway-endpoint-writer".into())
            .spawn(move || writer(s2, w, rx))
            .map_err(ConnectError::Io)?;
        Ok(Handle { shared })
    }

    fn wait_ready(&self) -> Result<(), ConnectError> {
        let deadline = Instant::now() + HANDSHAKE_WAIT;
        let mut s = self.shared.lock();
        loop {
            if let Some(e) = s.failure() {
                return Err(ConnectError::Handshake(e));
            }
            if s.ep.is_ready() {
                return Ok(());
            }
            let (g, timed_out) = self.shared.wait(s, Some(deadline));
            s = g;
            if timed_out {
                drop(s);
                self.close();
                return Err(ConnectError::Timeout);
            }
        }
    }

    fn dial(&self, remote_id: u32) -> Result<VirtualConn<F>, DialError> {
        let mut s = self.shared.lock();
        let id = s.ep.dial(remote_id).map_err(DialError::Endpoint)?;
        s.flush(0);
        loop {
            if let Some(r) = s.dials.remove(&id) {
                let (conn_id, remote_id) = r?;
                return Ok(VirtualConn {
                    shared: self.shared.clone(),
                    conn_id,
                    remote_id,
                });
            }
            s = self.shared.wait(s, None).0;
        }
    }

    fn accept(&self) -> Result<VirtualConn<F>, AcceptError> {
        let mut s = self.shared.lock();
        loop {
            if let Some((conn_id, remote_id)) = s.accepts.pop_front() {
                return Ok(VirtualConn {
                    shared: self.shared.clone(),
                    conn_id,
                    remote_id,
                });
            }
            if let Some(e) = s.failure() {
                return Err(e);
            }
            s = self.shared.wait(s, None).0;
        }
    }

    fn close(&self) {
        let mut s = self.shared.lock();
        s.ep.close();
        s.tx = None;
        self.shared.absorb(&mut s);
        drop(s);
        self.shared.stop.stop();
        self.shared.room.notify_all();
    }

    fn vconns(&self) -> usize {
        self.shared.lock().ep.vconn_count()
    }
}

macro_rules! endpoint_api {
    ($ty:ident) => {
        impl<F: MsgFormat> $ty<F> {
            /// Opens a vconn to `remote_id` on the other side of the gateway.
            pub fn dial(&self, remote_id: u32) -> Result<VirtualConn<F>, DialError> {
                self.0.dial(remote_id)
            }

            /// Waits for the next vconn a peer opens to this endpoint.
            pub fn accept(&self) -> Result<VirtualConn<F>, AcceptError> {
                self.0.accept()
            }

            /// Ends the connection: every vconn ends, pending dials and
            /// accepts fail.
            pub fn close(&self) {
                self.0.close()
            }

            /// Open vconns.
            pub fn vconn_count(&self) -> usize {
                self.0.vconns()
            }

            /// Vconns closed because their receive queue overflowed.
            pub fn recv_overflows(&self) -> u64 {
                self.0.shared.overflows.load(Ordering::Relaxed)
            }

            /// Why the endpoint stopped, if it did.
            pub fn failure(&self) -> Option<EndpointError> {
                self.0.shared.lock().failure()
            }
        }

        impl<F: MsgFormat> Drop for $ty<F> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
    };
}

/// A game client's connection to the gateway.
///
/// ```no_run
/// use std::time::Duration;
/// use uniway::endpoint::{Client, DialError, EndpointConfig, RecvError};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A gateway's client address (`fastway -ClientAddr=127.0.0.1:4000`).
/// let client = Client::connect("127.0.0.1:4000", EndpointConfig::default())?;
/// match client.dial(1) {
///     Ok(vconn) => {
///         vconn.send(b"hello")?;
///         match vconn.recv_timeout(Duration::from_secs(5)) {
///             Ok(reply) => println!("server 1 says {reply:?}"),
///             Err(RecvError::Timeout) => println!("no reply within 5 s"),
///             Err(e) => return Err(e.into()),
///         }
///     }
///     Err(DialError::Refused { remote_id }) => println!("no server {remote_id} at the gateway"),
///     Err(e) => return Err(e.into()),
/// }
/// # Ok(())
/// # }
/// ```
///
/// A running exchange between a client and a server through a gateway is
/// the example of [`Gateway`](crate::Gateway).
pub struct Client<F: MsgFormat = Raw>(Handle<F>);

impl<F: MsgFormat> std::fmt::Debug for Client<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// A backend server's connection to the gateway.
///
/// ```no_run
/// use uniway::endpoint::{EndpointConfig, Server};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // The gateway's server address and key (`-ServerAddr`, `-ServerAuthKey`).
/// let cfg = EndpointConfig {
///     server_id: 1,
///     auth_key: b"secret".to_vec(),
///     ..EndpointConfig::default()
/// };
/// let server = Server::connect("127.0.0.1:4001", cfg)?;
/// // Echo every message of every vconn clients open, one thread each.
/// loop {
///     let vconn = server.accept()?;
///     std::thread::spawn(move || {
///         while let Ok(msg) = vconn.recv() {
///             if vconn.send(&msg).is_err() {
///                 break;
///             }
///         }
///     });
/// }
/// # }
/// ```
pub struct Server<F: MsgFormat = Raw>(Handle<F>);

impl<F: MsgFormat> std::fmt::Debug for Server<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

endpoint_api!(Client);
endpoint_api!(Server);

impl Client<Raw> {
    /// Connects to the gateway's client address, with raw-bytes messages.
    pub fn connect(
        addr: impl ToSocketAddrs,
        cfg: EndpointConfig,
    ) -> Result<Client<Raw>, ConnectError> {
        Client::connect_with(addr, cfg, Raw)
    }

    /// Makes a client of an already connected stream (`NewClient`).
    pub fn new(stream: TcpStream, cfg: EndpointConfig) -> Result<Client<Raw>, ConnectError> {
        Client::with_format(stream, cfg, Raw)
    }
}

impl<F: MsgFormat> Client<F> {
    /// Connects with message format `format`.
    pub fn connect_with(
        addr: impl ToSocketAddrs,
        cfg: EndpointConfig,
        format: F,
    ) -> Result<Client<F>, ConnectError> {
        let stream = TcpStream::connect(addr).map_err(ConnectError::Io)?;
        Client::with_format(stream, cfg, format)
    }

    /// Makes a client of a connected stream with message format `format`.
    pub fn with_format(
        stream: TcpStream,
        cfg: EndpointConfig,
        format: F,
    ) -> Result<Client<F>, ConnectError> {
        Ok(Client(Handle::start(stream, Role::Client, cfg, format)?))
    }
}

impl Server<Raw> {
    /// Connects to the gateway's server address and does the handshake
    /// (`DialServer`): `cfg.server_id` and `cfg.auth_key` are used.
    pub fn connect(
        addr: impl ToSocketAddrs,
        cfg: EndpointConfig,
    ) -> Result<Server<Raw>, ConnectError> {
        Server::connect_with(addr, cfg, Raw)
    }
}

impl<F: MsgFormat> Server<F> {
    /// Connects and does the handshake, with message format `format`.
    pub fn connect_with(
        addr: impl ToSocketAddrs,
        cfg: EndpointConfig,
        format: F,
    ) -> Result<Server<F>, ConnectError> {
        let stream = TcpStream::connect(addr).map_err(ConnectError::Io)?;
        Server::with_format(stream, cfg, format)
    }

    /// Does the handshake over a connected stream.
    pub fn with_format(
        stream: TcpStream,
        cfg: EndpointConfig,
        format: F,
    ) -> Result<Server<F>, ConnectError> {
        let h = Handle::start(stream, Role::Server, cfg, format)?;
        h.wait_ready()?;
        Ok(Server(h))
    }
}

/// Multicast and groups at the gateway (`docs/protocol.md` §10). They
/// need a gateway that supports them: call
/// [`probe_features`](Server::probe_features) once first (the Go gateway
/// does not; the calls then fail with [`SendError::Unsupported`] and send
/// nothing).
impl<F: MsgFormat> Server<F> {
    /// Asks the gateway which extensions it supports and waits up to
    /// `timeout` for the answer: the bits ([`FEATURE_GROUPS`](crate::wire::FEATURE_GROUPS)),
    /// 0 from a gateway without extensions.
    pub fn probe_features(&self, timeout: Duration) -> Result<u32, DialError> {
        let shared = &self.0.shared;
        let mut s = shared.lock();
        let id = s.ep.probe_features().map_err(DialError::Endpoint)?;
        s.flush(0);
        let until = Instant::now() + timeout;
        loop {
            if let Some(bits) = s.features.remove(&id) {
                return Ok(bits);
            }
            if let Some(e) = s.failure() {
                return Err(DialError::Endpoint(e));
            }
            let (g, timed_out) = shared.wait(s, Some(until));
            s = g;
            if timed_out {
                return Err(DialError::Timeout);
            }
        }
    }

    fn encode(&self, msg: &F::Outgoing) -> Result<Vec<u8>, SendError> {
        let mut bytes = Vec::new();
        self.0
            .shared
            .format
            .encode(msg, &mut bytes)
            .map_err(SendError::Format)?;
        Ok(bytes)
    }

    /// Sends one message to every vconn in `conn_ids` (each must be open):
    /// it crosses the link once, and the gateway queues it to each.
    pub fn multicast(&self, conn_ids: &[u32], msg: &F::Outgoing) -> Result<(), SendError> {
        let bytes = self.encode(msg)?;
        self.0.shared.send_with(|ep| ep.multicast(conn_ids, &bytes))
    }

    /// Sends one message to every member of `group` but those in `except`.
    pub fn send_to_group(
        &self,
        group: u32,
        msg: &F::Outgoing,
        except: &[u32],
    ) -> Result<(), SendError> {
        let bytes = self.encode(msg)?;
        self.0
            .shared
            .send_with(|ep| ep.send_to_group(group, &bytes, except))
    }

    /// Adds open vconns to `group`; a join over a group limit shows up in
    /// [`join_refusals`](Self::join_refusals).
    pub fn join(&self, group: u32, conn_ids: &[u32]) -> Result<(), SendError> {
        self.0.shared.send_with(|ep| ep.join(group, conn_ids))
    }

    /// Takes vconns out of `group` (vconns already closed are skipped).
    pub fn leave(&self, group: u32, conn_ids: &[u32]) -> Result<(), SendError> {
        self.0.shared.send_with(|ep| ep.leave(group, conn_ids))
    }

    /// Empties `group`.
    pub fn dissolve(&self, group: u32) -> Result<(), SendError> {
        self.0.shared.send_with(|ep| ep.dissolve(group))
    }

    /// The joins the gateway refused since the last call, as (group, conn
    /// ID).
    pub fn join_refusals(&self) -> Vec<(u32, u32)> {
        self.0.shared.lock().join_refusals.drain(..).collect()
    }
}

/// One virtual connection. Dropping it closes it.
pub struct VirtualConn<F: MsgFormat = Raw> {
    shared: Arc<Shared<F>>,
    conn_id: u32,
    remote_id: u32,
}

impl<F: MsgFormat> std::fmt::Debug for VirtualConn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualConn")
            .field("conn_id", &self.conn_id)
            .field("remote_id", &self.remote_id)
            .finish_non_exhaustive()
    }
}

impl<F: MsgFormat> VirtualConn<F> {
    /// The conn ID the gateway gave it.
    pub fn conn_id(&self) -> u32 {
        self.conn_id
    }

    /// The peer at the other end (a server ID or a client ID).
    pub fn remote_id(&self) -> u32 {
        self.remote_id
    }

    /// Sends a message; waits while the send queue is full.
    pub fn send(&self, msg: &F::Outgoing) -> Result<(), SendError> {
        let mut bytes = Vec::new();
        self.shared
            .format
            .encode(msg, &mut bytes)
            .map_err(SendError::Format)?;
        let conn_id = self.conn_id;
        self.shared.send_with(|ep| ep.send(conn_id, &bytes))
    }

    /// Waits for the next message. After a close, messages that arrived
    /// before it are still returned; then `RecvError::Closed`.
    pub fn recv(&self) -> Result<F::Msg, RecvError> {
        self.recv_until(None)
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<F::Msg, RecvError> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    fn recv_until(&self, until: Option<Instant>) -> Result<F::Msg, RecvError> {
        let mut s = self.shared.lock();
        loop {
            let failed = s.failure().is_some();
            match s.inboxes.get_mut(&self.conn_id) {
                Some(inbox) => {
                    if let Some(data) = inbox.msgs.pop_front() {
                        drop(s);
                        return self.shared.format.decode(&data).map_err(RecvError::Format);
                    }
                    if inbox.closed || failed {
                        return Err(RecvError::Closed);
                    }
                }
                None => return Err(RecvError::Closed),
            }
            let (g, timed_out) = self.shared.wait(s, until);
            s = g;
            if timed_out {
                return Err(RecvError::Timeout);
            }
        }
    }

    /// Closes the vconn; the other end is told.
    pub fn close(&self) {
        let mut s = self.shared.lock();
        s.ep.close_vconn(self.conn_id);
        if let Some(inbox) = s.inboxes.get_mut(&self.conn_id) {
            inbox.closed = true;
        }
        s.flush(0);
        self.shared.changed.notify_all();
    }
}

impl<F: MsgFormat> Drop for VirtualConn<F> {
    fn drop(&mut self) {
        self.close();
        self.shared.lock().inboxes.remove(&self.conn_id);
    }
}
