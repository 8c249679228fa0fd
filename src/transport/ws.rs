//! WebSocket for browser clients (feature `ws`): a tungstenite server
//! connection over a non-blocking socket, plain or inside TLS.
//!
//! The mapping to the byte stream the core reads and writes:
//!
//! - from the client, the payloads of binary messages, in order, are the
//!   byte stream: a message may hold several frames or part of one; a text
//!   message is refused (the connection is closed);
//! - to the client, every uniway frame is one binary message: bytes the
//!   core writes are cut at frame boundaries (a frame's start held back
//!   until its end is written);
//! - pings are answered, a close is answered and ends the stream; the
//!   handshake (HTTP upgrade, path and Origin checked) is resumed on every
//!   readiness event until done.
//!
//! Plaintext tungstenite has read but not yet handed out is kept here and
//! given out before the socket is read again, so none waits behind an edge
//! that will not come.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

use tungstenite::handshake::server::{ErrorResponse, Request, Response, ServerHandshake};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Bytes, Error as WsError, Message, WebSocket};

use super::{IoStatus, Ready, Transport};
use crate::wire::{HEADER_LEN, LENGTH_LEN};

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

impl Write for WsSocket {
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

/// The payload of the last binary message received, handed out in pieces.
#[derive(Default)]
struct Inbox {
    bytes: Bytes,
    at: usize,
}

impl Inbox {
    /// Copies what is left of the message into `buf`; `None` if nothing is.
    fn take(&mut self, buf: &mut [u8]) -> Option<usize> {
        let left = self.bytes.len() - self.at;
        if left == 0 {
            return None;
        }
        let n = buf.len().min(left);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Some(n)
    }

    fn put(&mut self, bytes: Bytes) {
        self.bytes = bytes;
        self.at = 0;
    }
}

/// Writes what tungstenite holds; `unflushed` says whether some is left.
fn flush_ws<S: Read + Write>(
    ws: &mut WebSocket<S>,
    unflushed: &mut bool,
    peer: SocketAddr,
) -> IoStatus {
    match ws.flush() {
        Ok(()) => {
            *unflushed = false;
            IoStatus::Continue
        }
        Err(e) if would_block(&e) => {
            *unflushed = true;
            IoStatus::WouldBlock
        }
        Err(WsError::ConnectionClosed) => {
            *unflushed = false;
            IoStatus::Closed
        }
        Err(e) => ws_status(&e, peer),
    }
}

/// Starts the close handshake: a Close message, flushed as far as it goes.
fn close_ws<S: Read + Write>(
    ws: &mut WebSocket<S>,
    unflushed: &mut bool,
    peer: SocketAddr,
) -> IoStatus {
    match ws.close(None) {
        Ok(()) => match flush_ws(ws, unflushed, peer) {
            IoStatus::WouldBlock => IoStatus::Continue,
            status => status,
        },
        Err(e) => ws_status(&e, peer),
    }
}

enum State {
    Handshake(Option<Box<MidHandshake<ServerHandshake<WsSocket, Check>>>>),
    Open(Box<WebSocket<WsSocket>>),
}

/// A WebSocket server connection.
pub struct Ws {
    state: State,
    peer: SocketAddr,
    /// What is left of the last binary message received.
    inbox: Inbox,
    /// Cuts what the gateway writes into whole frames.
    cutter: FrameCutter,
    /// A frame message tungstenite's buffer had no room for.
    stash: Option<Message>,
    /// Written messages (or a pong, or a close) tungstenite still holds.
    unflushed: bool,
}

impl std::fmt::Debug for Ws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ws")
            .field("peer", &self.peer)
            .field("open", &matches!(self.state, State::Open(_)))
            .finish()
    }
}

