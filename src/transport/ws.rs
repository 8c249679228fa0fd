//! WebSocket for browser clients (feature `ws`), over a non-blocking
//! socket, plain or inside TLS. On both sides tungstenite does the HTTP
//! handshake only and the data path is framed here (`ws_framed`), sharing
//! one open-socket type: [`Ws`] is the server side, [`WsClient`] the client
//! side the endpoints use (its frames masked, as a client's must be).
//!
//! The mapping to the byte stream the core reads and writes:
//!
//! - from the client, the payloads of binary messages, in order, are the
//!   byte stream: a message may hold several frames or part of one; a text
//!   message is refused (the connection is closed);
//! - to the client, every uniway frame is one binary message (in one or
//!   more WebSocket frames, following the pieces of the write queue);
//! - pings are answered, a close is answered and ends the stream; the
//!   handshake (HTTP upgrade, path and Origin checked) is resumed on every
//!   readiness event until done.
//!
//! On both sides the handshake's socket stops reading at the end of the
//! HTTP request or response, so the framing starts with every byte the
//! peer sent after it and none waits inside tungstenite behind an edge that
//! will not come.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

use tungstenite::handshake::server::{ErrorResponse, Request, Response, ServerHandshake};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error as WsError, WebSocket};

use super::ws_framed::Framed;
use super::{read_status, write_status, IoStatus, Ready, Transport};
use crate::wire::LENGTH_LEN;

/// tungstenite's read buffer per connection. Its default (128 KiB,
/// allocated up front) would cost every idle browser that much; a larger
/// message simply takes several reads.
const READ_BUFFER: usize = 4 * 1024;

/// What a WebSocket listener accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSettings {
    /// The request path clients must ask for (`/` by default).
    pub path: String,
    /// The `Origin` headers allowed; empty: any (a non-browser client
    /// sends none, and is allowed when this is empty).
    pub origins: Vec<String>,
    /// Largest frame Length (the gateway's `MaxPacket`): a message larger
    /// than a frame can be is refused.
    pub max_packet: u32,
}

/// The socket under the WebSocket: plain, or TLS (server side).
pub enum WsSocket {
    /// Plain TCP.
    Plain(mio::net::TcpStream),
    /// TLS over TCP, server side.
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, mio::net::TcpStream>>),
    /// TLS over TCP, client side.
    #[cfg(feature = "tls")]
    TlsClient(Box<rustls::StreamOwned<rustls::ClientConnection, mio::net::TcpStream>>),
}

impl std::fmt::Debug for WsSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WsSocket::Plain(_) => "WsSocket::Plain",
            #[cfg(feature = "tls")]
            WsSocket::Tls(_) => "WsSocket::Tls",
            #[cfg(feature = "tls")]
            WsSocket::TlsClient(_) => "WsSocket::TlsClient",
        })
    }
}

impl WsSocket {
    fn tcp(&mut self) -> &mut mio::net::TcpStream {
        match self {
            WsSocket::Plain(s) => s,
            #[cfg(feature = "tls")]
            WsSocket::Tls(s) => &mut s.sock,
            #[cfg(feature = "tls")]
            WsSocket::TlsClient(s) => &mut s.sock,
        }
    }
}

impl Read for WsSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            WsSocket::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            WsSocket::Tls(s) => s.read(buf),
            #[cfg(feature = "tls")]
            WsSocket::TlsClient(s) => s.read(buf),
        }
    }
}

impl WsSocket {
    /// Whether the WebSocket runs over TLS.
    fn is_tls(&self) -> bool {
        !matches!(self, WsSocket::Plain(_))
    }

    /// Whether TLS holds encrypted bytes not yet handed to the socket.
    fn tls_pending(&self) -> bool {
        match self {
            WsSocket::Plain(_) => false,
            #[cfg(feature = "tls")]
            WsSocket::Tls(s) => s.conn.wants_write(),
            #[cfg(feature = "tls")]
            WsSocket::TlsClient(s) => s.conn.wants_write(),
        }
    }
}

