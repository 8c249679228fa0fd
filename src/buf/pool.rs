//! The chunk pool: fixed-size buffers in size classes, cut from large pages.
//!
//! A size class holds chunks of `min_chunk * factor^k` bytes up to
//! `max_chunk`. When a class has no free chunk, one page of `page_size`
//! bytes is allocated and cut into chunks of that class. Requests above
//! `max_chunk` get a page of their own, freed when the chunk comes back.
//! Chunks are handles (page, offset, size); their bytes are reached through
//! the pool, so the whole scheme needs no unsafe code.
//!
//! Pages are anonymous memory mappings. [`Pool::trim`], called about once a
//! second, unmaps the pages that stayed empty since the previous trim
//! (keeping one spare per size class), so memory a burst took goes back to
//! the operating system soon after the burst, while a steady load, which
//! keeps reusing its pages, is not made to map and unmap them.

use memmap2::MmapMut;
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

/// No buffer page could be mapped: the system is out of memory (or of
/// mappings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolError {
    /// The bytes the page was to hold.
    pub bytes: usize,
    /// What the operating system said.
    pub kind: std::io::ErrorKind,
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot map a {}-byte buffer page: {}",
            self.bytes, self.kind
        )
    }
}

impl std::error::Error for PoolError {}

/// A handle to a checked-out buffer. It must be given back with
/// [`Pool::put`]; a handle dropped while its pool lives is caught in debug
/// builds (its bytes would stay taken in its page).
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk {
    page: u32,
    offset: u32,
    size: u32,
    class: u8,
}

impl Drop for Chunk {
    /// A chunk goes back through [`Pool::put`], which consumes it without
    /// running this; one dropped any other way would stay taken in its
    /// page for as long as the pool lives, so debug builds stop there.
    fn drop(&mut self) {
        debug_assert!(
            std::thread::panicking(),
            "a buffer chunk ({} bytes) was dropped without going back to its pool",
            self.size
        );
    }
}

impl Chunk {
    /// Usable bytes.
    pub fn size(&self) -> usize {
        self.size as usize
    }
}

const OWN_PAGE: u8 = u8::MAX;

/// A handle to a chunk held by several write queues at once (one message
/// fanned out to many destinations): [`Pool::share`] makes one,
/// [`Pool::clone_shared`] takes another reference, and the chunk goes back
/// to the pool when the last handle is given back with
/// [`Pool::put_shared`]. Like a [`Chunk`], a handle dropped any other way
/// is caught in debug builds.
#[derive(Debug, PartialEq, Eq)]
pub struct Shared {
    key: u32,
}

impl Drop for Shared {
    fn drop(&mut self) {
        debug_assert!(
            std::thread::panicking(),
            "a shared buffer handle was dropped without going back to its pool"
        );
    }
}

/// A shared chunk and the handles that hold it.
#[derive(Debug)]
struct SharedBuf {
    chunk: Chunk,
    len: u32,
    refs: u32,
}

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

/// One page: an anonymous memory mapping, so that dropping it gives its
/// memory back to the operating system (a heap allocation this large may
/// stay in the process after it is freed).
struct Page {
    mem: MmapMut,
    /// Its size class (or `OWN_PAGE`).
    class: u8,
    /// The last trim found it empty and untouched since the one before.
    seen_empty: bool,
}

/// In `Pool::uses`: the page had a chunk checked out since the last trim.
const TOUCHED: u32 = 1 << 31;

/// A pool of chunks in size classes.
pub struct Pool {
    pages: Slab<Page>,
    /// Per page (by its key): chunks checked out, and `TOUCHED`. Kept
    /// apart from the pages so checking out and giving back touch one
    /// word.
    uses: Vec<u32>,
    /// A page became empty since the last trim, or the last trim saw empty
    /// pages it will release at the next.
    trim_wanted: bool,
    classes: Vec<Class>,
    /// When class `k` holds chunks of exactly `2^(shift + k)` bytes (the
    /// default classes): `shift`, so a size's class is found by its bit
    /// length instead of a search.
    pow2_shift: Option<u32>,
    page_size: usize,
    stats: PoolStats,
    /// Chunks held through [`Shared`] handles.
    shared: Slab<SharedBuf>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("page_size", &self.page_size)
            .field("classes", &self.classes.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
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
        let shift = classes[0].size.trailing_zeros();
        let pow2 = classes.iter().enumerate().all(|(k, c)| {
            shift
                .checked_add(k as u32)
                .and_then(|s| 1usize.checked_shl(s))
                .is_some_and(|size| size == c.size)
        });
        Pool {
            pages: Slab::new(),
            pow2_shift: pow2.then_some(shift),
            classes,
            page_size: cfg.page_size.max(cfg.max_chunk),
            stats: PoolStats::default(),
            uses: Vec::new(),
            trim_wanted: false,
            shared: Slab::new(),
        }
    }