fn would_block(e: &WsError) -> bool {
    matches!(e, WsError::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
}

impl Ws {
    /// Starts the server handshake on an accepted socket; it goes on as
    /// the socket allows. A handshake that fails at once leaves a `Ws`
    /// whose first read reports the error (and whose socket is closed).
    pub fn accept(socket: WsSocket, peer: SocketAddr, settings: Arc<WsSettings>) -> Ws {
        let max = settings.max_packet as usize + LENGTH_LEN;
        // Room for one frame of the largest size over what is unsent:
        // writes take no new frame while anything is unsent (see `write`).
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
            .max_write_buffer_size(2 * max + 64 * 1024);
        let mid = match tungstenite::accept_hdr_with_config(socket, Check(settings), Some(config)) {
            Ok(ws) => State::Open(Box::new(ws)),
            Err(HandshakeError::Interrupted(mid)) => State::Handshake(Some(Box::new(mid))),
            Err(HandshakeError::Failure(e)) => {
                log::debug!("WebSocket from {peer}: {e}");
                State::Handshake(None)
            }
        };
        Ws {
            state: mid,
            peer,
            inbox: Inbox::default(),
            cutter: FrameCutter::default(),
            stash: None,
            unflushed: false,
        }
    }

    /// Moves the handshake on; `Continue` once open.
    fn handshake(&mut self) -> IoStatus {
        let State::Handshake(mid) = &mut self.state else {
            return IoStatus::Continue;
        };
        let Some(m) = mid.take() else {
            return IoStatus::Error(io::ErrorKind::InvalidData);
        };
        match (*m).handshake() {
            Ok(ws) => {
                self.state = State::Open(Box::new(ws));
                IoStatus::Continue
            }
            Err(HandshakeError::Interrupted(m)) => {
                *mid = Some(Box::new(m));
                IoStatus::WouldBlock
            }
            Err(HandshakeError::Failure(e)) => {
                log::debug!("WebSocket from {}: {e}", self.peer);
                IoStatus::Error(io::ErrorKind::InvalidData)
            }
        }
    }

    fn flush(&mut self) -> IoStatus {
        let State::Open(ws) = &mut self.state else {
            return IoStatus::Continue;
        };
        let status = flush_ws(ws, &mut self.unflushed, self.peer);
        if status == IoStatus::Closed {
            // The close handshake is done: the end of the TCP stream too.
            let _ = ws.get_mut().tcp().shutdown(Shutdown::Write);
        }
        status
    }
}

fn ws_status(e: &WsError, peer: SocketAddr) -> IoStatus {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => IoStatus::Closed,
        WsError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => IoStatus::Closed,
        WsError::Io(e) => IoStatus::Error(e.kind()),
        other => {
            log::debug!("WebSocket from {peer}: {other}");
            IoStatus::Error(io::ErrorKind::InvalidData)
        }
    }
}

/// The size a frame starting with `bytes` says it has (its Length field
/// plus the field itself, never less than a header), once the field is in.
fn frame_size(bytes: &[u8]) -> Option<usize> {
    let len: [u8; LENGTH_LEN] = bytes.get(..LENGTH_LEN)?.try_into().ok()?;
    Some((LENGTH_LEN + u32::from_le_bytes(len) as usize).max(HEADER_LEN))
}

/// The length of the first whole frame at the start of `bytes`, if any.
fn whole_frame(bytes: &[u8]) -> Option<usize> {
    frame_size(bytes).filter(|&n| bytes.len() >= n)
}

/// Cuts a stream of frames, written in arbitrary pieces, into whole
/// frames: the start of a frame is held until its end arrives.
#[derive(Debug, Default)]
pub struct FrameCutter {
    held: Vec<u8>,
}

impl FrameCutter {
    /// The next whole frame, taking bytes from the front of `bytes`; `None`
    /// once `bytes` is used up (with the start of a frame held, perhaps).
    pub fn next_frame(&mut self, bytes: &mut &[u8]) -> Option<Vec<u8>> {
        if self.held.is_empty() {
            if let Some(n) = whole_frame(bytes) {
                let f = bytes[..n].to_vec();
                *bytes = &bytes[n..];
                return Some(f);
            }
            self.held.extend_from_slice(bytes);
            *bytes = &[];
            return None;
        }
        if self.held.len() < LENGTH_LEN {
            let k = (LENGTH_LEN - self.held.len()).min(bytes.len());
            self.held.extend_from_slice(&bytes[..k]);
            *bytes = &bytes[k..];
        }
        let size = frame_size(&self.held)?;
        let k = size.saturating_sub(self.held.len()).min(bytes.len());
        self.held.extend_from_slice(&bytes[..k]);
        *bytes = &bytes[k..];
        (self.held.len() >= size).then(|| std::mem::take(&mut self.held))
    }

    /// Bytes held: the start of a frame.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

impl Transport for Ws {
    fn read(&mut self, buf: &mut [u8], _ready: Ready) -> (usize, IoStatus) {
        loop {
            if let Some(n) = self.inbox.take(buf) {
                return (n, IoStatus::Continue);
            }
            if let State::Handshake(_) = self.state {
                match self.handshake() {
                    IoStatus::Continue => {}
                    status => return (0, status),
                }
            }
            let State::Open(ws) = &mut self.state else {
                return (0, IoStatus::Error(io::ErrorKind::InvalidData));
            };
            match ws.read() {
                Ok(Message::Binary(b)) => self.inbox.put(b),
                Ok(Message::Text(_)) => {
                    log::debug!(
                        "WebSocket from {}: a text message (only binary is spoken)",
                        self.peer
                    );
                    return (0, IoStatus::Error(io::ErrorKind::InvalidData));
                }
                // Pings are answered by tungstenite (on the next flush);
                // a close is answered the same way, then reads end.
                Ok(Message::Ping(_) | Message::Close(_)) => {
                    self.unflushed = true;
                    if let IoStatus::Error(kind) = self.flush() {
                        return (0, IoStatus::Error(kind));
                    }
                }
                Ok(Message::Pong(_) | Message::Frame(_)) => {}
                Err(e) if would_block(&e) => {
                    let _ = self.flush();
                    return (0, IoStatus::WouldBlock);
                }
                Err(e) => return (0, ws_status(&e, self.peer)),
            }
        }
    }

