//! Transports: what the framing reads its bytes from and writes them to.
//!
//! A [`Transport`] moves bytes and says, with every call, what the caller
//! may conclude about the stream ([`IoStatus`]): keep going, wait for the
//! next readiness event, the peer closed, or an error. That conclusion is
//! drawn here, once, for every user (the gateway core, the endpoint
//! driver, the blocking endpoint), so none of them reasons about `Ok(0)`,
//! `WouldBlock` or `Interrupted` on its own.
//!
//! [`Tcp`] is plain TCP and holds the TCP-only shortcuts (a short read or
//! write means the socket is drained or full) together with the rule that
//! keeps them honest: when the poller reported the read side closed or an
//! error, a short read proves nothing and reading goes on until the end of
//! the stream is seen. [`MemPipe`] is an in-memory stand-in for tests and
//! fuzzing. `Tls` (feature `tls`) is a rustls server connection over TCP.
//! [`Stream`] is whichever of them a gateway listener hands out. A
//! transport that keeps bytes of its own (encryption, a resend ring) says
//! so through [`Transport::wants_write`]; one still setting up through
//! [`Transport::is_handshaking`]. [`Snet`] is a stream that outlives its
//! TCP links (`docs/protocol.md` §7); the trait speaks bytes, and what
//! only snet has (its request, open, resume, a link lost) is reached
//! through [`Transport::as_snet_mut`].

mod mem;
mod ready;
mod snet;
mod stream;
mod tcp;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "ws")]
mod ws;
#[cfg(feature = "ws")]
mod ws_framed;

use std::io::{self, ErrorKind, IoSlice};
use std::net::SocketAddr;

pub use self::mem::MemPipe;
pub use self::ready::Ready;
pub use self::snet::Snet;
pub use self::stream::Stream;
pub use self::tcp::Tcp;
#[cfg(feature = "tls")]
pub use self::tls::{Tls, SEND_BUFFER};
#[cfg(feature = "ws")]
pub use self::ws::{Ws, WsClient, WsSettings, WsSocket};
/// The data-path framing of a server WebSocket, public for fuzzing.
#[cfg(feature = "ws")]
#[doc(hidden)]
pub use self::ws_framed::Framed as WsFraming;

/// What one read or write says about the stream, beside the bytes moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoStatus {
    /// More may be moved right away: call again.
    Continue,
    /// Nothing more can move until the poller reports readiness again.
    WouldBlock,
    /// The peer closed its end (reads), or the stream is finished.
    Closed,
    /// The stream failed.
    Error(ErrorKind),
}

impl IoStatus {
    /// Whether the stream is over (closed or failed).
    pub fn is_end(self) -> bool {
        matches!(self, IoStatus::Closed | IoStatus::Error(_))
    }

    /// The one reaction to a status every user of a transport has (the
    /// gateway core, the endpoint driver, the blocking endpoint's snet
    /// loop): anything but `Continue` spends the readiness `bit`
    /// (`READABLE` after a read, `WRITABLE` after a write), so the caller
    /// waits for the poller and a stream that ended is not tried again; an
    /// end comes back as the error.
    #[inline]
    pub fn settle(self, ready: &mut Ready, bit: Ready) -> Result<(), StreamEnd> {
        if self != IoStatus::Continue {
            ready.remove(bit);
        }
        self.end().map_or(Ok(()), Err)
    }

    /// How the stream ended, if it did.
    #[inline]
    pub fn end(self) -> Option<StreamEnd> {
        match self {
            IoStatus::Continue | IoStatus::WouldBlock => None,
            IoStatus::Closed => Some(StreamEnd::Closed),
            IoStatus::Error(kind) => Some(StreamEnd::Error(kind)),
        }
    }
}

/// A byte stream under the framing.
pub trait Transport {
    /// Reads into `buf`. `ready` is what the poller last reported for this
    /// stream; a transport may use it to skip a read that would block.
    fn read(&mut self, buf: &mut [u8], ready: Ready) -> (usize, IoStatus);

