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
    /// TLS over TCP.
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, mio::net::TcpStream>>),
}

impl WsSocket {
    fn tcp(&mut self) -> &mut mio::net::TcpStream {
        match self {
            WsSocket::Plain(s) => s,
            #[cfg(feature = "tls")]
            WsSocket::Tls(s) => &mut s.sock,
        }
    }
}

impl Read for WsSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            WsSocket::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            WsSocket::Tls(s) => s.read(buf),
        }
    }
}

impl Write for WsSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            WsSocket::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            WsSocket::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            WsSocket::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            WsSocket::Tls(s) => {
                // Push out what rustls holds; WouldBlock leaves it for later.
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

enum State {
    Handshake(Option<Box<MidHandshake<ServerHandshake<WsSocket, Check>>>>),
    Open(Box<WebSocket<WsSocket>>),
}

/// A WebSocket server connection.
pub struct Ws {
    state: State,
    peer: SocketAddr,
    /// Payload of the last binary message not yet handed out, from `at`.
    pending: Bytes,
    at: usize,
    /// Bytes written that do not yet make a whole frame.
    partial: Vec<u8>,
    /// Written messages (or a pong, or a close) tungstenite still holds.
    unflushed: bool,
    /// The close handshake was started; the FIN follows once it is done.
    closing: bool,
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
            pending: Bytes::new(),
            at: 0,
            partial: Vec::new(),
            unflushed: false,
            closing: false,
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
        match ws.flush() {
            Ok(()) => {
                self.unflushed = false;
                IoStatus::Continue
            }
            Err(e) if would_block(&e) => {
                self.unflushed = true;
                IoStatus::WouldBlock
            }
            Err(WsError::ConnectionClosed) => {
                self.unflushed = false;
                let _ = ws.get_mut().tcp().shutdown(Shutdown::Write);
                IoStatus::Closed
            }
            Err(e) => ws_status(&e, self.peer),
        }
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

/// The length of the first whole frame at the start of `bytes`, if any.
fn whole_frame(bytes: &[u8]) -> Option<usize> {
    let len = bytes.get(..LENGTH_LEN)?;
    let n = LENGTH_LEN + u32::from_le_bytes(len.try_into().ok()?) as usize;
    (bytes.len() >= n && n >= HEADER_LEN).then_some(n)
}

impl Transport for Ws {
    fn read(&mut self, buf: &mut [u8], _ready: Ready) -> (usize, IoStatus) {
        loop {
            if self.at < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.at);
                buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
                self.at += n;
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
                Ok(Message::Binary(b)) => {
                    self.pending = b;
                    self.at = 0;
                }
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
        let mut taken = 0;
        'bufs: for b in bufs {
            let mut b: &[u8] = b;
            while !b.is_empty() {
                // Complete the held-back frame, or take whole frames
                // straight from the buffer.
                let State::Open(ws) = &mut self.state else {
                    break 'bufs;
                };
                let frame: Vec<u8> = if self.partial.is_empty() {
                    match whole_frame(b) {
                        Some(n) => {
                            let f = b[..n].to_vec();
                            b = &b[n..];
                            taken += n;
                            f
                        }
                        None => {
                            self.partial.extend_from_slice(b);
                            taken += b.len();
                            break;
                        }
                    }
                } else {
                    let need = match whole_frame(&self.partial) {
                        Some(_) => 0,
                        None if self.partial.len() < LENGTH_LEN => {
                            (LENGTH_LEN - self.partial.len()).min(b.len())
                        }
                        None => {
                            let len = u32::from_le_bytes(
                                self.partial[..LENGTH_LEN].try_into().unwrap_or_default(),
                            );
                            (LENGTH_LEN + len as usize - self.partial.len()).min(b.len())
                        }
                    };
                    self.partial.extend_from_slice(&b[..need]);
                    b = &b[need..];
                    taken += need;
                    if whole_frame(&self.partial).is_none() {
                        continue;
                    }
                    std::mem::take(&mut self.partial)
                };
                match ws.write(Message::binary(frame)) {
                    Ok(()) => self.unflushed = true,
                    Err(WsError::WriteBufferFull(msg)) => {
                        // Keep it for the next write; the socket is full.
                        if let Message::Binary(f) = msg {
                            self.partial = f.to_vec();
                        }
                        self.unflushed = true;
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
        self.closing = true;
        match ws.close(None) {
            Ok(()) => {
                self.unflushed = true;
                match self.flush() {
                    IoStatus::WouldBlock => IoStatus::Continue,
                    status => status,
                }
            }
            Err(e) => ws_status(&e, self.peer),
        }
    }

    fn wants_write(&self) -> bool {
        self.unflushed || whole_frame(&self.partial).is_some()
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

#[cfg(test)]
mod tests {
    use super::*;

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
