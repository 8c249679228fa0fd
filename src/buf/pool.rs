//! The chunk pool: fixed-size buffers in size classes, cut from large pages.
//!
//! A size class holds chunks of `min_chunk * factor^k` bytes up to
//! `max_chunk`. When a class has no free chunk, one page of `page_size`
//! bytes is allocated and cut into chunks of that class. Requests above
//! `max_chunk` get a page of their own, freed when the chunk comes back.
//! Chunks are handles (page, offset, size); their bytes are reached through
//! the pool, so the whole scheme needs no unsafe code.

use slab::Slab;

/// Parameters of the buffer pool (`MemPool*` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Smallest chunk size class.
    pub min_chunk: usize,
    /// Largest chunk size class.
    pub max_chunk: usize,
    /// Growth factor between size classes.
    pub factor: usize,
    /// Bytes of each page from which chunks are cut.
    pub page_size: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min_chunk: 64,
            max_chunk: 64 * 1024,
            factor: 2,
            page_size: 1024 * 1024,
        }
    }
}

/// A handle to a checked-out buffer. It must be given back with
/// [`Pool::put`]; a dropped handle only leaks its bytes into its page.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk {
    page: u32,
    offset: u32,
    size: u32,
    class: u8,
}

impl Chunk {
    /// Usable bytes.
    pub fn size(&self) -> usize {
        self.size as usize
    }
}

const OWN_PAGE: u8 = u8::MAX;

struct Class {
    size: usize,
    free: Vec<(u32, u32)>,
}

/// Counters of the pool, for `stats()` and `lookup heap`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Pages allocated, including single-chunk oversize pages.
    pub pages: usize,
    /// Bytes in all pages.
    pub page_bytes: usize,
    /// Chunks currently checked out.
    pub chunks_in_use: usize,
    /// Bytes of the chunks currently checked out.
    pub bytes_in_use: usize,
}

/// A pool of chunks in size classes.
pub struct Pool {
    pages: Slab<Box<[u8]>>,
    classes: Vec<Class>,
    page_size: usize,
    stats: PoolStats,
}

impl Pool {
    /// A pool with the given parameters; no memory is allocated until used.
    pub fn new(cfg: &PoolConfig) -> Pool {
        let mut classes = Vec::new();
        let mut size = cfg.min_chunk.max(1);
        loop {
            classes.push(Class {
                size: size.min(cfg.max_chunk),
                free: Vec::new(),
            });
            if size >= cfg.max_chunk || classes.len() >= usize::from(OWN_PAGE) - 1 {
                break;
            }
            size = size.saturating_mul(cfg.factor.max(2));
        }
        Pool {
            pages: Slab::new(),
            classes,
            page_size: cfg.page_size.max(cfg.max_chunk),
            stats: PoolStats::default(),
        }
    }

    /// The size of the chunk [`get`](Pool::get) returns for `min` bytes.
    pub fn chunk_size_for(&self, min: usize) -> usize {
        match self.class_for(min) {
            Some(c) => self.classes[c].size,
            None => min,
        }
    }

    fn class_for(&self, min: usize) -> Option<usize> {
        // Sizes grow strictly, so a binary search finds the first that fits.
        let i = self.classes.partition_point(|c| c.size < min);
        (i < self.classes.len()).then_some(i)
    }

    /// Checks out a chunk of at least `min` bytes.
    pub fn get(&mut self, min: usize) -> Chunk {
        let Some(class) = self.class_for(min) else {
            let page = self.pages.insert(vec![0u8; min].into_boxed_slice());
            self.stats.pages += 1;
            self.stats.page_bytes += min;
            return self.checked_out(Chunk {
                page: page as u32,
                offset: 0,
                size: min as u32,
                class: OWN_PAGE,
            });
        };
        let size = self.classes[class].size;
        if self.classes[class].free.is_empty() {
            let count = (self.page_size / size).max(1);
            let page = self
                .pages
                .insert(vec![0u8; count * size].into_boxed_slice()) as u32;
            self.stats.pages += 1;
            self.stats.page_bytes += count * size;
            let free = &mut self.classes[class].free;
            free.extend((0..count).rev().map(|i| (page, (i * size) as u32)));
        }
        let (page, offset) = self.classes[class]
            .free
            .pop()
            .unwrap_or_else(|| unreachable!("class refilled above"));
        self.checked_out(Chunk {
            page,
            offset,
            size: size as u32,
            class: class as u8,
        })
    }

    fn checked_out(&mut self, c: Chunk) -> Chunk {
        self.stats.chunks_in_use += 1;
        self.stats.bytes_in_use += c.size();
        c
    }

    /// Gives a chunk back.
    pub fn put(&mut self, c: Chunk) {
        self.stats.chunks_in_use -= 1;
        self.stats.bytes_in_use -= c.size();
        if c.class == OWN_PAGE {
            self.pages.remove(c.page as usize);
            self.stats.pages -= 1;
            self.stats.page_bytes -= c.size();
        } else {
            self.classes[usize::from(c.class)]
                .free
                .push((c.page, c.offset));
        }
    }

    /// The bytes of a chunk.
    pub fn bytes(&self, c: &Chunk) -> &[u8] {
        let start = c.offset as usize;
        &self.pages[c.page as usize][start..start + c.size()]
    }

    /// The bytes of a chunk, writable.
    pub fn bytes_mut(&mut self, c: &Chunk) -> &mut [u8] {
        let start = c.offset as usize;
        &mut self.pages[c.page as usize][start..start + c.size()]
    }

    /// Current counters.
    pub fn stats(&self) -> PoolStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_grow_by_factor_and_cap_at_max() {
        let pool = Pool::new(&PoolConfig::default());
        let sizes: Vec<usize> = pool.classes.iter().map(|c| c.size).collect();
        assert_eq!(sizes.first(), Some(&64));
        assert_eq!(sizes.last(), Some(&65536));
        assert!(sizes.windows(2).all(|w| w[1] == w[0] * 2));
        assert_eq!(pool.chunk_size_for(65), 128);
        assert_eq!(pool.chunk_size_for(100_000), 100_000);
    }

    #[test]
    fn chunks_are_cut_from_one_page_and_reused() {
        let mut pool = Pool::new(&PoolConfig::default());
        let a = pool.get(2048);
        let b = pool.get(2000);
        assert_eq!(a.page, b.page);
        assert_ne!(a.offset, b.offset);
        assert_eq!(pool.stats().pages, 1);
        assert_eq!(pool.stats().page_bytes, 1024 * 1024);
        assert_eq!(pool.stats().chunks_in_use, 2);
        pool.bytes_mut(&a).fill(7);
        assert!(pool.bytes(&b).iter().all(|&x| x == 0));
        let a_at = (a.page, a.offset);
        pool.put(a);
        let c = pool.get(1500);
        assert_eq!((c.page, c.offset), a_at);
        pool.put(b);
        pool.put(c);
        assert_eq!(pool.stats().chunks_in_use, 0);
        assert_eq!(pool.stats().bytes_in_use, 0);
    }

    #[test]
    fn oversize_chunks_get_their_own_page_and_free_it() {
        let mut pool = Pool::new(&PoolConfig::default());
        let big = pool.get(200_000);
        assert_eq!(big.size(), 200_000);
        assert_eq!(pool.stats().page_bytes, 200_000);
        pool.put(big);
        assert_eq!(pool.stats().pages, 0);
        assert_eq!(pool.stats().page_bytes, 0);
    }
}