    fn write(&mut self, bufs: &[IoSlice<'_>]) -> (usize, IoStatus) {
        if let State::Handshake(_) = self.state {
            // Nothing goes to a client before it is a WebSocket; the read
            // that completes the handshake comes with a writable edge.
            return (0, IoStatus::WouldBlock);
        }
        // Nothing new is taken while tungstenite still holds unsent bytes:
        // what the gateway queues stays in its queue, under its caps.
        if self.unflushed {
            match self.flush() {
                IoStatus::Continue => {}
                status => return (0, status),
            }
        }
        let State::Open(ws) = &mut self.state else {
            return (0, IoStatus::Error(io::ErrorKind::InvalidData));
        };
        // A frame tungstenite refused last time goes first.
        if let Some(msg) = self.stash.take() {
            match ws.write(msg) {
                Ok(()) => self.unflushed = true,
                Err(WsError::WriteBufferFull(msg)) => {
                    self.stash = Some(msg);
                    return (0, IoStatus::WouldBlock);
                }
                Err(e) => return (0, ws_status(&e, self.peer)),
            }
        }
        let mut taken = 0;
        for b in bufs {
            let mut rest: &[u8] = b;
            loop {
                let before = rest.len();
                let frame = self.cutter.next_frame(&mut rest);
                taken += before - rest.len();
                let Some(frame) = frame else { break };
                match ws.write(Message::binary(frame)) {
                    Ok(()) => self.unflushed = true,
                    Err(WsError::WriteBufferFull(msg)) => {
                        // Kept for the next write; the socket is full.
                        self.stash = Some(msg);
                        return (taken, IoStatus::WouldBlock);
                    }
                    Err(e) => return (taken, ws_status(&e, self.peer)),
                }
            }
        }
        match self.flush() {
            IoStatus::Continue => (taken, IoStatus::Continue),
            status => (taken, status),
        }
    }

    fn shutdown_write(&mut self) -> IoStatus {
        let State::Open(ws) = &mut self.state else {
            return IoStatus::Closed;
        };
        close_ws(ws, &mut self.unflushed, self.peer)
    }

    fn wants_write(&self) -> bool {
        self.unflushed || self.stash.is_some()
    }

    fn is_handshaking(&self) -> bool {
        matches!(self.state, State::Handshake(_))
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        match &mut self.state {
            State::Open(ws) => Some(ws.get_mut().tcp()),
            State::Handshake(Some(mid)) => Some(mid.get_mut().get_mut().tcp()),
            State::Handshake(None) => None,
        }
    }
}

/// Largest message a [`WsClient`] sends.
const CLIENT_MESSAGE: usize = 16 * 1024;

/// The client side of a WebSocket to a gateway's WebSocket listener, over
/// plain TCP: what the Rust endpoints use to reach it (tests, the load
/// tool). The handshake starts once the socket is connected (the first
/// writable edge); what the endpoint writes goes out as binary messages,
/// split anywhere; binary messages received are the byte stream.
pub struct WsClient {
    state: ClientState,
    peer: SocketAddr,
    inbox: Inbox,
    unflushed: bool,
}

enum ClientState {
    Start(Option<Box<(WsSocket, Request)>>),
    Handshake(Option<Box<MidHandshake<tungstenite::ClientHandshake<WsSocket>>>>),
    Open(Box<WebSocket<WsSocket>>),
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient")
            .field("peer", &self.peer)
            .field("open", &matches!(self.state, ClientState::Open(_)))
            .finish()
    }
}

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
            inbox: Inbox::default(),
            unflushed: false,
        })
    }

    /// Moves the handshake on; `Continue` once open.
    fn advance(&mut self) -> IoStatus {
        let step = match &mut self.state {
            ClientState::Open(_) => return IoStatus::Continue,
            ClientState::Start(start) => {
                let Some(start) = start.take() else {
                    return IoStatus::Error(io::ErrorKind::InvalidData);
                };
                let (socket, request) = *start;
                let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
                tungstenite::client::client_with_config(request, socket, Some(config))
            }
            ClientState::Handshake(mid) => {
                let Some(m) = mid.take() else {
                    return IoStatus::Error(io::ErrorKind::InvalidData);
                };
                (*m).handshake()
            }
        };
        match step {
            Ok((ws, _)) => {
                self.state = ClientState::Open(Box::new(ws));
                IoStatus::Continue
            }
            Err(HandshakeError::Interrupted(m)) => {
                self.state = ClientState::Handshake(Some(Box::new(m)));
                IoStatus::WouldBlock
            }
            Err(HandshakeError::Failure(e)) => ws_status(&e, self.peer),
        }
    }

    fn flush(&mut self) -> IoStatus {
        match &mut self.state {
            ClientState::Open(ws) => flush_ws(ws, &mut self.unflushed, self.peer),
            _ => IoStatus::Continue,
        }
    }
}

