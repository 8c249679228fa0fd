//! The resend ring: the last `capacity` bytes written to an snet stream, as
//! sent on the wire (after encryption), which is also the stream's send
//! buffer. Bytes are committed to the stream by copying them in (that is
//! what the write counter counts); the current link sends them from here;
//! after a reconnect the link starts again from what the peer says it read.
//!
//! The storage grows with use up to its capacity: a connection that has
//! written little holds little.

use std::io::IoSlice;

/// Smallest allocation once something is written.
const FIRST_ALLOC: usize = 256;

/// A ring of the last bytes written, with a send cursor.
#[derive(Debug, Default)]
pub(super) struct Ring {
    buf: Vec<u8>,
    capacity: usize,
    /// Bytes committed to the stream since it began (the write counter).
    written: u64,
    /// Bytes of those handed to the current link.
    sent: u64,
}

impl Ring {
    /// An empty ring keeping at most `capacity` bytes (at least 1).
    pub(super) fn new(capacity: usize) -> Ring {
        Ring {
            buf: Vec::new(),
            capacity: capacity.max(1),
            written: 0,
            sent: 0,
        }
    }

    /// The write counter: bytes committed since the stream began.
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    /// Bytes committed but not yet handed to the current link.
    pub(super) fn unsent(&self) -> usize {
        // At most `capacity`, which is a usize.
        (self.written - self.sent) as usize
    }

    /// Bytes that can be committed now without overwriting unsent ones.
    pub(super) fn room(&self) -> usize {
        self.capacity - self.unsent()
    }

    /// Bytes allocated.
    pub(super) fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    fn pos(&self, count: u64) -> usize {
        // The remainder is below `capacity`, a usize.
        (count % self.capacity as u64) as usize
    }