impl Write for WsSocket {
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            WsSocket::Plain(s) => s.write_vectored(bufs),
            #[cfg(feature = "tls")]
            WsSocket::Tls(s) => rustls::Stream::new(&mut s.conn, &mut s.sock).write_vectored(bufs),
            #[cfg(feature = "tls")]
            WsSocket::TlsClient(s) => {
                rustls::Stream::new(&mut s.conn, &mut s.sock).write_vectored(bufs)
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            WsSocket::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            WsSocket::Tls(s) => s.write(buf),
            #[cfg(feature = "tls")]
            WsSocket::TlsClient(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            WsSocket::Plain(s) => s.flush(),
            // Push out what rustls holds; WouldBlock leaves it for later.
            #[cfg(feature = "tls")]
            WsSocket::Tls(s) => {
                while s.conn.wants_write() {
                    s.conn.write_tls(&mut s.sock)?;
                }
                Ok(())
            }
            #[cfg(feature = "tls")]
            WsSocket::TlsClient(s) => {
                while s.conn.wants_write() {
                    s.conn.write_tls(&mut s.sock)?;
                }
                Ok(())
            }
        }
    }
}

/// The socket as tungstenite's server handshake sees it: reads stop at
/// the end of the HTTP request, so bytes a client sends right after it are
/// kept (`leftover`) for the framing, not buffered inside tungstenite.
pub(super) struct HsSocket {
    /// Taken out once the handshake is done.
    inner: Option<WsSocket>,
    /// Bytes of "\r\n\r\n" matched at the end of what was handed out.
    matched: usize,
    /// The request is whole: nothing more is handed to tungstenite.
    done: bool,
    leftover: Vec<u8>,
}

impl HsSocket {
    fn new(inner: WsSocket) -> HsSocket {
        HsSocket {
            inner: Some(inner),
            matched: 0,
            done: false,
            leftover: Vec::new(),
        }
    }
}

impl Read for HsSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(inner) = self.inner.as_mut().filter(|_| !self.done) else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let n = inner.read(buf)?;
        for (i, &b) in buf[..n].iter().enumerate() {
            let want = b"\r\n\r\n"[self.matched];
            self.matched = if b == want {
                self.matched + 1
            } else if b == b'\r' {
                1
            } else {
                0
            };
            if self.matched == 4 {
                self.done = true;
                self.leftover.extend_from_slice(&buf[i + 1..n]);
                return Ok(i + 1);
            }
        }
        Ok(n)
    }
}

impl Write for HsSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Some(s) => s.write(buf),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

/// Checks a handshake request's path and Origin.
struct Check(Arc<WsSettings>);

impl tungstenite::handshake::server::Callback for Check {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        let refuse = |status: u16, why: String| {
            let mut r = ErrorResponse::new(Some(why));
            *r.status_mut() = status.try_into().unwrap_or_default();
            r
        };
        if request.uri().path() != self.0.path {
            return Err(refuse(
                404,
                format!("no WebSocket at {}", request.uri().path()),
            ));
        }
        if !self.0.origins.is_empty() {
            let origin = request
                .headers()
                .get("origin")
                .and_then(|o| o.to_str().ok())
                .unwrap_or("");
            if !self.0.origins.iter().any(|o| o == origin) {
                return Err(refuse(403, format!("origin {origin:?} not allowed")));
            }
        }
        Ok(response)
    }
}

/// An open WebSocket, either side: the socket, and the framing of its data
/// path (`ws_framed`), with the I/O both sides share.
struct Opened {
    sock: WsSocket,
    framed: Framed,
}

impl Opened {
    fn read(&mut self, buf: &mut [u8], ready: Ready, peer: SocketAddr) -> (usize, IoStatus) {
        let short_is_drained = matches!(self.sock, WsSocket::Plain(_)) && !ready.is_ending();
        let (n, status) = self.framed.read(&mut self.sock, buf, short_is_drained);
        if status.is_end() {
            if let IoStatus::Error(_) = status {
                log::debug!("WebSocket with {peer}: refused");
            }
            return (n, status);
        }
        // Pongs, or the answer to a close, go out now (between frames).
        if self.framed.wants_write() {
            if let IoStatus::Error(kind) = self.flush() {
                return (n, IoStatus::Error(kind));
            }
        }
        if self.framed.peer_closed() && n == 0 {
            return (0, IoStatus::Closed);
        }
        (n, status)
    }

