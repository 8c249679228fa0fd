//! Plain TCP: the identity transport, with the readiness shortcuts that
//! only hold for a TCP socket under edge-triggered polling.
//!
//! - A read that returns fewer bytes than offered emptied the socket: new
//!   bytes raise a new edge, so no read is spent on `WouldBlock`. This does
//!   *not* hold when the poller already reported the end of the stream (or
//!   an error) for this socket: that report does not come again, so reading
//!   goes on until the end (or the error) is actually seen.
//! - A write that takes fewer bytes than offered filled the socket; freed
//!   room raises a new edge.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};

use super::{read_status, shutdown_status, total_len, write_status, IoStatus, Ready, Transport};

/// A TCP socket as the transports need it: mio's (non-blocking, polled)
/// or the standard library's (blocking).
pub trait Socket: Read + Write {
    /// The remote address, if the socket still knows it.
    fn remote(&self) -> io::Result<SocketAddr>;
    /// Shuts down one or both halves.
    fn shut(&self, how: Shutdown) -> io::Result<()>;
    /// The mio source, for sockets that have one.
    fn as_source(&mut self) -> Option<&mut dyn mio::event::Source>;
}

impl Socket for mio::net::TcpStream {
    fn remote(&self) -> io::Result<SocketAddr> {
        self.peer_addr()
    }
    fn shut(&self, how: Shutdown) -> io::Result<()> {
        self.shutdown(how)
    }
    fn as_source(&mut self) -> Option<&mut dyn mio::event::Source> {
        Some(self)
    }
}

impl Socket for std::net::TcpStream {
    fn remote(&self) -> io::Result<SocketAddr> {
        self.peer_addr()
    }
    fn shut(&self, how: Shutdown) -> io::Result<()> {
        self.shutdown(how)
    }
    fn as_source(&mut self) -> Option<&mut dyn mio::event::Source> {
        None
    }
}

/// Plain TCP.
#[derive(Debug)]
pub struct Tcp<S = mio::net::TcpStream> {
    socket: S,
    peer: SocketAddr,
}

impl<S: Socket> Tcp<S> {
    /// Wraps a connected socket whose peer is `peer`.
    pub fn new(socket: S, peer: SocketAddr) -> Tcp<S> {
        Tcp { socket, peer }
    }

    /// Wraps a connected socket, asking it for its peer's address (an
    /// unspecified address if it no longer knows).
    pub fn from_socket(socket: S) -> Tcp<S> {
        let peer = socket
            .remote()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        Tcp { socket, peer }
    }

    /// The socket.
    pub fn socket(&self) -> &S {
        &self.socket
    }

    /// The socket, mutably (e.g. to register it).
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.socket
    }

    /// Gives the socket back.
    pub fn into_socket(self) -> S {
        self.socket
    }
}

impl<S: Socket> Transport for Tcp<S> {
    #[inline]
    fn read(&mut self, buf: &mut [u8], ready: Ready) -> (usize, IoStatus) {
        let room = buf.len();
        let (n, status) = read_status(self.socket.read(buf), room);
        if matches!(status, IoStatus::Continue) && n > 0 && n < room && !ready.is_ending() {
            return (n, IoStatus::WouldBlock);
        }
        (n, status)
    }

    #[inline]
    fn write(&mut self, bufs: &[IoSlice<'_>]) -> (usize, IoStatus) {
        let offered = total_len(bufs);
        let result = match bufs {
            [one] => self.socket.write(one),
            _ => self.socket.write_vectored(bufs),
        };
        let (n, status) = write_status(result, offered);
        if matches!(status, IoStatus::Continue) && n < offered {
            return (n, IoStatus::WouldBlock);
        }
        (n, status)
    }

    fn shutdown_write(&mut self) -> IoStatus {
        shutdown_status(self.socket.shut(Shutdown::Write))
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        self.socket.as_source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (Tcp<TcpStream>, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (Tcp::from_socket(a), b)
    }

    #[test]
    fn short_read_is_would_block_unless_the_stream_is_ending() {
        let (mut t, mut peer) = pair();
        peer.write_all(b"hello").unwrap();
        drop(peer);
        let mut buf = [0u8; 64];
        // Give the bytes and the FIN time to arrive (a blocking read waits
        // for the bytes; the FIN follows them on loopback).
        let (n, st) = t.read(&mut buf, Ready::READABLE | Ready::READ_CLOSED);
        assert_eq!((n, st), (5, IoStatus::Continue));
        let (n, st) = t.read(&mut buf, Ready::READABLE | Ready::READ_CLOSED);
        assert_eq!((n, st), (0, IoStatus::Closed));
    }

    #[test]
    fn short_read_without_an_ending_means_drained() {
        let (mut t, mut peer) = pair();
        peer.write_all(b"abc").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(t.read(&mut buf, Ready::READABLE), (3, IoStatus::WouldBlock));
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(t.shutdown_write(), IoStatus::Continue);
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the FIN arrives after what was written");
    }
}