    /// A new zeroed page of `len` bytes, if it can be mapped.
    #[cold]
    #[inline(never)]
    fn new_page(&mut self, len: usize, class: u8) -> Result<u32, PoolError> {
        let mem = MmapMut::map_anon(len.max(1)).map_err(|e| PoolError {
            bytes: len,
            kind: e.kind(),
        })?;
        self.stats.pages += 1;
        self.stats.page_bytes += len;
        let key = self.pages.insert(Page {
            mem,
            class,
            seen_empty: false,
        });
        if self.uses.len() <= key {
            self.uses.resize(key + 1, 0);
        }
        self.uses[key] = 0;
        Ok(key as u32)
    }

    /// Gives back to the operating system the pages that were empty at
    /// this trim and the one before, keeping one empty page per size class
    /// for the next burst. Called about once a second, this returns what a
    /// burst took within two seconds of its end, while a steady load keeps
    /// its pages. Returns the pages released.
    pub fn trim(&mut self) -> usize {
        let mut spare = vec![false; self.classes.len()];
        let mut release = Vec::new();
        let mut waiting = false;
        for (key, page) in self.pages.iter_mut() {
            let uses = self.uses[key];
            self.uses[key] = uses & !TOUCHED;
            if uses & !TOUCHED > 0 || page.class == OWN_PAGE {
                page.seen_empty = false;
                continue;
            }
            // Empty now, untouched since the last trim, and empty then too.
            let long_empty = uses & TOUCHED == 0 && page.seen_empty;
            page.seen_empty = true;
            let class = usize::from(page.class);
            if !spare[class] {
                // The first empty page of each class stays.
                spare[class] = true;
            } else if long_empty {
                release.push(key);
            } else {
                waiting = true;
            }
        }
        self.trim_wanted = waiting;
        for &key in &release {
            let page = self.pages.remove(key);
            self.stats.pages -= 1;
            self.stats.page_bytes -= page.mem.len();
            let class = &mut self.classes[usize::from(page.class)];
            class.free.retain(|&(p, _)| p as usize != key);
        }
        release.len()
    }

    /// The size of the chunk [`get`](Pool::get) returns for `min` bytes.
    pub fn chunk_size_for(&self, min: usize) -> usize {
        match self.class_for(min) {
            Some(c) => self.classes[c].size,
            None => min,
        }
    }

    #[inline]
    fn class_for(&self, min: usize) -> Option<usize> {
        if let Some(shift) = self.pow2_shift {
            // The bit length of `min - 1` is the exponent of the smallest
            // power of two holding `min` bytes.
            let bits = usize::BITS - (min.max(1) - 1).leading_zeros();
            let k = bits.saturating_sub(shift) as usize;
            return (k < self.classes.len()).then_some(k);
        }
        // Sizes grow strictly, so a binary search finds the first that fits.
        let i = self.classes.partition_point(|c| c.size < min);
        (i < self.classes.len()).then_some(i)
    }

    /// Checks out a chunk of at least `min` bytes; fails only when a new
    /// page is needed and cannot be mapped.
    #[inline(always)]
    pub fn get(&mut self, min: usize) -> Result<Chunk, PoolError> {
        let Some(class) = self.class_for(min) else {
            let page = self.new_page(min, OWN_PAGE)?;
            return Ok(self.checked_out(Chunk {
                page,
                offset: 0,
                size: min as u32,
                class: OWN_PAGE,
            }));
        };
        let size = self.classes[class].size;
        let (page, offset) = match self.classes[class].free.pop() {
            Some(free) => free,
            None => self.refill(class)?,
        };
        Ok(self.checked_out(Chunk {
            page,
            offset,
            size: size as u32,
            class: class as u8,
        }))
    }

    /// Cuts a new page into chunks of `class` and takes the first.
    #[cold]
    fn refill(&mut self, class: usize) -> Result<(u32, u32), PoolError> {
        let size = self.classes[class].size;
        let count = (self.page_size / size).max(1);
        let page = self.new_page(count * size, class as u8)?;
        let free = &mut self.classes[class].free;
        free.extend((1..count).rev().map(|i| (page, (i * size) as u32)));
        Ok((page, 0))
    }

