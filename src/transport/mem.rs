//! An in-memory transport for driving the gateway core without sockets: in
//! tests, in fuzzing, and in users' own tests of code built on the core.
//! One clone goes to the core, the other stays with the test, which plays
//! the peer.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice};
use std::net::SocketAddr;
use std::rc::Rc;

use super::{IoStatus, Ready, Transport};

#[derive(Debug)]
struct State {
    peer: SocketAddr,
    inbox: VecDeque<u8>,
    outbox: Vec<u8>,
    eof: bool,
    reset: bool,
    write_shut: bool,
    write_room: Option<usize>,
}

impl Default for State {
    fn default() -> Self {
        State {
            peer: SocketAddr::from(([127, 0, 0, 1], 4000)),
            inbox: VecDeque::new(),
            outbox: Vec::new(),
            eof: false,
            reset: false,
            write_shut: false,
            write_room: None,
        }
    }
}

/// Both ends of an in-memory connection. Reads by the core take what the
/// peer sent (`WouldBlock` when nothing waits, the end of the stream once
/// the peer hung up and everything sent was read, an error at once after a
/// reset); writes by the core collect for the peer, up to an optional limit
/// after which they would block.
#[derive(Debug, Clone, Default)]
pub struct MemPipe(Rc<RefCell<State>>);

impl MemPipe {
    /// A new, open pipe with unlimited write room, from 127.0.0.1:4000.
    pub fn new() -> MemPipe {
        MemPipe::default()
    }

    /// A new, open pipe from `peer`.
    pub fn with_peer(peer: SocketAddr) -> MemPipe {
        let p = MemPipe::default();
        p.0.borrow_mut().peer = peer;
        p
    }

    /// The peer sends bytes.
    pub fn send(&self, bytes: &[u8]) {
        self.0.borrow_mut().inbox.extend(bytes);
    }

    /// The peer hangs up: once its bytes are read, reads see the end.
    pub fn hang_up(&self) {
        self.0.borrow_mut().eof = true;
    }

    /// The connection is reset: unread bytes are lost, reads and writes
    /// fail from now on.
    pub fn reset(&self) {
        let mut s = self.0.borrow_mut();
        s.reset = true;
        s.inbox.clear();
    }

    /// Takes everything written to the peer so far. The pipe keeps its
    /// buffer's capacity, so the core's later writes need not allocate.
    pub fn take_output(&self) -> Vec<u8> {
        self.0.borrow_mut().outbox.drain(..).collect()
    }

    /// Limits how many more bytes the core may write (`None`: no limit).
    pub fn set_write_room(&self, room: Option<usize>) {
        self.0.borrow_mut().write_room = room;
    }

    /// Whether the core ended its writing side.
    pub fn write_shut(&self) -> bool {
        self.0.borrow().write_shut
    }

    /// Whether `other` is a clone of this pipe.
    pub fn same(&self, other: &MemPipe) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Transport for MemPipe {
    fn read(&mut self, buf: &mut [u8], _ready: Ready) -> (usize, IoStatus) {
        let mut s = self.0.borrow_mut();
        if s.reset {
            return (0, IoStatus::Error(ErrorKind::ConnectionReset));
        }
        if s.inbox.is_empty() {
            return match s.eof {
                true => (0, IoStatus::Closed),
                false => (0, IoStatus::WouldBlock),
            };
        }
        let n = buf.len().min(s.inbox.len());
        for (b, x) in buf.iter_mut().zip(s.inbox.drain(..n)) {
            *b = x;
        }
        (n, IoStatus::Continue)
    }

    fn write(&mut self, bufs: &[IoSlice<'_>]) -> (usize, IoStatus) {
        let mut s = self.0.borrow_mut();
        if s.reset {
            return (0, IoStatus::Error(ErrorKind::ConnectionReset));
        }
        if s.write_shut {
            return (0, IoStatus::Error(ErrorKind::BrokenPipe));
        }
        let mut total = 0;
        for b in bufs {
            let n = match s.write_room {
                Some(room) => b.len().min(room),
                None => b.len(),
            };
            if let Some(room) = s.write_room.as_mut() {
                *room -= n;
            }
            s.outbox.extend_from_slice(&b[..n]);
            total += n;
            if n < b.len() {
                return match total {
                    0 => (0, IoStatus::WouldBlock),
                    _ => (total, IoStatus::WouldBlock),
                };
            }
        }
        (total, IoStatus::Continue)
    }

    fn shutdown_write(&mut self) -> IoStatus {
        let mut s = self.0.borrow_mut();
        if s.reset {
            return IoStatus::Error(ErrorKind::ConnectionReset);
        }
        s.write_shut = true;
        IoStatus::Continue
    }

    fn peer_addr(&self) -> SocketAddr {
        self.0.borrow().peer
    }

    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        None
    }
}
