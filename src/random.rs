//! Randomness, passed in as the clock is.
//!
//! The gateway core draws random bytes for two things: a server's
//! challenge (`docs/protocol.md` §3) and the gateway's snet key (§7). It
//! draws them from a [`RandomSource`] it is given, never from the
//! operating system behind its caller's back, so a test harness or a
//! fuzzer that passes a [`SeededRandom`] replays a run exactly. The
//! default is [`OsRandom`], the operating system's CSPRNG.

use std::fmt;

/// Why no random bytes could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRandomness;

impl fmt::Display for NoRandomness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the random source failed")
    }
}

impl std::error::Error for NoRandomness {}

/// Where random bytes come from.
pub trait RandomSource: fmt::Debug + Send {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), NoRandomness>;

    /// A random `u64`.
    fn next_u64(&mut self) -> Result<u64, NoRandomness> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// The operating system's CSPRNG: what production uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), NoRandomness> {
        getrandom::fill(buf).map_err(|_| NoRandomness)
    }
}

/// A deterministic generator (SplitMix64) for tests and fuzzing: the same
/// seed gives the same bytes. Predictable, so never for production.
#[derive(Debug, Clone)]
pub struct SeededRandom {
    state: u64,
}

impl SeededRandom {
    /// A generator that starts from `seed`.
    pub fn new(seed: u64) -> SeededRandom {
        SeededRandom { state: seed }
    }

    fn step(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl RandomSource for SeededRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), NoRandomness> {
        for chunk in buf.chunks_mut(8) {
            let word = self.step().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_and_another_differs() {
        let draw = |seed| {
            let mut r = SeededRandom::new(seed);
            let mut b = [0u8; 13];
            r.fill(&mut b).expect("seeded source cannot fail");
            (b, r.next_u64().expect("seeded source cannot fail"))
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert_ne!(draw(7).0, [0u8; 13]);
    }

    #[test]
    fn the_os_source_gives_fresh_bytes() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        OsRandom.fill(&mut a).expect("the OS has randomness");
        OsRandom.fill(&mut b).expect("the OS has randomness");
        assert_ne!(a, b);
    }
}
