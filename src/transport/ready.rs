//! Readiness as the poller reports it: a few bits, kept per connection.

use std::ops::{BitOr, BitOrAssign};

/// Readiness bits of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready(u8);

impl Ready {
    /// Nothing reported.
    pub const EMPTY: Ready = Ready(0);
    /// Bytes (or the end of the stream) may be read.
    pub const READABLE: Ready = Ready(1);
    /// Bytes may be written.
    pub const WRITABLE: Ready = Ready(2);
    /// The peer closed its writing side: the stream ends after what is
    /// buffered.
    pub const READ_CLOSED: Ready = Ready(4);
    /// The stream has an error pending.
    pub const ERROR: Ready = Ready(8);

    /// The readiness a mio event reports.
    pub fn from_event(ev: &mio::event::Event) -> Ready {
        let mut r = Ready::EMPTY;
        if ev.is_readable() {
            r |= Ready::READABLE;
        }
        if ev.is_writable() || ev.is_write_closed() {
            r |= Ready::WRITABLE;
        }
        if ev.is_read_closed() {
            r |= Ready::READ_CLOSED | Ready::READABLE;
        }
        if ev.is_error() {
            r |= Ready::ERROR | Ready::READABLE;
        }
        r
    }

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub fn intersects(self, other: Ready) -> bool {
        self.0 & other.0 != 0
    }

    /// Clears the bits of `other`.
    pub fn remove(&mut self, other: Ready) {
        self.0 &= !other.0;
    }

    /// Whether a read may find something (bytes, the end, or an error).
    pub fn is_readable(self) -> bool {
        self.contains(Ready::READABLE)
    }

    /// Whether a write may go through.
    pub fn is_writable(self) -> bool {
        self.contains(Ready::WRITABLE)
    }

    /// Whether the poller said the stream is ending (closed or failed), so
    /// a short read does not mean there is nothing more to see.
    pub fn is_ending(self) -> bool {
        self.intersects(Ready::READ_CLOSED | Ready::ERROR)
    }
}

impl BitOr for Ready {
    type Output = Ready;
    fn bitor(self, rhs: Ready) -> Ready {
        Ready(self.0 | rhs.0)
    }
}

impl BitOrAssign for Ready {
    fn bitor_assign(&mut self, rhs: Ready) {
        self.0 |= rhs.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_combine_and_clear() {
        let mut r = Ready::READABLE | Ready::READ_CLOSED;
        assert!(r.is_readable() && r.is_ending() && !r.is_writable());
        r.remove(Ready::READABLE);
        assert!(!r.is_readable() && r.is_ending());
        r |= Ready::WRITABLE;
        assert!(r.is_writable() && r.contains(Ready::WRITABLE | Ready::READ_CLOSED));
        assert!(!Ready::EMPTY.intersects(Ready::ERROR));
    }
}