    fn checked_out(&mut self, c: Chunk) -> Chunk {
        self.stats.chunks_in_use += 1;
        self.stats.bytes_in_use += c.size();
        let uses = &mut self.uses[c.page as usize];
        *uses = (*uses + 1) | TOUCHED;
        c
    }

    /// Whether [`trim`](Self::trim) may have pages to give back now or at
    /// the next call: a page became empty since the last trim, or the last
    /// trim saw pages to release at the next.
    pub fn wants_trim(&self) -> bool {
        self.trim_wanted
    }

    /// Gives a chunk back.
    #[inline]
    pub fn put(&mut self, c: Chunk) {
        let c = std::mem::ManuallyDrop::new(c);
        self.stats.chunks_in_use -= 1;
        self.stats.bytes_in_use -= c.size();
        if c.class == OWN_PAGE {
            let page = self.pages.remove(c.page as usize);
            self.stats.pages -= 1;
            self.stats.page_bytes -= page.mem.len();
        } else {
            let uses = &mut self.uses[c.page as usize];
            *uses -= 1;
            if *uses & !TOUCHED == 0 {
                self.trim_wanted = true;
            }
            self.classes[usize::from(c.class)]
                .free
                .push((c.page, c.offset));
        }
    }

    /// The bytes of a chunk.
    pub fn bytes(&self, c: &Chunk) -> &[u8] {
        let start = c.offset as usize;
        &self.pages[c.page as usize].mem[start..start + c.size()]
    }

    /// The bytes of a chunk, writable.
    pub fn bytes_mut(&mut self, c: &Chunk) -> &mut [u8] {
        let start = c.offset as usize;
        &mut self.pages[c.page as usize].mem[start..start + c.size()]
    }

    /// Current counters.
    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Makes the first `len` bytes of `chunk` shared: the handle returned
    /// is its first reference.
    pub fn share(&mut self, chunk: Chunk, len: usize) -> Shared {
        let len = len.min(chunk.size()) as u32;
        let key = self.shared.insert(SharedBuf {
            chunk,
            len,
            refs: 1,
        });
        Shared { key: key as u32 }
    }

    /// Another reference to the shared chunk of `s`.
    pub fn clone_shared(&mut self, s: &Shared) -> Shared {
        self.shared[s.key as usize].refs += 1;
        Shared { key: s.key }
    }

    /// Gives back one reference; the last gives the chunk back.
    pub fn put_shared(&mut self, s: Shared) {
        let s = std::mem::ManuallyDrop::new(s);
        let key = s.key as usize;
        let buf = &mut self.shared[key];
        buf.refs -= 1;
        if buf.refs == 0 {
            let buf = self.shared.remove(key);
            self.put(buf.chunk);
        }
    }

    /// The shared bytes of `s`.
    pub fn shared_bytes(&self, s: &Shared) -> &[u8] {
        let buf = &self.shared[s.key as usize];
        &self.bytes(&buf.chunk)[..buf.len as usize]
    }

    /// References held to the shared chunk of `s`.
    pub fn shared_refs(&self, s: &Shared) -> u32 {
        self.shared[s.key as usize].refs
    }

