//! A connection's read buffer: one pooled chunk holding bytes read but not
//! yet processed. It is checked out when a read is about to happen and given
//! back as soon as it is empty, so an idle connection holds no chunk.

use super::pool::{Chunk, Pool, PoolError};

/// Bytes read from a connection and not yet consumed.
#[derive(Debug, Default)]
pub struct ReadBuf {
    chunk: Option<Chunk>,
    start: u32,
    end: u32,
}

impl ReadBuf {
    /// An empty buffer holding no chunk.
    pub fn new() -> ReadBuf {
        ReadBuf::default()
    }

    /// Unconsumed bytes.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether no bytes wait.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether a chunk is held.
    pub fn holds_chunk(&self) -> bool {
        self.chunk.is_some()
    }

    /// The unconsumed bytes.
    pub fn data<'p>(&self, pool: &'p Pool) -> &'p [u8] {
        match &self.chunk {
            Some(c) => &pool.bytes(c)[self.start as usize..self.end as usize],
            None => &[],
        }
    }

    /// Reads once into free space through `read`, first making room by
    /// moving the unconsumed bytes to the front. `size` is the chunk size to
    /// check out. `read` gets the free space and answers the bytes it put
    /// there, with whatever it wants to say about the source; the chunk
    /// goes back if nothing is held afterwards. Fails, reading nothing, if
    /// no chunk can be had.
    pub fn fill_with<S>(
        &mut self,
        pool: &mut Pool,
        size: usize,
        read: impl FnOnce(&mut [u8]) -> (usize, S),
    ) -> Result<(usize, S), PoolError> {
        if self.chunk.is_none() {
            self.chunk = Some(pool.get(size)?);
        }
        let Some(chunk) = &self.chunk else {
            unreachable!("a chunk was checked out above");
        };
        let buf = pool.bytes_mut(chunk);
        if self.end as usize == buf.len() && self.start > 0 {
            buf.copy_within(self.start as usize..self.end as usize, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let free = &mut buf[self.end as usize..];
        let room = free.len();
        let (n, status) = read(free);
        let n = n.min(room);
        self.end += n as u32;
        if self.is_empty() {
            self.release(pool);
        }
        Ok((n, status))
    }

    /// Whether the buffer has no room left even after compaction.
    pub fn is_full(&self, pool: &Pool) -> bool {
        self.chunk
            .as_ref()
            .is_some_and(|c| self.len() == pool.bytes(c).len())
    }

    /// Moves the unconsumed bytes into a chunk of `size` bytes if they fit
    /// and the chunk held now is larger, so a connection waiting for the rest
    /// of a frame keeps no more than its configured buffer. (Without memory
    /// for the smaller chunk, the larger one is kept.)
    pub fn shrink(&mut self, pool: &mut Pool, size: usize) {
        let Some(c) = &self.chunk else {
            return;
        };
        if c.size() <= pool.chunk_size_for(size) || self.len() > size {
            return;
        }
        let Ok(small) = pool.get(size) else {
            return;
        };
        let (start, end) = (self.start as usize, self.end as usize);
        let mut tmp = [0u8; 256];
        // The two chunks are both in the pool; copy through the stack in
        // pieces rather than borrowing the pool twice.
        let mut at = 0;
        while at < end - start {
            let n = (end - start - at).min(tmp.len());
            tmp[..n].copy_from_slice(&pool.bytes(c)[start + at..start + at + n]);
            pool.bytes_mut(&small)[at..at + n].copy_from_slice(&tmp[..n]);
            at += n;
        }
        if let Some(old) = self.chunk.replace(small) {
            pool.put(old);
        }
        self.end -= self.start;
        self.start = 0;
    }

    /// Drops `n` processed bytes; gives the chunk back once empty.
    pub fn consume(&mut self, pool: &mut Pool, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n as u32;
        if self.is_empty() {
            self.release(pool);
        }
    }

    /// Gives the chunk back, dropping unconsumed bytes.
    pub fn release(&mut self, pool: &mut Pool) {
        if let Some(c) = self.chunk.take() {
            pool.put(c);
        }
        self.start = 0;
        self.end = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::PoolConfig;

    #[test]
    fn compacts_and_releases() {
        let mut pool = Pool::new(&PoolConfig::default());
        let mut rb = ReadBuf::new();
        let mut src: &[u8] = &[7u8; 200];
        let read = |src: &mut &[u8], buf: &mut [u8]| {
            let n = std::io::Read::read(src, buf).unwrap();
            (n, n == buf.len())
        };
        assert_eq!(
            rb.fill_with(&mut pool, 128, |b| read(&mut src, b)),
            Ok((128, true))
        );
        assert!(rb.is_full(&pool));
        rb.consume(&mut pool, 100);
        assert_eq!(
            rb.fill_with(&mut pool, 128, |b| read(&mut src, b)),
            Ok((72, false))
        );
        assert_eq!(rb.len(), 100);
        assert!(rb.data(&pool).iter().all(|&b| b == 7));
        rb.consume(&mut pool, 100);
        assert!(!rb.holds_chunk());
        assert_eq!(pool.stats().chunks_in_use, 0);
        // A leftover in a large chunk moves to a small one.
        let mut src: &[u8] = &[9u8; 1000];
        rb.fill_with(&mut pool, 4096, |b| read(&mut src, b))
            .expect("memory");
        rb.consume(&mut pool, 900);
        rb.shrink(&mut pool, 128);
        assert_eq!(rb.data(&pool), &[9u8; 100][..]);
        assert_eq!(pool.stats().bytes_in_use, 128);
        rb.consume(&mut pool, 100);
        // A read of nothing (EOF, or WouldBlock) holds no chunk afterwards.
        assert_eq!(
            rb.fill_with(&mut pool, 128, |b| read(&mut src, b)),
            Ok((0, false))
        );
        assert!(!rb.holds_chunk());
    }
}