    fn write(&mut self, bufs: &[IoSlice<'_>]) -> (usize, IoStatus) {
        // What TLS holds goes first.
        if let Err(status) = self.flush_tls() {
            return (0, status);
        }
        let (n, status) = if self.framed.is_client() {
            self.framed.write_client(&mut self.sock, bufs, CLIENT_WRITE)
        } else {
            self.framed.write(&mut self.sock, bufs)
        };
        match status {
            IoStatus::Continue => match self.flush_tls() {
                Ok(()) => (n, IoStatus::Continue),
                Err(status) => (n, status),
            },
            // Over TLS a short write may only mean rustls' send buffer was
            // full; if all it held went to the socket, the socket is not
            // full, no writable edge will come, and the caller must go on.
            IoStatus::WouldBlock if self.sock.is_tls() && !self.sock.tls_pending() => {
                (n, IoStatus::Continue)
            }
            status => (n, status),
        }
    }

    /// Pushes out what TLS holds.
    fn flush_tls(&mut self) -> Result<(), IoStatus> {
        if !self.sock.tls_pending() {
            return Ok(());
        }
        // A flush is a write that offers nothing new.
        match write_status(self.sock.flush().map(|()| 0), 0) {
            (_, IoStatus::Continue) => Ok(()),
            (_, status) => Err(status),
        }
    }

    /// Writes what the framing and TLS hold; once a close has gone out
    /// whole, the TCP stream ends too.
    fn flush(&mut self) -> IoStatus {
        let status = self.framed.flush(&mut self.sock);
        if status != IoStatus::Continue {
            return status;
        }
        if let Err(status) = self.flush_tls() {
            return status;
        }
        if self.framed.closed_out() {
            let _ = self.sock.tcp().shutdown(Shutdown::Write);
            return IoStatus::Closed;
        }
        IoStatus::Continue
    }

    fn shutdown_write(&mut self) -> IoStatus {
        self.framed.close();
        match self.flush() {
            IoStatus::WouldBlock | IoStatus::Closed => IoStatus::Continue,
            status => status,
        }
    }

    fn wants_write(&self) -> bool {
        self.framed.wants_write() || self.sock.tls_pending()
    }
}

enum State {
    Handshake(Option<Box<MidHandshake<ServerHandshake<HsSocket, Check>>>>),
    /// Open: tungstenite's part is over; the socket is framed here.
    Open(Box<Opened>),
    /// The handshake failed.
    Failed,
}

/// A WebSocket server connection: tungstenite does the handshake, the data
/// path is framed by hand (`ws_framed`).
pub struct Ws {
    state: State,
    peer: SocketAddr,
    max_message: usize,
}

impl std::fmt::Debug for Ws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ws")
            .field("peer", &self.peer)
            .field("open", &matches!(self.state, State::Open(_)))
            .finish()
    }
}

impl Ws {
    /// Starts the server handshake on an accepted socket; it goes on as
    /// the socket allows. A handshake that fails at once leaves a `Ws`
    /// whose first read reports the error (and whose socket is closed).
    pub fn accept(socket: WsSocket, peer: SocketAddr, settings: Arc<WsSettings>) -> Ws {
        let max_message = settings.max_packet as usize + LENGTH_LEN;
        // tungstenite only does the handshake: its buffers are dropped with
        // it once the handshake is done.
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let mut ws = Ws {
            state: State::Failed,
            peer,
            max_message,
        };
        let result = tungstenite::accept_hdr_with_config(
            HsSocket::new(socket),
            Check(settings),
            Some(config),
        );
        ws.handshake_step(result);
        ws
    }

    /// Takes the outcome of a handshake step.
    fn handshake_step(
        &mut self,
        result: Result<WebSocket<HsSocket>, HandshakeError<ServerHandshake<HsSocket, Check>>>,
    ) -> IoStatus {
        match result {
            Ok(mut ws) => {
                // tungstenite read nothing past the request: what the
                // client sent after it is in `leftover`, for the framing.
                let sock = ws.get_mut();
                let leftover = std::mem::take(&mut sock.leftover);
                match sock.inner.take() {
                    Some(inner) => {
                        self.state = State::Open(Box::new(Opened {
                            sock: inner,
                            framed: Framed::new(self.max_message, leftover),
                        }));
                        IoStatus::Continue
                    }
                    None => {
                        self.state = State::Failed;
                        IoStatus::Error(io::ErrorKind::InvalidData)
                    }
                }
            }
            Err(HandshakeError::Interrupted(mid)) => {
                self.state = State::Handshake(Some(Box::new(mid)));
                IoStatus::WouldBlock
            }
            Err(HandshakeError::Failure(e)) => {
                log::debug!("WebSocket from {}: {e}", self.peer);
                self.state = State::Failed;
                IoStatus::Error(io::ErrorKind::InvalidData)
            }
        }
    }

