//! A connection's write queue: a chain of pooled chunks, written to the
//! socket with one vectored write, counted in bytes and in messages.
//!
//! Messages are counted per chunk (a message is counted in the chunk where it
//! ends), so the message count drops when a chunk is fully written and given
//! back. An empty queue holds no chunk.
//!
//! A message fanned out to many queues is held once: each queue's entry
//! for it is its own 8-byte frame header, kept in the entry, and a
//! reference to the shared payload ([`WriteQueue::push_shared`]).

use std::collections::VecDeque;
use std::io::IoSlice;

use super::pool::{Chunk, Pool, PoolError, Shared};

/// Most chunks handed to one vectored write.
pub const MAX_IOV: usize = 64;
/// Entries of chunk bookkeeping kept allocated once a queue drains.
const KEEP_ENTRIES: usize = 8;

/// Bytes of the header a shared entry holds itself.
const SHARED_HEADER: usize = 8;

#[derive(Debug)]
enum Body {
    /// A chunk of this queue's own.
    Own(Chunk),
    /// A frame header of its own, then `len` bytes at `off` of a shared
    /// chunk.
    Shared {
        buf: Shared,
        off: u32,
        header: [u8; SHARED_HEADER],
    },
}

/// A run of queued bytes: `start..end` of its body (for a shared body,
/// positions count the header first, then the payload).
#[derive(Debug)]
struct Entry {
    body: Body,
    start: u32,
    end: u32,
    msgs_ending: u32,
}

impl Entry {
    /// Bytes that can still be appended to this entry.
    #[inline]
    fn room(&self) -> usize {
        match &self.body {
            Body::Own(chunk) => chunk.size() - self.end as usize,
            Body::Shared { .. } => 0,
        }
    }

    /// The bytes still queued, as at most two slices.
    #[inline]
    fn slices<'a>(&'a self, pool: &'a Pool) -> (&'a [u8], &'a [u8]) {
        let (start, end) = (self.start as usize, self.end as usize);
        match &self.body {
            Body::Own(chunk) => (&pool.bytes(chunk)[start..end], &[]),
            Body::Shared { buf, off, header } => {
                let off = *off as usize;
                let payload = &pool.shared_bytes(buf)[off..off + end - SHARED_HEADER];
                if start < SHARED_HEADER {
                    (&header[start..], payload)
                } else {
                    (&payload[start - SHARED_HEADER..], &[])
                }
            }
        }
    }

    fn give_back(self, pool: &mut Pool) {
        match self.body {
            Body::Own(chunk) => pool.put(chunk),
            Body::Shared { buf, .. } => pool.put_shared(buf),
        }
    }
}

/// A queue of bytes waiting to be written to one connection.
#[derive(Debug, Default)]
pub struct WriteQueue {
    entries: VecDeque<Entry>,
    bytes: usize,
    msgs: usize,
}