    /// Chunks currently shared.
    pub fn shared_chunks(&self) -> usize {
        self.shared.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "dropped without going back to its pool")]
    fn a_chunk_dropped_without_going_back_is_caught() {
        let mut pool = Pool::new(&PoolConfig::default());
        let chunk = pool.get(64).expect("memory");
        drop(chunk);
    }

    #[test]
    fn a_shared_chunk_goes_back_with_its_last_handle() {
        let mut pool = Pool::new(&PoolConfig::default());
        let mut chunk = pool.get(100).expect("memory");
        pool.bytes_mut(&chunk)[..3].copy_from_slice(b"abc");
        let first = pool.share(chunk, 3);
        let copies: Vec<Shared> = (0..5).map(|_| pool.clone_shared(&first)).collect();
        assert_eq!(pool.shared_refs(&first), 6);
        assert_eq!(pool.shared_bytes(&copies[4]), b"abc");
        pool.put_shared(first);
        for c in copies {
            assert_eq!(pool.stats().chunks_in_use, 1);
            pool.put_shared(c);
        }
        assert_eq!(pool.stats().chunks_in_use, 0);
        assert_eq!(pool.shared_chunks(), 0);
        chunk = pool.get(100).expect("memory");
        pool.put(chunk);
    }

    #[test]
    fn a_page_that_cannot_be_mapped_is_an_error() {
        let mut pool = Pool::new(&PoolConfig::default());
        let e = pool.get(1 << 46).unwrap_err();
        assert_eq!(e.bytes, 1 << 46);
        assert!(e.to_string().contains("buffer page"), "{e}");
        assert_eq!(pool.stats(), PoolStats::default());
    }

    /// The bit-length shortcut and the search agree on every size, for
    /// power-of-two classes and others.
    #[test]
    fn a_size_gets_the_same_class_with_or_without_the_shortcut() {
        for cfg in [
            PoolConfig::default(),
            PoolConfig {
                min_chunk: 100,
                max_chunk: 5000,
                factor: 3,
                page_size: 1 << 16,
            },
            PoolConfig {
                min_chunk: 64,
                max_chunk: 3000,
                factor: 2,
                page_size: 1 << 16,
            },
        ] {
            let pool = Pool::new(&cfg);
            let mut searched = Pool::new(&cfg);
            searched.pow2_shift = None;
            for min in 0..70_000 {
                assert_eq!(
                    pool.class_for(min),
                    searched.class_for(min),
                    "{cfg:?} {min}"
                );
            }
        }
        assert!(Pool::new(&PoolConfig::default()).pow2_shift.is_some());
    }

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
        let a = pool.get(2048).expect("memory");
        let b = pool.get(2000).expect("memory");
        assert_eq!(a.page, b.page);
        assert_ne!(a.offset, b.offset);
        assert_eq!(pool.stats().pages, 1);
        assert_eq!(pool.stats().page_bytes, 1024 * 1024);
        assert_eq!(pool.stats().chunks_in_use, 2);
        pool.bytes_mut(&a).fill(7);
        assert!(pool.bytes(&b).iter().all(|&x| x == 0));
        let a_at = (a.page, a.offset);
        pool.put(a);
        let c = pool.get(1500).expect("memory");
        assert_eq!((c.page, c.offset), a_at);
        pool.put(b);
        pool.put(c);
        assert_eq!(pool.stats().chunks_in_use, 0);
        assert_eq!(pool.stats().bytes_in_use, 0);
    }

    #[test]
    fn pages_empty_for_two_trims_go_back_except_one_spare_per_class() {
        let cfg = PoolConfig {
            page_size: 4096,
            max_chunk: 4096,
            ..PoolConfig::default()
        };
        let mut pool = Pool::new(&cfg);
        // A burst: 64 chunks of 1 KiB take 16 pages.
        let burst: Vec<Chunk> = (0..64).map(|_| pool.get(1024).expect("memory")).collect();
        assert_eq!(pool.stats().pages, 16);
        assert_eq!(pool.trim(), 0, "nothing is empty");
        assert!(!pool.wants_trim());
        // One chunk stays in use; the rest come back.
        let mut burst = burst.into_iter();
        let kept = burst.next().unwrap();
        burst.for_each(|c| pool.put(c));
        assert!(pool.wants_trim());
        assert_eq!(pool.trim(), 0, "empty for one trim only: kept");
        assert_eq!(pool.trim(), 14, "the kept chunk's page and one spare stay");
        assert_eq!(pool.stats().pages, 2);
        assert_eq!(pool.stats().page_bytes, 2 * 4096);
        assert!(!pool.wants_trim(), "one spare is not worth a trim");
        // The free list lost the released pages: new chunks come from the
        // two pages left, then from a fresh page.
        let again: Vec<Chunk> = (0..8).map(|_| pool.get(1024).expect("memory")).collect();
        assert_eq!(pool.stats().pages, 3);
        for c in &again {
            pool.bytes_mut(c).fill(1);
        }
        // A page used again between trims is not released.
        again.into_iter().for_each(|c| pool.put(c));
        assert_eq!(pool.trim(), 0);
        let c = pool.get(1024).expect("memory");
        assert_eq!(pool.trim(), 0, "a page just used again stays");
        pool.put(c);
        pool.put(kept);
        pool.trim();
        pool.trim();
        assert_eq!(pool.stats().pages, 1, "one spare for the class");
        assert_eq!(pool.stats().chunks_in_use, 0);
    }

    #[test]
    fn oversize_chunks_get_their_own_page_and_free_it() {
        let mut pool = Pool::new(&PoolConfig::default());
        let big = pool.get(200_000).expect("memory");
        assert_eq!(big.size(), 200_000);
        assert_eq!(pool.stats().page_bytes, 200_000);
        pool.put(big);
        assert_eq!(pool.stats().pages, 0);
        assert_eq!(pool.stats().page_bytes, 0);
    }
}