    /// Moves the handshake on; `Continue` once open.
    fn handshake(&mut self) -> IoStatus {
        match &mut self.state {
            State::Open(_) => IoStatus::Continue,
            State::Failed | State::Handshake(None) => IoStatus::Error(io::ErrorKind::InvalidData),
            State::Handshake(mid) => match mid.take() {
                Some(m) => {
                    let result = (*m).handshake();
                    self.handshake_step(result)
                }
                None => IoStatus::Error(io::ErrorKind::InvalidData),
            },
        }
    }
}

fn ws_status(e: &WsError, peer: SocketAddr) -> IoStatus {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => IoStatus::Closed,
        // A failed handshake is over: only the end of the stream is told
        // apart from an error, by the rule every read follows.
        WsError::Io(e) => match read_status(Err(e.kind().into()), 1) {
            (_, IoStatus::Closed) => IoStatus::Closed,
            _ => IoStatus::Error(e.kind()),
        },
        other => {
            log::debug!("WebSocket from {peer}: {other}");
            IoStatus::Error(io::ErrorKind::InvalidData)
        }
    }
}

impl Transport for Ws {
    fn read(&mut self, buf: &mut [u8], ready: Ready) -> (usize, IoStatus) {
        if let State::Handshake(_) | State::Failed = self.state {
            match self.handshake() {
                IoStatus::Continue => {}
                status => return (0, status),
            }
        }
        match &mut self.state {
            State::Open(open) => open.read(buf, ready, self.peer),
            _ => (0, IoStatus::Error(io::ErrorKind::InvalidData)),
        }
    }

    fn write(&mut self, bufs: &[IoSlice<'_>]) -> (usize, IoStatus) {
        match &mut self.state {
            State::Open(open) => open.write(bufs),
            State::Failed => (0, IoStatus::Error(io::ErrorKind::InvalidData)),
            // Nothing goes to a client before it is a WebSocket; the read
            // that completes the handshake comes with a writable edge.
            State::Handshake(_) => (0, IoStatus::WouldBlock),
        }
    }

    fn shutdown_write(&mut self) -> IoStatus {
        match &mut self.state {
            State::Open(open) => open.shutdown_write(),
            _ => IoStatus::Closed,
        }
    }

    fn wants_write(&self) -> bool {
        match &self.state {
            State::Open(open) => open.wants_write(),
            _ => false,
        }
    }

    fn is_handshaking(&self) -> bool {
        matches!(self.state, State::Handshake(_))
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        match &mut self.state {
            State::Open(open) => Some(open.sock.tcp()),
            State::Handshake(Some(mid)) => mid
                .get_mut()
                .get_mut()
                .inner
                .as_mut()
                .map(|s| s.tcp() as &mut dyn mio::event::Source),
            State::Handshake(None) | State::Failed => None,
        }
    }
}

/// The client side of a WebSocket to a gateway's WebSocket listener, over
/// plain TCP: what the Rust endpoints use to reach it (tests, the load
/// tool). The handshake starts once the socket is connected (the first
/// writable edge); what the endpoint writes goes out as binary messages,
/// split anywhere; binary messages received are the byte stream.
pub struct WsClient {
    state: ClientState,
    peer: SocketAddr,
}

enum ClientState {
    Start(Option<Box<(WsSocket, Request)>>),
    Handshake(Option<Box<MidHandshake<tungstenite::ClientHandshake<HsSocket>>>>),
    /// Open: tungstenite's part is over; the socket is framed here.
    Open(Box<Opened>),
    Failed,
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient")
            .field("peer", &self.peer)
            .field("open", &matches!(self.state, ClientState::Open(_)))
            .finish()
    }
}