    /// Writes from `bufs` in order, as much as the stream takes now.
    fn write(&mut self, bufs: &[IoSlice<'_>]) -> (usize, IoStatus);

    /// Sends the end of the stream once everything written has gone out
    /// (TCP: FIN), keeping the read side open.
    fn shutdown_write(&mut self) -> IoStatus;

    /// Whether the transport holds bytes of its own to write, which the
    /// poller will not report: the caller keeps writing while this holds.
    fn wants_write(&self) -> bool {
        false
    }

    /// Whether the transport is still in a handshake of its own.
    fn is_handshaking(&self) -> bool {
        false
    }

    /// The peer's address.
    fn peer_addr(&self) -> SocketAddr;

    /// The mio source to register, if the transport has one.
    fn source(&mut self) -> Option<&mut dyn mio::event::Source>;

    /// The snet stream this is, if it is one (`docs/protocol.md` §7). The
    /// one way into snet's handshake, resume and link state for the
    /// gateway core and the endpoint driver; every other method speaks
    /// bytes only. [`Stream::Snet`] answers; other transports have none.
    fn as_snet(&self) -> Option<&Snet<Tcp>> {
        None
    }

    /// [`as_snet`](Self::as_snet), to act on the stream.
    fn as_snet_mut(&mut self) -> Option<&mut Snet<Tcp>> {
        None
    }
}

/// Classifies the result of one `read` call that offered `room` bytes:
/// the one rule for every byte source (sockets, rustls' plaintext reader,
/// the WebSocket framing's socket). `UnexpectedEof` (a TLS peer that closed
/// TCP without close_notify) is just the end of the stream.
#[inline]
pub fn read_status(result: io::Result<usize>, room: usize) -> (usize, IoStatus) {
    match result {
        Ok(0) if room > 0 => (0, IoStatus::Closed),
        Ok(n) => (n, IoStatus::Continue),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => (0, IoStatus::Closed),
        Err(e) => (0, error_status(e.kind())),
    }
}

/// Classifies the result of one `write` call that offered `offered` bytes.
#[inline]
pub fn write_status(result: io::Result<usize>, offered: usize) -> (usize, IoStatus) {
    match result {
        Ok(0) if offered > 0 => (0, IoStatus::Error(ErrorKind::WriteZero)),
        Ok(n) => (n, IoStatus::Continue),
        // A stream still connecting cannot take bytes yet; its readiness
        // will say when it can.
        Err(e) if e.kind() == ErrorKind::NotConnected => (0, IoStatus::WouldBlock),
        Err(e) => (0, error_status(e.kind())),
    }
}

/// Classifies the result of shutting a socket's write side: one no longer
/// connected has nothing left to end.
#[inline]
pub fn shutdown_status(result: io::Result<()>) -> IoStatus {
    match result {
        Ok(()) => IoStatus::Continue,
        Err(e) if e.kind() == ErrorKind::NotConnected => IoStatus::Closed,
        Err(e) => IoStatus::Error(e.kind()),
    }
}

fn error_status(kind: ErrorKind) -> IoStatus {
    match kind {
        ErrorKind::WouldBlock => IoStatus::WouldBlock,
        ErrorKind::Interrupted => IoStatus::Continue,
        kind => IoStatus::Error(kind),
    }
}

/// How a stream ended: an [`IoStatus`] that does not go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The peer closed its end, or the stream is finished.
    Closed,
    /// The stream failed.
    Error(ErrorKind),
}

/// Total length of `bufs`.
#[inline]
pub fn total_len(bufs: &[IoSlice<'_>]) -> usize {
    bufs.iter().map(|b| b.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_classified_once_and_for_all() {
        assert_eq!(read_status(Ok(0), 10), (0, IoStatus::Closed));
        assert_eq!(read_status(Ok(0), 0), (0, IoStatus::Continue));
        assert_eq!(read_status(Ok(7), 10), (7, IoStatus::Continue));
        let err = |k: ErrorKind| Err(io::Error::from(k));
        assert_eq!(
            read_status(err(ErrorKind::WouldBlock), 10),
            (0, IoStatus::WouldBlock)
        );
        assert_eq!(
            read_status(err(ErrorKind::Interrupted), 10),
            (0, IoStatus::Continue)
        );
        assert_eq!(
            read_status(err(ErrorKind::ConnectionReset), 10),
            (0, IoStatus::Error(ErrorKind::ConnectionReset))
        );
        assert_eq!(
            write_status(Ok(0), 5),
            (0, IoStatus::Error(ErrorKind::WriteZero))
        );
        assert_eq!(
            write_status(err(ErrorKind::NotConnected), 5),
            (0, IoStatus::WouldBlock)
        );
        assert_eq!(
            write_status(err(ErrorKind::BrokenPipe), 5),
            (0, IoStatus::Error(ErrorKind::BrokenPipe))
        );
        assert_eq!(
            read_status(err(ErrorKind::UnexpectedEof), 10),
            (0, IoStatus::Closed)
        );
        assert_eq!(
            shutdown_status(Err(io::Error::from(ErrorKind::NotConnected))),
            IoStatus::Closed
        );
        assert_eq!(shutdown_status(Ok(())), IoStatus::Continue);
        assert!(IoStatus::Closed.is_end() && IoStatus::Error(ErrorKind::Other).is_end());
        let mut ready = Ready::READABLE | Ready::WRITABLE;
        assert_eq!(
            IoStatus::Continue.settle(&mut ready, Ready::READABLE),
            Ok(())
        );
        assert!(ready.is_readable());
        assert_eq!(
            IoStatus::WouldBlock.settle(&mut ready, Ready::READABLE),
            Ok(())
        );
        assert!(!ready.is_readable() && ready.is_writable());
        assert_eq!(
            IoStatus::Closed.settle(&mut ready, Ready::WRITABLE),
            Err(StreamEnd::Closed)
        );
        assert!(!ready.is_writable());
        assert_eq!(
            IoStatus::Error(ErrorKind::BrokenPipe).end(),
            Some(StreamEnd::Error(ErrorKind::BrokenPipe))
        );
        assert!(IoStatus::WouldBlock.end().is_none() && IoStatus::Continue.end().is_none());
        assert!(!IoStatus::Continue.is_end() && !IoStatus::WouldBlock.is_end());
    }
}