impl Transport for WsClient {
    fn read(&mut self, buf: &mut [u8], _ready: Ready) -> (usize, IoStatus) {
        loop {
            if let Some(n) = self.inbox.take(buf) {
                return (n, IoStatus::Continue);
            }
            match self.advance() {
                IoStatus::Continue => {}
                status => return (0, status),
            }
            let ClientState::Open(ws) = &mut self.state else {
                return (0, IoStatus::WouldBlock);
            };
            match ws.read() {
                Ok(Message::Binary(b)) => self.inbox.put(b),
                Ok(Message::Ping(_) | Message::Close(_)) => {
                    self.unflushed = true;
                    if let IoStatus::Error(kind) = self.flush() {
                        return (0, IoStatus::Error(kind));
                    }
                }
                Ok(_) => {}
                Err(e) if would_block(&e) => return (0, IoStatus::WouldBlock),
                Err(e) => return (0, ws_status(&e, self.peer)),
            }
        }
    }

    fn write(&mut self, bufs: &[IoSlice<'_>]) -> (usize, IoStatus) {
        match self.advance() {
            IoStatus::Continue => {}
            status => return (0, status),
        }
        if self.unflushed {
            match self.flush() {
                IoStatus::Continue => {}
                status => return (0, status),
            }
        }
        let ClientState::Open(ws) = &mut self.state else {
            return (0, IoStatus::WouldBlock);
        };
        // Messages may be cut anywhere; small ones stay under any listener's
        // message limit (a frame's size).
        let mut sent = 0;
        for piece in bufs.iter().flat_map(|b| b.chunks(CLIENT_MESSAGE)) {
            match ws.write(Message::binary(piece.to_vec())) {
                Ok(()) => {
                    self.unflushed = true;
                    sent += piece.len();
                }
                Err(WsError::WriteBufferFull(_)) => return (sent, IoStatus::WouldBlock),
                Err(e) => return (sent, ws_status(&e, self.peer)),
            }
        }
        (sent, self.flush())
    }

    fn shutdown_write(&mut self) -> IoStatus {
        let ClientState::Open(ws) = &mut self.state else {
            return IoStatus::Closed;
        };
        close_ws(ws, &mut self.unflushed, self.peer)
    }

    fn wants_write(&self) -> bool {
        self.unflushed || !matches!(self.state, ClientState::Open(_))
    }

    fn is_handshaking(&self) -> bool {
        !matches!(self.state, ClientState::Open(_))
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        match &mut self.state {
            ClientState::Open(ws) => Some(ws.get_mut().tcp()),
            ClientState::Handshake(Some(mid)) => Some(mid.get_mut().get_mut().tcp()),
            ClientState::Start(Some(start)) => Some(start.0.tcp()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn frames_cut_from_any_pieces_are_the_frames_written(
            messages in proptest::collection::vec(proptest::collection::vec(0u8..=255, 0..300), 0..20),
            cuts in proptest::collection::vec(0usize..400, 0..40),
        ) {
            let mut stream = Vec::new();
            let mut frames = Vec::new();
            for (i, m) in messages.iter().enumerate() {
                let mut f = Vec::new();
                crate::wire::encode_frame(&mut f, i as u32 + 1, m);
                stream.extend_from_slice(&f);
                frames.push(f);
            }
            let mut cutter = FrameCutter::default();
            let mut out = Vec::new();
            let mut rest: &[u8] = &stream;
            for &c in cuts.iter().chain(std::iter::once(&usize::MAX)) {
                let (mut piece, tail) = rest.split_at(c.min(rest.len()));
                rest = tail;
                while let Some(f) = cutter.next_frame(&mut piece) {
                    out.push(f);
                }
                proptest::prop_assert!(piece.is_empty());
            }
            proptest::prop_assert_eq!(out, frames);
            proptest::prop_assert_eq!(cutter.held(), 0);
        }
    }

    #[test]
    fn frames_are_found_whole_or_not_at_all() {
        let mut f = Vec::new();
        crate::wire::encode_frame(&mut f, 7, b"hello");
        assert_eq!(whole_frame(&f), Some(f.len()));
        for n in 0..f.len() {
            assert_eq!(whole_frame(&f[..n]), None, "{n}");
        }
        f.extend_from_slice(&[1, 2]);
        assert_eq!(whole_frame(&f), Some(f.len() - 2));
    }
}