impl WriteQueue {
    /// An empty queue; allocates nothing.
    pub fn new() -> WriteQueue {
        WriteQueue::default()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages waiting, counting a message until the chunk it ends in has
    /// been written.
    pub fn msgs(&self) -> usize {
        self.msgs
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Appends bytes, taking chunks of `chunk_size` bytes (or the pool's
    /// nearest class) from `pool` as needed. All or nothing: without memory
    /// for the chunks it needs, nothing is appended.
    pub fn push(
        &mut self,
        pool: &mut Pool,
        mut data: &[u8],
        chunk_size: usize,
    ) -> Result<(), PoolError> {
        let len = data.len();
        // The common case: an empty queue and bytes that fit one chunk.
        if self.entries.is_empty() && len <= chunk_size && len > 0 {
            let chunk = pool.get(chunk_size)?;
            pool.bytes_mut(&chunk)[..len].copy_from_slice(data);
            self.entries.push_back(Entry {
                body: Body::Own(chunk),
                start: 0,
                end: len as u32,
                msgs_ending: 0,
            });
            self.bytes += len;
            return Ok(());
        }
        let entries_before = self.entries.len();
        // Bytes put in the chunk that was the tail before this push.
        let mut into_old_tail = 0;
        while !data.is_empty() {
            let tail_room = self.entries.back().map_or(0, Entry::room);
            if tail_room == 0 {
                let chunk = match pool.get(chunk_size.max(1)) {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        while self.entries.len() > entries_before {
                            if let Some(e) = self.entries.pop_back() {
                                e.give_back(pool);
                            }
                        }
                        if let Some(tail) = self.entries.back_mut() {
                            tail.end -= into_old_tail;
                        }
                        return Err(e);
                    }
                };
                self.entries.push_back(Entry {
                    body: Body::Own(chunk),
                    start: 0,
                    end: 0,
                    msgs_ending: 0,
                });
                continue;
            }
            let Some(Entry {
                body: Body::Own(chunk),
                end,
                ..
            }) = self.entries.back_mut()
            else {
                unreachable!("the tail has room, so it is a chunk of its own");
            };
            let n = tail_room.min(data.len());
            let at = *end as usize;
            pool.bytes_mut(chunk)[at..at + n].copy_from_slice(&data[..n]);
            *end += n as u32;
            if self.entries.len() == entries_before {
                into_old_tail += n as u32;
            }
            data = &data[n..];
        }
        self.bytes += len;
        Ok(())
    }

    /// Appends a frame whose payload is shared: its own `header`, then
    /// `len` bytes at `off` of the shared chunk `buf` (another reference to
    /// it is taken; nothing is copied).
    pub fn push_shared(
        &mut self,
        pool: &mut Pool,
        header: [u8; SHARED_HEADER],
        buf: &Shared,
        off: usize,
        len: usize,
    ) {
        let buf = pool.clone_shared(buf);
        self.entries.push_back(Entry {
            body: Body::Shared {
                buf,
                off: off as u32,
                header,
            },
            start: 0,
            end: (SHARED_HEADER + len) as u32,
            msgs_ending: 0,
        });
        self.bytes += SHARED_HEADER + len;
    }

    /// Marks the end of a message: the bytes pushed since the last mark.
    pub fn end_message(&mut self) {
        if let Some(tail) = self.entries.back_mut() {
            tail.msgs_ending += 1;
            self.msgs += 1;
        }
    }

    /// Offers the queued bytes (up to [`MAX_IOV`] chunks) to `write` in one
    /// call; `write` answers how many it took, with whatever it wants to say
    /// about the destination. Fully written chunks go back to `pool`.
    pub fn write_with<S>(
        &mut self,
        pool: &mut Pool,
        write: impl FnOnce(&[IoSlice<'_>]) -> (usize, S),
    ) -> (usize, S) {
        let (written, status) = match self.entries.len() {
            0 => write(&[]),
            // The common case: one chunk, no iovec array to fill.
            1 if matches!(self.entries[0].body, Body::Own(_)) => {
                write(&[IoSlice::new(self.entries[0].slices(pool).0)])
            }
            _ => {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let mut n_iov = 0;
                for e in self.entries.iter() {
                    let (a, b) = e.slices(pool);
                    for part in [a, b] {
                        if !part.is_empty() && n_iov < MAX_IOV {
                            iov[n_iov] = IoSlice::new(part);
                            n_iov += 1;
                        }
                    }
                    if n_iov == MAX_IOV {
                        break;
                    }
                }
                write(&iov[..n_iov])
            }
        };
        let written = written.min(self.bytes);
        self.consume(pool, written);
        (written, status)
    }

    /// Whether the whole queue fits in one call of
    /// [`write_with`](Self::write_with).
    pub fn offers_all(&self) -> bool {
        let shared = |e: &Entry| matches!(e.body, Body::Shared { .. });
        self.entries.len() <= MAX_IOV / 2
            || self.entries.len() + self.entries.iter().filter(|e| shared(e)).count() <= MAX_IOV
    }

    #[inline]
    fn consume(&mut self, pool: &mut Pool, mut n: usize) {
        self.bytes -= n;
        while let Some(front) = self.entries.front_mut() {
            let avail = (front.end - front.start) as usize;
            if n < avail {
                front.start += n as u32;
                break;
            }
            n -= avail;
            self.pop_front(pool);
        }
        if self.bytes == 0 {
            self.release(pool);
        }
    }

    fn pop_front(&mut self, pool: &mut Pool) {
        if let Some(e) = self.entries.pop_front() {
            self.msgs -= e.msgs_ending as usize;
            e.give_back(pool);
        }
    }

    /// Gives every chunk back to `pool`, dropping whatever was queued.
    #[inline]
    pub fn release(&mut self, pool: &mut Pool) {
        while !self.entries.is_empty() {
            self.pop_front(pool);
        }
        self.bytes = 0;
        debug_assert_eq!(self.msgs, 0);
        self.msgs = 0;
        if self.entries.capacity() > KEEP_ENTRIES {
            self.entries = VecDeque::new();
        }
    }

    /// Moves everything queued in `other` to the end of this queue without
    /// copying bytes: the chunks themselves change hands.
    pub fn append(&mut self, other: &mut WriteQueue) {
        self.bytes += other.bytes;
        self.msgs += other.msgs;
        self.entries.extend(other.entries.drain(..));
        other.bytes = 0;
        other.msgs = 0;
    }

    /// Chunks held.
    pub fn chunks(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::PoolConfig;
    use std::io::{self, Write};

    /// A writer that takes at most `cap` bytes per call.
    struct Trickle {
        out: Vec<u8>,
        cap: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.cap);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Without memory for the chunks a push needs, nothing of it is
    /// queued: the queue holds exactly what it held, frame boundaries kept.
    #[test]
    fn a_push_without_memory_queues_nothing() {
        let mut pool = Pool::new(&PoolConfig::default());
        let mut q = WriteQueue::new();
        q.push(&mut pool, &[1; 100], 64).expect("memory");
        q.end_message();
        let before = (q.bytes(), q.msgs(), pool.stats());
        // The tail has room for 28 bytes; the rest would need a 2^46-byte
        // chunk of its own page.
        q.push(&mut pool, &[2; 1000], 1 << 46).unwrap_err();
        assert_eq!((q.bytes(), q.msgs(), pool.stats()), before);
        let mut out = Vec::new();
        q.write_with(&mut pool, |bufs| {
            for b in bufs {
                out.extend_from_slice(b);
            }
            (out.len(), ())
        });
        assert_eq!(out, vec![1; 100]);
        q.release(&mut pool);
        assert_eq!(pool.stats().chunks_in_use, 0);
    }

    #[test]
    fn bytes_come_out_in_order_across_chunks_and_chunks_go_back() {
        let mut pool = Pool::new(&PoolConfig::default());
        let mut q = WriteQueue::new();
        let mut expect = Vec::new();
        for i in 0..200u32 {
            let msg: Vec<u8> = (0..=(i % 97)).map(|b| (b ^ i) as u8).collect();
            q.push(&mut pool, &msg, 64).expect("memory");
            q.end_message();
            expect.extend_from_slice(&msg);
        }
        assert_eq!(q.msgs(), 200);
        assert_eq!(q.bytes(), expect.len());
        assert!(q.chunks() > 1);
        let mut w = Trickle {
            out: Vec::new(),
            cap: 77,
        };
        let mut last_msgs = q.msgs();
        while !q.is_empty() {
            q.write_with(&mut pool, |b| (w.write_vectored(b).unwrap(), ()));
            assert!(q.msgs() <= last_msgs);
            last_msgs = q.msgs();
        }
        assert_eq!(w.out, expect);
        assert_eq!(q.msgs(), 0);
        assert_eq!(q.chunks(), 0);
        assert_eq!(pool.stats().chunks_in_use, 0);
    }

    /// A shared payload queued to many queues is held once; each queue
    /// writes its own header, then the payload, interleaved with bytes of
    /// its own, whatever the writer takes per call; the chunk goes back
    /// with the last queue's write.
    #[test]
    fn a_shared_payload_is_written_by_every_queue_and_held_once() {
        let mut pool = Pool::new(&PoolConfig::default());
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut chunk = pool.get(400).expect("memory");
        pool.bytes_mut(&chunk)[..300].copy_from_slice(&payload);
        let shared = pool.share(chunk, 300);
        let mut queues: Vec<WriteQueue> = (0..10).map(|_| WriteQueue::new()).collect();
        for (i, q) in queues.iter_mut().enumerate() {
            q.push(&mut pool, b"before", 64).expect("memory");
            q.end_message();
            q.push_shared(&mut pool, [i as u8; 8], &shared, 100, 200);
            q.end_message();
            q.push(&mut pool, b"after", 64).expect("memory");
            q.end_message();
            assert_eq!((q.bytes(), q.msgs()), (6 + 8 + 200 + 5, 3));
        }
        pool.put_shared(shared);
        chunk = pool.get(1).expect("memory");
        pool.put(chunk);
        for (i, q) in queues.iter_mut().enumerate() {
            let mut w = Trickle {
                out: Vec::new(),
                cap: 1 + 3 * i,
            };
            while !q.is_empty() {
                q.write_with(&mut pool, |b| (w.write_vectored(b).unwrap(), ()));
            }
            let mut expect = b"before".to_vec();
            expect.extend_from_slice(&[i as u8; 8]);
            expect.extend_from_slice(&payload[100..300]);
            expect.extend_from_slice(b"after");
            assert_eq!(w.out, expect, "queue {i}");
            assert_eq!(q.msgs(), 0);
        }
        assert_eq!(pool.shared_chunks(), 0);
        assert_eq!(pool.stats().chunks_in_use, 0);
    }

    #[test]
    fn append_moves_chunks_and_counts() {
        let mut pool = Pool::new(&PoolConfig::default());
        let (mut a, mut b) = (WriteQueue::new(), WriteQueue::new());
        a.push(&mut pool, b"abc", 64).expect("memory");
        a.end_message();
        b.push(&mut pool, &[9; 100], 64).expect("memory");
        b.end_message();
        a.append(&mut b);
        assert!(b.is_empty() && b.chunks() == 0 && b.msgs() == 0);
        assert_eq!((a.bytes(), a.msgs(), a.chunks()), (103, 2, 3));
        a.push(&mut pool, b"z", 64).expect("memory");
        let mut out = Trickle {
            out: Vec::new(),
            cap: usize::MAX,
        };
        while !a.is_empty() {
            a.write_with(&mut pool, |b| (out.write_vectored(b).unwrap(), ()));
        }
        let mut expect = b"abc".to_vec();
        expect.extend_from_slice(&[9; 100]);
        expect.push(b'z');
        assert_eq!(out.out, expect);
        assert_eq!(pool.stats().chunks_in_use, 0);
    }

    #[test]
    fn release_returns_everything() {
        let mut pool = Pool::new(&PoolConfig::default());
        let mut q = WriteQueue::new();
        q.push(&mut pool, &[1; 1000], 256).expect("memory");
        q.end_message();
        assert_eq!(pool.stats().chunks_in_use, 4);
        q.release(&mut pool);
        assert!(q.is_empty());
        assert_eq!(q.msgs(), 0);
        assert_eq!(pool.stats().chunks_in_use, 0);
    }
}
