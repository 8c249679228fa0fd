//! [`Stream`]: the transports a gateway's listeners hand out (plain TCP,
//! snet over TCP,
//! TLS with the `tls` feature, WebSocket with `ws`) behind one type, so one
//! gateway core serves them all.

use std::io::IoSlice;
use std::net::SocketAddr;

use super::{IoStatus, Ready, Snet, Tcp, Transport};

/// A connection accepted by a gateway listener.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Tcp(Tcp),
    /// snet over TCP.
    Snet(Box<Snet<Tcp>>),
    /// TLS over TCP.
    #[cfg(feature = "tls")]
    Tls(Box<super::Tls>),
    /// WebSocket, plain or over TLS.
    #[cfg(feature = "ws")]
    Ws(Box<super::Ws>),
    /// The client side of a WebSocket (endpoints).
    #[cfg(feature = "ws")]
    WsClient(Box<super::WsClient>),
}

impl Stream {
    /// Takes the stream's socket off `registry`, if it still has one.
    pub fn deregister(&mut self, registry: &mio::Registry) {
        if let Some(source) = self.source() {
            let _ = registry.deregister(source);
        }
    }
}

macro_rules! each {
    ($self:ident, $t:ident => $e:expr) => {
        match $self {
            Stream::Tcp($t) => $e,
            Stream::Snet($t) => $e,
            #[cfg(feature = "tls")]
            Stream::Tls($t) => $e,
            #[cfg(feature = "ws")]
            Stream::Ws($t) => $e,
            #[cfg(feature = "ws")]
            Stream::WsClient($t) => $e,
        }
    };
}

impl Transport for Stream {
    #[inline]
    fn read(&mut self, buf: &mut [u8], ready: Ready) -> (usize, IoStatus) {
        each!(self, t => t.read(buf, ready))
    }

    #[inline]
    fn write(&mut self, bufs: &[IoSlice<'_>]) -> (usize, IoStatus) {
        each!(self, t => t.write(bufs))
    }

    fn shutdown_write(&mut self) -> IoStatus {
        each!(self, t => t.shutdown_write())
    }

    #[inline]
    fn wants_write(&self) -> bool {
        each!(self, t => t.wants_write())
    }

    fn is_handshaking(&self) -> bool {
        each!(self, t => t.is_handshaking())
    }

    fn peer_addr(&self) -> SocketAddr {
        each!(self, t => t.peer_addr())
    }

    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        each!(self, t => t.source())
    }

    fn as_snet(&self) -> Option<&Snet<Tcp>> {
        match self {
            Stream::Snet(s) => Some(s),
            _ => None,
        }
    }

    fn as_snet_mut(&mut self) -> Option<&mut Snet<Tcp>> {
        match self {
            Stream::Snet(s) => Some(s),
            _ => None,
        }
    }
}
