//! An in-memory transport for driving a [`Core`](super::Core) without
//! sockets: in tests, in fuzzing, and in users' own tests of code built on
//! the core. One clone goes to the core, the other stays with the test,
//! which plays the peer.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::rc::Rc;

#[derive(Debug, Default)]
struct State {
    inbox: VecDeque<u8>,
    outbox: Vec<u8>,
    eof: bool,
    write_room: Option<usize>,
}

/// Both ends of an in-memory connection. Reads by the core take what the
/// peer sent (`WouldBlock` when nothing waits, EOF once the peer hung up);
/// writes by the core collect for the peer, up to an optional limit after
/// which they answer `WouldBlock`.
#[derive(Debug, Clone, Default)]
pub struct MemPipe(Rc<RefCell<State>>);

impl MemPipe {
    /// A new, open pipe with unlimited write room.
    pub fn new() -> MemPipe {
        MemPipe::default()
    }

    /// The peer sends bytes.
    pub fn send(&self, bytes: &[u8]) {
        self.0.borrow_mut().inbox.extend(bytes);
    }

    /// The peer hangs up: once its bytes are read, reads return EOF.
    pub fn hang_up(&self) {
        self.0.borrow_mut().eof = true;
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

    /// Whether `other` is a clone of this pipe.
    pub fn same(&self, other: &MemPipe) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Read for MemPipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.0.borrow_mut();
        if s.inbox.is_empty() {
            return if s.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(s.inbox.len());
        for (b, x) in buf.iter_mut().zip(s.inbox.drain(..n)) {
            *b = x;
        }
        Ok(n)
    }
}

impl Write for MemPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.0.borrow_mut();
        let n = match s.write_room {
            Some(0) => return Err(io::ErrorKind::WouldBlock.into()),
            Some(room) => buf.len().min(room),
            None => buf.len(),
        };
        if let Some(room) = s.write_room.as_mut() {
            *room -= n;
        }
        s.outbox.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut total = 0;
        for b in bufs {
            match self.write(b) {
                Ok(n) => {
                    total += n;
                    if n < b.len() {
                        break;
                    }
                }
                Err(e) if total == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