    /// Commits as much of `bufs` as there is room for; `transform` is
    /// applied in place to each committed run (encryption). Returns the
    /// bytes committed.
    pub(super) fn commit(
        &mut self,
        bufs: &[IoSlice<'_>],
        mut transform: impl FnMut(&mut [u8]),
    ) -> usize {
        let mut taken = 0;
        for b in bufs {
            let mut data: &[u8] = b;
            while !data.is_empty() {
                let room = self.room();
                if room == 0 {
                    return taken;
                }
                let start = self.pos(self.written);
                self.grow_for(data.len().min(room));
                let n = data.len().min(room).min(self.capacity - start);
                let run = &mut self.buf[start..start + n];
                run.copy_from_slice(&data[..n]);
                transform(run);
                self.written += n as u64;
                taken += n;
                data = &data[n..];
            }
        }
        taken
    }

    /// Records that the first `n` bytes of `bufs` went to the link as they
    /// are, with nothing unsent before them: they are committed and sent at
    /// once, and the ring keeps (a copy of) the last of them.
    pub(super) fn record(&mut self, bufs: &[IoSlice<'_>], n: usize) {
        debug_assert_eq!(self.unsent(), 0);
        // Only the last `capacity` bytes can ever be resent.
        let mut skip = n.saturating_sub(self.capacity);
        let mut left = n - skip;
        self.written += skip as u64;
        self.sent = self.written;
        for b in bufs {
            if left == 0 {
                break;
            }
            let data: &[u8] = b;
            if skip >= data.len() {
                skip -= data.len();
                continue;
            }
            let piece = &data[skip..][..(data.len() - skip).min(left)];
            skip = 0;
            left -= piece.len();
            self.commit(&[IoSlice::new(piece)], |_| {});
            self.sent = self.written;
        }
    }

    /// Makes sure the storage reaches the positions the next `n` bytes
    /// take (until it wraps, a byte's position is its count).
    fn grow_for(&mut self, n: usize) {
        if self.buf.len() == self.capacity {
            return;
        }
        let end = usize::try_from(self.written)
            .unwrap_or(usize::MAX)
            .saturating_add(n)
            .min(self.capacity);
        if end > self.buf.len() {
            let new_len = end
                .max(self.buf.len().saturating_mul(2))
                .max(FIRST_ALLOC)
                .min(self.capacity);
            self.buf.resize(new_len, 0);
        }
    }

    /// The unsent bytes, as at most two slices in order.
    pub(super) fn unsent_slices(&self) -> [&[u8]; 2] {
        let n = self.unsent();
        if n == 0 {
            return [&[], &[]];
        }
        let start = self.pos(self.sent);
        let first = n.min(self.capacity - start);
        [&self.buf[start..start + first], &self.buf[..n - first]]
    }

    /// Records that the link took `n` more bytes.
    pub(super) fn sent(&mut self, n: usize) {
        debug_assert!(n <= self.unsent());
        self.sent += n as u64;
    }

    /// Starts a new link from `peer_read`, the bytes the peer says it has
    /// read: they must be bytes this side sent and the rest must still be
    /// in the ring.
    pub(super) fn rewind(&mut self, peer_read: u64) -> Result<(), RewindError> {
        if peer_read > self.sent {
            return Err(RewindError::ReadMoreThanSent {
                read: peer_read,
                sent: self.sent,
            });
        }
        let resend = self.written - peer_read;
        if resend > self.capacity as u64 {
            return Err(RewindError::NotInRing {
                resend,
                capacity: self.capacity,
            });
        }
        self.sent = peer_read;
        Ok(())
    }
}

/// Why a reconnect cannot go on from what the peer read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewindError {
    /// The peer claims bytes this side never sent.
    ReadMoreThanSent {
        /// What the peer claims to have read.
        read: u64,
        /// What this side sent.
        sent: u64,
    },
    /// The bytes to resend are no longer kept.
    NotInRing {
        /// Bytes the peer is missing.
        resend: u64,
        /// The ring's size.
        capacity: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(r: &Ring) -> Vec<u8> {
        r.unsent_slices().concat()
    }

    #[test]
    fn commits_send_and_rewinds_across_the_wrap() {
        let mut r = Ring::new(8);
        assert_eq!(r.allocated(), 0);
        assert_eq!(r.commit(&[IoSlice::new(b"abcdef")], |_| {}), 6);
        assert_eq!(take(&r), b"abcdef");
        r.sent(6);
        // Only 8 fit beside nothing unsent; the rest waits.
        assert_eq!(
            r.commit(&[IoSlice::new(b"ghij"), IoSlice::new(b"klmnop")], |_| {}),
            8
        );
        assert_eq!(r.written(), 14);
        assert_eq!(take(&r), b"ghijklmn");
        r.sent(5);
        // The peer read 9: resend 5 (j..n).
        assert_eq!(r.rewind(9), Ok(()));
        assert_eq!(take(&r), b"jklmn");
        assert_eq!(
            r.rewind(5),
            Err(RewindError::NotInRing {
                resend: 9,
                capacity: 8
            })
        );
        assert_eq!(
            r.rewind(12),
            Err(RewindError::ReadMoreThanSent { read: 12, sent: 9 })
        );
    }

    #[test]
    fn transform_sees_each_committed_byte_once() {
        let mut r = Ring::new(4);
        let mut seen = Vec::new();
        r.commit(&[IoSlice::new(b"xyz")], |run| {
            seen.extend_from_slice(run);
            run.iter_mut().for_each(|b| *b ^= 0x20);
        });
        r.sent(3);
        r.commit(&[IoSlice::new(b"ab")], |run| {
            seen.extend_from_slice(run);
            run.iter_mut().for_each(|b| *b ^= 0x20);
        });
        assert_eq!(seen, b"xyzab");
        assert_eq!(take(&r), b"AB");
    }

    #[test]
    fn recording_keeps_what_committing_would() {
        let data: Vec<u8> = (0..50u8).collect();
        let bufs = [
            IoSlice::new(&data[..7]),
            IoSlice::new(&data[7..30]),
            IoSlice::new(&data[30..]),
        ];
        for n in [0, 5, 7, 8, 16, 29, 30, 31, 49, 50] {
            for before in [0usize, 3, 16] {
                let (mut a, mut b) = (Ring::new(16), Ring::new(16));
                for r in [&mut a, &mut b] {
                    r.commit(&[IoSlice::new(&vec![9; before])], |_| {});
                    r.sent(before);
                }
                a.record(&bufs, n);
                for chunk in data[..n].chunks(16) {
                    b.commit(&[IoSlice::new(chunk)], |_| {});
                    b.sent(chunk.len());
                }
                assert_eq!((a.written(), a.unsent()), (b.written(), 0), "n {n}");
                let keep = (n + before).min(16) as u64;
                a.rewind(a.written() - keep).unwrap();
                b.rewind(b.written() - keep).unwrap();
                assert_eq!(take(&a), take(&b), "n {n}, before {before}");
            }
        }
    }

    #[test]
    fn storage_grows_with_use_only() {
        let mut r = Ring::new(1 << 20);
        r.commit(&[IoSlice::new(&[1; 100])], |_| {});
        assert!(r.allocated() < 4096, "{}", r.allocated());
        r.sent(100);
        r.commit(&[IoSlice::new(&[2; 10_000])], |_| {});
        assert!(r.allocated() >= 10_100 && r.allocated() < 64 * 1024);
    }
}
