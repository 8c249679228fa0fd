//! TLS over TCP: a rustls connection (sans-IO), server side for a
//! gateway's listeners or client side for endpoints, driven over a
//! non-blocking mio socket.
//!
//! Reads hand out the plaintext rustls has decrypted, reading and
//! processing more records only when none is left, so plaintext rustls
//! holds is never stranded behind a readiness edge that will not come: a
//! read that fills the caller's buffer reports `Continue`, and only a read
//! that found rustls empty *and* the socket drained reports `WouldBlock`.
//! Handshake messages rustls produces while reading are written at once
//! (and, if the socket is full, reported through `wants_write` for the next
//! writable edge). Writes encrypt into rustls' buffer, bounded by
//! [`SEND_BUFFER`], and push what they can to the socket. The end of the
//! stream is a close_notify, then a FIN, once everything before it is out.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use super::{read_status, shutdown_status, write_status, IoStatus, Ready, Transport};

/// Most plaintext rustls buffers for sending before writes report
/// `WouldBlock` (the socket is full).
pub const SEND_BUFFER: usize = 64 * 1024;

/// A TLS connection over a mio TCP socket.
pub struct Tls {
    socket: mio::net::TcpStream,
    peer: SocketAddr,
    conn: Connection,
    /// The socket's read side reached its end.
    eof: bool,
    /// close_notify was queued; the FIN follows once it is out.
    fin_pending: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("peer", &self.peer)
            .field("handshaking", &self.conn.is_handshaking())
            .finish()
    }
}

impl Tls {
    /// Starts a server-side TLS connection on an accepted socket.
    pub fn accept(
        socket: mio::net::TcpStream,
        peer: SocketAddr,
        config: Arc<ServerConfig>,
    ) -> Result<Tls, rustls::Error> {
        Ok(Tls::over(
            socket,
            peer,
            ServerConnection::new(config)?.into(),
        ))
    }

    /// Starts a client-side TLS connection to `name` on a connected (or
    /// connecting) socket; the handshake runs as the socket allows.
    pub fn connect(
        socket: mio::net::TcpStream,
        peer: SocketAddr,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Tls, rustls::Error> {
        Ok(Tls::over(
            socket,
            peer,
            ClientConnection::new(config, name)?.into(),
        ))
    }

    fn over(socket: mio::net::TcpStream, peer: SocketAddr, mut conn: Connection) -> Tls {
        conn.set_buffer_limit(Some(SEND_BUFFER));
        Tls {
            socket,
            peer,
            conn,
            eof: false,
            fin_pending: false,
        }
    }

    /// The socket, e.g. to deregister it.
    pub fn socket_mut(&mut self) -> &mut mio::net::TcpStream {
        &mut self.socket
    }

    /// Writes what rustls holds for the socket: `Continue` when all of it
    /// went, `WouldBlock` when the socket is full.
    fn flush_tls(&mut self) -> IoStatus {
        while self.conn.wants_write() {
            // rustls offers at least a record whenever it wants to write.
            match write_status(self.conn.write_tls(&mut self.socket), 1) {
                (_, IoStatus::Continue) => {}
                (_, status) => return status,
            }
        }
        if self.fin_pending {
            self.fin_pending = false;
            return shutdown_status(self.socket.shutdown(Shutdown::Write));
        }
        IoStatus::Continue
    }
}

impl Transport for Tls {
    fn read(&mut self, buf: &mut [u8], _ready: Ready) -> (usize, IoStatus) {
        loop {
            // rustls' `WouldBlock`: no plaintext until more records come.
            match read_status(self.conn.reader().read(buf), buf.len()) {
                (_, IoStatus::WouldBlock) => {}
                done => return done,
            }
            if self.eof {
                return (0, IoStatus::Closed);
            }
            // rustls reads at least a record's worth when it reads at all.
            match read_status(self.conn.read_tls(&mut self.socket), 1) {
                (_, IoStatus::Continue) => {}
                (_, IoStatus::Closed) => self.eof = true,
                (_, status) => return (0, status),
            }
            if let Err(e) = self.conn.process_new_packets() {
                log::debug!("TLS from {}: {e}", self.peer);
                // Tell the peer why (an alert), as far as the socket takes it.
                let _ = self.flush_tls();
                return (0, IoStatus::Error(io::ErrorKind::InvalidData));
            }
            // Handshake replies go out now; a full socket leaves them to
            // the next writable edge (see `wants_write`).
            if let IoStatus::Error(kind) = self.flush_tls() {
                return (0, IoStatus::Error(kind));
            }
        }
    }

    fn write(&mut self, bufs: &[IoSlice<'_>]) -> (usize, IoStatus) {
        // Before the handshake is done rustls keeps what is written and
        // sends it once it is (the read that completes the handshake
        // flushes it).
        let mut taken = 0;
        let mut full = false;
        for b in bufs {
            match self.conn.writer().write(b) {
                Ok(n) => {
                    taken += n;
                    if n < b.len() {
                        full = true;
                        break;
                    }
                }
                Err(e) => return (taken, IoStatus::Error(e.kind())),
            }
        }
        match self.flush_tls() {
            IoStatus::Continue if full && self.conn.is_handshaking() => {
                (taken, IoStatus::WouldBlock)
            }
            status => (taken, status),
        }
    }

    fn shutdown_write(&mut self) -> IoStatus {
        self.conn.send_close_notify();
        self.fin_pending = true;
        match self.flush_tls() {
            IoStatus::WouldBlock => IoStatus::Continue,
            status => status,
        }
    }

    fn wants_write(&self) -> bool {
        self.conn.wants_write() || self.fin_pending
    }

    fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        Some(&mut self.socket)
    }
}
