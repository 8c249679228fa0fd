//! DH64: the 64-bit Diffie-Hellman exchange snet uses to agree on its RC4
//! key (`docs/protocol.md` §7). Weak by design; it exists for compatibility
//! with deployed game clients.

use crate::random::{NoRandomness, OsRandom, RandomSource};

/// The modulus, `2^64 - 59` (the largest 64-bit prime).
pub const P: u64 = 0xffff_ffff_ffff_ffc5;
/// The generator.
pub const G: u64 = 5;

/// `base^exp mod P`.
pub fn pow_mod(base: u64, exp: u64) -> u64 {
    let p = u128::from(P);
    let mut result: u128 = 1;
    let mut b = u128::from(base) % p;
    let mut e = exp;
    while e > 0 {
        if e & 1 == 1 {
            result = result * b % p;
        }
        b = b * b % p;
        e >>= 1;
    }
    // Below P, so it fits.
    result as u64
}

/// The public key of `private`.
pub fn public_key(private: u64) -> u64 {
    pow_mod(G, private)
}

/// The shared secret of `private` and the peer's public key.
pub fn secret(private: u64, peer_public: u64) -> u64 {
    pow_mod(peer_public, private)
}

/// A fresh random private key (non-zero) from the operating system.
pub fn private_key() -> Result<u64, NoRandomness> {
    private_key_from(&mut OsRandom)
}

/// A fresh private key (non-zero) drawn from `source`.
pub fn private_key_from(source: &mut dyn RandomSource) -> Result<u64, NoRandomness> {
    loop {
        let k = source.next_u64()?;
        if k != 0 {
            return Ok(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed independently with Python: pow(5, k, 2**64 - 59) and
    // pow(peer, k, 2**64 - 59).
    #[test]
    fn known_answers() {
        assert_eq!(public_key(0x0123_4567_89ab_cdef), 0x445f_ea74_f4a7_a181);
        assert_eq!(public_key(0x0fed_cba9_8765_4321), 0x0aed_9379_2dcb_66e9);
        assert_eq!(
            secret(0x0123_4567_89ab_cdef, 0x0aed_9379_2dcb_66e9),
            0x77f2_18e7_f4a4_25ef
        );
        assert_eq!(
            secret(0x0fed_cba9_8765_4321, 0x445f_ea74_f4a7_a181),
            0x77f2_18e7_f4a4_25ef
        );
        assert_eq!(public_key(1), 5);
        assert_eq!(public_key(u64::MAX), 0x77b3_51f6_baa6_2e4e);
        assert_eq!(public_key(1_000_000_007), 0x4eca_88ad_8d92_681c);
        assert_eq!(pow_mod(P - 1, 2), 1);
    }
}
