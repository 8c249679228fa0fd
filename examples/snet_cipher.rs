//! How fast snet moves bytes through a session, without I/O: commits
//! (copy into the resend ring, encrypting) and receives (decrypting), with
//! encryption on and off. The floor the encrypted gateway runs against.
//!
//! ```sh
//! cargo run --release --example snet_cipher
//! ```

use std::io::IoSlice;
use std::time::Instant;

use uniway::snet::{dh64, Session, SnetSettings};

fn main() {
    const MSG: usize = 4096;
    const ROUNDS: usize = 100_000;
    for encrypt in [false, true] {
        let settings = SnetSettings {
            encrypt,
            buffer: 32 * 1024,
        };
        let client_private = 0x0123_4567_89ab_cdef;
        let public = dh64::public_key(client_private);
        let Ok((mut gw, reply)) = Session::accept(1, public, 0x0fed_cba9_8765_4321, settings)
        else {
            unreachable!("a non-zero public key")
        };
        let Ok(mut client) = Session::connect(client_private, &reply, settings) else {
            unreachable!("a valid reply")
        };
        let msg = vec![7u8; MSG];
        let mut wire = vec![0u8; MSG];
        let start = Instant::now();
        for _ in 0..ROUNDS {
            // The gateway sends 4 KiB; the client receives them.
            gw.commit(&[IoSlice::new(&msg)]);
            let [a, b] = gw.unsent();
            wire[..a.len()].copy_from_slice(a);
            wire[a.len()..].copy_from_slice(b);
            gw.sent(MSG);
            client.received(&mut wire);
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(wire, msg, "the bytes came through");
        let bytes = (MSG * ROUNDS) as f64;
        println!(
            "encrypt={encrypt}: {:.0} MB/s through commit+receive, {:.2} ns per byte (each byte encrypted once and decrypted once)",
            bytes / secs / 1e6,
            secs * 1e9 / bytes
        );
    }
}