/// Most bytes a client turns into frames per write (masking copies them).
const CLIENT_WRITE: usize = 256 * 1024;

impl WsClient {
    /// A WebSocket to `path` at `peer` over a connected or connecting
    /// socket (`WsSocket::TlsClient` for WSS).
    pub fn connect(socket: WsSocket, peer: SocketAddr, path: &str) -> io::Result<WsClient> {
        use tungstenite::client::IntoClientRequest;
        let scheme = match socket {
            WsSocket::Plain(_) => "ws",
            #[cfg(feature = "tls")]
            _ => "wss",
        };
        let request = format!("{scheme}://{peer}{path}")
            .into_client_request()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(WsClient {
            state: ClientState::Start(Some(Box::new((socket, request)))),
            peer,
        })
    }

    /// Moves the handshake on; `Continue` once open.
    fn advance(&mut self) -> IoStatus {
        let step = match &mut self.state {
            ClientState::Open(_) => return IoStatus::Continue,
            ClientState::Failed => return IoStatus::Error(io::ErrorKind::InvalidData),
            ClientState::Start(start) => {
                let Some(start) = start.take() else {
                    return IoStatus::Error(io::ErrorKind::InvalidData);
                };
                let (socket, request) = *start;
                let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
                tungstenite::client::client_with_config(
                    request,
                    HsSocket::new(socket),
                    Some(config),
                )
            }
            ClientState::Handshake(mid) => {
                let Some(m) = mid.take() else {
                    return IoStatus::Error(io::ErrorKind::InvalidData);
                };
                (*m).handshake()
            }
        };
        match step {
            Ok((mut ws, _)) => {
                // The response was read up to its end and no further: what
                // the gateway sent after it is in `leftover`.
                let sock = ws.get_mut();
                let leftover = std::mem::take(&mut sock.leftover);
                let Some(inner) = sock.inner.take() else {
                    self.state = ClientState::Failed;
                    return IoStatus::Error(io::ErrorKind::InvalidData);
                };
                let seed = getrandom::u32().unwrap_or(0x9e37_79b9);
                self.state = ClientState::Open(Box::new(Opened {
                    sock: inner,
                    framed: Framed::client(usize::MAX, leftover, seed),
                }));
                IoStatus::Continue
            }
            Err(HandshakeError::Interrupted(m)) => {
                self.state = ClientState::Handshake(Some(Box::new(m)));
                IoStatus::WouldBlock
            }
            Err(HandshakeError::Failure(e)) => {
                self.state = ClientState::Failed;
                ws_status(&e, self.peer)
            }
        }
    }
}

impl Transport for WsClient {
    fn read(&mut self, buf: &mut [u8], ready: Ready) -> (usize, IoStatus) {
        match self.advance() {
            IoStatus::Continue => {}
            status => return (0, status),
        }
        match &mut self.state {
            ClientState::Open(open) => open.read(buf, ready, self.peer),
            _ => (0, IoStatus::WouldBlock),
        }
    }

    fn write(&mut self, bufs: &[IoSlice<'_>]) -> (usize, IoStatus) {
        match self.advance() {
            IoStatus::Continue => {}
            status => return (0, status),
        }
        match &mut self.state {
            ClientState::Open(open) => open.write(bufs),
            _ => (0, IoStatus::WouldBlock),
        }
    }

    fn shutdown_write(&mut self) -> IoStatus {
        match &mut self.state {
            ClientState::Open(open) => open.shutdown_write(),
            _ => IoStatus::Closed,
        }
    }

    fn wants_write(&self) -> bool {
        match &self.state {
            ClientState::Open(open) => open.wants_write(),
            ClientState::Failed => false,
            _ => true,
        }
    }

    fn is_handshaking(&self) -> bool {
        !matches!(self.state, ClientState::Open(_))
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        match &mut self.state {
            ClientState::Open(open) => Some(open.sock.tcp()),
            ClientState::Handshake(Some(mid)) => mid
                .get_mut()
                .get_mut()
                .inner
                .as_mut()
                .map(|s| s.tcp() as &mut dyn mio::event::Source),
            ClientState::Start(Some(start)) => Some(start.0.tcp()),
            _ => None,
        }
    }
}
